//! A production table on this server: the merge's program runs as it is, delete tracking is a
//! trigger writing `dwr.tombstones`, nothing lives beside staging.

use super::{PlannedMerge, Topology};
use crate::exec::{self, as_role, bisect, execute, query_one, query_rows, Caught};
use crate::guc;
use dwr_engine::catalog::Relation;
use dwr_engine::ddl::{install_delete_tracking, remove_delete_tracking};
use dwr_engine::plan::MergePlan;
use dwr_engine::sqlgen::{merge_program, MergeOptions};
use dwr_engine::undo::{undo_sql, UndoCounts, UNDO_WORK};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;

pub struct Local;

impl Topology for Local {
    fn refuse(&self, _target: &Relation, _what: &str) {}

    fn check_staging_placed(&self, target: &Relation, staging: &Relation) {
        // a plain production table merges from a plain staging table
        super::citus::check_staging_placed(target, staging, None);
    }

    fn place_staging(&self, _target: &Relation, staging: &Relation, _version_column: &str) {
        super::citus::refuse_local(staging, "staging");
    }

    fn install_delete_tracking(&self, target: &Relation, _staging: &Relation, replace: bool) {
        if replace {
            execute(&remove_delete_tracking(target), &[]);
        }
        for stmt in install_delete_tracking(target) {
            execute(&stmt, &[]);
        }
    }

    fn remove_delete_tracking(&self, target: &Relation) {
        execute(&remove_delete_tracking(target), &[]);
    }

    fn drop_beside_staging(&self, _target: u32, _staging: &Relation) {}

    fn prune_tombstones(&self, _: &Relation, _: &Relation, _: TimestampWithTimeZone) {}

    fn merge(
        &self,
        plan: &MergePlan,
        _target: &Relation,
        _staging: &Relation,
        options: MergeOptions,
    ) -> PlannedMerge {
        PlannedMerge::new(merge_program(plan, options), Box::new(|| {}))
    }

    fn refuse_undo(&self, _target: &Relation) {}

    fn undo(
        &self,
        target: &Relation,
        run_id: i64,
        undo_id: i64,
        owner: pg_sys::Oid,
        row_audit: bool,
    ) -> UndoCounts {
        undo_statements(
            &undo_sql(target),
            run_id,
            undo_id,
            pg_sys::Oid::from(target.oid),
            owner,
            row_audit,
        )
    }
}

/// The statements of an undo on a table of this server; returns the counts by final class.
fn undo_statements(
    sql: &dwr_engine::undo::UndoSql,
    run_id: i64,
    undo_id: i64,
    target: pg_sys::Oid,
    owner: pg_sys::Oid,
    row_audit: bool,
) -> UndoCounts {
    let mut on_row_error = |n: i64, e: &Caught| {
        if e.is_lock_timeout() {
            execute(&sql.mark_row_deferred, &[n.into()]);
        } else {
            execute(&sql.mark_row_error, &[n.into(), e.text().as_str().into()]);
        }
    };
    execute(&sql.create_work, &[]);
    exec::share_work_table(UNDO_WORK, owner);
    as_role(owner, || {
        execute(&sql.fill_work, &[run_id.into()]);
    });
    execute(&format!("ANALYZE {UNDO_WORK}"), &[]);
    execute(&sql.classify, &[]);
    execute(&sql.lock, &[]);
    execute(&sql.defer_unlocked, &[]);
    let max = query_one::<i64>(&sql.max_row, &[]).unwrap_or(0);
    exec::with_lock_timeout(guc::ROW_LOCK_TIMEOUT.get(), || {
        bisect(&sql.apply_deletes, 1, max, &mut on_row_error);
        bisect(&sql.apply_restores, 1, max, &mut on_row_error);
    });
    if row_audit {
        as_role(owner, || {
            execute(&sql.write_row_changes, &[undo_id.into(), target.into()]);
        });
    }
    let mut u = UndoCounts::default();
    for (class, n) in query_rows(&sql.counts, &[], |row| {
        (
            exec::col::<String>(row, 1).unwrap_or_default(),
            exec::col::<i64>(row, 2).unwrap_or(0),
        )
    }) {
        u.add(&class, n);
    }
    execute(&sql.drop_work, &[]);

    u
}
