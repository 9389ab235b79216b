//! `dwr_undo` and `dwr_purge_audit`: the row images of `dwr.row_changes`, used and pruned.

use crate::audit::{self, RunKind};
use crate::exec::{self, as_role, query_one, query_rows, raise};
use crate::failure;
use crate::guc;
use crate::merge::{result_tuple, MergeOutcome};
use crate::run::lock_target;
use dwr_engine::sqlgen::Counts;

use dwr_engine::{DwrError, SqlState};
use pgrx::datum::Interval;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// The parts of a `dwr.merge_runs` row an undo checks.
struct RunToUndo {
    kind: String,
    target: pg_sys::Oid,
    target_name: String,
    dry_run: bool,
    status: String,
    changed: i64,
    undone_by: Option<i64>,
}

fn run_to_undo(run_id: i64) -> RunToUndo {
    query_rows(
        "SELECT r.kind, r.target::pg_catalog.oid, r.target_name, r.dry_run, r.status, \
                COALESCE(r.inserted, 0) OPERATOR(pg_catalog.+) COALESCE(r.updated, 0) \
                OPERATOR(pg_catalog.+) COALESCE(r.deleted, 0), \
                (SELECT u.run_id FROM dwr.merge_runs u WHERE u.undo_of OPERATOR(pg_catalog.=) r.run_id) \
           FROM dwr.merge_runs r WHERE r.run_id OPERATOR(pg_catalog.=) $1",
        &[run_id.into()],
        |row| RunToUndo {
            kind: exec::col::<String>(row, 1).unwrap_or_default(),
            target: exec::col::<pg_sys::Oid>(row, 2).unwrap_or(pg_sys::Oid::INVALID),
            target_name: exec::col::<String>(row, 3).unwrap_or_default(),
            dry_run: exec::col::<bool>(row, 4).unwrap_or(false),
            status: exec::col::<String>(row, 5).unwrap_or_default(),
            changed: exec::col::<i64>(row, 6).unwrap_or(0),
            undone_by: exec::col::<i64>(row, 7),
        },
    )
    .into_iter()
    .next()
    .unwrap_or_else(|| {
        raise(
            DwrError::new(SqlState::UndefinedObject, format!("run {run_id} does not exist"))
                .hint("See SELECT * FROM dwr.merge_runs ORDER BY run_id DESC;"),
        )
    })
}

fn refuse(run_id: i64, why: String, hint: &str) -> ! {
    raise(
        DwrError::new(
            SqlState::ObjectNotInPrerequisiteState,
            format!("run {run_id} cannot be undone: {why}"),
        )
        .hint(hint.to_string()),
    )
}

#[pg_extern(sql = false)]
fn dwr_undo(run_id: Option<i64>) -> pgrx::composite_type!('static, "dwr.merge_result") {
    let run_id = run_id.unwrap_or_else(|| raise(DwrError::null_argument("dwr_undo", "run_id")));
    // every statement of an undo, its checks included, without JIT (exec::without_jit)
    exec::without_jit(|| undo(run_id))
}

fn undo(run_id: i64) -> pgrx::composite_type!('static, "dwr.merge_result") {
    let run = run_to_undo(run_id);
    if run.kind != "merge" {
        raise(
            DwrError::new(
                SqlState::FeatureNotSupported,
                format!("run {run_id} is an undo; an undo cannot be undone"),
            )
            .hint("Stage the rows again and merge them."),
        );
    }
    if run.dry_run {
        refuse(
            run_id,
            "it was a dry run and changed nothing".into(),
            "Nothing to do.",
        );
    }
    if run.status != "SUCCEEDED" && run.status != "SUCCEEDED_WITH_ERRORS" {
        refuse(
            run_id,
            format!("its status is {}", run.status),
            "Only a merge that committed can be undone.",
        );
    }
    if let Some(by) = run.undone_by {
        refuse(
            run_id,
            format!("it was already undone by run {by}"),
            "See SELECT * FROM dwr.merge_runs WHERE undo_of IS NOT NULL;",
        );
    }
    if run.changed == 0 {
        refuse(run_id, "it changed no row".into(), "Nothing to do.");
    }
    let owner = exec::extension_owner();
    let images = as_role(owner, || {
        query_one::<i64>(
            "SELECT pg_catalog.count(*) FROM dwr.row_changes WHERE run_id OPERATOR(pg_catalog.=) $1",
            &[run_id.into()],
        )
        .unwrap_or(0)
    });
    if images == 0 {
        refuse(
            run_id,
            "dwr.row_changes has no images of its rows".into(),
            "The run ran with dwr.row_audit = off, or dwr_purge_audit removed its images.",
        );
    }
    let target = exec::relation(run.target).unwrap_or_else(|| {
        raise(DwrError::new(
            SqlState::UndefinedTable,
            format!(
                "table {} of run {run_id} does not exist any more",
                run.target_name
            ),
        ))
    });
    crate::topology::of(&target).refuse_undo(&target);
    // from here on a failure is recorded as a FAILED undo run (outside this transaction, by the
    // same background worker as a failed merge), then raised; the work runs in a subtransaction so
    // that the session is clean enough to start the worker
    let started_at =
        query_one::<String>("SELECT pg_catalog.clock_timestamp()::pg_catalog.text", &[])
            .unwrap_or_default();
    let undo_id = std::cell::Cell::new(None);
    match exec::subtransaction(|| undo_run(run_id, &run, &target, owner, &undo_id)) {
        Ok(outcome) => result_tuple(&outcome),
        Err(e) => {
            let start = failure::RunStart {
                kind: "undo",
                target: run.target,
                target_name: target.display(),
                source_name: format!("dwr.row_changes of run {run_id}"),
                dry_run: false,
                started_at,
            };
            failure::record(&failure::describe(&start, undo_id.get(), &e));
            exec::raise_caught(e)
        }
    }
}

