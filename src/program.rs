//! The one runner of statement programs ([`dwr_engine::program`]) in the compiled extension: every
//! merge — single, one batch, on Citus shards — is a program, and this is where its steps run
//! through SPI: parameters bound by name, ranged steps bisected down to the rows production
//! rejects, lock waits budgeted and deferred, the audit path taken as the extension owner, the
//! counts read. The pg_tle package runs the same programs as generated PL/pgSQL.

use crate::exec::{
    self, execute, query_one, query_rows, raise_caught, subtransaction, Caught, OrBug,
};
use crate::guc;
use crate::run::{count_lock_timeout, test_hold_after_classify};
use dwr_engine::program::{Cond, Param, Program, Ranged, Step, Stmt};
use dwr_engine::sqlgen::{Counts, RowClass};
use dwr_engine::undo::UndoCounts;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::pg_sys;

/// The values of a run's parameters ([`Param::OF_RUN`]).
pub struct Bindings {
    pub target: pg_sys::Oid,
    pub run_id: i64,
    /// the open reload's window; `None` without one
    pub window: Option<(TimestampWithTimeZone, TimestampWithTimeZone)>,
    /// deletes from this moment on stop staged rows (a merge)
    pub since: Option<TimestampWithTimeZone>,
    /// the run an undo takes back
    pub undone_run: Option<i64>,
    pub null_version: String,
    pub null_key: String,
    /// one batch's key range; `None` outside batches
    pub batch: Option<BatchRange>,
    /// the open reload's LOB limit in bytes ([`Param::LobLimit`])
    pub lob_limit: Option<i64>,
}

impl Bindings {
    /// The values of an undo on `target`: run `undo_id` takes back run `run_id`.
    pub fn for_undo(target: pg_sys::Oid, undo_id: i64, run_id: i64) -> Bindings {
        Bindings {
            target,
            run_id: undo_id,
            undone_run: Some(run_id),
            window: None,
            since: None,
            null_version: String::new(),
            null_key: String::new(),
            batch: None,
            lob_limit: None,
        }
    }
}

/// The staged rows of one batch of `dwr_merge_batches`: keys above `lo` (exclusive) up to `hi`
/// (inclusive), each a key's parts in their text form; `None` leaves that end open
/// ([`Param::BatchLo`], [`Param::BatchHi`]).
#[derive(Debug, Clone)]
pub struct BatchRange {
    pub lo: Option<Vec<String>>,
    pub hi: Option<Vec<String>>,
}

/// The values the runner makes itself: the range a ranged step runs over, the row it could not
/// write and why.
#[derive(Default, Clone, Copy)]
struct Local<'a> {
    rows: Option<(i64, i64)>,
    failed: Option<(i64, &'a str)>,
}

impl Bindings {
    fn datum(&self, p: Param, local: Local) -> DatumWithOid<'static> {
        match p {
            Param::Target => self.target.into(),
            Param::RunId => self.run_id.into(),
            Param::UndoneRun => self.undone_run.into(),
            Param::WindowStart => self.window.map(|w| w.0).into(),
            Param::WindowEnd => self.window.map(|w| w.1).into(),
            Param::Since => self.since.into(),
            Param::NullVersion => self.null_version.clone().into(),
            Param::NullKey => self.null_key.clone().into(),
            Param::BatchLo => self.batch.as_ref().and_then(|b| b.lo.clone()).into(),
            Param::BatchHi => self.batch.as_ref().and_then(|b| b.hi.clone()).into(),
            Param::FirstRow => local.rows.unwrap_or_else(|| unbound(p)).0.into(),
            Param::LastRow => local.rows.unwrap_or_else(|| unbound(p)).1.into(),
            Param::Row => local.failed.unwrap_or_else(|| unbound(p)).0.into(),
            Param::LobLimit => self.lob_limit.into(),
            Param::ErrorText => local
                .failed
                .unwrap_or_else(|| unbound(p))
                .1
                .to_string()
                .into(),
        }
    }

    fn args(&self, s: &Stmt, local: Local) -> Vec<DatumWithOid<'static>> {
        s.params.iter().map(|&p| self.datum(p, local)).collect()
    }
}

