//! `CALL dwr_merge_batches(target, batch_size)`: the merge in committed batches. The procedure
//! itself is PL/pgSQL (`sql/shared.sql`), because only a procedure's own language can commit
//! between statements; it calls the two functions here:
//! - [`dwr_batch_plan`] cuts the NEW staged rows' keys, in staging's own key order, into batches of
//!   `batch_size` keys and keeps the bounds in a session temporary table that survives the
//!   commits;
//! - [`dwr_merge_batch`] merges the rows of one batch exactly as `dwr_merge` merges all of them
//!   (same statements, limited to the batch's key range), as one merge run.
//!
//! Resuming needs no state of its own: a committed batch left its rows PROCESSED, SKIPPED or
//! ERROR, so a new call plans over the rows still NEW, and a cancelled batch rolled back whole.

use crate::exec::{self, execute, query_one, raise};
use crate::merge;
use crate::program::BatchRange;
use crate::registry::registration_or_raise;
use dwr_engine::sqlgen::batch_sql;
use dwr_engine::DwrError;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Plan the batches of a batched merge of `target`; returns the number of NEW staged rows. The
/// bounds go to `pg_temp._dwr_batches` (one row per batch but the last).
#[pg_extern(sql = false)]
fn dwr_batch_plan(target: Option<pg_sys::Oid>, batch_size: Option<i32>) -> i64 {
    let f = "dwr_merge_batches";
    let target = target.unwrap_or_else(|| raise(DwrError::null_argument(f, "target")));
    let batch_size = batch_size.unwrap_or_else(|| raise(DwrError::null_argument(f, "batch_size")));
    if batch_size < 1 {
        raise(DwrError::batch_size_invalid(&batch_size.to_string()));
    }
    if unsafe { pg_sys::IsTransactionBlock() } {
        raise(DwrError::batches_in_transaction());
    }
    let reg = registration_or_raise(target);
    let t = exec::relation_or_raise(target, "table");
    let staging = merge::registered_staging(&t, &reg);
    let plan = merge::plan_of(&t, &staging, &reg, true);
    let sql = batch_sql(&plan)
        .unwrap_or_else(|column| raise(DwrError::batch_key_unordered(&column, &staging.display())));
    if query_one::<bool>(&sql.bounds_exist, &[]).unwrap_or(false) {
        execute(&sql.drop_bounds, &[]);
    }
    exec::without_jit(|| {
        execute(&sql.create_bounds, &[i64::from(batch_size).into()]);
        query_one::<i64>(&sql.count_new, &[]).unwrap_or(0)
    })
}

/// Merge planned batches `batch` to `through` (just `batch` when NULL) of `batches` (planned by
/// [`dwr_batch_plan`]); `done` of `total` staged rows are done before it, for the progress shown in
/// `pg_stat_activity`.
#[pg_extern(sql = false)]
fn dwr_merge_batch(
    target: Option<pg_sys::Oid>,
    batch: Option<i32>,
    batches: Option<i32>,
    done: Option<i64>,
    total: Option<i64>,
    through: Option<i32>,
) -> pgrx::composite_type!('static, "dwr.merge_result") {
    let f = "dwr_merge_batches";
    let target = target.unwrap_or_else(|| raise(DwrError::null_argument(f, "target")));
    let batch = batch.unwrap_or_else(|| raise(DwrError::null_argument(f, "batch")));
    let bound = |n: i32| -> Option<Vec<String>> {
        if n < 1 {
            return None;
        }
        query_one::<Vec<String>>(&dwr_engine::sqlgen::batch_bound_sql(), &[n.into()])
        // the last batch has no row: open above
    };
    // planned batches `batch` to `through` (a stall budget's batch), or just `batch`
    let through = through.unwrap_or(batch).max(batch);
    let range = BatchRange {
        lo: bound(batch - 1),
        hi: bound(through),
    };
    let which = if through > batch {
        format!("batches {batch}-{through}")
    } else {
        format!("batch {batch}")
    };
    let name = exec::relation(target)
        .map(|r| r.display())
        .unwrap_or_default();
    exec::report_activity(&format!(
        "CALL dwr_merge_batches('{name}'): {which} of {}, {} of {} staged rows done",
        batches.unwrap_or(0),
        done.unwrap_or(0),
        total.unwrap_or(0)
    ));
    merge::result_tuple(&merge::merge_part(
        target,
        false,
        merge::Input::Staging,
        Some(&range),
    ))
}
