//! The classes of a staged row during and after a merge, and the counts a merge reports: the
//! vocabulary the merge's statements ([`crate::sqlgen`]) and their runners ([`crate::program`])
//! share.

use crate::ident::quote_literal;

/// Where a staged row stands during and after a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowClass {
    /// read from staging, not yet classified (only between the steps of a merge whose keys need a
    /// cast)
    New,
    /// outside the open reload's window: stays `NEW`
    OutsideWindow,
    /// a higher version of the same key is staged too: `SKIPPED`
    Duplicate,
    /// production has the key with a lower (or NULL) version: updated. `apply_updates` moves the
    /// rows it could not write to `Deferred` or `Error`
    Update,
    /// production has the same version: `PROCESSED`, nothing written
    Unchanged,
    /// production has a higher version: `SKIPPED`
    Stale,
    /// production lacks the key: inserted. `apply_inserts` moves the rows it could not write to
    /// `Deferred` or `Error`
    Insert,
    /// production deleted the key since the reload began: `SKIPPED`
    Deleted,
    /// a replayed `D` (`dwr_replay`) of a row production has at a version not newer than the
    /// delete's: removed. `apply_deletes` moves the rows it could not remove to `Deferred`
    Delete,
    /// a replayed `D` of a key production does not have: nothing to remove; the key's tombstone
    /// keeps an older row of it from being inserted by a later merge of the reload
    Absent,
    /// CDC held the row (a lock, or a concurrent insert of the key): stays `NEW` for a later merge
    Deferred,
    /// production rejected the row, or its key or version is unusable: `ERROR`
    Error,
}

impl RowClass {
    pub const ALL: [RowClass; 12] = [
        RowClass::New,
        RowClass::OutsideWindow,
        RowClass::Duplicate,
        RowClass::Update,
        RowClass::Unchanged,
        RowClass::Stale,
        RowClass::Insert,
        RowClass::Deleted,
        RowClass::Delete,
        RowClass::Absent,
        RowClass::Deferred,
        RowClass::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RowClass::New => "new",
            RowClass::OutsideWindow => "outside_window",
            RowClass::Duplicate => "duplicate",
            RowClass::Update => "update",
            RowClass::Unchanged => "unchanged",
            RowClass::Stale => "stale",
            RowClass::Insert => "insert",
            RowClass::Deleted => "deleted",
            RowClass::Delete => "delete",
            RowClass::Absent => "absent",
            RowClass::Deferred => "deferred",
            RowClass::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<RowClass> {
        RowClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The staging status a row of this class ends in (once the apply statements ran); `None`
    /// leaves it `NEW`.
    pub fn final_status(self) -> Option<&'static str> {
        match self {
            RowClass::Update
            | RowClass::Insert
            | RowClass::Unchanged
            | RowClass::Delete
            | RowClass::Absent => Some("PROCESSED"),
            RowClass::Duplicate | RowClass::Stale | RowClass::Deleted => Some("SKIPPED"),
            RowClass::Error => Some("ERROR"),
            RowClass::New | RowClass::OutsideWindow | RowClass::Deferred => None,
        }
    }

    pub(crate) fn lit(self) -> String {
        quote_literal(self.as_str())
    }

    /// The staging status of a row of this class as an SQL literal (`NULL`: none, it stays `NEW`).
    pub(crate) fn status_lit(self) -> String {
        self.final_status()
            .map_or_else(|| "NULL".to_string(), quote_literal)
    }

    /// `CASE WHEN <alias>cls = 'update' THEN 'PROCESSED' ... END`: the staging status of work row
    /// `alias` (with its dot: `w.`) by its class ([`RowClass::final_status`]).
    pub(crate) fn status_case(alias: &str) -> String {
        let arms: String = RowClass::ALL
            .into_iter()
            .filter_map(|c| {
                c.final_status().map(|_| {
                    format!(
                        " WHEN {alias}cls OPERATOR(pg_catalog.=) {} THEN {}",
                        c.lit(),
                        c.status_lit()
                    )
                })
            })
            .collect();
        format!("CASE{arms} END")
    }

    /// Work row `alias` (with its dot) ended in a class with a final status.
    pub(crate) fn has_final_status(alias: &str) -> String {
        let finals: Vec<RowClass> = RowClass::ALL
            .into_iter()
            .filter(|c| c.final_status().is_some())
            .collect();
        RowClass::is_one_of(alias, &finals)
    }

    /// Work row `alias` (with its dot) is of one of `classes`.
    pub(crate) fn is_one_of(alias: &str, classes: &[RowClass]) -> String {
        let names: Vec<&str> = classes.iter().map(|c| c.as_str()).collect();
        format!(
            "{alias}cls OPERATOR(pg_catalog.=) ANY ({}::pg_catalog.text[])",
            quote_literal(&format!("{{{}}}", names.join(",")))
        )
    }
}

/// What a merge did with the staged rows: the counts of `dwr.merge_result`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub skipped_stale: i64,
    pub skipped_deleted: i64,
    pub skipped_outside_window: i64,
    pub deferred: i64,
    pub errors: i64,
    /// production rows a replayed `D` removed
    pub deleted: i64,
}

impl Counts {
    /// Add `n` rows that ended in `class` (once the apply statements ran). A row superseded by a
    /// newer staged row of its key counts as stale. `New` is not final and counts nowhere.
    pub fn add(&mut self, class: RowClass, n: i64) {
        match class {
            RowClass::Insert => self.inserted += n,
            RowClass::Update => self.updated += n,
            // a delete of a key production does not have: production is as the source already
            RowClass::Unchanged | RowClass::Absent => self.unchanged += n,
            RowClass::Delete => self.deleted += n,
            RowClass::Stale | RowClass::Duplicate => self.skipped_stale += n,
            RowClass::Deleted => self.skipped_deleted += n,
            RowClass::OutsideWindow => self.skipped_outside_window += n,
            RowClass::Deferred => self.deferred += n,
            RowClass::Error => self.errors += n,
            RowClass::New => {}
        }
    }

    /// Add another batch's counts.
    pub fn merge(&mut self, other: &Counts) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.skipped_stale += other.skipped_stale;
        self.skipped_deleted += other.skipped_deleted;
        self.skipped_outside_window += other.skipped_outside_window;
        self.deferred += other.deferred;
        self.errors += other.errors;
        self.deleted += other.deleted;
    }

    pub fn total(&self) -> i64 {
        self.inserted
            + self.updated
            + self.unchanged
            + self.skipped_stale
            + self.skipped_deleted
            + self.skipped_outside_window
            + self.deferred
            + self.errors
            + self.deleted
    }
}
