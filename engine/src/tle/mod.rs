//! The pg_tle package: the same merge as the compiled extension, as SQL and PL/pgSQL that a managed
//! service (Amazon RDS, Aurora) lets a non-superuser install.
//!
//! The package holds the extension's schema, tables and views (`sql/schema.sql`, `sql/views.sql`,
//! unchanged), the functions both modes have (`sql/shared.sql`; an update from an older base runs
//! the shared parts of the update scripts instead), the package's own functions that are the same
//! for every table (`sql/tle/functions.sql`), and for every registered table its merge and undo programs
//! ([`merge_program`], [`undo_program`], planned from its [`crate::plan::MergePlan`]) written as
//! PL/pgSQL by `tle/emit.rs`: each statement word for word in a function whose parameters are the
//! statement's, and a run function performing the steps in program order (bisecting a failing range
//! down to the rejected row in `BEGIN ... EXCEPTION` blocks). No dynamic SQL: the table's columns,
//! key and version are written out (the one exception reads a source table of `dwr_merge(...,
//! source =>)` into the shape the merge was generated for: [`source`]). `dwr_merge`, `dwr_verify`,
//! `dwr_undo` and the batches dispatch on the table to its generated functions.
//!
//! A generated function carries the [fingerprint](FINGERPRINT_SQL) of its tables and refuses to run
//! when they changed: the package must then be generated again (`dwr tle install`).

use crate::catalog::Relation;
use crate::error::DwrError;
use crate::ident::{quote_ident, quote_literal};
use crate::plan::{MergePlan, Problem};
use crate::program::{Param, Stmt};
use crate::settings;
use crate::sqlgen::{merge_program, old_in_returning, MergeOptions, RowClass};

mod emit;
pub mod source;
use crate::undo::undo_program;

/// The extension name of the package. It differs from the compiled extension's so that both can
/// be installed on one server (pg_tle refuses a name that has a control file); the SQL interface
/// is the same.
pub const EXTENSION: &str = "dms_window_reload_tle";

/// The version of the SQL the package is generated from; a package version is this plus a
/// generation number (`0.6.0.000003`).
pub const BASE_VERSION: &str = "0.6.0";

const SCHEMA_SQL: &str = include_str!("../../../sql/schema.sql");
/// The functions both modes have, as they are in [`BASE_VERSION`] (a fresh package runs them after
/// `schema.sql`, as the compiled extension's install script does).
const SHARED_SQL: &str = include_str!("../../../sql/shared.sql");
/// The changes from one base version to the next that both modes share (table changes, PL/pgSQL),
/// oldest first: the compiled extension's update scripts without their compiled-only parts. A
/// package's update from an older base runs those from its base on.
const DELTAS: [(&str, &str, &str); 4] = [
    (
        "0.2.0",
        "0.3.0",
        include_str!("../../../sql/dms_window_reload--0.2.0--0.3.0.sql"),
    ),
    (
        "0.3.0",
        "0.4.0",
        include_str!("../../../sql/dms_window_reload--0.3.0--0.4.0.sql"),
    ),
    (
        "0.4.0",
        "0.5.0",
        include_str!("../../../sql/dms_window_reload--0.4.0--0.5.0.sql"),
    ),
    (
        "0.5.0",
        "0.6.0",
        include_str!("../../../sql/dms_window_reload--0.5.0--0.6.0.sql"),
    ),
];
const VIEWS_SQL: &str = include_str!("../../../sql/views.sql");
const FUNCTIONS_SQL: &str = include_str!("../../../sql/tle/functions.sql");

/// `$1` (oid): a digest of a relation's columns, primary key and owner, the query of
/// `dwr._fingerprint` (the generator reads it with this query, the generated code with the
/// function: the same text).
pub const FINGERPRINT_SQL: &str = "SELECT dwr._fingerprint($1)";

/// The dollar-quote tag of generated function bodies.
const Q: &str = "$dwr$";

/// The settings of the package's entry points that run a merge's, a batch's, an undo's or
/// `dwr_verify`'s statements: the pinned search path, and JIT off (each statement is planned once
/// and runs once, so LLVM's compilation is never paid back; as the compiled extension's
/// `exec::without_jit`). A function's `SET` clause puts the caller's setting back on return.
const NO_JIT: &str = "SET search_path = pg_catalog, pg_temp SET jit = off";

/// Everything the generator needs to know about one registered table.
pub struct TableInput {
    pub target: Relation,
    pub staging: Relation,
    /// the plan, or the error that keeps the table from merging (raised by its merge function)
    pub plan: Result<crate::plan::MergePlan, DwrError>,
    /// the plan of merging a source read through [`source::copy_relation`] (`dwr_merge(...,
    /// source =>)`, `dwr_diff(..., source =>)`), or the error that keeps a source from merging
    pub source_plan: Result<crate::plan::MergePlan, DwrError>,
    pub problems: Vec<Problem>,
    /// `dwr._fingerprint` of target and staging when the package was generated
    pub target_fingerprint: String,
    pub staging_fingerprint: String,
    /// the server's `server_version_num`: the package is generated for its server
    pub server_version_num: i32,
}

/// The generated functions of one table and how to reach them.
pub struct TableCode {
    /// the target's name, for messages
    pub target: String,
    /// the condition under which a dispatcher's `nsp`, `rel` (the called table's schema and name,
    /// read from the catalog without privilege checks) name this table
    pub is_target: String,
    pub prefix: String,
    pub sql: String,
}

/// The name of a generated function: `dwr."_t<n>_<what>"`.
fn fname(prefix: &str, what: &str) -> String {
    format!("dwr.{}", quote_ident(&format!("{prefix}_{what}")))
}

/// The audit path of a generated merge or undo (`kind`): `write` (reading `RunId` and `Target`)
/// run as the package owner, only for a run of that kind this session has open with row audit on
/// that table.
fn audit_writer(name: &str, kind: &str, write: &Stmt) -> String {
    let ph = |p: Param| {
        write
            .placeholder(p)
            .unwrap_or_else(|| panic!("the audit path reads {}", p.name()))
    };
    let (run, target) = (ph(Param::RunId), ph(Param::Target));
    let types: Vec<&str> = write.params.iter().map(|p| p.sql_type()).collect();
    stmt_function(
        name,
        &types,
        "void",
        &format!(
            "BEGIN\nIF NOT EXISTS (SELECT FROM dwr.merge_runs r WHERE r.run_id OPERATOR(pg_catalog.=) {run} \
             AND r.target OPERATOR(pg_catalog.=) {target} AND r.status OPERATOR(pg_catalog.=) 'RUNNING' \
             AND r.kind OPERATOR(pg_catalog.=) {} AND r.row_audit \
             AND r.backend_pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()) THEN\n\
             RAISE EXCEPTION 'run % is not a running {kind} of this session', {run} USING ERRCODE = '55000';\nEND IF;\n\
             {};\nEND",
            quote_literal(kind),
            write.sql
        ),
        true,
    )
}

/// The tombstones a replay writes (`write`, reading `Target`) run as the package owner, only while
/// this session runs a merge of that table.
fn tombstone_writer(name: &str, write: &Stmt) -> String {
    let target = write
        .placeholder(Param::Target)
        .unwrap_or_else(|| panic!("the tombstone writer reads {}", Param::Target.name()));
    let types: Vec<&str> = write.params.iter().map(|p| p.sql_type()).collect();
    stmt_function(
        name,
        &types,
        "void",
        &format!(
            "BEGIN\nIF NOT EXISTS (SELECT FROM dwr.merge_runs r WHERE r.target OPERATOR(pg_catalog.=) {target} \
             AND r.status OPERATOR(pg_catalog.=) 'RUNNING' AND r.kind OPERATOR(pg_catalog.=) 'merge' \
             AND r.backend_pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()) THEN\n\
             RAISE EXCEPTION 'this session runs no merge of %', {target}::pg_catalog.regclass USING ERRCODE = '55000';\nEND IF;\n\
             {};\nEND",
            write.sql
        ),
        true,
    )
}

