//! A production table Citus shards (distributed or reference): staging, the tombstone table and
//! the merge's work tables are placed like production, delete tracking writes the tombstone table
//! on the shards, and the merge and undo are those of `dwr_engine::citus`, pushed down.

use super::{PlannedMerge, Source, SourceCopy, Topology};
use crate::exec::{self, check, execute, query_one, query_rows, raise};
use crate::program::{self, Bindings, ClassCounts};
use crate::registry::Registration;

use dwr_engine::catalog::Relation;
use dwr_engine::citus::{self as engine, CitusMergeSql, Placement};
use dwr_engine::ddl::{remove_delete_tracking, DELETE_TRIGGER};
use dwr_engine::ident::quote_qualified;
use dwr_engine::plan::{ChangeLog, MergePlan};
use dwr_engine::sqlgen::MergeOptions;
use dwr_engine::undo::UndoCounts;
use dwr_engine::{DwrError, SqlState};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;

/// How Citus holds `oid`; `None` without Citus, or for a table Citus does not manage.
pub fn placement(oid: u32) -> Option<Placement> {
    if !query_one::<bool>(engine::HAS_CITUS_SQL, &[]).unwrap_or(false) {
        return None;
    }
    query_rows(
        engine::CITUS_TABLE_SQL,
        &[pg_sys::Oid::from(oid).into()],
        |row| {
            (
                exec::col::<String>(row, 1).unwrap_or_default(),
                exec::col::<String>(row, 2),
            )
        },
    )
    .into_iter()
    .next()
    .map(|(kind, column)| Placement::parse(&kind, column))
}

/// The placement of production table `rel` when the merge runs on its shards (distributed or
/// reference); `None` for a table Citus does not manage. A Citus local table is refused.
pub fn sharded(rel: &Relation, role: &str) -> Option<Placement> {
    match placement(rel.oid) {
        None => None,
        Some(p @ (Placement::Local | Placement::Replicated)) => {
            raise(engine::unsupported(&rel.display(), role, p.kind()))
        }
        Some(p) => Some(p),
    }
}

/// Run `f` with `citus.enable_unsafe_triggers` on (Citus refuses to create or drop a trigger on a
/// distributed table otherwise).
pub fn with_unsafe_triggers<R>(f: impl FnOnce() -> R) -> R {
    exec::with_setting("citus.enable_unsafe_triggers", "on", f)
}

/// Whether the relation named `qualified` exists.
fn table_exists(qualified: &str) -> bool {
    query_one::<bool>(
        "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
        &[qualified.into()],
    )
    .unwrap_or(false)
}

/// The tombstone table next to `staging` (qualified, quoted).
fn tombstones_table(staging: &Relation) -> String {
    quote_qualified(&staging.schema, &engine::tombstones_name(&staging.name))
}

/// Whether `a` and `b` are Citus tables in the same co-location group.
pub fn colocated(a: u32, b: u32) -> bool {
    query_one::<bool>(
        "SELECT (SELECT colocationid FROM pg_catalog.pg_dist_partition WHERE logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass) \
         OPERATOR(pg_catalog.=) (SELECT colocationid FROM pg_catalog.pg_dist_partition WHERE logicalrelid OPERATOR(pg_catalog.=) $2::pg_catalog.regclass)",
        &[pg_sys::Oid::from(a).into(), pg_sys::Oid::from(b).into()],
    )
    .unwrap_or(false)
}

/// Staging must be placed like production: a plain table (just created, or adopted) is placed so;
/// a Citus table placed otherwise is refused.
pub fn place_staging(target: &Relation, staging: &Relation, p: &Placement) {
    match placement(staging.oid) {
        None => {
            execute(&p.place_like(&staging.quoted(), &target.quoted()), &[]);
        }
        Some(_) if colocated(staging.oid, target.oid) => {}
        Some(_) => raise(engine::staging_not_colocated(
            &staging.display(),
            &target.display(),
            Some(p),
        )),
    }
}

/// The tombstone table of `target` whose staging is `staging` (qualified, quoted), created and
/// placed like production when missing.
pub fn ensure_tombstones(target: &Relation, staging: &Relation, p: &Placement) -> String {
    let qualified = tombstones_table(staging);
    if !table_exists(&qualified) {
        let name = engine::tombstones_name(&staging.name);
        for stmt in engine::create_tombstones(target, &staging.schema, &name) {
            execute(&stmt, &[]);
        }
        execute(&p.place_like(&qualified, &target.quoted()), &[]);
    }
    qualified
}

