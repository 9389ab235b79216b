//! Stage 4 of the data flow: execution. The only module that talks to the server: it runs the
//! engine's SQL through SPI, reads the catalog, runs statements in subtransactions so one bad row
//! cannot sink a merge, and turns the engine's errors into PostgreSQL errors.

use dwr_engine::catalog::{CastInfo, Casts, Relation, CASTS_SQL, RELATION_SQL};
use dwr_engine::{DwrError, SqlState};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};

/// `MAKE_SQLSTATE` of a five-character code.
pub fn sqlstate_code(state: &str) -> PgSqlErrorCode {
    let b = state.as_bytes();
    let six = |c: u8| ((c.wrapping_sub(b'0')) & 0x3f) as i32;
    let code = if b.len() == 5 {
        six(b[0]) + (six(b[1]) << 6) + (six(b[2]) << 12) + (six(b[3]) << 18) + (six(b[4]) << 24)
    } else {
        0
    };
    PgSqlErrorCode::from(code)
}

/// The five-character code of an error code.
pub fn sqlstate_text(code: PgSqlErrorCode) -> String {
    let mut v = code as i32;
    let mut s = String::with_capacity(5);
    for _ in 0..5 {
        s.push(((v & 0x3f) as u8 + b'0') as char);
        v >>= 6;
    }
    s
}

/// Raise `e` as a PostgreSQL ERROR with its SQLSTATE, DETAIL and HINT.
pub fn raise(e: DwrError) -> ! {
    report_error(e.state.code(), e.message, e.detail, e.hint)
}