/// A PL/pgSQL function whose body runs `stmt` once; `$n` in `stmt` are its arguments.
fn stmt_function(name: &str, args: &[&str], returns: &str, body: &str, definer: bool) -> String {
    format!(
        "CREATE FUNCTION {name}({args}) RETURNS {returns} LANGUAGE plpgsql{definer} \
         SET search_path = pg_catalog, pg_temp AS {Q}\n#variable_conflict use_column\n{body}\n{Q};\n\
         COMMENT ON FUNCTION {name}({args}) IS 'Generated by dwr tle: one statement of a merge.';\n",
        args = args.join(", "),
        definer = if definer { " SECURITY DEFINER" } else { "" },
    )
}

/// Runs a statement; returns nothing.
fn run_void(name: &str, args: &[&str], stmt: &str) -> String {
    stmt_function(name, args, "void", &format!("BEGIN\n{stmt};\nEND"), false)
}

/// Runs a statement; returns the number of rows it processed.
fn run_count(name: &str, args: &[&str], stmt: &str) -> String {
    stmt_function(
        name,
        args,
        "pg_catalog.int8",
        &format!(
            "DECLARE _dwr_n pg_catalog.int8;\nBEGIN\n{stmt};\nGET DIAGNOSTICS _dwr_n = ROW_COUNT;\nRETURN _dwr_n;\nEND"
        ),
        false,
    )
}

/// Runs a query; returns its rows.
fn run_query(name: &str, args: &[&str], returns: &str, stmt: &str) -> String {
    stmt_function(
        name,
        args,
        returns,
        &format!("BEGIN\nRETURN QUERY {stmt};\nEND"),
        false,
    )
}

/// The counts of `dwr.merge_result` from the class counts, in its column order (`Counts::add`).
fn counts_case(class_col: &str) -> [String; 9] {
    let mut by_field: [Vec<&str>; 9] = Default::default();
    for class in RowClass::ALL {
        let mut c = crate::sqlgen::Counts::default();
        c.add(class, 1);
        let fields = [
            c.inserted,
            c.updated,
            c.unchanged,
            c.skipped_stale,
            c.skipped_deleted,
            c.skipped_outside_window,
            c.deferred,
            c.errors,
            c.deleted,
        ];
        if let Some(i) = fields.iter().position(|&n| n == 1) {
            by_field[i].push(class.as_str());
        }
    }
    by_field.map(|classes| {
        format!(
            "COALESCE(pg_catalog.sum(n) FILTER (WHERE {class_col} OPERATOR(pg_catalog.=) ANY ('{{{}}}')), 0)::pg_catalog.int8",
            classes.join(",")
        )
    })
}

/// Raise `e` from PL/pgSQL, with its SQLSTATE, detail and hint.
fn raise_error(e: &DwrError) -> String {
    let mut using = vec![format!("ERRCODE = {}", quote_literal(e.state.code()))];
    if let Some(d) = &e.detail {
        using.push(format!("DETAIL = {}", quote_literal(d)));
    }
    if let Some(h) = &e.hint {
        using.push(format!("HINT = {}", quote_literal(h)));
    }
    format!(
        "RAISE EXCEPTION USING MESSAGE = {}, {};",
        quote_literal(&e.message),
        using.join(", ")
    )
}

/// The undo of one table: src/undo.rs `undo_run`, with the programs of
/// [`crate::undo::undo_program`] (with and without row audit).
fn undo_code(prefix: &str, target: &Relation, owner: &str) -> String {
    let mut out = String::new();
    let mut variants = Vec::new();
    for row_audit in [true, false] {
        let p = format!("{prefix}u{}", if row_audit { "a" } else { "p" });
        let program = undo_program(target, row_audit);
        out.push_str(&emit::program_functions(&p, &program, owner));
        let counts = emit::counts_function(&p, &program);
        let run = emit::run_call(&p, &|param| match param {
            Param::Target => "$2::pg_catalog.oid".to_string(),
            Param::RunId => "_dwr_run".to_string(),
            Param::UndoneRun => "$1".to_string(),
            _ => "NULL".to_string(),
        });
        let count = |class: &str| {
            format!(
                "COALESCE((SELECT c.n FROM {counts}() AS c WHERE c.cls OPERATOR(pg_catalog.=) '{class}'), 0)"
            )
        };
        variants.push(format!(
            "PERFORM {run};\n    _dwr_c := ARRAY[{}, {}, {}, {}, {}, {}, {}];\n    PERFORM {}();\n",
            count("deleted"),
            count("restored"),
            count("changed"),
            count("gone"),
            count("deferred"),
            count("error"),
            count("reinserted"),
            fname(&p, "cleanup"),
        ));
    }
    let body = format!(
        "DECLARE\n    _dwr_audit pg_catalog.bool := dwr._row_audit();\n    _dwr_run pg_catalog.int8;\n\
         _dwr_c pg_catalog.int8[];\n    _dwr_status pg_catalog.text;\n\
         BEGIN\n\
         PERFORM dwr._lock_target($2);\n\
         _dwr_run := dwr._begin_run('undo', $1, $2::pg_catalog.oid, {target}, 'dwr.row_changes of run ' OPERATOR(pg_catalog.||) $1, false, _dwr_audit, CURRENT_USER);\n\
         IF _dwr_audit THEN\n    {audited}ELSE\n    {plain}END IF;\n\
         _dwr_status := CASE WHEN _dwr_c[6] OPERATOR(pg_catalog.>) 0 THEN 'SUCCEEDED_WITH_ERRORS' ELSE 'SUCCEEDED' END;\n\
         RAISE NOTICE 'undo of run %: % inserted rows deleted, % updated rows restored, % removed rows put back, % left alone because they changed since, % because they were deleted since, % deferred, % errors',\n\
         $1, _dwr_c[1], _dwr_c[2], _dwr_c[7], _dwr_c[3], _dwr_c[4], _dwr_c[5], _dwr_c[6];\n\
         RETURN ROW(_dwr_run, $2, _dwr_status, _dwr_c[7], _dwr_c[2], 0, _dwr_c[3], _dwr_c[4], 0, _dwr_c[5], _dwr_c[6],\n\
         dwr._finish_run(_dwr_run, _dwr_status, _dwr_c[7], _dwr_c[2], 0, _dwr_c[3], _dwr_c[4], 0, _dwr_c[5], _dwr_c[6], _dwr_c[1]), _dwr_c[1])::dwr.merge_result;\nEND",
        target = quote_literal(&target.display()),
        audited = variants[0],
        plain = variants[1],
    );
    out.push_str(&stmt_function(
        &fname(prefix, "undo"),
        &["pg_catalog.int8", "pg_catalog.regclass"],
        "dwr.merge_result",
        &body,
        false,
    ));
    out
}

/// A table's merge: `$1` target, `$2` its staging table, `$3` dry run (what `dwr_merge` passes),
/// `$4` whether it is one batch of `dwr_merge_batches`, `$5`, `$6` that batch's bounds
/// ([`Param::BatchLo`], [`Param::BatchHi`]), `$7` the source table to merge from instead of
/// staging (or NULL; see [`source`]).
fn merge_function(name: &str, body: &str) -> String {
    stmt_function(
        name,
        &[
            "pg_catalog.regclass",
            "pg_catalog.regclass",
            "pg_catalog.bool",
            "pg_catalog.bool",
            "pg_catalog.text[]",
            "pg_catalog.text[]",
            "pg_catalog.regclass",
            "pg_catalog.bool",
            "pg_catalog.bool",
        ],
        "dwr.merge_result",
        body,
        false,
    )
}

/// A table's count of the production rows `dwr_delete_absent` would remove: `$1`, `$2` the open
/// reload's window.
fn absent_count_function(prefix: &str, body: &str) -> String {
    stmt_function(
        &fname(prefix, "absent_count"),
        &["pg_catalog.timestamptz", "pg_catalog.timestamptz"],
        "pg_catalog.int8",
        body,
        false,
    )
}