/// The tombstone table of a registered Citus target, or the error that says to re-create staging.
pub fn tombstones_of(target: &Relation, staging: &Relation) -> String {
    let qualified = tombstones_table(staging);
    if !table_exists(&qualified) {
        raise(
            DwrError::new(
                SqlState::UndefinedTable,
                format!("the tombstone table of {} is missing", target.display()),
            )
            .detail(format!("expected {qualified}, next to staging"))
            .hint("Run dwr_create_staging again: it re-creates the tombstone table and the delete tracking."),
        );
    }
    qualified
}

/// Drop the tombstone table and the merge's work tables next to `staging`, if they are there.
pub fn drop_citus_tables(staging: &Relation, target_oid: u32) {
    let (work, attempts) = engine::work_tables(&staging.schema, target_oid);
    execute(
        &format!(
            "DROP TABLE IF EXISTS {}, {attempts}, {work}",
            tombstones_table(staging)
        ),
        &[],
    );
}

/// Prune the tombstones of a Citus target older than `cutoff` (run on every shard).
pub fn prune_tombstones(tombstones: &str, cutoff: TimestampWithTimeZone) {
    execute(
        &format!(
            "DELETE FROM {tombstones} WHERE deleted_at OPERATOR(pg_catalog.<) $1::pg_catalog.timestamptz"
        ),
        &[cutoff.into()],
    );
}

/// Make the merge's work tables of `sql` unless they exist, fit production (`target`)'s key and
/// version and are placed with it.
pub fn ensure_work_tables(sql: &CitusMergeSql, target: pg_sys::Oid) {
    let fits = query_one::<bool>(
        engine::WORK_FITS_SQL,
        &[
            sql.work.as_str().into(),
            sql.attempts.as_str().into(),
            target.into(),
            sql.work_columns.clone().into(),
        ],
    )
    .unwrap_or(false)
        && [&sql.work, &sql.attempts].iter().all(|t| {
            query_one::<pg_sys::Oid>(
                "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
                &[t.as_str().into()],
            )
            .is_some_and(|oid| colocated(oid.to_u32(), target.to_u32()))
        });
    if fits {
        return;
    }
    if table_exists(&sql.work) || table_exists(&sql.attempts) {
        execute(&sql.drop_stale, &[]);
    }
    for stmt in &sql.create {
        execute(stmt, &[]);
    }
}

/// The SQL of a Citus merge, or the error that says why it cannot run.
pub fn merge_sql(
    plan: &dwr_engine::plan::MergePlan,
    p: &Placement,
    staging: &Relation,
    target_oid: u32,
    tombstones: &str,
    options: MergeOptions,
) -> CitusMergeSql {
    check(engine::merge_sql(
        plan,
        p,
        &staging.schema,
        target_oid,
        tombstones,
        options,
    ))
}

/// Make the merge's work tables of a newly registered Citus table (placing a table takes a third
/// of a second, which belongs to the set-up rather than to the first merge). A staging table the
/// merge cannot use yet is left to the merge to report.
pub fn prepare_work_tables(
    target: &Relation,
    staging: &Relation,
    p: &Placement,
    tombstones: &str,
    version_column: &str,
) {
    let casts = exec::casts_between(staging, target);
    let plan = dwr_engine::plan::plan_merge(target, staging, &casts, version_column, true);
    if let Ok(sql) = plan.and_then(|plan| {
        engine::merge_sql(
            &plan,
            p,
            &staging.schema,
            target.oid,
            tombstones,
            MergeOptions::default(),
        )
    }) {
        ensure_work_tables(&sql, pg_sys::Oid::from(target.oid));
    }
}

/// A merge from a source into a Citus table, planned: the source into production (no metadata),
/// and the copy the merge reads instead of staging.
struct SourcePlans {
    source: MergePlan,
    copy: Relation,
}

impl SourcePlans {
    fn of(
        target: &Relation,
        staging: &Relation,
        reg: &Registration,
        source: &Relation,
    ) -> SourcePlans {
        let plan = |from: &Relation, with_metadata: bool| {
            check(dwr_engine::plan::plan_merge(
                target,
                from,
                &exec::casts_between(from, target),
                &reg.version_column,
                with_metadata,
            ))
        };
        let source_plan = plan(source, false);
        let copy = dwr_engine::citus_source::copy_relation(
            staging,
            &plan(staging, true),
            &source_plan,
            target.oid,
        );
        SourcePlans {
            source: source_plan,
            copy,
        }
    }
}

/// A table Citus shards, as it places it.
pub struct Citus(pub Placement);

impl Topology for Citus {
    fn change_log_copy(
        &self,
        target: &Relation,
        reg: &Registration,
        log: &Relation,
        _how: &ChangeLog,
    ) -> SourceCopy {
        // as a source's: the copy (with each change's operation) is filled when the merge runs
        self.source_copy(target, reg, log)
    }

