//! Operations as data. A [`Program`] is the ordered [`Step`]s of one operation (a merge, one batch
//! of a merge, a merge on Citus shards); a step is a kind (run once, run over the work rows with
//! bisection, run when a condition holds, ...) and its statements. A statement ([`Stmt`]) names
//! its parameters ([`Param`]): its builder asks a [`Params`] for each value it uses and gets the
//! placeholder `$n`, numbered in the order the values were first asked for (pg_graphql's
//! `ParamContext`). Nobody writes or remaps a `$n` by hand: the runners bind by name.
//!
//! Two runners read the same program: the compiled extension's SPI interpreter (`src/program.rs`)
//! and the pg_tle generator ([`crate::tle`]), which writes it as PL/pgSQL.

use crate::class::RowClass;

/// A value a statement reads, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Param {
    /// production's oid
    Target,
    /// the run recorded in `dwr.merge_runs`
    RunId,
    /// the run an undo takes back
    UndoneRun,
    /// the open reload's window (both ends included); NULL without an open reload
    WindowStart,
    WindowEnd,
    /// deletes recorded from this moment on stop staged rows
    Since,
    /// the error text of a staged row whose version is NULL
    NullVersion,
    /// the error text of a staged row with a NULL key part
    NullKey,
    /// one batch of `dwr_merge_batches`: keys above `BatchLo` (exclusive; NULL: open) up to
    /// `BatchHi` (inclusive; NULL: open), a key's parts in their text form
    BatchLo,
    BatchHi,
    /// a ranged step's first and last work row
    FirstRow,
    LastRow,
    /// the work row a bisection could not write
    Row,
    /// why it could not (message and detail)
    ErrorText,
    /// the open reload's LOB limit in bytes (`LobMaxSize` × 1024 of its DMS task settings); NULL
    /// without one: a staged LOB value this long may have been cut by the loader
    LobLimit,
}

impl Param {
    /// Every parameter, in declaration order.
    pub const ALL: [Param; 15] = [
        Param::Target,
        Param::RunId,
        Param::UndoneRun,
        Param::WindowStart,
        Param::WindowEnd,
        Param::Since,
        Param::NullVersion,
        Param::NullKey,
        Param::BatchLo,
        Param::BatchHi,
        Param::FirstRow,
        Param::LastRow,
        Param::Row,
        Param::ErrorText,
        Param::LobLimit,
    ];

    /// The parameters a whole run is given (the others a runner makes itself: row ranges, the
    /// failing row and its error).
    pub const OF_RUN: [Param; 11] = [
        Param::Target,
        Param::RunId,
        Param::UndoneRun,
        Param::WindowStart,
        Param::WindowEnd,
        Param::Since,
        Param::NullVersion,
        Param::NullKey,
        Param::BatchLo,
        Param::BatchHi,
        Param::LobLimit,
    ];

    /// Its name, for generated code and messages.
    pub fn name(self) -> &'static str {
        match self {
            Param::Target => "target",
            Param::RunId => "run_id",
            Param::UndoneRun => "undone_run",
            Param::WindowStart => "window_start",
            Param::WindowEnd => "window_end",
            Param::Since => "since",
            Param::NullVersion => "null_version",
            Param::NullKey => "null_key",
            Param::BatchLo => "batch_lo",
            Param::BatchHi => "batch_hi",
            Param::FirstRow => "first_row",
            Param::LastRow => "last_row",
            Param::Row => "row",
            Param::ErrorText => "error_text",
            Param::LobLimit => "lob_limit",
        }
    }

    /// Its SQL type, schema-qualified.
    pub fn sql_type(self) -> &'static str {
        match self {
            Param::Target => "pg_catalog.oid",
            Param::RunId
            | Param::UndoneRun
            | Param::FirstRow
            | Param::LastRow
            | Param::Row
            | Param::LobLimit => "pg_catalog.int8",
            Param::WindowStart | Param::WindowEnd | Param::Since => "pg_catalog.timestamptz",
            Param::NullVersion | Param::NullKey | Param::ErrorText => "pg_catalog.text",
            Param::BatchLo | Param::BatchHi => "pg_catalog.text[]",
        }
    }
}

/// The parameters of one statement as its builder asks for them.
#[derive(Debug, Default)]
pub struct Params {
    used: Vec<Param>,
}

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    /// The placeholder of `p` in this statement: `$n`, numbered when `p` is first asked for.
    pub fn get(&mut self, p: Param) -> String {
        let n = match self.used.iter().position(|&u| u == p) {
            Some(i) => i + 1,
            None => {
                self.used.push(p);
                self.used.len()
            }
        };
        format!("${n}")
    }

    /// The statement `name` with SQL `sql`, written with these parameters.
    pub fn stmt(self, name: &'static str, sql: String) -> Stmt {
        Stmt {
            name,
            sql,
            params: self.used,
        }
    }
}

/// One statement: its SQL and, in `$n` order, the parameters it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    /// what it does, unique in its program (the name of its generated function)
    pub name: &'static str,
    pub sql: String,
    pub params: Vec<Param>,
}

