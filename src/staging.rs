//! Staging tables: create or adopt, register, drop, purge, and count by status.

use crate::exec::{self, as_role, execute, query_one, raise, OrBug};
use crate::registry::registration_or_raise;
use crate::topology;
use dwr_engine::catalog::Relation;
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

/// The table and staging table a step of the shared `dwr_create_staging` (`sql/shared.sql`) is
/// given, which the caller must own.
fn owned_pair(
    f: &str,
    target: Option<pg_sys::Oid>,
    staging: Option<pg_sys::Oid>,
) -> (Relation, Relation) {
    let target = target.unwrap_or_else(|| raise(DwrError::null_argument(f, "target")));
    let staging = staging.unwrap_or_else(|| raise(DwrError::null_argument(f, "staging")));
    let t = exec::relation_or_raise(target, "table");
    require_owner(&t);
    (t, exec::relation_or_raise(staging, "staging table"))
}

/// `dwr._prepare_staging`, a step of the shared `dwr_create_staging` once staging is made or
/// adopted: what this server's topology does with it (on Citus: placed like production, with its
/// tombstone and work tables; on one server: refused when it is a Citus table).
#[pg_extern(sql = false)]
fn prepare_staging(
    target: Option<pg_sys::Oid>,
    staging: Option<pg_sys::Oid>,
    version_column: Option<&core::ffi::CStr>,
) {
    let f = "dwr._prepare_staging";
    let (t, s) = owned_pair(f, target, staging);
    let version = crate::reload::name_arg(version_column, f, "version_column");
    topology::of(&t).place_staging(&t, &s, &version);
}

/// `dwr._install_delete_tracking`, a step of the shared `dwr_create_staging` (which holds the
/// table lock): the trigger that records CDC's deletes, the way the topology needs it (`replace`:
/// an older one removed first).
#[pg_extern(sql = false)]
fn install_delete_tracking(
    target: Option<pg_sys::Oid>,
    staging: Option<pg_sys::Oid>,
    replace: Option<bool>,
) {
    let f = "dwr._install_delete_tracking";
    let (t, s) = owned_pair(f, target, staging);
    let replace = replace.unwrap_or_else(|| raise(DwrError::null_argument(f, "replace")));
    topology::of(&t).install_delete_tracking(&t, &s, replace);
}

/// `dwr._register`, the last step of the shared `dwr_create_staging`: the registration written as
/// the extension owner for `caller` (a role the session may act as, which must own `target` and
/// whose staging table must have `target`'s owner), with the checks of the package's
/// `dwr._register`. Deletes count from now (the trigger holds its lock), not from the
/// transaction's start: a delete committed while the lock was being waited for was never recorded.
#[pg_extern(sql = false)]
fn register(
    target: Option<pg_sys::Oid>,
    staging: Option<pg_sys::Oid>,
    version_column: Option<&core::ffi::CStr>,
    created: Option<bool>,
    caller: Option<&core::ffi::CStr>,
) {
    let f = "dwr._register";
    let caller = crate::reload::caller_name(caller, f);
    crate::reload::check_caller(&caller);
    let target = target.unwrap_or_else(|| raise(DwrError::null_argument(f, "target")));
    let staging = staging.unwrap_or_else(|| raise(DwrError::null_argument(f, "staging")));
    let version = crate::reload::name_arg(version_column, f, "version_column");
    let created = created.unwrap_or_else(|| raise(DwrError::null_argument(f, "created")));
    execute(
        "SELECT dwr._require_owner($1, $2::pg_catalog.name), dwr._check_staging_owner($1, $3)",
        &[target.into(), caller.as_str().into(), staging.into()],
    );
    as_role(exec::extension_owner(), || {
        execute(
            "INSERT INTO dwr.tables (target, staging, version_column, staging_created, registered_by, tracking_since) \
             VALUES ($1, $2, $3, $4, $5, pg_catalog.clock_timestamp()) \
             ON CONFLICT (target) DO UPDATE SET staging = EXCLUDED.staging, \
             version_column = EXCLUDED.version_column, registered_at = pg_catalog.now(), \
             registered_by = EXCLUDED.registered_by, \
             staging_created = CASE WHEN dwr.tables.staging OPERATOR(pg_catalog.=) EXCLUDED.staging \
                                    THEN dwr.tables.staging_created ELSE EXCLUDED.staging_created END",
            &[
                target.into(),
                staging.into(),
                version.into(),
                created.into(),
                caller.as_str().into(),
            ],
        );
    });
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
