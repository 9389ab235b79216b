//! What every run of a statement program shares, local and Citus alike: one merge of a table at a
//! time, the budget of writes that ran out of `dwr.row_lock_timeout`, and the test hook that holds
//! a merge between reading and writing (the runner itself is program.rs).

use crate::exec::{self, execute, raise, subtransaction};
use crate::guc;
use dwr_engine::settings::MAX_LOCK_TIMEOUTS;
use dwr_engine::{DwrError, SqlState};
use pgrx::pg_sys;

/// The advisory-lock space of merges: `pg_advisory_xact_lock(MERGE_LOCK_SPACE, <target oid>)`
/// serialises merges of one table (0x44575231, "DWR1").
pub const MERGE_LOCK_SPACE: i32 = 0x4457_5231;

/// Serialise merges of one table: wait for another merge of it to commit, or with
/// `dwr.lock_timeout` set fail with 55P03 after that long.
pub fn lock_target(target: pg_sys::Oid, display: &str) {
    let key = target.to_u32() as i32;
    let timeout = guc::LOCK_TIMEOUT.get();
    if timeout <= 0 {
        execute(
            "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
            &[MERGE_LOCK_SPACE.into(), key.into()],
        );
        return;
    }
    let got = exec::with_lock_timeout(timeout, || {
        subtransaction(|| {
            execute(
                "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
                &[MERGE_LOCK_SPACE.into(), key.into()],
            )
        })
    });
    match got {
        Ok(_) => {}
        Err(e) if e.sqlstate == "55P03" => raise(
            DwrError::new(
                SqlState::LockNotAvailable,
                format!("another merge of {display} is running"),
            )
            .detail(format!("waited dwr.lock_timeout = {timeout}ms for it to finish"))
            .hint("Wait for the other merge to commit, or raise dwr.lock_timeout (0 waits as long as it takes)."),
        ),
        Err(e) => exec::raise_caught(e),
    }
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