impl Stmt {
    /// A statement without parameters.
    pub fn plain(name: &'static str, sql: String) -> Stmt {
        Params::new().stmt(name, sql)
    }

    /// The placeholder of `p` in this statement, if it reads it.
    pub fn placeholder(&self, p: Param) -> Option<String> {
        self.params
            .iter()
            .position(|&u| u == p)
            .map(|i| format!("${}", i + 1))
    }
}

/// What a statement run as the extension owner is allowed for (see [`Step::AsOwner`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// writing the images of `RunId`, a running run of this kind (`"merge"`, `"undo"`) by this
    /// session on `Target` with row audit
    RunningRun(&'static str),
    /// reading the images of `UndoneRun`, whose table the session's user may read
    ReadableRun,
    /// writing tombstones of `Target`: this session runs a merge of it (with row audit or not)
    MergingTarget,
}

/// A condition of [`Step::When`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// a query whose one value is `true`
    Holds(Stmt),
    /// a statement that processed at least one row
    Wrote(Stmt),
}

impl Cond {
    pub fn stmt(&self) -> &Stmt {
        match self {
            Cond::Holds(s) | Cond::Wrote(s) => s,
        }
    }
}

/// A step run over the work rows `FirstRow ..= LastRow` in one subtransaction; when it fails on a
/// row error or a lock wait that ran out, the range is split and the halves retried, down to the
/// single rows the program's `mark_error` / `mark_deferred` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranged {
    /// run together, in order
    pub stmts: Vec<Stmt>,
    /// a range whose statements ran out of `lock_timeout` is handed whole to this step instead
    /// (the fast statement is the cheap way when nothing is contended, the fallback the way that
    /// does not wait)
    pub fallback: Option<Box<Ranged>>,
    /// the writes wait for a row another transaction holds at most `dwr.row_lock_timeout`
    pub waits_for_rows: bool,
    /// row numbers are sparse: this query lists those in `FirstRow ..= LastRow`, and the
    /// bisection splits the list (dense numbers `1 ..= n` are split by value)
    pub rows_in_range: Option<Stmt>,
    /// skip the last statement when the one before it wrote every work row of this class (a
    /// merge's whole range only)
    pub skip_tail_when_all: Option<RowClass>,
}

impl Ranged {
    /// One statement over dense rows.
    pub fn one(stmt: Stmt, waits_for_rows: bool) -> Ranged {
        Ranged {
            stmts: vec![stmt],
            fallback: None,
            waits_for_rows,
            rows_in_range: None,
            skip_tail_when_all: None,
        }
    }

    /// Every statement of this step and of its fallback.
    pub fn all_stmts(&self) -> Vec<&Stmt> {
        let mut out: Vec<&Stmt> = self.stmts.iter().collect();
        out.extend(self.rows_in_range.iter());
        if let Some(f) = &self.fallback {
            out.extend(f.all_stmts());
        }
        out
    }
}

/// One step of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// run once
    Run(Stmt),
    /// run once with configuration parameter `setting` at `value`, set back after it (on Citus
    /// workers too when the program propagates settings); see [`Step::analyze`]
    Configured {
        stmt: Stmt,
        setting: &'static str,
        value: &'static str,
    },
    /// run once; the number of rows it processed numbers the work rows `1 ..= n`
    Rows(Stmt),
    /// a query of the first and last (sparse) work row number
    RowRange(Stmt),
    /// run over the work rows, bisecting failures
    Ranged(Ranged),
    /// where the program begins writing production, after reading: the test hook
    /// `dwr.test_hold_after_classify`, then the run's `dwr.merge_runs.writes_began` stamped
    /// (`dwr._writes_begin`): production's rows stay locked from here to the commit
    Hold,
    /// `then` only when every condition holds (checked in order, stopping at the first that does
    /// not)
    When { when: Vec<Cond>, then: Vec<Stmt> },
    /// run as the extension's owner (the audit path into its own tables), after giving it access
    /// to the session's temporary table `share`; `guard` says what the pg_tle package's
    /// `SECURITY DEFINER` function checks first (the compiled extension checked it before the run)
    AsOwner {
        share: Option<String>,
        stmt: Stmt,
        guard: Guard,
    },
    /// the merge enters this phase: shown in `pg_stat_activity` (compiled extension) and, once
    /// the merge has run `dwr.progress_notice_after`, as a NOTICE (`dwr._merge_progress`)
    Phase(&'static str),
    /// `first`, in a subtransaction whose writes wait for a row another transaction holds at most
    /// `dwr.row_lock_timeout`; when it fails with a lock wait that ran out, a row's error (as
    /// `dwr._is_row_error` says) or a deadlock, it is rolled back whole and `otherwise` runs. Only
    /// `otherwise` runs when `dwr.fast_merge` is off or the test hook `dwr.test_hold_after_classify`
    /// is set (it holds between reading and writing, which `first` does in one statement).
    Attempt {
        first: Vec<Step>,
        otherwise: Vec<Step>,
    },
}

