//! Where a production table lives, chosen once per call: on this server ([`local::Local`]) or on
//! the shards of a Citus cluster ([`citus::Citus`]). Everything that differs between the two is a
//! method of [`Topology`]: placing staging, delete tracking, the merge's program and what it needs
//! beforehand, tombstone pruning, undo. Staging, reload, merge and undo code ask the topology of
//! their table and contain no Citus branch (as supabase/wrappers puts each foreign data wrapper
//! behind one trait).

pub mod citus;
pub mod local;

use crate::exec;
use crate::program::{Bindings, ClassCounts};
use crate::registry::Registration;
use dwr_engine::catalog::Relation;
use dwr_engine::citus::Placement;
use dwr_engine::plan::{ChangeLog, MergePlan};
use dwr_engine::program::Program;
use dwr_engine::sqlgen::MergeOptions;
use dwr_engine::undo::UndoCounts;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;

/// The merge of one plan on one topology: its program, and what has to run before it.
pub struct PlannedMerge {
    pub program: Program,
    prepare: Box<dyn Fn(&Bindings) -> ClassCounts>,
}

impl PlannedMerge {
    pub fn new(program: Program, prepare: Box<dyn Fn(&Bindings) -> ClassCounts>) -> PlannedMerge {
        PlannedMerge { program, prepare }
    }

    /// Make what the program needs (Citus: its work tables placed like production, the copy of a
    /// source filled); once the merge holds its table's merge lock. Returns the classes of the
    /// staged rows this already settled (a source's rows the copy left out), counted with the
    /// program's.
    pub fn prepare(&self, bindings: &Bindings) -> ClassCounts {
        (self.prepare)(bindings)
    }
}

/// What a merge from a source table reads: the relation its plan is made from, and whether that
/// carries staging's metadata columns.
pub struct SourceCopy {
    pub relation: Relation,
    pub with_metadata: bool,
}

/// The table a merge reads instead of the registered staging table (`reg`'s): a source table's
/// rows, or a change log read as `log` says.
pub struct Source<'a> {
    pub relation: &'a Relation,
    pub reg: &'a Registration,
    pub log: Option<&'a ChangeLog>,
}

/// How operations on a production table run where it lives.
pub trait Topology {
    /// What a merge from `source` (checked by the caller) reads instead of the staging table of
    /// registration `reg`.
    fn source_copy(&self, target: &Relation, reg: &Registration, source: &Relation) -> SourceCopy;

    /// What a replay of change log `log` (checked by the caller) read as `how` reads: a copy of it
    /// with each change's operation (and on this server its place,
    /// `dwr_engine::sqlgen::change_log_copy_sql`).
    fn change_log_copy(
        &self,
        target: &Relation,
        reg: &Registration,
        log: &Relation,
        how: &ChangeLog,
    ) -> SourceCopy;

    /// Refuse a staging table that is not placed like production.
    fn check_staging_placed(&self, target: &Relation, staging: &Relation);

    /// Place a new or adopted staging table, and what a merge needs beside it.
    fn place_staging(&self, target: &Relation, staging: &Relation, version_column: &str);

    /// Install the trigger that records CDC's deletes (`replace`: remove an older one first). The
    /// caller holds the table lock.
    fn install_delete_tracking(&self, target: &Relation, staging: &Relation, replace: bool);

    /// Remove it (the caller holds the table lock).
    fn remove_delete_tracking(&self, target: &Relation);

    /// Drop what was made beside staging table `staging` of the table with oid `target`.
    fn drop_beside_staging(&self, target: u32, staging: &Relation);

    /// Prune the tombstones older than `cutoff` kept beside staging (the rows of `dwr.tombstones`
    /// are pruned for every topology by the registry).
    fn prune_tombstones(
        &self,
        target: &Relation,
        staging: &Relation,
        cutoff: TimestampWithTimeZone,
    );

    /// The merge of `plan` from `staging` (the registered staging table, or a source's copy) into
    /// `target`; `source`: the source table or change log of the copy.
    fn merge(
        &self,
        plan: &MergePlan,
        target: &Relation,
        staging: &Relation,
        options: MergeOptions,
        source: Option<Source>,
    ) -> PlannedMerge;

    /// Refuse an undo that cannot run on this topology.
    fn refuse_undo(&self, target: &Relation);

    /// Undo run `run_id` on `target` as undo run `undo_id`; the images are read and written as
    /// the extension `owner`.
    fn undo(
        &self,
        target: &Relation,
        run_id: i64,
        undo_id: i64,
        owner: pg_sys::Oid,
        row_audit: bool,
    ) -> UndoCounts;
}

/// The topology of production table `target`: Citus when Citus shards it (distributed or
/// reference; a Citus local table or one with replicated shards is refused), this server otherwise.
pub fn of(target: &Relation) -> Box<dyn Topology> {
    match citus::sharded(target, "production") {
        Some(p) => Box::new(citus::Citus(p)),
        None => Box::new(local::Local),
    }
}

/// The topology of a registered table being unregistered: whatever Citus makes of it now, without
/// refusals (a registration must always be removable).
pub fn of_registered(target: &Relation) -> Box<dyn Topology> {
    match citus::placement(target.oid) {
        Some(p) => Box::new(citus::Citus(p)),
        None => Box::new(local::Local),
    }
}

/// Refuse a table Citus holds in a way no topology merges: a Citus local table, or a distributed
/// table with replicated shards (`role`: "production" or "staging").
pub fn refuse_unmergeable(rel: &Relation, role: &str) {
    // (the refusal of citus::sharded, which also says how the table is sharded)
    let _ = citus::sharded(rel, role);
}

/// Refuse staging that is not placed like production (`p`: production's placement; `None`: a
/// table on this server): distributed behind the merge's back, or undistributed.
pub fn check_staging_placed(target: &Relation, staging: &Relation, p: Option<&Placement>) {
    let ok = match p {
        None => citus::placement(staging.oid).is_none(),
        Some(_) => citus::colocated(staging.oid, target.oid),
    };
    if !ok {
        exec::raise(dwr_engine::citus::staging_not_colocated(
            &staging.display(),
            &target.display(),
            p,
        ));
    }
}