/// The body of [`absent_count_function`] for `plan`: the engine's count, whose parameters are the
/// window's two ends.
fn absent_count_body(plan: &crate::plan::MergePlan) -> String {
    let mut absent_plan = plan.clone();
    absent_plan.absent = true;
    let count = crate::sqlgen::MergeBuilder {
        plan: &absent_plan,
        options: MergeOptions::default(),
    }
    .absent_count();
    assert_eq!(
        count.params,
        [Param::WindowStart, Param::WindowEnd],
        "the absent count reads the window"
    );
    format!(
        "BEGIN\nRETURN (SELECT c.n FROM ({}) AS c(cls, n));\nEND",
        count.sql
    )
}

/// A table's plan of batches (`dwr._batch_plan`): `$1` target, `$2` its staging table, `$3` the
/// batch size; returns the number of staged rows to merge.
fn batch_plan_function(prefix: &str, body: &str) -> String {
    stmt_function(
        &fname(prefix, "batch_plan"),
        &[
            "pg_catalog.regclass",
            "pg_catalog.regclass",
            "pg_catalog.int4",
        ],
        "pg_catalog.int8",
        body,
        false,
    )
}

/// The generated functions of table number `n`.
pub fn table_code(n: usize, input: &TableInput, owner: &str) -> TableCode {
    let prefix = format!("_t{n}");
    let target_text = input.target.display();
    let mut out = format!(
        "\n-- {target_text}: merged from {}\n",
        input.staging.display()
    );
    let stale_check = stale_check(input);
    match &input.plan {
        Err(e) => {
            let fail = |check: &str| format!("BEGIN\n{check}{}\nEND", raise_error(e));
            out.push_str(&merge_function(
                &fname(&prefix, "merge"),
                &fail(&stale_check),
            ));
            out.push_str(&batch_plan_function(&prefix, &fail(&stale_check)));
            out.push_str(&absent_count_function(&prefix, &fail("")));
        }
        Ok(plan) => {
            out.push_str(&merge_code(&prefix, input, plan, owner, &stale_check));
            out.push_str(&batch_code(&prefix, plan, &stale_check));
            out.push_str(&absent_count_function(&prefix, &absent_count_body(plan)));
        }
    }
    out.push_str(&verify_code(&prefix, input, &stale_check));
    out.push_str(&diff_code(&prefix, input, &stale_check));
    out.push_str(&undo_code(&prefix, &input.target, owner));
    TableCode {
        target: target_text,
        is_target: format!(
            "nsp OPERATOR(pg_catalog.=) {} AND rel OPERATOR(pg_catalog.=) {}",
            quote_literal(&input.target.schema),
            quote_literal(&input.target.name)
        ),
        prefix,
        sql: out,
    }
}

/// The start of every function of a table's package code: refuse to run when the target or
/// staging table changed since the package was generated.
fn stale_check(input: &TableInput) -> String {
    format!(
        "IF dwr._fingerprint($1::pg_catalog.oid) IS DISTINCT FROM {} OR dwr._fingerprint($2::pg_catalog.oid) IS DISTINCT FROM {} THEN\n\
         RAISE EXCEPTION 'the merge of % was generated for other columns of it or of its staging table', $1\n\
         USING ERRCODE = '55000', DETAIL = pg_catalog.format('The package %s was generated when %s and %s had other columns, keys or owners.', {}, $1, $2),\n\
         HINT = 'Generate the package again: dwr tle install <connection string>.';\nEND IF;\n",
        quote_literal(&input.target_fingerprint),
        quote_literal(&input.staging_fingerprint),
        quote_literal(EXTENSION),
    )
}

/// The names of a table's merge programs (`prefix`: the table's): row audit or not (`a`, `p`),
/// then the staged rows (a batch's: `b`), a source's (`s`), a change log's (`r`, dwr_replay, read
/// through the same shape with each change's operation and place: source::functions,
/// dwr._copy_change_log) or the removal of what the window's full load lacks (`x`,
/// dwr_delete_absent). Only the staged rows' are batched.
struct Variants<'a>(&'a str);

impl Variants<'_> {
    fn name(&self, row_audit: bool, what: &str) -> String {
        format!("{}{}{what}", self.0, if row_audit { "a" } else { "p" })
    }

    fn staged(&self, row_audit: bool, batched: bool) -> String {
        self.name(row_audit, if batched { "b" } else { "" })
    }

    /// `IF _dwr_audit THEN <assign><what(a)>; ELSE <assign><what(p)>; END IF;` for kind `what`.
    fn by_audit(&self, kind: &str, what: &dyn Fn(&str) -> String, assign: &str) -> String {
        format!(
            "IF _dwr_audit THEN {assign}{}; ELSE {assign}{}; END IF;",
            what(&self.name(true, kind)),
            what(&self.name(false, kind)),
        )
    }

    /// Run (or clean up after) the program of this call: deletes by absence (`$9`), a change log
    /// (`$8`), a source (`$7`), staging, row audit or not, batch (`$4`) or not.
    fn pick(&self, input: &TableInput, what: &dyn Fn(&str) -> String, assign: &str) -> String {
        let (from_source, from_log) = match &input.source_plan {
            Ok(_) => (
                self.by_audit("s", what, assign),
                self.by_audit("r", what, assign),
            ),
            Err(e) => (raise_error(e), raise_error(e)),
        };
        format!(
            "IF $9 THEN\n    {}\n\
             ELSIF $8 THEN\n    {from_log}\n\
             ELSIF $7 IS NOT NULL THEN\n    {from_source}\n\
             ELSIF _dwr_audit THEN\n    IF $4 THEN {assign}{}; ELSE {assign}{}; END IF;\n\
             ELSE\n    IF $4 THEN {assign}{}; ELSE {assign}{}; END IF;\nEND IF;\n",
            self.by_audit("x", what, assign),
            what(&self.staged(true, true)),
            what(&self.staged(true, false)),
            what(&self.staged(false, true)),
            what(&self.staged(false, false)),
        )
    }

    /// Every program of the table: its name, plan, row audit and batched.
    fn programs(
        &self,
        input: &TableInput,
        plan: &MergePlan,
    ) -> Vec<(String, MergePlan, bool, bool)> {
        let mut absent_plan = plan.clone();
        absent_plan.absent = true;
        let mut programs = Vec::new();
        for row_audit in [true, false] {
            for batched in [false, true] {
                programs.push((
                    self.staged(row_audit, batched),
                    plan.clone(),
                    row_audit,
                    batched,
                ));
            }
            programs.push((
                self.name(row_audit, "x"),
                absent_plan.clone(),
                row_audit,
                false,
            ));
        }
        if let Ok(source_plan) = &input.source_plan {
            let mut replay_plan = source_plan.clone();
            replay_plan.changes = true;
            for row_audit in [true, false] {
                programs.push((
                    self.name(row_audit, "s"),
                    source_plan.clone(),
                    row_audit,
                    false,
                ));
                programs.push((
                    self.name(row_audit, "r"),
                    replay_plan.clone(),
                    row_audit,
                    false,
                ));
            }
        }
        programs
    }
}

