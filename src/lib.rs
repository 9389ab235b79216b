//! dms_window_reload: merge a reloaded past time window from staging tables into production tables
//! that a CDC pipeline (AWS DMS, logical replication) keeps writing.
//!
//! Catalog metadata, the merge plan and the SQL text live in the pgrx-free crate `dwr_engine`
//! (`engine/`). This crate runs them, one module per stage, each depending only on those above it:
//! 1. [`exec`], [`guc`]: SPI, subtransactions, errors; the settings;
//! 2. [`registry`]: what is kept about a table across transactions (registration, reload,
//!    tombstones and their pruning);
//! 3. [`citus`]: the Citus topology (placement, tombstones on the shards, the pushed-down merge);
//! 4. [`run`]: what every run shares (one merge of a table at a time, lock-timeout budget, counts,
//!    the test hold);
//! 5. [`audit`], [`failure`]: the `dwr.merge_runs` trail, and the record of a failed run;
//! 6. entry points: [`staging`], [`reload`], [`merge`], [`batch`], [`undo`], [`diff`], [`verify`],
//!    [`dms`], [`schedule`].
//!
//! The SQL interface is declared in `sql/`; the functions here are its C entry points.

use pgrx::prelude::*;

pub mod audit;
pub mod batch;

pub mod diff;
pub mod dms;
pub mod exec;
pub mod failure;
pub mod guc;
pub mod legacy;
pub mod merge;
pub mod missed_deletes;
pub mod program;
pub mod registry;
pub mod reload;
pub mod run;
pub mod staging;
pub mod tombstones;
pub mod topology;
pub mod undo;
pub mod verify;

::pgrx::pg_module_magic!(name, version);

// The install script is this version's definitions (the update scripts are for ALTER EXTENSION
// UPDATE only): the tables, the functions both modes have, the compiled extension's own, the views.
pgrx::extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
pgrx::extension_sql_file!("../sql/shared.sql", name = "shared", requires = ["schema"]);
pgrx::extension_sql_file!(
    "../sql/functions.sql",
    name = "functions",
    requires = ["shared"]
);
pgrx::extension_sql_file!(
    "../sql/views.sql",
    name = "views",
    requires = ["functions"],
    finalize
);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::register();
    missed_deletes::init();
}

#[cfg(any(test, feature = "pg_test"))]
mod tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