/// The statistics target of the `ANALYZE` of a work table: its statements need the table's size
/// and the share of each class, which a sample of 3,000 rows gives as well as the default's 30,000
/// (200,000 work rows over 8 Citus shards: 100 ms at the default, 11 ms at this).
pub const WORK_STATISTICS_TARGET: &str = "10";

impl Step {
    /// `ANALYZE` of work tables (`stmt`), at [`WORK_STATISTICS_TARGET`].
    pub fn analyze(stmt: Stmt) -> Step {
        Step::Configured {
            stmt,
            setting: "default_statistics_target",
            value: WORK_STATISTICS_TARGET,
        }
    }
}

/// The steps of one operation and what its runners need besides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub steps: Vec<Step>,
    /// `Row`, `ErrorText`: a work row a ranged step could not write marked `ERROR`
    pub mark_error: Stmt,
    /// `Row`: a work row whose write waited too long, deferred to the next merge
    pub mark_deferred: Stmt,
    /// `SELECT cls, count(*)` of the work rows: the counts by class, read after the last step
    pub counts: Stmt,
    /// after the counts are read (a dry run's rollback makes them unnecessary)
    pub cleanup: Vec<Stmt>,
    /// the lock timeouts of ranged steps reach Citus workers (`citus.propagate_set_commands`)
    pub propagate_settings: bool,
    /// once a range ran out of `lock_timeout`, its halves wait this many milliseconds rather than
    /// `dwr.row_lock_timeout` each (a merge that holds rows it wrote must not wait long on more)
    pub halves_wait_ms: Option<i32>,
}

/// What a program runs for one row of its work table `table` (numbered in `row_column`,
/// `Param::Row`) that a write refused or could not wait for ([`Program::mark_error`],
/// [`Program::mark_deferred`]): the row becomes class `error` (a literal) with `Param::ErrorText`,
/// or `deferred`, the latter only while its class passes `deferrable` (when given).
pub fn mark_statements(
    table: &str,
    row_column: &str,
    error: &str,
    deferred: &str,
    deferrable: Option<&str>,
) -> (Stmt, Stmt) {
    let mut p = Params::new();
    let (row, text) = (p.get(Param::Row), p.get(Param::ErrorText));
    let mark_error = p.stmt(
        "mark_row_error",
        format!("UPDATE {table} SET cls = {error}, err = {text} WHERE {row_column} OPERATOR(pg_catalog.=) {row}"),
    );
    let mut p = Params::new();
    let row = p.get(Param::Row);
    let only = deferrable.map(|c| format!(" AND {c}")).unwrap_or_default();
    let mark_deferred = p.stmt(
        "mark_row_deferred",
        format!("UPDATE {table} SET cls = {deferred} WHERE {row_column} OPERATOR(pg_catalog.=) {row}{only}"),
    );
    (mark_error, mark_deferred)
}

impl Program {
    /// Every statement, in program order, each once.
    pub fn stmts(&self) -> Vec<&Stmt> {
        fn of<'a>(steps: &'a [Step], out: &mut Vec<&'a Stmt>) {
            for step in steps {
                match step {
                    Step::Run(s) | Step::Rows(s) | Step::RowRange(s) => out.push(s),
                    Step::Configured { stmt, .. } => out.push(stmt),
                    Step::Ranged(r) => out.extend(r.all_stmts()),
                    Step::Hold | Step::Phase(_) => {}
                    Step::When { when, then } => {
                        out.extend(when.iter().map(Cond::stmt));
                        out.extend(then.iter());
                    }
                    Step::AsOwner { stmt, .. } => out.push(stmt),
                    Step::Attempt { first, otherwise } => {
                        of(first, out);
                        of(otherwise, out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        of(&self.steps, &mut out);
        out.push(&self.mark_error);
        out.push(&self.mark_deferred);
        out.push(&self.counts);
        out.extend(self.cleanup.iter());
        out
    }

    /// The statement named `name`.
    pub fn stmt(&self, name: &str) -> Option<&Stmt> {
        self.stmts().into_iter().find(|s| s.name == name)
    }

    /// Whether a statement named `name` is in the program.
    pub fn has(&self, name: &str) -> bool {
        self.stmt(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_as_first_asked_for() {
        let mut p = Params::new();
        let a = p.get(Param::Since);
        let b = p.get(Param::Target);
        let again = p.get(Param::Since);
        let s = p.stmt("x", format!("SELECT {a}, {b}, {again}"));
        assert_eq!(s.sql, "SELECT $1, $2, $1");
        assert_eq!(s.params, vec![Param::Since, Param::Target]);
        assert_eq!(s.placeholder(Param::Target).as_deref(), Some("$2"));
        assert_eq!(s.placeholder(Param::RunId), None);
    }

    #[test]
    fn every_param_has_a_distinct_name_and_a_qualified_type() {
        let mut names: Vec<&str> = Param::ALL.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Param::ALL.len());
        for p in Param::ALL {
            assert!(p.sql_type().starts_with("pg_catalog."), "{p:?}");
        }
        for p in Param::OF_RUN {
            assert!(Param::ALL.contains(&p));
        }
    }
}