/// The merge programs of a table that merges (`plan`), and its `dwr_merge` function
/// (src/merge.rs merge_registered).
fn merge_code(
    prefix: &str,
    input: &TableInput,
    plan: &MergePlan,
    owner: &str,
    stale_check: &str,
) -> String {
    let mut out = String::new();
    let variants = Variants(prefix);
    let mut counts_of = std::collections::HashMap::new();
    for (p, program_plan, row_audit, batched) in variants.programs(input, plan) {
        let options = MergeOptions {
            row_audit,
            batched,
            old_in_returning: old_in_returning(input.server_version_num),
        };
        let program = merge_program(&program_plan, options);
        out.push_str(&emit::program_functions(&p, &program, owner));
        counts_of.insert(p.clone(), emit::counts_function(&p, &program));
    }
    let [ins, upd, unch, stale, skipped_del, outside, deferred, errors, deleted] =
        counts_case("cls");
    let nv = quote_literal(&plan.null_version_message());
    let nk = quote_literal(&plan.null_key_message());
    let run = |p: &str| {
        emit::run_call(p, &|param| match param {
            Param::Target => "$1".to_string(),
            Param::RunId => "_dwr_run".to_string(),
            Param::WindowStart => "_dwr_ws".to_string(),
            Param::WindowEnd => "_dwr_we".to_string(),
            Param::Since => "_dwr_since".to_string(),
            Param::NullVersion => nv.clone(),
            Param::NullKey => nk.clone(),
            Param::LobLimit => {
                "(_dwr_lob::pg_catalog.int8 OPERATOR(pg_catalog.*) 1024)".to_string()
            }
            Param::BatchLo => "$5".to_string(),
            Param::BatchHi => "$6".to_string(),
            _ => "NULL".to_string(),
        })
    };
    // the counts in dwr.merge_result's order (Counts::add)
    let runs = variants.pick(
        input,
        &|p: &str| {
            format!(
                "{}; _dwr_c := (SELECT ARRAY[{ins}, {upd}, {unch}, {stale}, {skipped_del}, {outside}, {deferred}, {errors}, {deleted}] FROM {}() AS c)",
                run(p),
                counts_of[p]
            )
        },
        "PERFORM ",
    );
    let cleanups = variants.pick(
        input,
        &|p: &str| format!("{}()", fname(p, "cleanup")),
        "PERFORM ",
    );
    let body = format!(
        "DECLARE\n    _dwr_audit pg_catalog.bool := dwr._row_audit();\n    _dwr_run pg_catalog.int8;\n    _dwr_since pg_catalog.timestamptz;\n\
         _dwr_ws pg_catalog.timestamptz;\n    _dwr_we pg_catalog.timestamptz;\n    _dwr_lob pg_catalog.int4;\n    _dwr_c pg_catalog.int8[];\n    _dwr_status pg_catalog.text;\n    _dwr_r dwr.merge_result;\n\
         BEGIN\n{stale_check}\
         IF $7 IS NULL THEN\n    PERFORM dwr._check_staging_owner($1, $2);\n\
         ELSIF NOT $8 THEN\n    PERFORM dwr._check_source($1, $7);\n    PERFORM dwr._copy_source($2, $7);\nEND IF;\n\
         PERFORM dwr._lock_target($1);\n\
         SELECT r.window_start, r.window_end, r.lob_max_kb INTO _dwr_ws, _dwr_we, _dwr_lob FROM dwr.reloads r\n WHERE r.ended_at IS NULL AND $1 OPERATOR(pg_catalog.=) ANY (r.targets);\n\
         _dwr_since := dwr._deletes_count_since($1);\n\
         _dwr_run := dwr._begin_run('merge', NULL, $1::pg_catalog.oid, {target}, COALESCE(dwr._display($7), {staging}), $3, _dwr_audit, CURRENT_USER);\n\
         IF $3 THEN\n    BEGIN\n{runs}\
         RAISE EXCEPTION 'dry run' USING ERRCODE = 'DWR00';\n    EXCEPTION WHEN SQLSTATE 'DWR00' THEN NULL;\n    END;\n\
         ELSE\n{runs}{cleanups}\
         PERFORM dwr._prune_tombstones($1::pg_catalog.oid);\nEND IF;\n\
         _dwr_status := CASE WHEN $3 THEN 'DRY_RUN' WHEN _dwr_c[8] OPERATOR(pg_catalog.>) 0 THEN 'SUCCEEDED_WITH_ERRORS' ELSE 'SUCCEEDED' END;\n\
         _dwr_r := ROW(_dwr_run, $1, _dwr_status, _dwr_c[1], _dwr_c[2], _dwr_c[3], _dwr_c[4], _dwr_c[5], _dwr_c[6], _dwr_c[7], _dwr_c[8],\n\
         dwr._finish_run(_dwr_run, _dwr_status, _dwr_c[1], _dwr_c[2], _dwr_c[3], _dwr_c[4], _dwr_c[5], _dwr_c[6], _dwr_c[7], _dwr_c[8],\n\
         CASE WHEN $8 OR $9 THEN _dwr_c[9] END), _dwr_c[9]);\n\
         RETURN _dwr_r;\nEND",
        target = quote_literal(&plan.target_display),
        staging = quote_literal(&plan.staging_display),
    );
    out.push_str(&merge_function(&fname(prefix, "merge"), &body));
    out
}

/// The batches of dwr_merge_batches (src/batch.rs dwr_batch_plan): the bounds table's function
/// and the batch plan.
fn batch_code(prefix: &str, plan: &MergePlan, stale_check: &str) -> String {
    let mut out = String::new();
    let plan_body = match crate::sqlgen::batch_sql(plan) {
        Err(column) => format!(
            "BEGIN\n{stale_check}{}\nEND",
            raise_error(&DwrError::batch_key_unordered(
                &column,
                &plan.staging_display
            ))
        ),
        Ok(b) => {
            out.push_str(&run_void(
                &fname(prefix, "create_bounds"),
                &["pg_catalog.int8"],
                &b.create_bounds,
            ));
            format!(
                "BEGIN\n{stale_check}\
                 PERFORM dwr._check_staging_owner($1, $2);\n\
                 IF ({}) THEN\n{};\nEND IF;\n\
                 PERFORM {}($3::pg_catalog.int8);\n\
                 RETURN ({});\nEND",
                b.bounds_exist,
                b.drop_bounds,
                fname(prefix, "create_bounds"),
                b.count_new,
            )
        }
    };
    out.push_str(&batch_plan_function(prefix, &plan_body));
    out
}

/// dwr_verify of a table: the engine's findings when the package was generated (the fingerprint
/// check keeps them current), and the staged values at the open reload's LOB limit.
fn verify_code(prefix: &str, input: &TableInput, stale_check: &str) -> String {
    let rows: Vec<String> = input
        .problems
        .iter()
        .map(|p| {
            format!(
                "({}, {}, {}, {}, {}, {})",
                quote_literal(&p.column),
                quote_literal(p.code.as_str()),
                p.production_type
                    .as_deref()
                    .map(quote_literal)
                    .unwrap_or_else(|| "NULL".into()),
                p.staging_type
                    .as_deref()
                    .map(quote_literal)
                    .unwrap_or_else(|| "NULL".into()),
                quote_literal(p.severity.as_str()),
                quote_literal(&p.detail),
            )
        })
        .collect();
    let verify_query = if rows.is_empty() {
        "SELECT NULL::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.text WHERE false".to_string()
    } else {
        format!(
            "SELECT * FROM (VALUES {}) AS v(column_name, problem, production_type, staging_type, severity, detail)",
            rows.join(", ")
        )
    };
    stmt_function(
        &fname(prefix, "verify"),
        &["pg_catalog.regclass", "pg_catalog.regclass"],
        "TABLE (column_name pg_catalog.text, problem pg_catalog.text, production_type pg_catalog.text, \
         staging_type pg_catalog.text, severity pg_catalog.text, detail pg_catalog.text)",
        &format!(
            "BEGIN\n{stale_check}RETURN QUERY {verify_query};\n{}END",
            // staged values at the open reload's LOB limit (the query reads $1, the target)
            input
                .plan
                .as_ref()
                .ok()
                .and_then(crate::sqlgen::lob_verify_sql)
                .map(|q| {
                    assert_eq!(q.params, vec![Param::Target]);
                    format!("RETURN QUERY {};\n", q.sql)
                })
                .unwrap_or_default()
        ),
        false,
    )
}

