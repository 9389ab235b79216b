//! The extension's settings.

use dwr_engine::settings;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `dwr.lock_timeout`: how long a merge waits for another merge of the same table (milliseconds;
/// 0 waits as long as it takes).
pub static LOCK_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(settings::LOCK_TIMEOUT_MS);

/// `dwr.row_lock_timeout`: how long one write of a merge may wait for a lock another transaction
/// holds (a key CDC is inserting or deleting at that moment, a parent row a foreign key needs)
/// before the rows involved are left `NEW` (deferred). Below `deadlock_timeout`, so a merge gives up
/// before any deadlock can be detected: CDC never sees a deadlock error because of a merge.
pub static ROW_LOCK_TIMEOUT: GucSetting<i32> =
    GucSetting::<i32>::new(settings::ROW_LOCK_TIMEOUT_MS);

/// `dwr.row_audit`: whether a merge writes the before and after image of every row it changes to
/// `dwr.row_changes` (needed by `dwr_undo`).
pub static ROW_AUDIT: GucSetting<bool> = GucSetting::<bool>::new(settings::ROW_AUDIT);

/// `dwr.fast_merge`: whether a merge first tries the fast way (one statement that classifies and
/// writes, `sqlgen::MergeBuilder::fast_apply`) before the step-by-step way. Off by default (0.6.0):
/// under CDC the fast way holds every row it writes from its first write on, and a row CDC holds
/// makes it start over step by step (`bench/cdc_latency.sh`: slower, and CDC stalled 2.5 times as
/// long); on for a merge while nothing else writes production.
pub static FAST_MERGE: GucSetting<bool> = GucSetting::<bool>::new(settings::FAST_MERGE);

/// `dwr.ddl_lock_timeout`: how long one attempt of the extension's own DDL on production
/// (installing or removing delete tracking) waits for its table lock. A waiting lock request makes
/// every later one on the table wait behind it, CDC's writes included: this bounds that wait.
pub static DDL_LOCK_TIMEOUT: GucSetting<i32> =
    GucSetting::<i32>::new(settings::DDL_LOCK_TIMEOUT_MS);

/// `dwr.ddl_lock_wait`: how long the attempts of [`DDL_LOCK_TIMEOUT`] go on, with backoff, before
/// the DDL fails with 55P03.
pub static DDL_LOCK_WAIT: GucSetting<i32> = GucSetting::<i32>::new(settings::DDL_LOCK_WAIT_MS);

/// `dwr.progress_notice_after`: a merge that has run this long reports each phase it enters as a
/// NOTICE (milliseconds; 0: every merge; -1: never).
pub static PROGRESS_NOTICE_AFTER: GucSetting<i32> =
    GucSetting::<i32>::new(settings::PROGRESS_NOTICE_AFTER_MS);

/// `dwr.test_hold_after_classify`: a test hook. When not 0, a merge waits for the advisory lock of
/// that number (shared) after it has read and classified the staged rows and before it locks or
/// writes anything, so a test can interleave another session's writes exactly there. Superuser only.
pub static TEST_HOLD_AFTER_CLASSIFY: GucSetting<i32> = GucSetting::<i32>::new(0);

pub fn register() {
    GucRegistry::define_int_guc(
        c"dwr.progress_notice_after",
        c"A merge that has run this long reports each phase it enters as a NOTICE.",
        c"0 reports the phases of every merge; -1 never. The phase is in pg_stat_activity either way.",
        &PROGRESS_NOTICE_AFTER,
        -1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"dwr.lock_timeout",
        c"How long a merge waits for another merge of the same table to finish.",
        c"0 waits as long as it takes; otherwise the merge fails with SQLSTATE 55P03 after this long.",
        &LOCK_TIMEOUT,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"dwr.row_lock_timeout",
        c"How long one write of a merge waits for a row another transaction holds.",
        c"After this long the rows of that write are left NEW (deferred) for a later merge. Keep it below deadlock_timeout.",
        &ROW_LOCK_TIMEOUT,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_bool_guc(
        c"dwr.row_audit",
        c"Whether merges record the before and after image of every row they change.",
        c"The images go to dwr.row_changes; dwr_undo needs them.",
        &ROW_AUDIT,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"dwr.fast_merge",
        c"Whether a merge first tries to classify and write in one statement.",
        c"Off (the default): step by step, which holds the rows it writes for less time. On: for a merge while nothing else writes production; when that statement fails (a row production rejects, a row another transaction holds past dwr.row_lock_timeout), it is rolled back and the merge goes step by step.",
        &FAST_MERGE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"dwr.ddl_lock_timeout",
        c"How long one attempt to lock a production table for the extension's DDL waits.",
        c"Installing or removing delete tracking asks for its table lock in attempts this long, so CDC writes never queue behind it for longer.",
        &DDL_LOCK_TIMEOUT,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"dwr.ddl_lock_wait",
        c"How long the extension's DDL keeps trying to lock a production table.",
        c"After this long it fails with SQLSTATE 55P03, naming the sessions that hold the table.",
        &DDL_LOCK_WAIT,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"dwr.test_hold_after_classify",
        c"Test hook: advisory lock a merge waits for between reading and writing.",
        c"0 (the default) turns it off.",
        &TEST_HOLD_AFTER_CLASSIFY,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::NO_SHOW_ALL,
    );
    #[cfg(any(feature = "pg15", feature = "pg16", feature = "pg17", feature = "pg18"))]
    unsafe {
        pgrx::pg_sys::MarkGUCPrefixReserved(c"dwr".as_ptr())
    };
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    unsafe {
        pgrx::pg_sys::EmitWarningsOnPlaceholders(c"dwr".as_ptr())
    };
}