/// A runner's own value asked for where it has none: a program whose statements read the failing
/// row outside `mark_error` (a bug in the engine, caught by its tests).
fn unbound<T>(p: Param) -> T {
    crate::exec::bug(&format!(
        "the runner binds {} only where it makes it",
        p.name()
    ))
}

/// The work rows a ranged step runs over: dense numbers `lo ..= hi`, or the sparse numbers listed.
#[derive(Clone, Copy)]
enum Rows<'a> {
    Dense(i64, i64),
    Sparse(&'a [i64]),
}

impl Rows<'_> {
    fn bounds(&self) -> Option<(i64, i64)> {
        match *self {
            Rows::Dense(lo, hi) => (lo <= hi).then_some((lo, hi)),
            Rows::Sparse(n) => Some((*n.first()?, *n.last()?)),
        }
    }

    fn single(&self) -> bool {
        match *self {
            Rows::Dense(lo, hi) => lo == hi,
            Rows::Sparse(n) => !n.is_empty() && n.first() == n.last(),
        }
    }

    fn halves(&self) -> (Rows<'_>, Rows<'_>) {
        match *self {
            Rows::Dense(lo, hi) => {
                let mid = lo + (hi - lo) / 2;
                (Rows::Dense(lo, mid), Rows::Dense(mid + 1, hi))
            }
            Rows::Sparse(n) => {
                let (a, b) = n.split_at(n.len() / 2);
                (Rows::Sparse(a), Rows::Sparse(b))
            }
        }
    }
}

/// The work rows of a run by the class they ended in.
pub struct ClassCounts(pub Vec<(String, i64)>);

impl ClassCounts {
    /// A merge's counts.
    pub fn merge(&self) -> Counts {
        let mut counts = Counts::default();
        for (class, n) in &self.0 {
            if let Some(class) = RowClass::parse(class) {
                counts.add(class, *n);
            }
        }
        counts
    }

    /// An undo's counts.
    pub fn undo(&self) -> UndoCounts {
        let mut counts = UndoCounts::default();
        for (class, n) in &self.0 {
            counts.add(class, *n);
        }
        counts
    }
}

/// Run `program` with `bindings`; returns the counts by class.
pub fn run(program: &Program, bindings: &Bindings) -> ClassCounts {
    let mut r = Runner {
        program,
        b: bindings,
        rows: (1, 0),
        staged: None,
        lock_timeouts: 0,
        classes: None,
        started: query_one::<TimestampWithTimeZone>("SELECT pg_catalog.clock_timestamp()", &[])
            .or_bug("a clock"),
    };
    for step in &program.steps {
        r.step(step);
    }
    let counts = r.counts();
    for s in &program.cleanup {
        execute(&s.sql, &bindings.args(s, Local::default()));
    }
    counts
}

/// Run `stmts` in order with `bindings` (statements outside a program: the copy of a source a
/// Citus merge reads).
pub fn run_stmts(stmts: &[Stmt], bindings: &Bindings) {
    for s in stmts {
        execute(&s.sql, &bindings.args(s, Local::default()));
    }
}

/// The counts by class that `counts` (`SELECT cls, count(*)`) reads.
pub fn read_counts(counts: &Stmt, bindings: &Bindings) -> ClassCounts {
    ClassCounts(query_rows(
        &counts.sql,
        &bindings.args(counts, Local::default()),
        |row| {
            (
                exec::col::<String>(row, 1).unwrap_or_default(),
                exec::col::<i64>(row, 2).unwrap_or(0),
            )
        },
    ))
}

struct Runner<'a> {
    program: &'a Program,
    b: &'a Bindings,
    /// the work rows ranged steps cover
    rows: (i64, i64),
    /// how many staged rows the merge classified (dense row numbers only)
    staged: Option<i64>,
    /// when the run began, for its progress
    started: TimestampWithTimeZone,
    /// writes that ran out of `dwr.row_lock_timeout` so far
    lock_timeouts: u32,
    /// the work rows by class before the first write, for skipped tails
    classes: Option<Vec<(RowClass, i64)>>,
}

