//! `dwr_merge`: read the catalog, plan, write the SQL (all in `dwr_engine`), then run it here.

use crate::audit;
use crate::exec::{self, check, query_one, raise, rolled_back, subtransaction, OrBug};
use crate::failure;
use crate::guc;
use crate::program::{self, BatchRange, Bindings};
use crate::registry::{self, registration_or_raise, Registration};
use crate::run::lock_target;
use crate::topology;
use dwr_engine::catalog::Relation;
use dwr_engine::plan::{plan_merge, ChangeLog, MergePlan};
use dwr_engine::sqlgen::{old_in_returning, Counts, MergeOptions};
use dwr_engine::DwrError;
use pgrx::datum::Interval;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// What one merge did.
pub struct MergeOutcome {
    pub run_id: i64,
    pub target: pg_sys::Oid,
    pub status: &'static str,
    pub counts: Counts,
    pub duration: Option<Interval>,
}

#[pg_extern(sql = false)]
fn dwr_merge(
    target: Option<pg_sys::Oid>,
    dry_run: Option<bool>,
    source: Option<pg_sys::Oid>,
) -> pgrx::composite_type!('static, "dwr.merge_result") {
    let target = target.unwrap_or_else(|| raise(DwrError::null_argument("dwr_merge", "target")));
    let dry_run = dry_run.unwrap_or_else(|| raise(DwrError::null_argument("dwr_merge", "dry_run")));
    result_tuple(&merge_from(target, dry_run, source))
}

/// `dwr_replay(target, changes, order_by, operation, dry_run)`: the change log `changes` merged
/// into `target`, per key its last change (by `order_by`): `I`/`U` as staged rows, `D` removing
/// production's row (see `sqlgen`'s `change_class_case`).
#[pg_extern(sql = false)]
fn dwr_replay(
    target: Option<pg_sys::Oid>,
    changes: Option<pg_sys::Oid>,
    order_by: Option<Vec<Option<String>>>,
    operation: Option<String>,
    dry_run: Option<bool>,
) -> pgrx::composite_type!('static, "dwr.merge_result") {
    let f = "dwr_replay";
    let target = target.unwrap_or_else(|| raise(DwrError::null_argument(f, "target")));
    let changes = changes.unwrap_or_else(|| raise(DwrError::null_argument(f, "changes")));
    let order_by: Vec<String> = order_by
        .unwrap_or_else(|| raise(DwrError::null_argument(f, "order_by")))
        .into_iter()
        .map(|c| c.unwrap_or_else(|| raise(DwrError::null_argument(f, "order_by"))))
        .collect();
    let operation = operation.unwrap_or_else(|| raise(DwrError::null_argument(f, "operation")));
    let dry_run = dry_run.unwrap_or_else(|| raise(DwrError::null_argument(f, "dry_run")));
    let log = ChangeLog {
        operation,
        order_by,
    };
    result_tuple(&merge_part(
        target,
        dry_run,
        Input::Changes(changes, &log),
        None,
    ))
}

/// `dwr_delete_absent(target, max_deletes, dry_run)`: once the window's full load in staging is
/// complete, remove the production rows of the open reload's window whose key it lacks (rows the
/// source deleted during the outage), at most `max_deletes` of them (more is refused, nothing
/// removed). Merges nothing; every removed row keeps its before image.
#[pg_extern(sql = false)]
fn dwr_delete_absent(
    target: Option<pg_sys::Oid>,
    max_deletes: Option<i64>,
    dry_run: Option<bool>,
) -> pgrx::composite_type!('static, "dwr.merge_result") {
    let f = "dwr_delete_absent";
    let target = target.unwrap_or_else(|| raise(DwrError::null_argument(f, "target")));
    let max = max_deletes.unwrap_or_else(|| raise(DwrError::null_argument(f, "max_deletes")));
    let dry_run = dry_run.unwrap_or_else(|| raise(DwrError::null_argument(f, "dry_run")));
    if max < 0 {
        raise(DwrError::max_deletes_invalid(&max.to_string()));
    }
    result_tuple(&merge_part(target, dry_run, Input::Absent(max), None))
}

/// What a merge reads.
#[derive(Clone, Copy)]
pub enum Input<'a> {
    /// the registered staging table's `NEW` rows
    Staging,
    /// every row of a source table (`dwr_merge(..., source =>)`)
    Rows(pg_sys::Oid),
    /// a change log (`dwr_replay`)
    Changes(pg_sys::Oid, &'a ChangeLog),
    /// the registered staging table as the window's complete full load, to remove what it lacks
    /// (`dwr_delete_absent`, at most this many rows)
    Absent(i64),
}

