//! `dwr_merge`: read the catalog, plan, write the SQL (all in `dwr_engine`), then run it here.

use crate::audit;
use crate::exec::{
    self, bisect, check, execute, query_one, query_rows, raise, rolled_back, subtransaction, Caught,
};
use crate::failure;
use crate::guc;
use crate::registry::{self, registration_or_raise, OpenReload, Registration};
use crate::run::{count_lock_timeout, lock_target, read_counts, test_hold_after_classify};
use dwr_engine::catalog::Relation;
use dwr_engine::plan::{plan_merge, MergePlan};
use dwr_engine::sqlgen::{merge_sql, merge_sql_batch, Counts, MergeSql};
use dwr_engine::{DwrError, SqlState};
use pgrx::datum::{Interval, TimestampWithTimeZone};
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

/// Build a `dwr.merge_result` value.
pub fn result_tuple(o: &MergeOutcome) -> pgrx::composite_type!('static, "dwr.merge_result") {
    let mut t =
        PgHeapTuple::new_composite_type("dwr.merge_result").expect("type dwr.merge_result exists");
    let c = &o.counts;
    let set = |t: &mut PgHeapTuple<'static, _>, name: &str, v: i64| {
        t.set_by_name(name, v).expect("merge_result attribute");
    };
    set(&mut t, "run_id", o.run_id);
    t.set_by_name("target", exec::RegClass(o.target))
        .expect("merge_result.target");
    t.set_by_name("status", o.status)
        .expect("merge_result.status");
    set(&mut t, "inserted", c.inserted);
    set(&mut t, "updated", c.updated);
    set(&mut t, "unchanged", c.unchanged);
    set(&mut t, "skipped_stale", c.skipped_stale);
    set(&mut t, "skipped_deleted", c.skipped_deleted);
    set(&mut t, "skipped_outside_window", c.skipped_outside_window);
    set(&mut t, "deferred", c.deferred);
    set(&mut t, "errors", c.errors);
    if let Some(d) = o.duration {
        t.set_by_name("duration", d).expect("merge_result.duration");
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
    merge_part(target_oid, dry_run, source, None)
}

/// The staged rows of one batch of `dwr_merge_batches`: keys above `lo` (exclusive) up to `hi`
/// (inclusive), each a key's parts in their text form; `None` leaves that end open.
pub struct BatchRange {
    pub lo: Option<Vec<String>>,
    pub hi: Option<Vec<String>>,
}

