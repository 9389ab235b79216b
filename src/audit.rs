//! Stage 5 of the data flow: the audit trail. Each merge appends one `dwr.merge_runs` row when it
//! starts and completes it when it ends. The caller needs no right on `dwr`: the rows are written as
//! the extension's owner through [`exec::as_role`], and record the caller's identity as the server
//! knows it, never as the caller states it.

use crate::exec::{self, as_role, query_one, OrBug};
use crate::registry::OpenReload;
use dwr_engine::sqlgen::Counts;
use pgrx::datum::Interval;
use pgrx::pg_sys;

/// What kind of run.
pub enum RunKind {
    Merge,
    /// an undo of that run
    Undo(i64),
}

/// Open a run: returns its id.
#[allow(clippy::too_many_arguments)]
pub fn begin_run(
    kind: RunKind,
    target: pg_sys::Oid,
    target_name: &str,
    source_name: &str,
    dry_run: bool,
    reload: Option<&OpenReload>,
    row_audit: bool,
) -> i64 {
    let caller = exec::current_user();
    let (kind, undo_of) = match kind {
        RunKind::Merge => ("merge", None),
        RunKind::Undo(run) => ("undo", Some(run)),
    };
    as_role(exec::extension_owner(), || {
        query_one::<i64>(
            "INSERT INTO dwr.merge_runs (undo_of, kind, target, target_name, source_name, dry_run, status, \
             run_by, session_user_name, backend_pid, started_at, reload_id, window_start, window_end, row_audit) \
             VALUES ($10, $11, $1, $2, $3, $4, 'RUNNING', pg_catalog.pg_get_userbyid($5), \
             SESSION_USER, pg_catalog.pg_backend_pid(), pg_catalog.clock_timestamp(), $6, $7, $8, $9) RETURNING run_id",
            &[
                target.into(),
                target_name.into(),
                source_name.into(),
                dry_run.into(),
                caller.into(),
                reload.map(|r| r.reload_id).into(),
                reload.map(|r| r.window_start).into(),
                reload.map(|r| r.window_end).into(),
                row_audit.into(),
                undo_of.into(),
                kind.into(),
            ],
        )
        .or_bug("INSERT ... RETURNING returns a row")
    })
}

/// Close a run with its status and counts; returns its duration.
pub fn finish_run(run_id: i64, status: &str, c: &Counts, deleted: Option<i64>) -> Option<Interval> {
    as_role(exec::extension_owner(), || {
        query_one::<Interval>(
            "UPDATE dwr.merge_runs SET status = $2, finished_at = pg_catalog.clock_timestamp(), \
             duration = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) started_at, \
             inserted = $3, updated = $4, unchanged = $5, skipped_stale = $6, skipped_deleted = $7, \
             skipped_outside_window = $8, deferred = $9, errors = $10, deleted = $11 \
             WHERE run_id OPERATOR(pg_catalog.=) $1 \
             RETURNING duration",
            &[
                run_id.into(),
                status.into(),
                c.inserted.into(),
                c.updated.into(),
                c.unchanged.into(),
                c.skipped_stale.into(),
                c.skipped_deleted.into(),
                c.skipped_outside_window.into(),
                c.deferred.into(),
                c.errors.into(),
                deleted.into(),
            ],
        )
    })
}
