//! Durable records of failed merges.
//!
//! A merge that fails rolls back everything it did, its `dwr.merge_runs` row included, and its error
//! reaches the caller. To keep a record anyway, the failing backend hands the run's description to a
//! dynamic background worker (PostgreSQL's own way to act outside a transaction, no connection
//! string or password involved): the worker connects to the same database as the extension's owner,
//! writes a `FAILED` row in a transaction of its own, and exits; the backend waits for it, then
//! raises the error. The description travels in a dynamic shared memory segment.

use crate::exec::{self, Caught, OrBug};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// A failed run, as the worker writes it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FailedRun {
    pub database: u32,
    pub owner: u32,
    /// the run id the merge had taken from the sequence, when it got that far
    pub run_id: Option<i64>,
    pub kind: String,
    pub target: u32,
    pub target_name: String,
    pub source_name: String,
    pub dry_run: bool,
    pub run_by: u32,
    pub session_user: u32,
    pub backend_pid: i32,
    /// `clock_timestamp()` when the merge started, as text
    pub started_at: String,
    pub sqlstate: String,
    pub message: String,
}

/// Record `run` durably through a background worker and wait for it. Never raises: when no worker
/// can be had, a WARNING says the failure was not recorded.
pub fn record(run: &FailedRun) {
    let payload = match serde_json::to_vec(run) {
        Ok(p) => p,
        Err(e) => {
            pgrx::warning!("dms_window_reload: could not record the failed run: {e}");
            return;
        }
    };
    // SAFETY: a segment of the payload's size plus a length prefix, written once before the worker
    // starts and detached at the end of this transaction (its resource owner).
    let handle = unsafe {
        let seg = pg_sys::dsm_create(payload.len() + 8, 0);
        let base = pg_sys::dsm_segment_address(seg) as *mut u8;
        let len = (payload.len() as u64).to_le_bytes();
        std::ptr::copy_nonoverlapping(len.as_ptr(), base, 8);
        std::ptr::copy_nonoverlapping(payload.as_ptr(), base.add(8), payload.len());
        pg_sys::dsm_segment_handle(seg)
    };
    let worker = BackgroundWorkerBuilder::new("dms_window_reload failed-run recorder")
        .set_type("dms_window_reload")
        .set_library("dms_window_reload")
        .set_function("dwr_record_failure_worker")
        .set_argument(Some(pg_sys::Datum::from(handle as usize)))
        .enable_spi_access()
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic();
    match worker {
        Ok(w) => {
            if let Err(status) = w.wait_for_shutdown() {
                pgrx::warning!("dms_window_reload: the failed-run recorder ended with {status:?}");
            }
        }
        Err(e) => pgrx::warning!(
            "dms_window_reload: could not start a background worker to record the failed run ({e:?}); raise max_worker_processes"
        ),
    }
}

/// What a run was about, known before it starts.
pub struct RunStart<'a> {
    pub kind: &'a str,
    pub target: pg_sys::Oid,
    pub target_name: String,
    pub source_name: String,
    pub dry_run: bool,
    /// `clock_timestamp()` when it started, as text
    pub started_at: String,
}

/// Describe a failed run of the current session.
pub fn describe(start: &RunStart, run_id: Option<i64>, error: &Caught) -> FailedRun {
    FailedRun {
        database: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        owner: exec::extension_owner().to_u32(),
        run_id,
        kind: start.kind.to_string(),
        target: start.target.to_u32(),
        target_name: start.target_name.clone(),
        source_name: start.source_name.clone(),
        dry_run: start.dry_run,
        run_by: exec::current_user().to_u32(),
        session_user: unsafe { pg_sys::GetSessionUserId() }.to_u32(),
        backend_pid: unsafe { pg_sys::MyProcPid },
        started_at: start.started_at.clone(),
        sqlstate: error.sqlstate.clone(),
        message: error.text(),
    }
}

/// The worker: read the description, write the `FAILED` row, exit.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn dwr_record_failure_worker(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGTERM);
    // SAFETY: the handle names the segment `record` created and keeps attached until we exit
    let run: FailedRun = unsafe {
        let seg = pg_sys::dsm_attach(arg.value() as pg_sys::dsm_handle);
        if seg.is_null() {
            pgrx::warning!("dms_window_reload: the failed run's description is gone");
            return;
        }
        let base = pg_sys::dsm_segment_address(seg) as *const u8;
        let mut len = [0u8; 8];
        std::ptr::copy_nonoverlapping(base, len.as_mut_ptr(), 8);
        let bytes =
            std::slice::from_raw_parts(base.add(8), u64::from_le_bytes(len) as usize).to_vec();
        pg_sys::dsm_detach(seg);
        match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                pgrx::warning!("dms_window_reload: unreadable failed-run description: {e}");
                return;
            }
        }
    };
    BackgroundWorker::connect_worker_to_spi_by_oid(
        Some(pg_sys::Oid::from(run.database)),
        Some(pg_sys::Oid::from(run.owner)),
    );
    BackgroundWorker::transaction(|| {
        Spi::run_with_args("SET LOCAL search_path = pg_catalog, pg_temp", &[])
            .or_bug("set search_path");
        Spi::run_with_args(
            "INSERT INTO dwr.merge_runs (run_id, kind, target, target_name, source_name, dry_run, status, \
             run_by, session_user_name, backend_pid, started_at, finished_at, duration, \
             error_sqlstate, error_message) \
             OVERRIDING SYSTEM VALUE \
             VALUES (COALESCE($1, pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('dwr.merge_runs', 'run_id'))), \
             $2, $3, $4, $5, $6, 'FAILED', pg_catalog.pg_get_userbyid($7), pg_catalog.pg_get_userbyid($8), $9, \
             $10::pg_catalog.timestamptz, pg_catalog.clock_timestamp(), \
             pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) $10::pg_catalog.timestamptz, $11, $12)",
            &[
                run.run_id.into(),
                run.kind.as_str().into(),
                pg_sys::Oid::from(run.target).into(),
                run.target_name.as_str().into(),
                run.source_name.as_str().into(),
                run.dry_run.into(),
                pg_sys::Oid::from(run.run_by).into(),
                pg_sys::Oid::from(run.session_user).into(),
                run.backend_pid.into(),
                run.started_at.as_str().into(),
                run.sqlstate.as_str().into(),
                run.message.as_str().into(),
            ],
        )
        .or_bug("insert the failed run");
    });
}
