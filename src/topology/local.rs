//! A production table on this server: the merge's program runs as it is, delete tracking is a
//! trigger writing `dwr.tombstones`, nothing lives beside staging.

use super::{PlannedMerge, Source, SourceCopy, Topology};
use crate::exec::{self, execute, query_one, OrBug};
use crate::program::{self, Bindings, ClassCounts};
use crate::registry::Registration;
use dwr_engine::catalog::Relation;
use dwr_engine::ddl::{
    install_delete_tracking, install_missed_delete_tracking, remove_delete_tracking,
    remove_missed_delete_tracking, MISSED_DELETE_TRIGGER,
};
use dwr_engine::plan::{ChangeLog, MergePlan};
use dwr_engine::sqlgen::{merge_program, MergeOptions};
use dwr_engine::undo::{undo_program, UndoCounts};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;

pub struct Local;

impl Topology for Local {
    fn source_copy(
        &self,
        _target: &Relation,
        _reg: &Registration,
        source: &Relation,
    ) -> SourceCopy {
        // read once into a temporary table, which the merge then treats like staging without
        // metadata columns (it reads every row and writes no status); the source itself is never
        // written
        execute(
            &format!(
                "CREATE TEMPORARY TABLE \"_dwr_source\" ON COMMIT DROP AS SELECT * FROM {}",
                source.quoted()
            ),
            &[],
        );
        temporary_copy()
    }

    fn change_log_copy(
        &self,
        _target: &Relation,
        _reg: &Registration,
        log: &Relation,
        how: &ChangeLog,
    ) -> SourceCopy {
        execute(
            &dwr_engine::sqlgen::change_log_copy_sql(&log.quoted(), &how.operation, &how.order_by),
            &[],
        );
        temporary_copy()
    }

    fn check_staging_placed(&self, target: &Relation, staging: &Relation) {
        // a plain production table merges from a plain staging table
        super::check_staging_placed(target, staging, None);
    }

    fn place_staging(&self, _target: &Relation, staging: &Relation, _version_column: &str) {
        super::refuse_unmergeable(staging, "staging");
    }

    fn install_delete_tracking(&self, target: &Relation, _staging: &Relation, replace: bool) {
        if replace {
            self.remove_delete_tracking(target);
        }
        for stmt in install_delete_tracking(target) {
            execute(&stmt, &[]);
        }
        // and the capture of a DELETE by key that matched no row (src/missed_deletes.rs)
        for stmt in install_missed_delete_tracking(target) {
            execute(&stmt, &[]);
        }
    }

    fn remove_delete_tracking(&self, target: &Relation) {
        execute(&remove_delete_tracking(target), &[]);
        // (a table registered before 0.6.0 and not updated since has none)
        if exec::has_trigger(pg_sys::Oid::from(target.oid), MISSED_DELETE_TRIGGER) {
            execute(&remove_missed_delete_tracking(target), &[]);
        }
    }

    fn drop_beside_staging(&self, _target: u32, _staging: &Relation) {}

    fn prune_tombstones(&self, _: &Relation, _: &Relation, _: TimestampWithTimeZone) {}

    fn merge(
        &self,
        plan: &MergePlan,
        _target: &Relation,
        _staging: &Relation,
        options: MergeOptions,
        _source: Option<Source>,
    ) -> PlannedMerge {
        PlannedMerge::new(
            merge_program(plan, options),
            Box::new(|_| ClassCounts(Vec::new())),
        )
    }

    fn refuse_undo(&self, _target: &Relation) {}

    fn undo(
        &self,
        target: &Relation,
        run_id: i64,
        undo_id: i64,
        _owner: pg_sys::Oid,
        row_audit: bool,
    ) -> UndoCounts {
        let bindings = Bindings::for_undo(pg_sys::Oid::from(target.oid), undo_id, run_id);
        program::run(&undo_program(target, row_audit), &bindings).undo()
    }
}

/// The session's copy of a source or change log, read like staging without metadata columns.
fn temporary_copy() -> SourceCopy {
    let copy = query_one::<pg_sys::Oid>(
        "SELECT 'pg_temp._dwr_source'::pg_catalog.regclass::pg_catalog.oid",
        &[],
    )
    .or_bug("temporary source copy exists");
    SourceCopy {
        relation: exec::relation_or_raise(copy, "source copy"),
        with_metadata: false,
    }
}