/// [`merge_from`], limited to one batch's rows when `batch` is given.
pub fn merge_part(
    target_oid: pg_sys::Oid,
    dry_run: bool,
    source: Option<pg_sys::Oid>,
    batch: Option<&BatchRange>,
) -> MergeOutcome {
    let reg = registration_or_raise(target_oid);
    let started_at =
        query_one::<String>("SELECT pg_catalog.clock_timestamp()::pg_catalog.text", &[])
            .unwrap_or_default();
    let run_id = std::cell::Cell::new(None);
    match subtransaction(|| merge_registered(target_oid, &reg, dry_run, source, batch, &run_id)) {
        Ok(outcome) => outcome,
        Err(e) => {
            let name = |oid| exec::relation(oid).map(|r| r.display()).unwrap_or_default();
            let start = failure::RunStart {
                kind: "merge",
                target: target_oid,
                target_name: name(target_oid),
                source_name: name(source.unwrap_or(reg.staging)),
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

fn merge_registered(
    target_oid: pg_sys::Oid,
    reg: &Registration,
    dry_run: bool,
    source: Option<pg_sys::Oid>,
    batch: Option<&BatchRange>,
    run_id_out: &std::cell::Cell<Option<i64>>,
) -> MergeOutcome {
    let target = exec::relation_or_raise(target_oid, "table");
    // a distributed or reference production table merges on its shards (see crate::citus)
    let sharded = crate::citus::sharded(&target, "production");
    if sharded.is_some() && (source.is_some() || batch.is_some()) {
        raise(crate::citus::not_pushed_down(
            &target.display(),
            if batch.is_some() {
                "dwr_merge_batches"
            } else {
                "a merge from another source table"
            },
        ));
    }
    let (staging, source_display) = match source {
        None => {
            let staging = registered_staging(&target, reg);
            let display = staging.display();
            (staging, display)
        }
        Some(oid) => {
            // any table (or view, foreign table) with the target's key and version columns: read
            // once into a temporary table, which the merge then treats like staging without
            // metadata columns; the source itself is never written
            let src = crate::staging::checked_source(&target, oid);
            execute(
                &format!(
                    "CREATE TEMPORARY TABLE \"_dwr_source\" ON COMMIT DROP AS SELECT * FROM {}",
                    src.quoted()
                ),
                &[],
            );
            let copy = query_one::<pg_sys::Oid>(
                "SELECT 'pg_temp._dwr_source'::pg_catalog.regclass::pg_catalog.oid",
                &[],
            )
            .expect("temporary source copy exists");
            (exec::relation_or_raise(copy, "source copy"), src.display())
        }
    };
    crate::citus::check_staging_placed(&target, &staging, sharded.as_ref());
    let mut plan = plan_of(&target, &staging, reg, source.is_none());
    plan.staging_display = source_display;
    let row_audit = guc::ROW_AUDIT.get();
    let citus_sql = sharded.as_ref().map(|p| {
        let tombstones = crate::citus::tombstones_of(&target, &staging);
        crate::citus::merge_sql(&plan, p, &staging, target.oid, &tombstones, row_audit)
    });
    let sql = if batch.is_some() {
        merge_sql_batch(&plan, row_audit)
    } else {
        merge_sql(&plan, row_audit)
    };

    lock_target(target_oid, &plan.target_display);
    // read after the lock: a reload opened or ended meanwhile is seen
    let reload = registry::open_reload(target_oid);
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
    let ctx = RunContext {
        target: target_oid,
        run_id,
        reload: reload.as_ref(),
        since,
        row_audit,
        batch,
    };
    let null_version = plan.null_version_message();
    let null_key = plan.null_key_message();

    let statements = || match &citus_sql {
        Some(c) => crate::citus::run(
            c,
            &crate::citus::CitusRun {
                run_id,
                target: target_oid,
                window: match ctx.reload {
                    Some(r) => (Some(r.window_start), Some(r.window_end)),
                    None => (None, None),
                },
                since: ctx.since,
                row_audit,
                null_version: &null_version,
                row_lock_timeout: guc::ROW_LOCK_TIMEOUT.get(),
            },
        ),
        None => run_statements(&sql, &ctx, &null_version, &null_key),
    };
    let counts = if dry_run {
        // run everything, then roll it all back: the counts are exact, nothing changes
        rolled_back(statements).unwrap_or_else(|e| exec::raise_caught(e))
    } else {
        let counts = statements();
        registry::prune_tombstones(target_oid);
        counts
    };

    let status = if dry_run {
        "DRY_RUN"
    } else if counts.errors > 0 {
        "SUCCEEDED_WITH_ERRORS"
    } else {
        "SUCCEEDED"
    };
    let duration = audit::finish_run(run_id, status, &counts, None);
    MergeOutcome {
        run_id,
        target: target_oid,
        status,
        counts,
        duration,
    }
}

/// What the statements of one merge need besides their SQL.
struct RunContext<'a> {
    target: pg_sys::Oid,
    run_id: i64,
    reload: Option<&'a OpenReload>,
    /// deletes from this moment on stop staged rows
    since: TimestampWithTimeZone,
    row_audit: bool,
    batch: Option<&'a BatchRange>,
}

/// Run the statements of a merge; returns the counts by final class.
fn run_statements(sql: &MergeSql, ctx: &RunContext, null_version: &str, null_key: &str) -> Counts {
    let mut lock_timeouts = 0u32;
    let mut mark_error = |rn: i64, e: &Caught| {
        if e.is_lock_timeout() {
            count_lock_timeout(&mut lock_timeouts);
            execute(&sql.mark_row_deferred, &[rn.into()]);
        } else {
            execute(&sql.mark_row_error, &[rn.into(), e.text().as_str().into()]);
        }
    };
    if ctx.row_audit {
        execute(&sql.create_images, &[]);
    }
    let (window_start, window_end) = match ctx.reload {
        Some(r) => (Some(r.window_start), Some(r.window_end)),
        None => (None, None),
    };
    // a batch's statements also take its key range (see dwr_engine::sqlgen::merge_sql_batch): they
    // read only its part of staging and production
    let bounds = || -> Vec<pgrx::datum::DatumWithOid<'static>> {
        match ctx.batch {
            Some(b) => vec![b.lo.clone().into(), b.hi.clone().into()],
            None => vec![],
        }
    };
    let mut classify_args = vec![
        null_version.into(),
        null_key.into(),
        window_start.into(),
        window_end.into(),
        ctx.target.into(),
        ctx.since.into(),
    ];
    classify_args.extend(bounds()); // $7, $8
                                    // the work rows are numbered 1..=rows
    let rows = if sql.keys_need_cast {
        execute(&sql.create_work, &[]);
        let rows = execute(&sql.fill_work_rows, &bounds()) as i64;
        bisect(&sql.cast_keys, 1, rows, &mut mark_error);
        execute(&sql.classify_work, &classify_args);
        rows
    } else {
        execute(&sql.fill_classified, &classify_args) as i64
    };
    execute(&sql.analyze_work, &[]); // estimates for the apply statements
    test_hold_after_classify();
    let row_lock_timeout = guc::ROW_LOCK_TIMEOUT.get();
    // inserts first, while the merge holds no lock a CDC transaction could be waiting on: an insert
    // may have to wait for a CDC transaction inserting or deleting the same key, and a wait while
    // CDC waits on a row the merge locked for update is how a deadlock would form
    exec::with_lock_timeout(row_lock_timeout, || {
        exec::bisect_with(&sql.apply_inserts, 1, rows, &bounds, &mut mark_error)
    });
    exec::with_lock_timeout(row_lock_timeout, || {
        if sql.apply_updates_direct.is_empty() {
            exec::bisect_with(&sql.apply_updates, 1, rows, &bounds, &mut mark_error)
        } else {
            exec::bisect_or_fall_back(
                &sql.apply_updates_direct,
                &sql.apply_updates,
                1,
                rows,
                &bounds,
                &mut mark_error,
            )
        }
    });
    // a delete that committed while the inserts ran: its key must not come back (checked first, so
    // that a caller without DELETE rights on production can merge when nothing needs taking back)
    let since_args = [ctx.target.into(), ctx.since.into()];
    if query_one::<bool>(&sql.any_tombstones, &since_args).unwrap_or(false)
        && query_one::<bool>(&sql.any_inserted_tombstoned, &since_args).unwrap_or(false)
    {
        execute(&sql.recheck_inserted, &since_args);
    }
    if !sql.write_statuses.is_empty() {
        let mut args = vec![ctx.run_id.into()];
        args.extend(bounds());
        execute(&sql.write_statuses, &args);
    }
    if ctx.row_audit {
        let owner = exec::extension_owner();
        exec::share_work_table(dwr_engine::sqlgen::IMAGES, owner);
        exec::as_role(owner, || {
            execute(
                &sql.write_row_changes,
                &[ctx.run_id.into(), ctx.target.into()],
            );
        });
    }
    let counts = read_counts(&sql.counts);
    execute(&sql.drop_work, &[]);
    if sql.write_statuses.is_empty() {
        // merged from a source: drop the session's copy of it
        execute("DROP TABLE pg_temp.\"_dwr_source\"", &[]);
    }
    counts
}

#[pg_extern(sql = false)]
fn dwr_merge_all(
    reload_id: Option<i64>,
) -> SetOfIterator<'static, pgrx::composite_type!('static, "dwr.merge_result")> {
    let targets: Vec<pg_sys::Oid> = match reload_id {
        Some(id) => match registry::reload_state(id) {
            (true, _) => raise(
                DwrError::new(
                    SqlState::ObjectNotInPrerequisiteState,
                    format!("reload {id} is ended"),
                )
                .hint("Merge every registered table with dwr_merge_all(), or open a new reload."),
            ),
            (false, targets) => targets,
        },
        None => {
            // every registration whose production and staging tables both exist; a broken one is
            // named and left out rather than failing the others
            let regs = query_rows(
                "SELECT t.target::pg_catalog.oid, t.target::pg_catalog.text, \
                        EXISTS (SELECT FROM pg_catalog.pg_class s \
                                 WHERE s.oid OPERATOR(pg_catalog.=) t.staging::pg_catalog.oid) \
                   FROM dwr.tables t \
                   JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.target::pg_catalog.oid",
                &[],
                |row| {
                    (
                        exec::col::<pg_sys::Oid>(row, 1).expect("target"),
                        exec::col::<String>(row, 2).unwrap_or_default(),
                        exec::col::<bool>(row, 3).unwrap_or(false),
                    )
                },
            );
            regs.into_iter()
                .filter_map(|(oid, name, staged)| {
                    if !staged {
                        pgrx::warning!(
                            "dwr_merge_all: skipping {name}: its staging table no longer exists (re-create it with dwr_create_staging)"
                        );
                    }
                    staged.then_some(oid)
                })
                .collect()
        }
    };
    // parents before children, by the foreign keys among these tables
    let names: Vec<(pg_sys::Oid, String)> = targets
        .iter()
        .map(|&oid| (oid, exec::relation_or_raise(oid, "table").display()))
        .collect();
    let edges = query_rows(
        "SELECT c.conrelid, c.confrelid FROM pg_catalog.pg_constraint c \
         WHERE c.contype OPERATOR(pg_catalog.=) 'f' \
           AND c.conrelid OPERATOR(pg_catalog.=) ANY ($1) AND c.confrelid OPERATOR(pg_catalog.=) ANY ($1)",
        &[targets.clone().into()],
        |row| (exec::col::<pg_sys::Oid>(row, 1).expect("conrelid"), exec::col::<pg_sys::Oid>(row, 2).expect("confrelid")),
    );
    let name_of = |oid: pg_sys::Oid| {
        names
            .iter()
            .find(|(o, _)| *o == oid)
            .map(|(_, n)| n.clone())
            .unwrap_or_default()
    };
    let order = check(dwr_engine::order::parents_first(
        &names.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>(),
        &edges
            .iter()
            .map(|&(c, p)| (name_of(c), name_of(p)))
            .collect::<Vec<_>>(),
    ));
    let results: Vec<_> = order
        .iter()
        .map(|name| {
            let oid = names
                .iter()
                .find(|(_, n)| n == name)
                .map(|(o, _)| *o)
                .expect("ordered name");
            result_tuple(&merge(oid, false))
        })
        .collect();
    SetOfIterator::new(results)
}