/// Build a `dwr.merge_result` value.
pub fn result_tuple(o: &MergeOutcome) -> pgrx::composite_type!('static, "dwr.merge_result") {
    let mut t =
        PgHeapTuple::new_composite_type("dwr.merge_result").or_bug("type dwr.merge_result exists");
    let c = &o.counts;
    let set = |t: &mut PgHeapTuple<'static, _>, name: &str, v: i64| {
        t.set_by_name(name, v).or_bug("merge_result attribute");
    };
    set(&mut t, "run_id", o.run_id);
    t.set_by_name("target", exec::RegClass(o.target))
        .or_bug("merge_result.target");
    t.set_by_name("status", o.status)
        .or_bug("merge_result.status");
    set(&mut t, "inserted", c.inserted);
    set(&mut t, "updated", c.updated);
    set(&mut t, "unchanged", c.unchanged);
    set(&mut t, "skipped_stale", c.skipped_stale);
    set(&mut t, "skipped_deleted", c.skipped_deleted);
    set(&mut t, "skipped_outside_window", c.skipped_outside_window);
    set(&mut t, "deferred", c.deferred);
    set(&mut t, "errors", c.errors);
    set(&mut t, "deleted", c.deleted);
    if let Some(d) = o.duration {
        t.set_by_name("duration", d).or_bug("merge_result.duration");
    }
    t
}

/// Merge the registered staging table of `target` into it. A merge that fails once the target is
/// known to be registered is recorded as `FAILED` in `dwr.merge_runs` by a background worker (see
/// `failure`), then its error is raised: the whole merge runs in a subtransaction, so that after a
/// failure the session is clean enough to start the worker.
pub fn merge(target_oid: pg_sys::Oid, dry_run: bool) -> MergeOutcome {
    merge_from(target_oid, dry_run, None)
}

/// Like [`merge`], from `source` instead of the registered staging table when given.
pub fn merge_from(
    target_oid: pg_sys::Oid,
    dry_run: bool,
    source: Option<pg_sys::Oid>,
) -> MergeOutcome {
    let input = match source {
        Some(oid) => Input::Rows(oid),
        None => Input::Staging,
    };
    merge_part(target_oid, dry_run, input, None)
}

/// A merge of what `input` names, limited to one batch's rows when `batch` is given.
pub fn merge_part(
    target_oid: pg_sys::Oid,
    dry_run: bool,
    input: Input,
    batch: Option<&BatchRange>,
) -> MergeOutcome {
    let reg = registration_or_raise(target_oid);
    let started_at =
        query_one::<String>("SELECT pg_catalog.clock_timestamp()::pg_catalog.text", &[])
            .unwrap_or_default();
    let run_id = std::cell::Cell::new(None);
    match subtransaction(|| {
        exec::without_jit(|| merge_registered(target_oid, &reg, dry_run, input, batch, &run_id))
    }) {
        Ok(outcome) => outcome,
        Err(e) => {
            let name = |oid| exec::relation(oid).map(|r| r.display()).unwrap_or_default();
            let start = failure::RunStart {
                kind: "merge",
                target: target_oid,
                target_name: name(target_oid),
                source_name: name(match input {
                    Input::Staging | Input::Absent(_) => reg.staging,
                    Input::Rows(oid) | Input::Changes(oid, _) => oid,
                }),
                dry_run,
                started_at,
            };
            failure::record(&failure::describe(&start, run_id.get(), &e));
            exec::raise_caught(e)
        }
    }
}

/// The registered staging table of `target`, checked to be owned by the target's owner.
pub fn registered_staging(target: &Relation, reg: &Registration) -> Relation {
    let staging = exec::relation_or_raise(reg.staging, "staging table");
    crate::staging::check_staging_owner(target, &staging);
    staging
}

/// The plan of merging `staging` into `target`, or the error that says why it cannot run.
pub fn plan_of(
    target: &Relation,
    staging: &Relation,
    reg: &Registration,
    with_metadata: bool,
) -> MergePlan {
    let casts = exec::casts_between(staging, target);
    check(plan_merge(
        target,
        staging,
        &casts,
        &reg.version_column,
        with_metadata,
    ))
}

/// The change log `log` has the operation and order columns `spec` names, and some order.
fn check_change_log(log: &Relation, spec: &ChangeLog) {
    if spec.order_by.is_empty() {
        raise(DwrError::change_log_unordered(&log.display()));
    }
    let has = |name: &str| log.columns.iter().any(|c| c.name == name);
    if !has(&spec.operation) {
        raise(DwrError::change_log_column_missing(
            &log.display(),
            "operation of each change",
            &dwr_engine::ident::display_ident(&spec.operation),
        ));
    }
    for c in &spec.order_by {
        if !has(c) {
            raise(DwrError::change_log_column_missing(
                &log.display(),
                "order of the changes",
                &dwr_engine::ident::display_ident(c),
            ));
        }
    }
}

