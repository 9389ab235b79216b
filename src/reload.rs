//! Reloads: a set of registered tables and a time window. While a reload is open, a merge of one of
//! its tables takes only staged rows whose version lies in the window, and deletes in production
//! from the moment it began stop staged rows of the same key.
//!
//! `dwr_begin_reload` and `dwr_end_reload` are PL/pgSQL shared with the pg_tle package
//! (`sql/shared.sql`); here are the writes they ask for, which switch to
//! the extension owner for the write alone after checking the role they act for with the same
//! shared checks.

use crate::exec::{self, as_role, execute, query_one, raise, OrBug};
use crate::tombstones::prune_tombstones;
use dwr_engine::DwrError;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// The `caller` argument (a `name`) of a function that writes the extension's tables.
pub fn caller_name(caller: Option<&core::ffi::CStr>, function: &str) -> String {
    name_arg(caller, function, "caller")
}

/// A `name` argument `arg` of `function` (a `name` is no varlena: it comes as a C string).
pub fn name_arg(value: Option<&core::ffi::CStr>, function: &str, arg: &str) -> String {
    value
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|| raise(DwrError::null_argument(function, arg)))
}

/// `dwr._check_caller`: the session may act as `caller`.
pub fn check_caller(caller: &str) {
    execute(
        "SELECT dwr._check_caller($1::pg_catalog.name)",
        &[caller.into()],
    );
}

/// `dwr._reload_insert`: writes the reload of `targets` for `caller`.
#[pg_extern(sql = false)]
fn reload_insert(
    targets: Option<Vec<Option<pg_sys::Oid>>>,
    window_start: Option<TimestampWithTimeZone>,
    window_end: Option<TimestampWithTimeZone>,
    caller: Option<&core::ffi::CStr>,
) -> i64 {
    let f = "dwr._reload_insert";
    let targets = targets.unwrap_or_else(|| raise(DwrError::null_argument(f, "targets")));
    let start = window_start.unwrap_or_else(|| raise(DwrError::null_argument(f, "window_start")));
    let end = window_end.unwrap_or_else(|| raise(DwrError::null_argument(f, "window_end")));
    let caller = caller_name(caller, f);
    let caller = caller.as_str();
    check_caller(caller);
    let oids: Vec<pg_sys::Oid> = targets
        .into_iter()
        .map(|t| t.unwrap_or_else(|| raise(DwrError::null_argument(f, "targets[i]"))))
        .collect();
    // serialise reload changes, so two sessions cannot put one table into two open reloads
    as_role(exec::extension_owner(), || {
        execute("LOCK TABLE dwr.reloads IN SHARE ROW EXCLUSIVE MODE", &[]);
    });
    for &oid in &oids {
        execute(
            "SELECT dwr._require_owner($1, $2::pg_catalog.name), dwr._check_not_in_reload($1)",
            &[oid.into(), caller.into()],
        );
    }
    as_role(exec::extension_owner(), || {
        query_one::<i64>(
            "INSERT INTO dwr.reloads (targets, window_start, window_end, began_by) \
             VALUES ($1::pg_catalog.oid[]::pg_catalog.regclass[], $2, $3, $4::pg_catalog.name) \
             RETURNING reload_id",
            &[oids.clone().into(), start.into(), end.into(), caller.into()],
        )
        .or_bug("INSERT ... RETURNING returns a row")
    })
}

/// `dwr._end_reload`: ends reload `reload_id` for `caller`, then prunes the tombstones only it
/// needed (beside a Citus table's staging too).
#[pg_extern(sql = false)]
fn end_reload(reload_id: Option<i64>, caller: Option<&core::ffi::CStr>) {
    let f = "dwr._end_reload";
    let id = reload_id.unwrap_or_else(|| raise(DwrError::null_argument(f, "reload_id")));
    let caller = caller_name(caller, f);
    let caller = caller.as_str();
    check_caller(caller);
    let targets = query_one::<Vec<pg_sys::Oid>>(
        "SELECT dwr._reload_to_end($1, $2::pg_catalog.name)::pg_catalog.oid[]",
        &[id.into(), caller.into()],
    )
    .unwrap_or_default();
    as_role(exec::extension_owner(), || {
        execute(
            "UPDATE dwr.reloads SET ended_at = pg_catalog.clock_timestamp(), ended_by = $2::pg_catalog.name \
             WHERE reload_id OPERATOR(pg_catalog.=) $1",
            &[id.into(), caller.into()],
        );
    });
    for oid in targets {
        prune_tombstones(oid);
    }
}
