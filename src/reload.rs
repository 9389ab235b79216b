//! Reloads: a set of registered tables and a time window. While a reload is open, a merge of one of
//! its tables takes only staged rows whose version lies in the window, and deletes in production
//! from the moment it began stop staged rows of the same key.

use crate::exec::{self, as_role, execute, query_one, raise};
use crate::registry::{open_reload, prune_tombstones, registration_or_raise, reload_state};
use crate::staging::require_owner;
use dwr_engine::ident::display_ident;
use dwr_engine::{DwrError, SqlState};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::prelude::*;

#[pg_extern(sql = false)]
fn dwr_begin_reload(
    targets: Option<Vec<Option<pg_sys::Oid>>>,
    window_start: Option<TimestampWithTimeZone>,
    window_end: Option<TimestampWithTimeZone>,
) -> i64 {
    let f = "dwr_begin_reload";
    let targets = targets.unwrap_or_else(|| raise(DwrError::null_argument(f, "targets")));
    let start = window_start.unwrap_or_else(|| raise(DwrError::null_argument(f, "window_start")));
    let end = window_end.unwrap_or_else(|| raise(DwrError::null_argument(f, "window_end")));
    if targets.is_empty() {
        raise(
            DwrError::new(
                SqlState::InvalidParameterValue,
                format!("{f}: targets is empty"),
            )
            .hint("Name the tables to reload: dwr_begin_reload('{production.customers}', ...)."),
        );
    }
    if start > end {
        raise(
            DwrError::new(
                SqlState::InvalidParameterValue,
                format!("{f}: the window ends before it starts"),
            )
            .detail(format!("window_start {start} is after window_end {end}."))
            .hint("Swap the two ends; both are included."),
        );
    }
    let mut oids: Vec<pg_sys::Oid> = Vec::new();
    for t in targets {
        let oid = t.unwrap_or_else(|| raise(DwrError::null_argument(f, "targets[i]")));
        if !oids.contains(&oid) {
            oids.push(oid);
        }
    }
    // serialise reload changes, so two sessions cannot put one table into two open reloads
    as_role(exec::extension_owner(), || {
        execute("LOCK TABLE dwr.reloads IN SHARE ROW EXCLUSIVE MODE", &[]);
    });
    for &oid in &oids {
        let reg = registration_or_raise(oid);
        let t = exec::relation_or_raise(oid, "table");
        require_owner(&t);
        let v = t
            .column(&reg.version_column)
            .expect("registered version column exists");
        if v.type_category != "D" {
            raise(
                DwrError::new(
                    SqlState::DatatypeMismatch,
                    format!(
                        "version column {} of {} is of type {}, which a time window cannot bound",
                        display_ident(&v.name),
                        t.display(),
                        v.type_name
                    ),
                )
                .hint("A reload window needs a date, timestamp or timestamptz version column; merge without a reload otherwise."),
            );
        }
        if let Some(other) = open_reload(oid) {
            raise(
                DwrError::new(
                    SqlState::ObjectNotInPrerequisiteState,
                    format!(
                        "table {} is already in open reload {}",
                        t.display(),
                        other.reload_id
                    ),
                )
                .hint(format!(
                    "Finish that reload first: SELECT dwr_end_reload({});",
                    other.reload_id
                )),
            );
        }
    }
    let caller = exec::current_user();
    as_role(exec::extension_owner(), || {
        query_one::<i64>(
            "INSERT INTO dwr.reloads (targets, window_start, window_end, began_by) \
             VALUES ($1::pg_catalog.oid[]::pg_catalog.regclass[], $2, $3, pg_catalog.pg_get_userbyid($4)) \
             RETURNING reload_id",
            &[oids.clone().into(), start.into(), end.into(), caller.into()],
        )
        .expect("INSERT ... RETURNING returns a row")
    })
}

#[pg_extern(sql = false)]
fn dwr_end_reload(reload_id: Option<i64>) {
    let id =
        reload_id.unwrap_or_else(|| raise(DwrError::null_argument("dwr_end_reload", "reload_id")));
    let (ended, targets) = reload_state(id);
    if ended {
        raise(DwrError::new(
            SqlState::ObjectNotInPrerequisiteState,
            format!("reload {id} is already ended"),
        ));
    }
    for &oid in &targets {
        if let Some(t) = exec::relation(oid) {
            require_owner(&t);
        }
    }
    let caller = exec::current_user();
    as_role(exec::extension_owner(), || {
        execute(
            "UPDATE dwr.reloads SET ended_at = pg_catalog.clock_timestamp(), ended_by = pg_catalog.pg_get_userbyid($2) \
             WHERE reload_id OPERATOR(pg_catalog.=) $1",
            &[id.into(), caller.into()],
        );
    });
    for oid in targets {
        prune_tombstones(oid);
    }
}