impl Runner<'_> {
    fn exec(&self, s: &Stmt, local: Local) -> u64 {
        execute(&s.sql, &self.b.args(s, local))
    }

    fn step(&mut self, step: &Step) {
        let none = Local::default();
        match step {
            Step::Run(s) => {
                self.exec(s, none);
            }
            Step::Configured {
                stmt,
                setting,
                value,
            } => {
                self.with_local(setting, value, |this| this.exec(stmt, none));
            }
            Step::Rows(s) => {
                self.rows = (1, self.exec(s, none) as i64);
                self.staged = Some(self.rows.1);
            }
            Step::RowRange(s) => {
                self.rows = query_rows(&s.sql, &self.b.args(s, none), |row| {
                    (
                        exec::col::<i64>(row, 1).unwrap_or(0),
                        exec::col::<i64>(row, 2).unwrap_or(-1),
                    )
                })
                .into_iter()
                .next()
                .unwrap_or((0, -1));
            }
            Step::Ranged(r) => {
                let (lo, hi) = self.rows;
                if r.waits_for_rows {
                    self.with_lock_timeout(guc::ROW_LOCK_TIMEOUT.get(), |this| {
                        this.ranged(r, Rows::Dense(lo, hi), true)
                    });
                } else {
                    self.ranged(r, Rows::Dense(lo, hi), true);
                }
            }
            Step::Hold => {
                test_hold_after_classify();
                execute(
                    "SELECT dwr._writes_begin($1::pg_catalog.int8)",
                    &[self.b.run_id.into()],
                );
            }
            Step::Attempt { first, otherwise } => {
                let fast = guc::FAST_MERGE.get() && guc::TEST_HOLD_AFTER_CLASSIFY.get() == 0;
                let before = (self.rows, self.staged);
                let done = fast
                    && match subtransaction(|| {
                        self.with_lock_timeout(guc::ROW_LOCK_TIMEOUT.get(), |this| {
                            for s in first {
                                this.step(s);
                            }
                        })
                    }) {
                        Ok(()) => true,
                        // rolled back whole: the step-by-step way isolates what failed
                        Err(e)
                            if e.is_lock_timeout()
                                || e.is_row_error()
                                || matches!(e.sqlstate.as_str(), "40P01" | "21000") =>
                        {
                            pgrx::debug1!(
                                "dwr: the fast way stopped ({}: {}); going step by step",
                                e.sqlstate,
                                e.message
                            );
                            (self.rows, self.staged) = before;
                            false
                        }
                        Err(e) => exec::raise_caught(e),
                    };
                if !done {
                    for s in otherwise {
                        self.step(s);
                    }
                }
            }
            Step::Phase(name) => {
                let target = exec::relation(self.b.target)
                    .map(|r| r.display())
                    .unwrap_or_default();
                exec::report_activity(&format!(
                    "dwr_merge('{target}'): {name}{}",
                    self.staged
                        .map(|n| format!(", {n} staged rows"))
                        .unwrap_or_default()
                ));
                execute(
                    "SELECT dwr._merge_progress($1::pg_catalog.oid::pg_catalog.regclass, $2, $3, $4)",
                    &[
                        self.b.target.into(),
                        (*name).into(),
                        self.staged.into(),
                        self.started.into(),
                    ],
                );
            }
            Step::When { when, then } => {
                let holds = |c: &Cond| match c {
                    Cond::Holds(s) => {
                        query_one::<bool>(&s.sql, &self.b.args(s, none)).unwrap_or(false)
                    }
                    Cond::Wrote(s) => self.exec(s, none) > 0,
                };
                if when.iter().all(holds) {
                    for s in then {
                        self.exec(s, none);
                    }
                }
            }
            Step::AsOwner { share, stmt, .. } => {
                let owner = exec::extension_owner();
                if let Some(table) = share {
                    exec::share_work_table(table, owner);
                }
                exec::as_role(owner, || self.exec(stmt, none));
            }
        }
    }

    /// Run `f` with `lock_timeout` at `ms` (on Citus workers too when the program says so).
    fn with_lock_timeout<R>(&mut self, ms: i32, f: impl FnOnce(&mut Self) -> R) -> R {
        self.with_local("lock_timeout", &format!("{ms}ms"), f)
    }

    /// Run `f` with configuration parameter `name` at `value` (on Citus workers too when the
    /// program says so).
    fn with_local<R>(&mut self, name: &str, value: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        if self.program.propagate_settings {
            exec::with_setting("citus.propagate_set_commands", "local", || {
                exec::with_local(name, value, || f(self))
            })
        } else {
            exec::with_local(name, value, || f(self))
        }
    }

    /// Run ranged step `r` over `rows`; when it fails on a row error or a lock wait that ran out,
    /// try the halves, down to single rows, which are marked. Rows production accepts are written;
    /// only the rejected ones are left out: `2 k log2(n)` attempts for `k` bad rows among `n`.
    /// `whole`: the step's whole range (a skipped tail is decided only there).
    fn ranged(&mut self, r: &Ranged, rows: Rows, whole: bool) {
        let Some((lo, hi)) = rows.bounds() else {
            return;
        };
        let e = match self.attempt(r, lo, hi, whole) {
            Ok(()) => return,
            Err(e) => e,
        };
        if e.is_lock_timeout() {
            if let Some(f) = &r.fallback {
                return self.ranged(f, rows, whole);
            }
        }
        if !e.is_row_error() && !e.is_lock_timeout() {
            raise_caught(e);
        }
        // sparse numbers: listed at the first failure, then split as a list
        let listed: Vec<i64>;
        let rows = match (rows, &r.rows_in_range) {
            (Rows::Dense(..), Some(q)) => {
                let local = Local {
                    rows: Some((lo, hi)),
                    failed: None,
                };
                listed = query_rows(&q.sql, &self.b.args(q, local), |row| {
                    exec::col::<i64>(row, 1).unwrap_or(0)
                });
                Rows::Sparse(&listed)
            }
            _ => rows,
        };
        let Some((first, _)) = rows.bounds() else {
            return;
        };
        if rows.single() {
            return self.failed(first, &e);
        }
        let (a, b) = rows.halves();
        match self.program.halves_wait_ms {
            // a row another transaction holds: the halves wait briefly, not the full budget each,
            // while the merge holds the rows it has written (see dwr_engine::program::Program)
            Some(ms) if e.is_lock_timeout() => self.with_lock_timeout(ms, |this| {
                this.ranged(r, a, false);
                this.ranged(r, b, false);
            }),
            _ => {
                self.ranged(r, a, false);
                self.ranged(r, b, false);
            }
        }
    }

    /// Run the statements of `r` over `lo ..= hi` in one subtransaction.
    fn attempt(&mut self, r: &Ranged, lo: i64, hi: i64, whole: bool) -> Result<(), Caught> {
        let all = match (r.skip_tail_when_all, whole) {
            (Some(class), true) => Some(self.class_count(class)),
            _ => None,
        };
        let local = Local {
            rows: Some((lo, hi)),
            failed: None,
        };
        let b = self.b;
        subtransaction(|| {
            let mut written = None;
            for (i, s) in r.stmts.iter().enumerate() {
                if i + 1 == r.stmts.len() && i > 0 && all.is_some() && written == all {
                    break; // the write took every row: nothing left to defer
                }
                written = Some(execute(&s.sql, &b.args(s, local)) as i64);
            }
        })
    }

    /// The work rows of `class` before the first write.
    fn class_count(&mut self, class: RowClass) -> i64 {
        if self.classes.is_none() {
            self.classes = Some(self.by_class());
        }
        self.classes
            .as_ref()
            .and_then(|c| c.iter().find(|(k, _)| *k == class).map(|(_, n)| *n))
            .unwrap_or(0)
    }

    fn by_class(&self) -> Vec<(RowClass, i64)> {
        self.counts()
            .0
            .into_iter()
            .filter_map(|(class, n)| RowClass::parse(&class).map(|c| (c, n)))
            .collect()
    }

    fn counts(&self) -> ClassCounts {
        read_counts(&self.program.counts, self.b)
    }

    /// The single row `row` failed with `e`: a lock wait that ran out defers it (counted: past the
    /// budget the merge gives up), any other row error marks it `ERROR` with the message.
    fn failed(&mut self, row: i64, e: &Caught) {
        let text = e.text();
        let local = Local {
            rows: None,
            failed: Some((row, &text)),
        };
        if e.is_lock_timeout() {
            count_lock_timeout(&mut self.lock_timeouts);
            self.exec(&self.program.mark_deferred, local);
        } else {
            self.exec(&self.program.mark_error, local);
        }
    }
}