/// dwr_diff of a table: the comparison's SQL (dwr_engine::diff, as the compiled extension's
/// dwr._diff_query writes it), which the shared dwr_diff and dwr_diff_summary run ($4: of a
/// source, read through the WITH query dwr._diff_query puts around it).
fn diff_code(prefix: &str, input: &TableInput, stale_check: &str) -> String {
    let diff_of = |plan: &MergePlan| {
        format!(
            "CASE WHEN $3 THEN {} ELSE {} END",
            quote_literal(&crate::diff::diff_summary_sql(plan)),
            quote_literal(&crate::diff::diff_sql(plan)),
        )
    };
    let diff_body = match (&input.plan, &input.source_plan) {
        (Err(e), _) => format!("BEGIN\n{stale_check}{}\nEND", raise_error(e)),
        (Ok(plan), source_plan) => format!(
            "BEGIN\n{stale_check}IF $4 THEN\n    {}\nEND IF;\nRETURN {};\nEND",
            match source_plan {
                Ok(sp) => format!("RETURN {};", diff_of(&source::diff_plan(sp))),
                Err(e) => raise_error(e),
            },
            diff_of(plan),
        ),
    };
    stmt_function(
        &fname(prefix, "diff_query"),
        &[
            "pg_catalog.regclass",
            "pg_catalog.regclass",
            "pg_catalog.bool",
            "pg_catalog.bool",
        ],
        "pg_catalog.text",
        &diff_body,
        false,
    )
}

/// The called table's schema and name, read from the catalog (no privilege check: `to_regclass`
/// of another registered table in a schema the caller may not use would fail).
const NAME_LOOKUP: &str = "SELECT n.nspname, c.relname INTO nsp, rel FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
     WHERE c.oid OPERATOR(pg_catalog.=) target;\n";

/// The start of a dispatcher of `function` (`target` its first argument): the declarations, the
/// NULL check of `target` and then `more_checks`, its registration into `reg`, and the called
/// table's schema and name into `nsp`, `rel`.
fn dispatch_prologue(function: &str, more_checks: &str) -> String {
    format!(
        "DECLARE\n    reg record;\n    nsp pg_catalog.name;\n    rel pg_catalog.name;\nBEGIN\n\
         IF target IS NULL THEN PERFORM dwr._raise_null({f}, 'target'); END IF;\n\
         {more_checks}SELECT * INTO reg FROM dwr._registration(target);\n{NAME_LOOKUP}",
        f = quote_literal(function),
    )
}

/// `dwr_merge`, `dwr_verify`: find the table's generated function (a `CASE` over the registered
/// tables, no dynamic SQL).
fn dispatchers(tables: &[TableCode]) -> String {
    let d = Dispatch(tables);
    merge_and_verify(&d)
        + &diff_dispatcher(&d)
        + &replay_dispatcher(&d)
        + &delete_absent_dispatcher(&d)
        + &undo_dispatcher(&d)
        + &batch_dispatchers(
            &d.arms("batch_plan", "RETURN {f}(target, reg.staging, batch_size);"),
            &d.arms(
                "merge",
                "RETURN {f}(target, reg.staging, false, true, lo, hi, NULL, false, false);",
            ),
        )
}

/// The generated tables of a package, as the `CASE` of a dispatcher picks the function of the
/// called table.
struct Dispatch<'a>(&'a [TableCode]);

impl Dispatch<'_> {
    /// `CASE WHEN <is table t> THEN <call of t's function `what`> ... ELSE <not generated> END
    /// CASE;` (`call`: `{f}` the function, `{m}` the table's merge).
    fn arms(&self, what: &str, call: &str) -> String {
        let not_generated = "RAISE EXCEPTION 'the package has no merge for table %', dwr._display(target)\n\
             USING ERRCODE = '55000', DETAIL = pg_catalog.format('%s was registered after the package %s was generated.', dwr._display(target), 'dms_window_reload_tle'),\n\
             HINT = 'Generate the package again: dwr tle install <connection string>.';";
        if self.0.is_empty() {
            return not_generated.to_string();
        }
        let cases = self
            .0
            .iter()
            .map(|t| {
                format!(
                    "    WHEN {} THEN {}",
                    t.is_target,
                    call.replace("{f}", &fname(&t.prefix, what))
                        .replace("{m}", &fname(&t.prefix, "merge"))
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        format!("CASE\n{cases}\n    ELSE {not_generated}\nEND CASE;")
    }
}

/// `dwr_merge` and `dwr_verify`: the called table's generated functions.
fn merge_and_verify(d: &Dispatch) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION @extschema@.dwr_merge(target pg_catalog.regclass,\n\
         dry_run pg_catalog.bool DEFAULT false, source pg_catalog.regclass DEFAULT NULL)\n\
         RETURNS dwr.merge_result LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE\n\
         {NO_JIT} AS {Q}\n\
         {}\
         {}\nEND\n{Q};\n\
         COMMENT ON FUNCTION @extschema@.dwr_merge(pg_catalog.regclass, pg_catalog.bool, pg_catalog.regclass) IS\n\
         'Merges the NEW rows of target''s staging table into target: a staged row replaces a production row only when its version is strictly greater, inserts a missing key, and ends PROCESSED, SKIPPED or ERROR. One transaction; dry_run computes every count and changes nothing; with source, merges that table''s (or view''s) rows instead, never writing it. (pg_tle package: runs the merge generated for the table; a source is read through the staging table''s columns.)';\n\n\
         CREATE OR REPLACE FUNCTION @extschema@.dwr_verify(target pg_catalog.regclass)\n\
         RETURNS TABLE (column_name pg_catalog.text, problem pg_catalog.text,\n\
         production_type pg_catalog.text, staging_type pg_catalog.text,\n\
         severity pg_catalog.text, detail pg_catalog.text)\n\
         LANGUAGE plpgsql STABLE {NO_JIT} AS {Q}\n\
         {}\
         {}\nEND\n{Q};\n\
         COMMENT ON FUNCTION @extschema@.dwr_verify(pg_catalog.regclass) IS\n\
         'Type and shape problems between target and its staging table: column, problem code, both types, severity (error, warning, info) and a detail. (pg_tle package: the findings of the generator, refused when the tables changed since.)';\n",
        dispatch_prologue(
            "dwr_merge",
            "IF dry_run IS NULL THEN PERFORM dwr._raise_null('dwr_merge', 'dry_run'); END IF;\n",
        ),
        d.arms(
            "merge",
            "RETURN {f}(target, reg.staging, dry_run, false, NULL, NULL, source, false, false);",
        ),
        dispatch_prologue("dwr_verify", ""),
        d.arms("verify", "RETURN QUERY SELECT * FROM {f}(target, reg.staging);"),
    )
}

/// `dwr._diff_query` (dwr_diff, dwr_diff_summary): the called table's comparison.
fn diff_dispatcher(d: &Dispatch) -> String {
    format!(
        "\nCREATE OR REPLACE FUNCTION dwr._diff_query(target pg_catalog.regclass, source pg_catalog.regclass,\n\
         summary pg_catalog.bool)\n\
         RETURNS pg_catalog.text LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS {Q}\n\
         {}\
         IF source IS NULL THEN\n    PERFORM dwr._check_staging_owner(target, reg.staging);\n\
         ELSE\n    PERFORM dwr._check_source(target, source);\nEND IF;\n\
         {}\nEND\n{Q};\n\
         COMMENT ON FUNCTION dwr._diff_query(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.bool) IS\n\
         'Implementation of dwr_diff and dwr_diff_summary: the SQL of the comparison ($1, $2: the open reload''s window). (pg_tle package: the one generated for the table; a source is read through the staging table''s columns.)';\n",
        dispatch_prologue("dwr_diff", ""),
        d.arms(
            "diff_query",
            &"RETURN CASE WHEN source IS NULL THEN {f}(target, reg.staging, summary, false)\n\
             ELSE pg_catalog.format('WITH %I AS (%s) SELECT * FROM (%s) d', {copy}, dwr._source_select(reg.staging, source),\n\
             {f}(target, reg.staging, summary, true)) END;"
                .replace("{copy}", &quote_literal(source::COPY)),
        ),
    )
}

