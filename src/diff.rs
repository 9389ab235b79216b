//! `dwr_diff`, `dwr_diff_summary`: the SQL is written here (by `dwr_engine::diff`); the functions
//! themselves are PL/pgSQL wrappers in `sql/shared.sql` that `RETURN QUERY EXECUTE` it, so rows
//! go to the server's tuplestore (spilling to disk past `work_mem`), never into this backend's heap
//! as a whole.

use crate::exec::{self, check, raise};
use crate::registry::registration_or_raise;
use crate::staging::{check_staging_owner, checked_source};
use dwr_engine::diff::{diff_sql, diff_summary_sql};
use dwr_engine::plan::plan_merge;
use dwr_engine::DwrError;
use pgrx::pg_sys;
use pgrx::prelude::*;

#[pg_extern(sql = false)]
fn diff_query(
    target: Option<pg_sys::Oid>,
    source: Option<pg_sys::Oid>,
    summary: Option<bool>,
) -> String {
    let target = target.unwrap_or_else(|| raise(DwrError::null_argument("dwr_diff", "target")));
    let reg = registration_or_raise(target);
    let t = exec::relation_or_raise(target, "table");
    let s = match source {
        None => {
            let s = exec::relation_or_raise(reg.staging, "staging table");
            check_staging_owner(&t, &s);
            s
        }
        Some(oid) => checked_source(&t, oid),
    };
    let casts = exec::casts_between(&s, &t);
    let plan = check(plan_merge(
        &t,
        &s,
        &casts,
        &reg.version_column,
        source.is_none(),
    ));
    if summary.unwrap_or(false) {
        diff_summary_sql(&plan)
    } else {
        diff_sql(&plan)
    }
}