    fn source_copy(&self, target: &Relation, reg: &Registration, source: &Relation) -> SourceCopy {
        // a table shaped like staging, placed like production, filled when the merge runs
        // (dwr_engine::citus_source)
        let staging = exec::relation_or_raise(reg.staging, "staging table");
        super::check_staging_placed(target, &staging, Some(&self.0));
        let plans = SourcePlans::of(target, &staging, reg, source);
        SourceCopy {
            relation: plans.copy,
            with_metadata: true,
        }
    }

    fn check_staging_placed(&self, target: &Relation, staging: &Relation) {
        super::check_staging_placed(target, staging, Some(&self.0));
    }

    fn place_staging(&self, target: &Relation, staging: &Relation, version_column: &str) {
        // on the shards, with a tombstone table co-located with production
        place_staging(target, staging, &self.0);
        let tombstones = ensure_tombstones(target, staging, &self.0);
        prepare_work_tables(target, staging, &self.0, &tombstones, version_column);
    }

    fn install_delete_tracking(&self, target: &Relation, staging: &Relation, replace: bool) {
        with_unsafe_triggers(|| {
            if replace {
                execute(&remove_delete_tracking(target), &[]);
            }
            let tombstones = tombstones_of(target, staging);
            for stmt in engine::install_delete_tracking(target, &tombstones, DELETE_TRIGGER) {
                execute(&stmt, &[]);
            }
        })
    }

    fn remove_delete_tracking(&self, target: &Relation) {
        with_unsafe_triggers(|| execute(&remove_delete_tracking(target), &[]));
    }

    fn drop_beside_staging(&self, target: u32, staging: &Relation) {
        drop_citus_tables(staging, target);
    }

    fn prune_tombstones(
        &self,
        target: &Relation,
        staging: &Relation,
        cutoff: TimestampWithTimeZone,
    ) {
        if self.0 != Placement::Local {
            prune_tombstones(&tombstones_of(target, staging), cutoff);
        }
    }

    fn merge(
        &self,
        plan: &MergePlan,
        target: &Relation,
        staging: &Relation,
        options: MergeOptions,
        source: Option<Source>,
    ) -> PlannedMerge {
        let oid = pg_sys::Oid::from(target.oid);
        let Some(Source {
            relation: source,
            reg,
            log,
        }) = source
        else {
            let tombstones = tombstones_of(target, staging);
            let sql = merge_sql(plan, &self.0, staging, target.oid, &tombstones, options);
            let program = sql.program.clone();
            return PlannedMerge::new(
                program,
                Box::new(move |_| {
                    ensure_work_tables(&sql, oid);
                    ClassCounts(Vec::new())
                }),
            );
        };
        // from a source: `staging` is its copy, next to the registered staging table
        let registered = exec::relation_or_raise(reg.staging, "staging table");
        let tombstones = tombstones_of(target, &registered);
        let sql = merge_sql(plan, &self.0, &registered, target.oid, &tombstones, options);
        let plans = SourcePlans::of(target, &registered, reg, source);
        let dropped: Vec<String> = registered
            .columns
            .iter()
            .filter(|c| plans.copy.column(&c.name).is_none())
            .map(|c| c.name.clone())
            .collect();
        // (the relation the plan reads: `staging`)
        let copy = dwr_engine::citus_source::copy_name(&registered.schema, target.oid);
        let fill = check(dwr_engine::citus_source::source_sql(
            &plans.source,
            plan,
            &registered.quoted(),
            &copy,
            &dropped,
            self.0.place_like(&copy, &target.quoted()),
            log,
        ));
        let mut program = sql.program.clone();
        program.cleanup.extend(fill.cleanup.iter().cloned());
        PlannedMerge::new(
            program,
            Box::new(move |bindings| {
                ensure_work_tables(&sql, oid);
                for stmt in &fill.create {
                    execute(stmt, &[]);
                }
                program::run_stmts(&fill.fill, bindings);
                program::read_counts(&fill.counts, bindings)
            }),
        )
    }

    fn refuse_undo(&self, target: &Relation) {
        if self.0 == Placement::Reference {
            raise(engine::undo_reference_unsupported(&target.display()));
        }
    }

    fn undo(
        &self,
        target: &Relation,
        run_id: i64,
        undo_id: i64,
        _owner: pg_sys::Oid,
        row_audit: bool,
    ) -> UndoCounts {
        // the work tables, placed like production, for the length of the undo's transaction
        let sql = check(engine::undo_sql(target, &self.0, row_audit));
        for stmt in &sql.create {
            execute(stmt, &[]);
        }
        let bindings = Bindings::for_undo(pg_sys::Oid::from(target.oid), undo_id, run_id);
        program::run(&sql.program, &bindings).undo()
    }
}