/// `dwr_replay`: the change log copied through the staging table's columns, then the called
/// table's merge of it.
fn replay_dispatcher(d: &Dispatch) -> String {
    format!(
        "\nCREATE OR REPLACE FUNCTION @extschema@.dwr_replay(target pg_catalog.regclass, changes pg_catalog.regclass,\n\
         order_by pg_catalog.text[], operation pg_catalog.text DEFAULT 'Op', dry_run pg_catalog.bool DEFAULT false)\n\
         RETURNS dwr.merge_result LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE\n\
         {NO_JIT} AS {Q}\n\
         {}\
         {}\nEND\n{Q};\n\
         COMMENT ON FUNCTION @extschema@.dwr_replay(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.text[], pg_catalog.text, pg_catalog.bool) IS\n\
         'Replays change log changes into target: per key the last change by order_by decides; I and U (c, u, r) are merged as staged rows are, D (d) removes production''s row when production''s version is not newer than the D''s version column, and stops an older row of the key from being inserted later in the reload. (pg_tle package: the log is read through the staging table''s columns, as a source is.)';\n",
        dispatch_prologue(
            "dwr_replay",
            "IF changes IS NULL THEN PERFORM dwr._raise_null('dwr_replay', 'changes'); END IF;\n\
             IF order_by IS NULL OR pg_catalog.array_position(order_by, NULL) IS NOT NULL THEN PERFORM dwr._raise_null('dwr_replay', 'order_by'); END IF;\n\
             IF operation IS NULL THEN PERFORM dwr._raise_null('dwr_replay', 'operation'); END IF;\n\
             IF dry_run IS NULL THEN PERFORM dwr._raise_null('dwr_replay', 'dry_run'); END IF;\n",
        ),
        d.arms(
            "merge",
            "PERFORM dwr._check_source(target, changes);\n    \
             PERFORM dwr._copy_change_log(reg.staging, changes, operation, order_by);\n    \
             RETURN {f}(target, reg.staging, dry_run, false, NULL, NULL, changes, true, false);",
        ),
    )
}

/// `dwr_delete_absent`: the candidates counted and refused over the limit, then the called table's
/// removal.
fn delete_absent_dispatcher(d: &Dispatch) -> String {
    format!(
        "\nCREATE OR REPLACE FUNCTION @extschema@.dwr_delete_absent(target pg_catalog.regclass,\n\
         max_deletes pg_catalog.int8, dry_run pg_catalog.bool DEFAULT false)\n\
         RETURNS dwr.merge_result LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE\n\
         {NO_JIT} AS {Q}\n\
         {}\
         SELECT r.window_start, r.window_end INTO ws, we FROM dwr.reloads r\n\
          WHERE r.ended_at IS NULL AND target OPERATOR(pg_catalog.=) ANY (r.targets);\n\
         IF ws IS NULL THEN\n    {}\nEND IF;\n\
         {}\nEND\n{Q};\n\
         COMMENT ON FUNCTION @extschema@.dwr_delete_absent(pg_catalog.regclass, pg_catalog.int8, pg_catalog.bool) IS\n\
         'Once the window''s full load in staging is complete: removes the production rows of the open reload''s window whose key staging lacks (in any status), each only while production''s version is still the one read (a row CDC changed since is left); refused with nothing removed when they are more than max_deletes. Merges nothing; every removed row''s before image kept, undone by dwr_undo; dry_run changes nothing.';\n",
        dispatch_prologue(
            "dwr_delete_absent",
            &format!(
                "IF max_deletes IS NULL THEN PERFORM dwr._raise_null('dwr_delete_absent', 'max_deletes'); END IF;\n\
                 IF dry_run IS NULL THEN PERFORM dwr._raise_null('dwr_delete_absent', 'dry_run'); END IF;\n\
                 IF max_deletes OPERATOR(pg_catalog.<) 0 THEN\n    {}\nEND IF;\n",
                source::raise_formatted(&DwrError::max_deletes_invalid("%1$s"), "max_deletes"),
            ),
        )
        .replace(
            "DECLARE\n",
            "DECLARE\n    ws pg_catalog.timestamptz;\n    we pg_catalog.timestamptz;\n    n pg_catalog.int8;\n",
        ),
        source::raise_formatted(
            &DwrError::absent_without_reload("%1$s"),
            "dwr._display(target)",
        ),
        d.arms(
            "absent_count",
            &"n := {f}(ws, we);\n    \
             IF n OPERATOR(pg_catalog.>) max_deletes THEN\n        {OVER}\n    END IF;\n    \
             RETURN {m}(target, reg.staging, dry_run, false, NULL, NULL, NULL, false, true);"
                .replace(
                    "{OVER}",
                    &source::raise_formatted(
                        &DwrError::absent_over_limit("%1$s", "%2$s", "%3$s"),
                        "dwr._display(target), n, max_deletes",
                    ),
                ),
        ),
    )
}

/// `dwr_undo`: the undone run's table's generated undo.
fn undo_dispatcher(d: &Dispatch) -> String {
    format!(
        "\nCREATE OR REPLACE FUNCTION @extschema@.dwr_undo(run_id pg_catalog.int8)\n\
         RETURNS dwr.merge_result LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE\n\
         {NO_JIT} AS {Q}\n\
         DECLARE\n    r record;\n    target pg_catalog.regclass;\n    nsp pg_catalog.name;\n    rel pg_catalog.name;\nBEGIN\n\
         SELECT * INTO r FROM dwr._run_to_undo(run_id);\n\
         target := r.target::pg_catalog.regclass;\n\
         {NAME_LOOKUP}\
         {}\nEND\n{Q};\n\
         COMMENT ON FUNCTION @extschema@.dwr_undo(pg_catalog.int8) IS\n\
         'Takes back a merge from its row images: deletes the rows it inserted and restores the rows it updated, leaving alone every row that changed since (CDC wins). Recorded as a run of kind undo.';\n",
        d.arms("undo", "RETURN {f}(run_id, target);"),
        NAME_LOOKUP = NAME_LOOKUP,
    )
}

