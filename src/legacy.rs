//! The C entry points of functions that are PL/pgSQL since 0.5.0 (`dwr_begin_reload`,
//! `dwr_end_reload`, `dwr_drop_staging`, `dwr_purge_staging`, `dwr_purge_audit`, `dwr_schedule`,
//! `dwr_unschedule`, the view `dwr.staging_status`) and 0.6.0 (`dwr_merge_all`,
//! `dwr_create_staging`), shared with the pg_tle package.
//!
//! A database still on the SQL of an older version declares them as C functions of this library:
//! `CREATE EXTENSION dms_window_reload VERSION '0.4.0'` (the upgrade test), `pg_upgrade` and
//! `pg_restore` of such a database create them, and PostgreSQL looks their symbols up then. So the
//! symbols stay; called, each says that the extension's SQL is older than its library and how to
//! update it. `ALTER EXTENSION dms_window_reload UPDATE` replaces them with the PL/pgSQL.

use crate::exec::raise;
use dwr_engine::{DwrError, SqlState};
use pgrx::prelude::*;

fn outdated(function: &str) -> ! {
    raise(
        DwrError::new(
            SqlState::ObjectNotInPrerequisiteState,
            format!("{function} of this database is older than the dms_window_reload library"),
        )
        .detail(format!(
            "The library is version {}, whose {function} is PL/pgSQL; this database still declares it as the C function of an older version.",
            env!("CARGO_PKG_VERSION")
        ))
        .hint("Run ALTER EXTENSION dms_window_reload UPDATE; in this database."),
    )
}

macro_rules! outdated_entry_points {
    ($($name:ident),* $(,)?) => {
        $(
            #[pg_extern(sql = false)]
            fn $name() {
                outdated(stringify!($name))
            }
        )*
    };
}

outdated_entry_points!(
    dwr_merge_all,
    dwr_create_staging,
    dwr_begin_reload,
    dwr_end_reload,
    dwr_drop_staging,
    dwr_purge_staging,
    dwr_purge_audit,
    dwr_schedule,
    dwr_unschedule,
);

/// The view's function had no `dwr_` name of its own.
#[pg_extern(sql = false)]
fn staging_status() {
    outdated("dwr._staging_status")
}