/// The undo itself, once `dwr_undo` checked that `run` can be undone.
fn undo_run(
    run_id: i64,
    run: &RunToUndo,
    target: &dwr_engine::catalog::Relation,
    owner: pg_sys::Oid,
    undo_id_out: &std::cell::Cell<Option<i64>>,
) -> MergeOutcome {
    // this server, or a distributed table's shards (crate::topology)
    let topology = crate::topology::of(target);
    lock_target(run.target);
    let row_audit = guc::ROW_AUDIT.get();
    let undo_id = audit::begin_run(
        RunKind::Undo(run_id),
        run.target,
        &target.display(),
        &format!("dwr.row_changes of run {run_id}"),
        false,
        None,
        row_audit,
    );
    undo_id_out.set(Some(undo_id));

    let u = topology.undo(target, run_id, undo_id, owner, row_audit);

    // in dwr.merge_result terms: restored rows are updates, removed rows put back are inserts,
    // rows changed since are stale, rows deleted since are skipped_deleted; the rows the undo
    // deleted are deleted (and in dwr.merge_runs.deleted)
    let counts = Counts {
        inserted: u.reinserted,
        updated: u.restored,
        deleted: u.deleted,
        skipped_stale: u.changed_since,
        skipped_deleted: u.gone_since,
        deferred: u.deferred,
        errors: u.errors,
        ..Counts::default()
    };
    let status = if u.errors > 0 {
        "SUCCEEDED_WITH_ERRORS"
    } else {
        "SUCCEEDED"
    };
    let duration: Option<Interval> = audit::finish_run(undo_id, status, &counts, Some(u.deleted));
    pgrx::notice!(
        "undo of run {run_id}: {} inserted rows deleted, {} updated rows restored, {} removed rows put back, {} left alone because they changed since, {} because they were deleted since, {} deferred, {} errors",
        u.deleted,
        u.restored,
        u.reinserted,
        u.changed_since,
        u.gone_since,
        u.deferred,
        u.errors
    );
    MergeOutcome {
        run_id: undo_id,
        target: run.target,
        status,
        counts,
        duration,
    }
}

/// `dwr._purge_audit`: deletes the row images of runs finished longer ago than `older_than`, for
/// `caller`, who must be a role the session may act as and a member of the extension owner.
#[pg_extern(sql = false)]
fn purge_audit(older_than: Option<Interval>, caller: Option<&core::ffi::CStr>) -> i64 {
    let f = "dwr._purge_audit";
    let older_than = older_than.unwrap_or_else(|| raise(DwrError::null_argument(f, "older_than")));
    let caller = crate::reload::caller_name(caller, f);
    let caller = caller.as_str();
    let owner = exec::extension_owner();
    exec::execute(
        "SELECT dwr._check_audit_owner($1::pg_catalog.name, $2)",
        &[caller.into(), owner.into()],
    );
    as_role(owner, || {
        exec::execute(
            "DELETE FROM dwr.row_changes c USING dwr.merge_runs r \
             WHERE c.run_id OPERATOR(pg_catalog.=) r.run_id \
             AND COALESCE(r.finished_at, r.started_at) OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $1)",
            &[older_than.into()],
        ) as i64
    })
}