/// `dwr._batch_plan` and `dwr._merge_batch`, which the shared `dwr_merge_batches` procedure calls
/// (`sql/shared.sql`): the checks of src/batch.rs, then the table's
/// generated batch plan, or its merge limited to the batch's bounds (read from the session's
/// `pg_temp._dwr_batches`). No progress in `pg_stat_activity` here: PL/pgSQL cannot set it.
fn batch_dispatchers(plan_cases: &str, merge_cases: &str) -> String {
    let size = DwrError::batch_size_invalid("%s");
    let in_transaction = DwrError::batches_in_transaction();
    let bound = crate::sqlgen::batch_bound_sql();
    format!(
        "\nCREATE OR REPLACE FUNCTION dwr._batch_plan(target pg_catalog.regclass, batch_size pg_catalog.int4)\n\
         RETURNS pg_catalog.int8 LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE\n\
         {NO_JIT} AS {Q}\n\
         {}\
         {plan_cases}\nEND\n{Q};\n\
         COMMENT ON FUNCTION dwr._batch_plan(pg_catalog.regclass, pg_catalog.int4) IS\n\
         'Implementation of dwr_merge_batches: cuts the NEW staged rows'' keys into batches of batch_size keys, in staging''s key order (bounds in pg_temp._dwr_batches); returns the number of NEW staged rows. (pg_tle package: the one generated for the table.)';\n\
         \nCREATE OR REPLACE FUNCTION dwr._merge_batch(target pg_catalog.regclass, batch pg_catalog.int4,\n\
         batches pg_catalog.int4, done pg_catalog.int8, total pg_catalog.int8, through pg_catalog.int4)\n\
         RETURNS dwr.merge_result LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE\n\
         {NO_JIT} AS {Q}\n\
         {}\
         IF batch OPERATOR(pg_catalog.>) 1 THEN\n    SELECT b.hi INTO lo FROM dwr._batch_bound(batch OPERATOR(pg_catalog.-) 1) AS b(hi);\nEND IF;\n\
         SELECT b.hi INTO hi FROM dwr._batch_bound(GREATEST(COALESCE(through, batch), batch)) AS b(hi);\n\
         {merge_cases}\nEND\n{Q};\n\
         COMMENT ON FUNCTION dwr._merge_batch(pg_catalog.regclass, pg_catalog.int4, pg_catalog.int4, pg_catalog.int8, pg_catalog.int8, pg_catalog.int4) IS\n\
         'Implementation of dwr_merge_batches: merges the staged rows of planned batches batch to through, as one merge run. (pg_tle package: the merge generated for the table, limited to the batches'' key range.)';\n\
         \nCREATE OR REPLACE FUNCTION dwr._batch_bound(n pg_catalog.int4)\n\
         RETURNS SETOF pg_catalog.text[] LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS {Q}\n\
         BEGIN\nRETURN QUERY {bound};\nEND\n{Q};\n\
         COMMENT ON FUNCTION dwr._batch_bound(pg_catalog.int4) IS\n\
         'Implementation of dwr_merge_batches: the upper bound of a planned batch (none for the last, which is open above).';\n",
        dispatch_prologue(
            "dwr_merge_batches",
            &format!(
                "IF batch_size IS NULL THEN PERFORM dwr._raise_null('dwr_merge_batches', 'batch_size'); END IF;\n\
                 IF batch_size OPERATOR(pg_catalog.<) 1 THEN\n    RAISE EXCEPTION USING MESSAGE = {}, ERRCODE = {}, DETAIL = pg_catalog.format({}, batch_size), HINT = {};\nEND IF;\n\
                 -- a CALL outside a transaction block started its transaction: the two timestamps are one\n\
                 IF pg_catalog.transaction_timestamp() OPERATOR(pg_catalog.<>) pg_catalog.statement_timestamp() THEN\n    {}\nEND IF;\n",
                quote_literal(&size.message),
                quote_literal(size.state.code()),
                quote_literal(size.detail.as_deref().unwrap_or_default()),
                quote_literal(size.hint.as_deref().unwrap_or_default()),
                raise_error(&in_transaction),
            ),
        ),
        dispatch_prologue(
            "dwr_merge_batches",
            "IF batch IS NULL THEN PERFORM dwr._raise_null('dwr_merge_batches', 'batch'); END IF;\n",
        )
        .replace("DECLARE\n", "DECLARE\n    lo pg_catalog.text[];\n    hi pg_catalog.text[];\n"),
    )
}

/// The generic functions with the package owner and the engine's rules filled in.
fn functions(owner: &str) -> String {
    FUNCTIONS_SQL
        .replace("@dwr_owner@", &quote_ident(owner))
        .replace("@is_row_error@", &crate::error::is_row_error_sql("state"))
        .replace("@row_audit@", settings::on_off(settings::ROW_AUDIT))
        .replace(
            "@row_lock_timeout_ms@",
            &settings::ROW_LOCK_TIMEOUT_MS.to_string(),
        )
        .replace(
            "@max_lock_timeouts@",
            &settings::MAX_LOCK_TIMEOUTS.to_string(),
        )
}