fn report_error(state: &str, message: String, detail: Option<String>, hint: Option<String>) -> ! {
    let mut report = ErrorReport::new(sqlstate_code(state), message, "dms_window_reload");
    if let Some(d) = detail {
        report = report.set_detail(d);
    }
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

/// Unwrap an engine result or raise its error.
pub fn check<T>(r: dwr_engine::Result<T>) -> T {
    r.unwrap_or_else(|e| raise(e))
}

/// An SPI failure that is not a PostgreSQL error (a bug of ours): raised as an internal error.
fn spi_failed(e: pgrx::spi::Error, sql: &str) -> ! {
    raise(DwrError::bug(format!("SPI failed: {e}")).detail(format!("statement: {sql}")))
}

/// Raise a bug of ours (`XX000`, [`DwrError::bug`]): `what` cannot happen.
pub fn bug(what: &str) -> ! {
    raise(DwrError::bug(what))
}

/// A value the code's invariants guarantee: missing, it is a bug of ours (`XX000` saying so),
/// never a panic.
pub trait OrBug<T> {
    fn or_bug(self, what: &str) -> T;
}

impl<T> OrBug<T> for Option<T> {
    fn or_bug(self, what: &str) -> T {
        self.unwrap_or_else(|| bug(what))
    }
}

impl<T, E: std::fmt::Display> OrBug<T> for Result<T, E> {
    fn or_bug(self, what: &str) -> T {
        self.unwrap_or_else(|e| raise(DwrError::bug(format!("{what}: {e}"))))
    }
}

/// Run a statement that returns no rows worth reading; the number of rows it processed.
pub fn execute(sql: &str, args: &[DatumWithOid]) -> u64 {
    Spi::connect_mut(|client| match client.update(sql, None, args) {
        Ok(t) => t.len() as u64,
        Err(e) => spi_failed(e, sql),
    })
}

/// Run a query and read the first column of its first row.
pub fn query_one<T: FromDatum + IntoDatum>(sql: &str, args: &[DatumWithOid]) -> Option<T> {
    Spi::connect_mut(|client| {
        let table = client
            .update(sql, Some(1), args)
            .unwrap_or_else(|e| spi_failed(e, sql));
        first_value(table, sql)
    })
}

/// The first column of the first row of `table`, the result of `sql`.
fn first_value<T: FromDatum + IntoDatum>(table: pgrx::spi::SpiTupleTable, sql: &str) -> Option<T> {
    if table.is_empty() {
        return None;
    }
    table
        .first()
        .get::<T>(1)
        .unwrap_or_else(|e| spi_failed(e, sql))
}

/// Run a query and map every row.
pub fn query_rows<R>(
    sql: &str,
    args: &[DatumWithOid],
    mut f: impl FnMut(&pgrx::spi::SpiHeapTupleData) -> R,
) -> Vec<R> {
    Spi::connect_mut(|client| {
        let table = client
            .update(sql, None, args)
            .unwrap_or_else(|e| spi_failed(e, sql));
        table.map(|row| f(&row)).collect()
    })
}

/// Read a column of an SPI row, raising on a type mismatch (a bug of ours).
pub fn col<T: FromDatum + IntoDatum>(row: &pgrx::spi::SpiHeapTupleData, n: usize) -> Option<T> {
    row.get::<T>(n)
        .unwrap_or_else(|e| spi_failed(e, "reading a result column"))
}

// Plans kept for the life of the backend, by statement text: the catalog reads every merge (and
// every batch of one) makes several of, which take longer to parse and plan than to run (the
// relation read: about 3 ms to plan, 1 ms to run). Leaked on purpose: a kept plan lives in the
// server's cache memory, and freeing it at process exit would call into a server shutting down.
thread_local! {
    static KEPT: std::cell::RefCell<Vec<(&'static str, &'static OwnedPreparedStatement)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Like [`query_one`], through a plan prepared once per backend (`sql` takes parameters of
/// `types`; it must read nothing that `search_path` could change). With JIT off: the catalog
/// queries are large (the relation read JIT compiles about 540 functions where the server's
/// thresholds let it) and run once per call.
fn query_one_kept<T: FromDatum + IntoDatum>(
    sql: &'static str,
    types: &[PgOid],
    args: &[DatumWithOid],
) -> Option<T> {
    without_jit(|| query_one_kept_here(sql, types, args))
}

fn query_one_kept_here<T: FromDatum + IntoDatum>(
    sql: &'static str,
    types: &[PgOid],
    args: &[DatumWithOid],
) -> Option<T> {
    Spi::connect_mut(|client| {
        let kept = KEPT.with_borrow(|k| k.iter().find(|(s, _)| *s == sql).map(|(_, p)| *p));
        let plan = kept.unwrap_or_else(|| {
            let prepared = client
                .prepare_mut(sql, types)
                .unwrap_or_else(|e| spi_failed(e, sql));
            let plan: &'static OwnedPreparedStatement = Box::leak(Box::new(prepared.keep()));
            KEPT.with_borrow_mut(|k| k.push((sql, plan)));
            plan
        });
        let table = client
            .update(plan, Some(1), args)
            .unwrap_or_else(|e| spi_failed(e, sql));
        first_value(table, sql)
    })
}

/// What the catalog says about a relation, or `None` when the oid names none.
pub fn relation(oid: pg_sys::Oid) -> Option<Relation> {
    query_one_kept::<String>(
        RELATION_SQL,
        &[PgOid::BuiltIn(PgBuiltInOids::OIDOID)],
        &[oid.into()],
    )
    .map(|json| check(Relation::from_json(&json)))
}

/// Whether this database's SQL of the extension was found to be this library's version (once
/// true, it stays true: an extension is never downgraded in place).
static SQL_CURRENT: AtomicBool = AtomicBool::new(false);

/// Refuse, with what to do, to call `what` (PL/pgSQL that came with this version's SQL, which both
/// modes share) in a database whose extension SQL is older than this library and lacks it. Between installing a new build and `ALTER EXTENSION
/// dms_window_reload UPDATE`, a merge says so (55000) instead of failing on a missing function.
pub fn require_current_sql(what: &str) {
    if SQL_CURRENT.load(Ordering::Relaxed) {
        return;
    }
    let library = env!("CARGO_PKG_VERSION");
    let installed = query_one::<String>(
        "SELECT extversion::pg_catalog.text FROM pg_catalog.pg_extension \
         WHERE extname OPERATOR(pg_catalog.=) 'dms_window_reload'",
        &[],
    );
    match installed {
        Some(v) if v == library => SQL_CURRENT.store(true, Ordering::Relaxed),
        v => raise(
            DwrError::new(
                SqlState::ObjectNotInPrerequisiteState,
                format!(
                    "this database's dms_window_reload is version {}, older than its library",
                    v.as_deref().unwrap_or("(none)")
                ),
            )
            .detail(format!(
                "The library is version {library}; it calls {what}, which came with that version's SQL."
            ))
            .hint("Run ALTER EXTENSION dms_window_reload UPDATE; in this database."),
        ),
    }
}

/// Like [`relation`], raising 42P01 when the relation does not exist.
pub fn relation_or_raise(oid: pg_sys::Oid, what: &str) -> Relation {
    relation(oid).unwrap_or_else(|| {
        raise(
            DwrError::new(
                SqlState::UndefinedTable,
                format!("{what} with OID {} does not exist", oid.to_u32()),
            )
            .hint("The table was dropped or renamed away; check dwr.tables."),
        )
    })
}

/// How every staging column's type converts into the production column of the same (or
/// case-insensitively same) name.
pub fn casts_between(staging: &Relation, target: &Relation) -> Casts {
    let (sources, targets) = Casts::type_pairs(staging, target);
    let sources: Vec<pg_sys::Oid> = sources.into_iter().map(pg_sys::Oid::from).collect();
    let targets: Vec<pg_sys::Oid> = targets.into_iter().map(pg_sys::Oid::from).collect();
    if sources.is_empty() {
        return Casts::default();
    }
    let oids = PgOid::BuiltIn(PgBuiltInOids::OIDARRAYOID);
    let json =
        query_one_kept::<String>(CASTS_SQL, &[oids, oids], &[sources.into(), targets.into()])
            .unwrap_or_else(|| "[]".into());
    Casts(check(CastInfo::list_from_json(&json)))
}

/// A PostgreSQL error caught inside a subtransaction.
#[derive(Debug, Clone)]
pub struct Caught {
    pub sqlstate: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl Caught {
    /// An error about one row's data: a bad value, a violated constraint, a trigger's complaint.
    /// Such an error marks that row `ERROR`; any other error (cancel, deadlock, out of memory, lock
    /// timeout, a bug) fails the whole merge.
    pub fn is_row_error(&self) -> bool {
        dwr_engine::error::is_row_error(&self.sqlstate)
    }

    /// A lock wait that ran out (`lock_timeout`): the rows involved can wait for a later merge.
    pub fn is_lock_timeout(&self) -> bool {
        self.sqlstate == "55P03"
    }

    /// The text stored in `_dwr_error`: the message and, when there is one, the detail.
    pub fn text(&self) -> String {
        match &self.detail {
            Some(d) => format!("{} ({})", self.message, d),
            None => self.message.clone(),
        }
    }
}

/// Run `f` in a subtransaction: when it raises a PostgreSQL error, the subtransaction is rolled back
/// (undoing whatever `f` did) and the error returned; the outer transaction goes on. A Rust panic
/// inside `f` rolls back the subtransaction and propagates.
///
/// `f` must open its own SPI connection (the helpers of this module do) so that a rollback leaves
/// no SPI state behind. The pattern is PL/Python's `PLy_spi_subtransaction_*`.
pub fn subtransaction<R>(f: impl FnOnce() -> R) -> Result<R, Caught> {
    subxact(true, f)
}

/// Run `f` in a subtransaction and roll it back whatever happens: what `f` returns survives, what it
/// changed does not (a dry run).
pub fn rolled_back<R>(f: impl FnOnce() -> R) -> Result<R, Caught> {
    subxact(false, f)
}

fn subxact<R>(commit: bool, f: impl FnOnce() -> R) -> Result<R, Caught> {
    // SAFETY: we are in a transaction (called from SQL); the memory context and resource owner are
    // restored on both paths exactly as PL/pgSQL's exception blocks do.
    let (ctx, owner) = unsafe {
        let ctx = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(ctx);
        (ctx, owner)
    };
    let restore = move || unsafe {
        pg_sys::MemoryContextSwitchTo(ctx);
        pg_sys::CurrentResourceOwner = owner;
    };
    PgTryBuilder::new(AssertUnwindSafe(|| {
        let r = f();
        unsafe {
            if commit {
                pg_sys::ReleaseCurrentSubTransaction();
            } else {
                pg_sys::MemoryContextSwitchTo(ctx);
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
            }
        }
        restore();
        Ok(r)
    }))
    .catch_others(|e| {
        unsafe {
            pg_sys::MemoryContextSwitchTo(ctx);
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        restore();
        match e {
            // an error the server raised, or one this extension raised with ereport
            CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => Err(Caught {
                sqlstate: sqlstate_text(report.sql_error_code()),
                message: report.message().to_string(),
                detail: report.detail().map(str::to_string),
                hint: report.hint().map(str::to_string),
            }),
            // a Rust panic is a bug: let it through
            other => other.rethrow(),
        }
    })
    .execute()
}

/// Raise a caught error again, as it was.
pub fn raise_caught(e: Caught) -> ! {
    report_error(&e.sqlstate, e.message, e.detail, e.hint)
}

/// Run `f` as `role` with `SECURITY_LOCAL_USERID_CHANGE`, the way PostgreSQL runs referential
/// integrity checks as the table's owner; the previous user and security context come back after.
/// This is the extension's narrow path into its own audit tables: only code of this extension can
/// take it, and it writes what the caller did, never what the caller says.
pub fn as_role<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let mut saved_user = pg_sys::Oid::INVALID;
    let mut saved_context: i32 = 0;
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(
            role,
            saved_context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    // an error inside f aborts the transaction, and transaction abort resets the user id
    let r = f();
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
    r
}

/// Whether table `target` has a trigger of its own (not internal) named `name`.
pub fn has_trigger(target: pg_sys::Oid, name: &str) -> bool {
    query_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgrelid OPERATOR(pg_catalog.=) $1 \
         AND tgname OPERATOR(pg_catalog.=) $2 AND NOT tgisinternal)",
        &[target.into(), name.into()],
    )
    .unwrap_or(false)
}

/// The role that owns the extension's objects (and so its audit tables).
pub fn extension_owner() -> pg_sys::Oid {
    query_one::<pg_sys::Oid>(
        "SELECT c.relowner FROM pg_catalog.pg_class c \
         WHERE c.oid OPERATOR(pg_catalog.=) 'dwr.merge_runs'::pg_catalog.regclass",
        &[],
    )
    .unwrap_or_else(|| {
        raise(DwrError::new(
            SqlState::UndefinedTable,
            "table dwr.merge_runs does not exist",
        ))
    })
}

/// Run `f` with the server's `lock_timeout` set to `ms` (transaction-local), then put the previous
/// value back. A `SET LOCAL` statement rather than `set_config`, so that on a Citus coordinator it
/// reaches the workers' transactions too when `citus.propagate_set_commands` is `local`.
pub fn with_lock_timeout<R>(ms: i32, f: impl FnOnce() -> R) -> R {
    with_local("lock_timeout", &format!("{ms}ms"), f)
}

/// Run `f` with configuration parameter `name` (a plain name, no dots) at `value` by `SET LOCAL`,
/// which Citus passes on to the workers' transactions when `citus.propagate_set_commands` is
/// `local`; then set it back to what it was.
pub fn with_local<R>(name: &str, value: &str, f: impl FnOnce() -> R) -> R {
    let set = |value: &str| {
        execute(
            &format!(
                "SET LOCAL {} = {}",
                dwr_engine::ident::quote_ident(name),
                dwr_engine::ident::quote_literal(value)
            ),
            &[],
        );
    };
    around(name, value, set, f)
}

/// Run `f` with JIT compilation off (`SET LOCAL jit = off`, then the caller's value back): every
/// statement of a merge, batch or undo is planned once and runs once, so LLVM's compilation (about
/// 0.7 s for a merge of 100,000 rows on a server built with it) is never paid back. The caller's own
/// setting holds again once `f` returns; an error inside a subtransaction rolls the setting back
/// with it.
pub fn without_jit<R>(f: impl FnOnce() -> R) -> R {
    with_local("jit", "off", f)
}

/// Run `f` with configuration parameter `name` set to `value` for this transaction (by
/// `set_config`, which Citus does not pass on), then set it back to what it was.
pub fn with_setting<R>(name: &str, value: &str, f: impl FnOnce() -> R) -> R {
    let set = |value: &str| {
        execute(
            "SELECT pg_catalog.set_config($1, $2, true)",
            &[name.into(), value.into()],
        );
    };
    around(name, value, set, f)
}

/// `set(value)`, `f`, then `set` back to the value `name` had.
fn around<R>(name: &str, value: &str, set: impl Fn(&str), f: impl FnOnce() -> R) -> R {
    let previous = query_one::<String>("SELECT pg_catalog.current_setting($1)", &[name.into()])
        .unwrap_or_default();
    set(value);
    let r = f();
    set(&previous);
    r
}

/// Let `role` read and write the session's work table (a temporary table the caller owns), so that
/// code running as `role` (the audit path) can copy from it.
pub fn share_work_table(table: &str, role: pg_sys::Oid) {
    if role != current_user() {
        let name = query_one::<String>(
            "SELECT pg_catalog.pg_get_userbyid($1)::pg_catalog.text",
            &[role.into()],
        )
        .or_bug("role exists");
        execute(
            &format!(
                "GRANT SELECT, INSERT, UPDATE ON {table} TO {}",
                dwr_engine::ident::quote_ident(&name)
            ),
            &[],
        );
    }
}

/// Show `text` as this backend's query in `pg_stat_activity` (until the next top-level statement).
pub fn report_activity(text: &str) {
    let c = std::ffi::CString::new(text.replace('\0', "")).or_bug("no NUL left");
    unsafe { pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, c.as_ptr()) };
}

/// The current user's oid.
pub fn current_user() -> pg_sys::Oid {
    unsafe { pg_sys::GetUserId() }
}

/// A `regclass` value, for composite attributes declared `regclass` (an `Oid` is an `oid`).
pub struct RegClass(pub pg_sys::Oid);

impl IntoDatum for RegClass {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        self.0.into_datum()
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::REGCLASSOID
    }
}