fn merge_registered(
    target_oid: pg_sys::Oid,
    reg: &Registration,
    dry_run: bool,
    input: Input,
    batch: Option<&BatchRange>,
    run_id_out: &std::cell::Cell<Option<i64>>,
) -> MergeOutcome {
    let target = exec::relation_or_raise(target_oid, "table");
    // this server, or the shards of a Citus cluster (crate::topology)
    let topology = topology::of(&target);
    let (staging, with_metadata, source) = match input {
        Input::Staging | Input::Absent(_) => {
            let staging = registered_staging(&target, reg);
            topology.check_staging_placed(&target, &staging);
            (staging, true, None)
        }
        Input::Rows(oid) => {
            // any table (or view, foreign table) with the target's key and version columns, read
            // through the copy the topology makes of it
            let src = crate::staging::checked_source(&target, oid);
            let copy = topology.source_copy(&target, reg, &src);
            (copy.relation, copy.with_metadata, Some(src))
        }
        Input::Changes(oid, log) => {
            // the same, with each change's operation and place in the log
            let src = crate::staging::checked_source(&target, oid);
            check_change_log(&src, log);
            let copy = topology.change_log_copy(&target, reg, &src, log);
            (copy.relation, copy.with_metadata, Some(src))
        }
    };
    let mut plan = plan_of(&target, &staging, reg, with_metadata);
    if let Some(src) = &source {
        plan.staging_display = src.display();
    }
    plan.changes = matches!(input, Input::Changes(..));
    plan.absent = matches!(input, Input::Absent(_));
    let row_audit = guc::ROW_AUDIT.get();
    let merge = topology.merge(
        &plan,
        &target,
        &staging,
        MergeOptions {
            row_audit,
            batched: batch.is_some(),
            // the server this extension was built for
            old_in_returning: old_in_returning(pg_sys::PG_VERSION_NUM as i32),
        },
        source.as_ref().map(|relation| topology::Source {
            relation,
            reg,
            log: match input {
                Input::Changes(_, log) => Some(log),
                _ => None,
            },
        }),
    );

    lock_target(target_oid);
    // read after the lock: a reload opened or ended meanwhile is seen
    let reload = registry::open_reload(target_oid);
    if plan.absent && reload.is_none() {
        raise(DwrError::absent_without_reload(&plan.target_display));
    }
    let since = registry::deletes_count_since(target_oid);
    let run_id = audit::begin_run(
        audit::RunKind::Merge,
        target_oid,
        &plan.target_display,
        &plan.staging_display,
        dry_run,
        reload.as_ref(),
        row_audit,
    );
    run_id_out.set(Some(run_id));
    let bindings = Bindings {
        target: target_oid,
        run_id,
        window: reload.as_ref().map(|r| (r.window_start, r.window_end)),
        since: Some(since),
        undone_run: None,
        null_version: plan.null_version_message(),
        null_key: plan.null_key_message(),
        batch: batch.cloned(),
        lob_limit: reload
            .as_ref()
            .and_then(|r| r.lob_max_kb)
            .map(|kb| i64::from(kb) * 1024),
    };

    if let Input::Absent(max) = input {
        // the candidates counted first: more than the caller expects is refused, nothing removed
        let options = MergeOptions {
            row_audit,
            ..MergeOptions::default()
        };
        let builder = dwr_engine::sqlgen::MergeBuilder {
            plan: &plan,
            options,
        };
        let n = program::read_counts(&builder.absent_count(), &bindings)
            .merge()
            .deleted;
        if n > max {
            raise(DwrError::absent_over_limit(
                &plan.target_display,
                &n.to_string(),
                &max.to_string(),
            ));
        }
    }
    let statements = || {
        let mut classes = merge.prepare(&bindings);
        classes.0.extend(program::run(&merge.program, &bindings).0);
        classes.merge()
    };
    let counts = if dry_run {
        // run everything, then roll it all back: the counts are exact, nothing changes
        rolled_back(statements).unwrap_or_else(|e| exec::raise_caught(e))
    } else {
        let counts = statements();
        crate::tombstones::prune_tombstones(target_oid);
        counts
    };

    let status = if dry_run {
        "DRY_RUN"
    } else if counts.errors > 0 {
        "SUCCEEDED_WITH_ERRORS"
    } else {
        "SUCCEEDED"
    };
    // a replay's removed rows are in dwr.merge_runs.deleted (as an undo's are)
    let deleted = (plan.changes || plan.absent).then_some(counts.deleted);
    let duration = audit::finish_run(run_id, status, &counts, deleted);
    MergeOutcome {
        run_id,
        target: target_oid,
        status,
        counts,
        duration,
    }
}
