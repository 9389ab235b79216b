//! What every run of a statement program shares, local and Citus alike: one merge of a table at a
//! time, the budget of writes that ran out of `dwr.row_lock_timeout`, and the test hook that holds
//! a merge between reading and writing (the runner itself is program.rs).

use crate::exec::{self, execute, raise};
use crate::guc;
use dwr_engine::settings::MAX_LOCK_TIMEOUTS;
use dwr_engine::{DwrError, SqlState};
use pgrx::pg_sys;

/// Serialise merges of one table: wait for another merge of it to commit, or with
/// `dwr.lock_timeout` set fail with 55P03 after that long (`dwr._lock_target`, the shared PL/pgSQL
/// the pg_tle package's merges call too, `sql/shared.sql`).
pub fn lock_target(target: pg_sys::Oid) {
    exec::require_current_sql("dwr._lock_target");
    execute(
        "SELECT dwr._lock_target($1::pg_catalog.oid::pg_catalog.regclass)",
        &[target.into()],
    );
}

/// Count one write that ran out of `dwr.row_lock_timeout`; past [`MAX_LOCK_TIMEOUTS`] the merge
/// gives up with 55P03.
pub fn count_lock_timeout(lock_timeouts: &mut u32) {
    *lock_timeouts += 1;
    if *lock_timeouts > MAX_LOCK_TIMEOUTS {
        raise(
            DwrError::new(
                SqlState::LockNotAvailable,
                "merge gave up: other transactions kept holding the rows it writes",
            )
            .detail(format!(
                "{MAX_LOCK_TIMEOUTS} writes each waited dwr.row_lock_timeout = {}ms",
                guc::ROW_LOCK_TIMEOUT.get()
            ))
            .hint("Something holds locks on many production rows (a long transaction, a table lock); retry when it is done."),
        );
    }
}

/// The test hook `dwr.test_hold_after_classify`: wait for that advisory lock between reading and
/// writing, so an isolation test can put another session's writes exactly there.
pub fn test_hold_after_classify() {
    let key = guc::TEST_HOLD_AFTER_CLASSIFY.get();
    if key != 0 {
        execute(
            "SELECT pg_catalog.pg_advisory_lock_shared($1::pg_catalog.int8)",
            &[i64::from(key).into()],
        );
        execute(
            "SELECT pg_catalog.pg_advisory_unlock_shared($1::pg_catalog.int8)",
            &[i64::from(key).into()],
        );
    }
}
