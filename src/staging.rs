//! Staging tables: create or adopt, register, drop, purge, and count by status.

use crate::exec::{self, as_role, execute, query_one, query_rows, raise, OrBug};
use crate::registry::registration_or_raise;
use crate::topology;
use dwr_engine::catalog::Relation;
use dwr_engine::ddl::{meta_columns, DELETE_TRIGGER, STAGING_FILLFACTOR};
use dwr_engine::ident::{display_ident, quote_ident};
use dwr_engine::plan::META_STATUS;
use dwr_engine::DwrError;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Refuse staging owned by a role other than the target's owner: a merge run by a privileged role
/// must not read (and fire triggers on) a table a less trusted role controls.
pub fn check_staging_owner(target: &Relation, staging: &Relation) {
    // the shared check (dwr._check_staging_owner), the same words in both modes
    if staging.owner_oid != target.owner_oid {
        exec::require_current_sql("dwr._check_staging_owner");
        execute(
            "SELECT dwr._check_staging_owner($1::pg_catalog.oid::pg_catalog.regclass, $2::pg_catalog.oid::pg_catalog.regclass)",
            &[pg_sys::Oid::from(target.oid).into(), pg_sys::Oid::from(staging.oid).into()],
        );
        exec::bug("dwr._check_staging_owner let a staging table of another owner pass");
    }
}

/// A table `dwr_merge(..., source =>)` or `dwr_diff` may read: a relation with columns, owned by the
/// target's owner or by the caller (a privileged merge must not run code a less trusted role
/// planted in the source).
pub fn checked_source(target: &Relation, source: pg_sys::Oid) -> Relation {
    let src = exec::relation_or_raise(source, "source table");
    if !matches!(src.relkind.as_str(), "r" | "p" | "v" | "m" | "f") {
        raise(DwrError::source_not_a_table(&src.display(), &src.a_kind()));
    }
    if src.owner_oid != target.owner_oid && pg_sys::Oid::from(src.owner_oid) != exec::current_user()
    {
        raise(DwrError::source_owned_by_other(
            &src.display(),
            &display_ident(&src.owner),
            &target.display(),
            &display_ident(&target.owner),
        ));
    }
    src
}

/// The caller owns `target` (or is a member of its owner): `dwr._require_owner`, the check the
/// shared PL/pgSQL makes too.
pub fn require_owner(target: &Relation) {
    execute(
        "SELECT dwr._require_owner($1, CURRENT_USER)",
        &[pg_sys::Oid::from(target.oid).into()],
    );
}

/// Whether `target` carries the delete-tracking trigger.
fn has_delete_tracking(target: pg_sys::Oid) -> bool {
    exec::has_trigger(target, DELETE_TRIGGER)
}

/// Take a table lock on production for the extension's own DDL (`mode` as in `LOCK TABLE`) without
/// making CDC writers queue behind the request: `dwr._lock_for_ddl`, shared with the pg_tle package
/// (`sql/shared.sql`), tries for `dwr.ddl_lock_timeout` at a time with
/// backoff and fails with 55P03 after `dwr.ddl_lock_wait`.
fn lock_for_ddl(target: pg_sys::Oid, mode: &str, purpose: &str) {
    execute(
        "SELECT dwr._lock_for_ddl($1::pg_catalog.regclass, $2, $3)",
        &[target.into(), mode.into(), purpose.into()],
    );
}

#[pg_extern(sql = false)]
fn dwr_create_staging(
    target: Option<pg_sys::Oid>,
    staging_schema: Option<&str>,
    version_column: Option<&str>,
) -> pg_sys::Oid {
    // the checks both modes share (sql/shared.sql)
    execute(
        "SELECT dwr._check_target($1::pg_catalog.oid::pg_catalog.regclass, $2, $3)",
        &[
            target.into(),
            staging_schema.map(str::to_string).into(),
            version_column.map(str::to_string).into(),
        ],
    );
    let (Some(target), Some(schema), Some(version)) = (target, staging_schema, version_column)
    else {
        exec::bug("dwr._check_target refuses NULL arguments")
    };
    let t = exec::relation_or_raise(target, "table");
    require_owner(&t);
    // a distributed or reference table: staging and the tombstone table are placed like it
    let topology = topology::of(&t);

    // made or adopted, and refused, as in the package (the shared dwr._make_staging), with the
    // engine's metadata columns and fill factor
    exec::require_current_sql("dwr._make_staging");
    let meta = meta_columns();
    let (staging_oid, created) = query_rows(
        "SELECT m.staging::pg_catalog.oid, m.created \
           FROM dwr._make_staging($1::pg_catalog.oid::pg_catalog.regclass, $2, $3, $4, $5) AS m",
        &[
            target.into(),
            schema.into(),
            meta.iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>()
                .into(),
            meta.iter()
                .map(|(_, d)| d.clone())
                .collect::<Vec<_>>()
                .into(),
            (STAGING_FILLFACTOR as i32).into(),
        ],
        |row| {
            (
                exec::col::<pg_sys::Oid>(row, 1).or_bug("the staging table made"),
                exec::col::<bool>(row, 2).or_bug("whether it was made"),
            )
        },
    )
    .into_iter()
    .next()
    .or_bug("dwr._make_staging returns a row");
    let staging = exec::relation_or_raise(staging_oid, "staging table");
    topology.place_staging(&t, &staging, version);
    // deletes CDC applies from now on are recorded, whatever session_replication_role it runs
    // with: the last change to production, so that the table lock it needs is held as briefly as
    // possible (until the caller commits), and asked for in attempts CDC never queues behind
    let replace = has_delete_tracking(target);
    lock_for_ddl(
        target,
        if replace {
            "ACCESS EXCLUSIVE"
        } else {
            "SHARE ROW EXCLUSIVE"
        },
        "install delete tracking",
    );
    topology.install_delete_tracking(&t, &staging, replace);
    // deletes count from the moment the trigger holds its lock, not from the transaction's start
    // (a delete committed while the lock was being waited for was never recorded)
    as_role(exec::extension_owner(), || {
        execute(
            "INSERT INTO dwr.tables (target, staging, version_column, staging_created, registered_by, tracking_since) \
             VALUES ($1, $2, $3, $4, pg_catalog.pg_get_userbyid($5), pg_catalog.clock_timestamp()) \
             ON CONFLICT (target) DO UPDATE SET staging = EXCLUDED.staging, \
             version_column = EXCLUDED.version_column, registered_at = pg_catalog.now(), \
             registered_by = EXCLUDED.registered_by, \
             staging_created = CASE WHEN dwr.tables.staging OPERATOR(pg_catalog.=) EXCLUDED.staging \
                                    THEN dwr.tables.staging_created ELSE EXCLUDED.staging_created END",
            &[
                target.into(),
                staging_oid.into(),
                version.into(),
                created.into(),
                exec::current_user().into(),
            ],
        );
    });
    staging_oid
}