/// The shared deltas that take a package of base version `from` to [`BASE_VERSION`], without the
/// `\echo` guard line of an update script.
fn deltas_since(from: &str) -> String {
    let first = DELTAS
        .iter()
        .position(|(f, _, _)| *f == from)
        .unwrap_or(DELTAS.len());
    // without the `\echo` guard line of an update script and the parts only the compiled
    // extension has (between `-- @compiled-only-begin` and `-- @compiled-only-end`)
    let mut out = String::new();
    let mut compiled_only = false;
    for line in DELTAS[first..].iter().flat_map(|(_, _, sql)| sql.lines()) {
        match line.trim() {
            "-- @compiled-only-begin" => compiled_only = true,
            "-- @compiled-only-end" => compiled_only = false,
            _ if compiled_only || line.starts_with("\\echo") => {}
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The base version of a package version (`0.2.0` of `0.2.0.000003`).
pub fn base_of(version: &str) -> &str {
    version.rsplit_once('.').map_or(version, |(base, _)| base)
}

/// The whole install script of a package generated for `tables`.
pub fn install_script(tables: &[TableCode], owner: &str) -> String {
    let mut out = String::new();
    out.push_str(SCHEMA_SQL);
    out.push('\n');
    out.push_str(SHARED_SQL);
    out.push('\n');
    out.push_str(&functions(owner));
    out.push_str(&source::functions());
    for t in tables {
        out.push_str(&t.sql);
    }
    out.push_str(&dispatchers(tables));
    out.push_str(VIEWS_SQL);
    out
}

/// The update script from a package of version `installed` whose generated functions are
/// `old_functions` (their `regprocedure` text) to one generated for `tables`: the shared deltas
/// since the installed base version first.
pub fn update_script(
    installed: &str,
    old_functions: &[String],
    tables: &[TableCode],
    owner: &str,
) -> String {
    let mut out = String::new();
    for f in old_functions {
        out.push_str(&format!("DROP FUNCTION {f};\n"));
    }
    let base = base_of(installed);
    if base != BASE_VERSION {
        out.push_str(&deltas_since(base));
    }
    out.push_str(&functions(owner));
    out.push_str(&source::functions());
    for t in tables {
        out.push_str(&t.sql);
    }
    out.push_str(&dispatchers(tables));
    out
}

/// The next package version after `current` (`0.2.0.000000`, then `0.2.0.000001`, ...). The
/// generation number has a fixed width so that no version's text is part of another's: pg_tle finds
/// the scripts of a version to uninstall by a `LIKE '%<version>%'` on their names.
pub fn next_version(current: Option<&str>) -> String {
    let n = current
        .and_then(|v| v.strip_prefix(BASE_VERSION))
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.parse::<u64>().ok())
        .map(|n| n + 1)
        .unwrap_or(0);
    format!("{BASE_VERSION}.{n:06}")
}

/// Whether a function name is one the generator made (`dwr._t<n>...`).
pub fn is_generated(function_name: &str) -> bool {
    function_name
        .strip_prefix("_t")
        .map(|r| r.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_sql_installs_fresh_and_deltas_update_older_bases() {
        let install = install_script(&[], "owner");
        assert!(install.contains("CREATE OR REPLACE FUNCTION dwr._lock_for_ddl"));
        assert!(
            !install.contains("\\echo"),
            "the update guard line is not part of a package"
        );
        assert!(
            !install.contains("LANGUAGE c") && !install.contains("MODULE_PATHNAME"),
            "the compiled-only parts (C functions) are not part of a package"
        );
        assert!(
            !install.contains("DROP PROCEDURE"),
            "nor the compiled extension's replacement of its older batched merge"
        );
        assert!(install.contains("CREATE OR REPLACE PROCEDURE @extschema@.dwr_merge_batches("));
        assert!(install.contains("CREATE OR REPLACE FUNCTION @extschema@.dwr_diff("));
        // the row-error rule is the engine's, written into the package's helper
        assert!(install.contains(&format!(
            "AS $dwr$ SELECT {} $dwr$;",
            crate::error::is_row_error_sql("state")
        )));
        // every placeholder of the package's functions is filled in (@extschema@ is pg_tle's)
        let functions = functions("owner");
        for (i, _) in functions.match_indices('@') {
            let word: String = functions[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let closed = functions[i + 1 + word.len()..].starts_with('@');
            assert!(
                word == "extschema" || word.is_empty() || !closed,
                "@{word}@ is not filled in"
            );
        }
        assert!(functions.contains("OPERATOR(pg_catalog.>) 64 THEN"));
        let from_old = update_script("0.2.0.000007", &[], &[], "owner");
        assert!(from_old
            .contains("ALTER TABLE dwr.tombstones ALTER COLUMN target TYPE pg_catalog.regclass"));
        assert!(from_old.contains("PROCEDURE @extschema@.dwr_merge_batches("));
        let from_030 = update_script("0.3.0.000002", &[], &[], "owner");
        assert!(!from_030.contains("ALTER TABLE dwr.tombstones"));
        assert!(from_030.contains("PROCEDURE @extschema@.dwr_merge_batches("));
        // 0.5.0: the reload, purge and schedule functions both modes share, without the
        // compiled extension's C writes
        let from_040 = update_script("0.4.0.000003", &[], &[], "owner");
        assert!(from_040.contains("CREATE OR REPLACE FUNCTION @extschema@.dwr_begin_reload("));
        assert!(from_040.contains("CREATE FUNCTION dwr._check_not_in_reload("));
        assert!(!from_040.contains("reload_insert_wrapper"));
        // 0.6.0: the stall budget sizes every batch; dwr_diff without JIT
        let from_050 = update_script("0.5.0.000001", &[], &[], "owner");
        assert!(!from_050.contains("CREATE FUNCTION dwr._check_not_in_reload("));
        assert!(from_050.contains("PROCEDURE @extschema@.dwr_merge_batches("));
        assert!(
            from_050.contains("dwr_diff(pg_catalog.regclass, pg_catalog.regclass) SET jit = off")
        );
        let same_base = update_script(&next_version(None), &[], &[], "owner");
        assert!(!same_base.contains("CREATE FUNCTION dwr._check_not_in_reload("));
        assert!(!same_base.contains("ALTER TABLE dwr.tombstones"));
        assert!(!same_base.contains("PROCEDURE @extschema@.dwr_merge_batches("));
        assert_eq!(base_of("0.2.0.000007"), "0.2.0");
    }

    #[test]
    fn entry_points_that_run_statements_turn_jit_off() {
        let install = install_script(&[], "owner");
        for head in [
            "FUNCTION @extschema@.dwr_merge(",
            "FUNCTION @extschema@.dwr_undo(",
            "FUNCTION @extschema@.dwr_verify(",
            "FUNCTION dwr._batch_plan(",
            "FUNCTION dwr._merge_batch(",
            // shared PL/pgSQL (sql/shared.sql)
            "FUNCTION @extschema@.dwr_diff(",
            "FUNCTION @extschema@.dwr_diff_summary(",
        ] {
            let at = install
                .find(head)
                .unwrap_or_else(|| panic!("{head} in the package"));
            let header = &install[at..at + install[at..].find("AS $dwr$").expect("a body")];
            assert!(header.contains("SET jit = off"), "{header}");
        }
    }

    #[test]
    fn versions_count_up() {
        assert_eq!(next_version(None), "0.6.0.000000");
        assert_eq!(next_version(Some("0.6.0.000000")), "0.6.0.000001");
        assert_eq!(next_version(Some("0.6.0.000041")), "0.6.0.000042");
        // a package of an older base starts the new base's numbering
        assert_eq!(next_version(Some("0.2.0.000041")), "0.6.0.000000");
        assert_eq!(next_version(Some("0.5.0.000007")), "0.6.0.000000");
        // no version is part of another's text (pg_tle uninstalls by LIKE '%<version>%')
        let versions: Vec<String> = (0..200)
            .scan(None, |v: &mut Option<String>, _| {
                *v = Some(next_version(v.as_deref()));
                v.clone()
            })
            .collect();
        for a in &versions {
            assert_eq!(
                versions.iter().filter(|b| b.contains(a.as_str())).count(),
                1
            );
        }
    }

    #[test]
    fn generated_names_are_recognised() {
        assert!(is_generated("_t1_merge"));
        assert!(is_generated("_t12a_run"));
        assert!(!is_generated("_test_hold"));
        assert!(!is_generated("_registration"));
    }

    #[test]
    fn counts_follow_counts_add() {
        let c = counts_case("cls");
        assert!(c[0].contains("'{insert}'"));
        assert!(c[3].contains("'{duplicate,stale}'"));
        assert!(c[7].contains("'{error}'"));
    }

    #[test]
    fn no_dynamic_sql_in_a_generated_merge() {
        use crate::catalog::fixtures::*;
        let target = table(
            "production",
            "customers",
            vec![
                col("customer_id", INT4, "integer"),
                col("name", TEXT, "text"),
                col("updated_at", TIMESTAMP, "timestamp without time zone"),
            ],
            &["customer_id"],
        );
        let staging = staging_of(&target, "staging");
        let casts = crate::catalog::Casts::default();
        let plan = crate::plan::plan_merge(&target, &staging, &casts, "updated_at", true);
        let input = TableInput {
            problems: crate::plan::verify(&target, &staging, &casts, "updated_at", true),
            source_plan: crate::plan::plan_merge(
                &target,
                &source::copy_relation(&staging),
                &casts,
                "updated_at",
                false,
            ),
            plan,
            target,
            staging,
            target_fingerprint: "a".into(),
            staging_fingerprint: "b".into(),
            server_version_num: 150_000,
        };
        let code = table_code(1, &input, "owner");
        assert_eq!(code.target, "production.customers");
        // every statement of the compiled extension's merge and undo, word for word
        let plan = input.plan.as_ref().expect("plannable");
        for audit in [true, false] {
            let m = merge_program(
                plan,
                MergeOptions {
                    row_audit: audit,
                    ..MergeOptions::default()
                },
            );
            for stmt in m.stmts() {
                if m.cleanup.contains(stmt) {
                    // the cleanup function runs them in one body
                    assert!(code.sql.contains(&format!("{};\n", stmt.sql)));
                    continue;
                }
                assert!(code.sql.contains(&stmt.sql), "missing: {}", stmt.sql);
                // each in a function of its own, whose parameters are the statement's
                let types: Vec<&str> = stmt.params.iter().map(|p| p.sql_type()).collect();
                let prefix = if audit { "_t1a" } else { "_t1p" };
                let head = format!(
                    "CREATE FUNCTION dwr.\"{prefix}_{}\"({})",
                    stmt.name,
                    types.join(", ")
                );
                assert!(code.sql.contains(&head), "missing: {head}");
            }
        }
        // and every statement of the undo, in both variants
        for audit in [true, false] {
            for stmt in undo_program(&input.target, audit).stmts() {
                assert!(code.sql.contains(&stmt.sql), "missing: {}", stmt.sql);
            }
        }
        assert!(code
            .sql
            .contains("CREATE FUNCTION dwr.\"_t1ua_fill_work\"(pg_catalog.int8)"));
        assert!(code
            .sql
            .contains("CREATE FUNCTION dwr.\"_t1ua_write_row_changes\"("));
        assert!(!code
            .sql
            .contains("CREATE FUNCTION dwr.\"_t1up_write_row_changes\"("));
        assert!(code.sql.contains("CREATE FUNCTION dwr.\"_t1_merge\""));
        assert!(code.sql.contains("CREATE FUNCTION dwr.\"_t1a_run\""));
        assert!(code
            .sql
            .contains("CREATE FUNCTION dwr.\"_t1p_apply_updates_direct\""));
        assert!(!code.sql.contains("EXECUTE "));
        assert!(!code.sql.contains("$_pgtle_"));
        let script = install_script(&[code], "owner");
        // dwr_merge_all is the shared PL/pgSQL, defined once, not generated for the tables
        assert_eq!(
            script
                .matches("CREATE OR REPLACE FUNCTION @extschema@.dwr_merge_all(")
                .count(),
            1
        );
        assert!(script.contains(
            "WHEN nsp OPERATOR(pg_catalog.=) 'production' AND rel OPERATOR(pg_catalog.=) 'customers' THEN RETURN dwr.\"_t1_merge\""
        ));
    }
}