/// `dwr._unregister`, for `dwr_drop_staging` (shared PL/pgSQL): removes the registration and the
/// tombstones of `target`, and what the topology made beside staging (a Citus table's tombstone
/// and work tables), for `caller`, who must own `target`.
#[pg_extern(sql = false)]
fn unregister(target: Option<pg_sys::Oid>, caller: Option<&core::ffi::CStr>) {
    let f = "dwr._unregister";
    let target = target.unwrap_or_else(|| raise(DwrError::null_argument(f, "target")));
    let caller = crate::reload::caller_name(caller, f);
    crate::reload::check_caller(&caller);
    let reg = registration_or_raise(target);
    if let Some(t) = exec::relation(target) {
        execute(
            "SELECT dwr._require_owner($1, $2::pg_catalog.name)",
            &[target.into(), caller.as_str().into()],
        );
        if let Some(s) = exec::relation(reg.staging) {
            topology::of_registered(&t).drop_beside_staging(target.to_u32(), &s);
        }
    }
    as_role(exec::extension_owner(), || {
        execute(
            "DELETE FROM dwr.tables WHERE target OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
            &[target.into()],
        );
        execute(
            "DELETE FROM dwr.tombstones WHERE target OPERATOR(pg_catalog.=) $1",
            &[target.into()],
        );
    });
}

/// `dwr._remove_delete_tracking`, for `dwr_drop_staging`: drops the delete-tracking trigger of
/// `target` as the caller, the way its topology needs (Citus lets the trigger DDL through only
/// when asked).
#[pg_extern(sql = false)]
fn remove_delete_tracking(target: Option<pg_sys::Oid>) {
    let target = target.unwrap_or_else(|| {
        raise(DwrError::null_argument(
            "dwr._remove_delete_tracking",
            "target",
        ))
    });
    let t = exec::relation_or_raise(target, "table");
    topology::of_registered(&t).remove_delete_tracking(&t);
}

/// `dwr._restart_tracking`, after `dwr_purge_staging` deleted staged rows: when staging holds no
/// `NEW` row any more, deletes count against staged rows from now on; then the tombstones nothing
/// needs are pruned (beside a Citus table's staging too). For `caller`, who must be a role the
/// session may act as and may delete from staging.
#[pg_extern(sql = false)]
fn restart_tracking(target: Option<pg_sys::Oid>, caller: Option<&core::ffi::CStr>) {
    let f = "dwr._restart_tracking";
    let target = target.unwrap_or_else(|| raise(DwrError::null_argument(f, "target")));
    let caller = crate::reload::caller_name(caller, f);
    let caller = caller.as_str();
    let staging = query_one::<pg_sys::Oid>(
        "SELECT dwr._check_may_purge($1, $2::pg_catalog.name)::pg_catalog.oid",
        &[target.into(), caller.into()],
    )
    .or_bug("a registered staging table");
    let s = exec::relation_or_raise(staging, "staging table");
    let any_new = query_one::<bool>(
        &format!(
            // `SELECT 1`: Citus 12.1 mis-plans an empty target list over a distributed table
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {} OPERATOR(pg_catalog.=) 'NEW')",
            s.quoted(),
            quote_ident(META_STATUS)
        ),
        &[],
    )
    .unwrap_or(false);
    if !any_new {
        as_role(exec::extension_owner(), || {
            execute(
                "UPDATE dwr.tables SET tracking_since = pg_catalog.now() \
                 WHERE target OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
                &[target.into()],
            );
        });
    }
    crate::tombstones::prune_tombstones(target);
}
