//! A [`Program`] written as PL/pgSQL: one function per statement (its parameters are the
//! statement's, in `$n` order, so its SQL is used word for word), one bisecting function per ranged
//! step, and a run function that performs the steps in program order — the PL/pgSQL twin of the
//! compiled extension's SPI interpreter (`src/program.rs`), generated rather than kept by hand.

use super::{audit_writer, fname, run_count, run_query, run_void, stmt_function, tombstone_writer};
use crate::ident::quote_ident;
use crate::program::{Cond, Guard, Param, Program, Ranged, Step, Stmt};

/// The package's path to the images of a run (`UndoneRun`): run as the package owner, only for a
/// run on a table the session's user may read.
fn images_reader(name: &str, read: &Stmt) -> String {
    let run = read
        .placeholder(Param::UndoneRun)
        .expect("the images of a run are read by its id");
    stmt_function(
        name,
        &types(&read.params),
        "void",
        &format!(
            "BEGIN\nIF NOT EXISTS (SELECT FROM dwr.merge_runs r WHERE r.run_id OPERATOR(pg_catalog.=) {run} \
             AND pg_catalog.has_table_privilege(SESSION_USER, r.target, 'SELECT')) THEN\n\
             RAISE EXCEPTION 'permission denied for the images of run %', {run} USING ERRCODE = '42501';\nEND IF;\n\
             {};\nEND",
            read.sql
        ),
        true,
    )
}

/// The run function's variable holding `p` (its arguments are the run's parameters).
fn var(p: Param) -> String {
    match p {
        Param::FirstRow => "_dwr_lo".to_string(),
        Param::LastRow => "_dwr_hi".to_string(),
        _ => format!("_dwr_{}", p.name()),
    }
}

/// The name of the function of statement `s` of program `prefix`.
fn stmt_name(prefix: &str, s: &Stmt) -> String {
    fname(prefix, s.name)
}

/// A call of `s`'s function, each parameter given by `arg`.
fn call(prefix: &str, s: &Stmt, arg: &dyn Fn(Param) -> String) -> String {
    format!(
        "{}({})",
        stmt_name(prefix, s),
        s.params
            .iter()
            .map(|&p| arg(p))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn types(params: &[Param]) -> Vec<&'static str> {
    params.iter().map(|p| p.sql_type()).collect()
}

/// The parameters of a ranged step's function: those of its statements and its fallback's, in
/// declaration order.
fn ranged_params(r: &Ranged) -> Vec<Param> {
    let mut ps: Vec<Param> = r
        .all_stmts()
        .iter()
        .flat_map(|s| s.params.iter().copied())
        .chain([Param::FirstRow, Param::LastRow])
        .collect();
    ps.sort_unstable();
    ps.dedup();
    ps
}

/// The function of a ranged step (named after its first statement, `_range` appended): runs its
/// statements over `FirstRow ..= LastRow` in a subtransaction; a failure on a row error or a lock
/// wait that ran out is split in halves down to the single row `row_failed` records (the PL/pgSQL
/// of the interpreter's bisection); with a fallback, a range that ran out of `lock_timeout` is
/// handed whole to the fallback's function.
fn ranged_function(prefix: &str, r: &Ranged, row_failed: &str) -> String {
    let mut out = String::new();
    for s in &r.stmts {
        out.push_str(&run_void(&stmt_name(prefix, s), &types(&s.params), &s.sql));
    }
    let params = ranged_params(r);
    let arg = |p: Param| {
        let i = params
            .iter()
            .position(|&q| q == p)
            .expect("a ranged step's parameter");
        format!("${}", i + 1)
    };
    let name = range_name(prefix, r);
    let fall = match &r.fallback {
        Some(f) => {
            out.push_str(&ranged_function(prefix, f, row_failed));
            let fparams = ranged_params(f);
            format!(
                "    IF _dwr_st OPERATOR(pg_catalog.=) '55P03' THEN\n        PERFORM {}({});\n        RETURN;\n    END IF;\n",
                range_name(prefix, f),
                fparams.iter().map(|&p| arg(p)).collect::<Vec<_>>().join(", ")
            )
        }
        None => String::new(),
    };
    let stmts: String = r
        .stmts
        .iter()
        .map(|s| format!("PERFORM {};\n", call(prefix, s, &arg)))
        .collect();
    let (lo, hi) = (arg(Param::FirstRow), arg(Param::LastRow));
    let half = |first: &str, last: &str| {
        params
            .iter()
            .map(|&p| match p {
                Param::FirstRow => first.to_string(),
                Param::LastRow => last.to_string(),
                _ => arg(p),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let body = format!(
        "DECLARE\n    _dwr_st pg_catalog.text;\n    _dwr_msg pg_catalog.text;\n    _dwr_det pg_catalog.text;\n    _dwr_mid pg_catalog.int8;\n\
         BEGIN\n\
         IF {lo} OPERATOR(pg_catalog.>) {hi} THEN RETURN; END IF;\n\
         BEGIN\n{stmts}RETURN;\n\
         EXCEPTION WHEN OTHERS THEN\n\
         GET STACKED DIAGNOSTICS _dwr_st = RETURNED_SQLSTATE, _dwr_msg = MESSAGE_TEXT, _dwr_det = PG_EXCEPTION_DETAIL;\n\
         {fall}\
             IF NOT dwr._is_row_error(_dwr_st) AND _dwr_st OPERATOR(pg_catalog.<>) '55P03' THEN RAISE; END IF;\n\
             IF {lo} OPERATOR(pg_catalog.=) {hi} THEN\n        PERFORM {row_failed}({lo}, _dwr_st, _dwr_msg, NULLIF(_dwr_det, ''));\n        RETURN;\n    END IF;\n\
         END;\n\
         _dwr_mid := {lo} OPERATOR(pg_catalog.+) (({hi} OPERATOR(pg_catalog.-) {lo}) OPERATOR(pg_catalog./) 2);\n\
         PERFORM {name}({});\n\
         PERFORM {name}({});\n\
         END",
        half(&lo, "_dwr_mid"),
        half("_dwr_mid OPERATOR(pg_catalog.+) 1", &hi),
    );
    out.push_str(&stmt_function(&name, &types(&params), "void", &body, false));
    out
}

fn range_name(prefix: &str, r: &Ranged) -> String {
    fname(prefix, &format!("{}_range", r.stmts[0].name))
}

/// The generated functions of `program` (prefix `prefix`) and its run function `<prefix>_run`:
/// arguments the run's parameters ([`Param::OF_RUN`], named `_dwr_<name>`); the caller reads the
/// counts with [`counts_function`] and leaves the cleanup to `<prefix>_cleanup` (after the counts
/// are read; a dry run's rollback needs none). `owner` is the package owner (the audit path's
/// role).
///
/// Programs of the local topology only: sparse row numbers and skipped tails are Citus's, which
/// the package does not run.
pub fn program_functions(prefix: &str, program: &Program, owner: &str) -> String {
    let f = |what: &str| fname(prefix, what);
    let mut out = String::new();
    let (me, md) = (&program.mark_error, &program.mark_deferred);
    out.push_str(&run_void(
        &stmt_name(prefix, me),
        &types(&me.params),
        &me.sql,
    ));
    out.push_str(&run_void(
        &stmt_name(prefix, md),
        &types(&md.params),
        &md.sql,
    ));
    // the single row a bisection could not write: a lock wait that ran out defers it (counted:
    // past the limit the merge gives up), any other row error marks it ERROR with the message and
    // detail
    let failed_args = |p: Param| {
        match p {
        Param::Row => "$1".to_string(),
        Param::ErrorText => "$3 OPERATOR(pg_catalog.||) COALESCE(' (' OPERATOR(pg_catalog.||) $4 OPERATOR(pg_catalog.||) ')', '')".to_string(),
        other => panic!("mark statements read the row and its error, not {other:?}"),
    }
    };
    out.push_str(&stmt_function(
        &f("row_failed"),
        &["pg_catalog.int8", "pg_catalog.text", "pg_catalog.text", "pg_catalog.text"],
        "void",
        &format!(
            "BEGIN\nIF $2 OPERATOR(pg_catalog.=) '55P03' THEN\n    PERFORM dwr._count_lock_timeout();\n    PERFORM {};\n\
             ELSE\n    PERFORM {};\nEND IF;\nEND",
            call(prefix, md, &failed_args),
            call(prefix, me, &failed_args),
        ),
        false,
    ));

    let mut body = String::from(
        "DECLARE\n    _dwr_fast pg_catalog.bool;\n    _dwr_lo pg_catalog.int8;\n    _dwr_hi pg_catalog.int8;\n    _dwr_staged pg_catalog.int8;\n    _dwr_saved pg_catalog.text := pg_catalog.current_setting('lock_timeout');\n\
         _dwr_started pg_catalog.timestamptz := pg_catalog.clock_timestamp();\n\
         BEGIN\n\
         PERFORM pg_catalog.set_config('dwr.lock_timeouts_in_run', '0', true);\n",
    );
    emit_steps(&program.steps, prefix, owner, &mut out, &mut body);
    let c = &program.counts;
    assert!(c.params.is_empty(), "the counts read only the work table");
    out.push_str(&run_query(
        &stmt_name(prefix, c),
        &[],
        "TABLE (cls pg_catalog.text, n pg_catalog.int8)",
        &c.sql,
    ));
    body.push_str("END");
    let cleanup: String = program
        .cleanup
        .iter()
        .map(|s| {
            assert!(s.params.is_empty(), "cleanup statements take no parameters");
            format!("{};\n", s.sql)
        })
        .collect();
    out.push_str(&stmt_function(
        &f("cleanup"),
        &[],
        "void",
        &format!("BEGIN\n{cleanup}END"),
        false,
    ));
    let args: Vec<String> = Param::OF_RUN
        .iter()
        .map(|&p| format!("{} {}", var(p), p.sql_type()))
        .collect();
    out.push_str(&stmt_function(
        &f("run"),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "void",
        &body,
        false,
    ));
    out
}

/// The function returning the counts by class (`cls`, `n`) of program `prefix`, after its run.
pub fn counts_function(prefix: &str, program: &Program) -> String {
    stmt_name(prefix, &program.counts)
}

/// A call of the run function of program `prefix`, each run parameter given by `arg`.
pub fn run_call(prefix: &str, arg: &dyn Fn(Param) -> String) -> String {
    format!(
        "{}({})",
        fname(prefix, "run"),
        Param::OF_RUN
            .iter()
            .map(|&p| arg(p))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The statement functions of `steps` into `out` and their calls into the run function's `body`.
fn emit_steps(steps: &[Step], prefix: &str, owner: &str, out: &mut String, body: &mut String) {
    let f = |what: &str| fname(prefix, what);
    let v = |p: Param| var(p);
    for step in steps {
        match step {
        Step::Run(s) => {
            push_once(out, &run_void(&stmt_name(prefix, s), &types(&s.params), &s.sql));
            body.push_str(&format!("PERFORM {};\n", call(prefix, s, &v)));
        }
        Step::Configured {
            stmt,
            setting,
            value,
        } => {
            // the function's own SET clause: the server sets the parameter back when it returns
            let def = run_void(&stmt_name(prefix, stmt), &types(&stmt.params), &stmt.sql);
            push_once(out, &configured(&def, setting, value));
            body.push_str(&format!("PERFORM {};\n", call(prefix, stmt, &v)));
        }
        Step::Rows(s) => {
            push_once(out, &run_count(&stmt_name(prefix, s), &types(&s.params), &s.sql));
            body.push_str(&format!(
                "_dwr_lo := 1;\n_dwr_hi := {};\n_dwr_staged := _dwr_hi;\n",
                call(prefix, s, &v)
            ));
        }
        Step::RowRange(s) => {
            push_once(out, &run_query(
                &stmt_name(prefix, s),
                &types(&s.params),
                "TABLE (lo pg_catalog.int8, hi pg_catalog.int8)",
                &s.sql,
            ));
            body.push_str(&format!(
                "SELECT r.lo, r.hi INTO _dwr_lo, _dwr_hi FROM {} AS r;\n",
                call(prefix, s, &v)
            ));
        }
        Step::Ranged(r) => {
            assert!(
                r.rows_in_range.is_none() && r.skip_tail_when_all.is_none(),
                "the package runs programs of the local topology"
            );
            push_once(out, &ranged_function(prefix, r, &f("row_failed")));
            let params = ranged_params(r);
            let run = format!(
                "PERFORM {}({});\n",
                range_name(prefix, r),
                params
                    .iter()
                    .map(|&p| var(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if r.waits_for_rows {
                body.push_str(&format!(
                    "PERFORM pg_catalog.set_config('lock_timeout', dwr._row_lock_timeout(), true);\n{run}\
                     PERFORM pg_catalog.set_config('lock_timeout', _dwr_saved, true);\n"
                ));
            } else {
                body.push_str(&run);
            }
        }
        Step::Hold => body.push_str(&format!(
            "PERFORM dwr._test_hold();\nPERFORM dwr._writes_begin({});\n",
            var(Param::RunId)
        )),
        Step::Phase(name) => body.push_str(&format!(
            "PERFORM dwr._merge_progress({}::pg_catalog.regclass, {}, _dwr_staged, _dwr_started);\n",
            var(Param::Target),
            crate::ident::quote_literal(name)
        )),
        Step::When { when, then } => {
            let mut open = String::new();
            let mut close = String::new();
            for c in when {
                let s = c.stmt();
                match c {
                    Cond::Holds(_) => {
                        push_once(out, &run_query(
                            &stmt_name(prefix, s),
                            &types(&s.params),
                            "SETOF pg_catalog.bool",
                            &s.sql,
                        ));
                        open.push_str(&format!(
                            "IF (SELECT b FROM {} AS b LIMIT 1) THEN\n",
                            call(prefix, s, &v)
                        ));
                    }
                    Cond::Wrote(_) => {
                        push_once(out, &run_count(
                            &stmt_name(prefix, s),
                            &types(&s.params),
                            &s.sql,
                        ));
                        open.push_str(&format!(
                            "IF {} OPERATOR(pg_catalog.>) 0 THEN\n",
                            call(prefix, s, &v)
                        ));
                    }
                }
                close.push_str("END IF;\n");
            }
            body.push_str(&open);
            for s in then {
                push_once(out, &run_void(&stmt_name(prefix, s), &types(&s.params), &s.sql));
                body.push_str(&format!("PERFORM {};\n", call(prefix, s, &v)));
            }
            body.push_str(&close);
        }
        Step::AsOwner { share, stmt, guard } => {
            push_once(out, &match guard {
                Guard::RunningRun(kind) => audit_writer(&stmt_name(prefix, stmt), kind, stmt),
                Guard::ReadableRun => images_reader(&stmt_name(prefix, stmt), stmt),
                Guard::MergingTarget => tombstone_writer(&stmt_name(prefix, stmt), stmt),
            });
            if let Some(table) = share {
                body.push_str(&format!(
                    "GRANT SELECT, INSERT, UPDATE ON {table} TO {};\n",
                    quote_ident(owner)
                ));
            }
            body.push_str(&format!("PERFORM {};\n", call(prefix, stmt, &v)));
        }
            Step::Attempt { first, otherwise } => {
                // the fast way in a block of its own (a subtransaction): a lock wait that ran out,
                // a row's error or a deadlock rolls it back and the step-by-step way runs
                body.push_str(&format!(
                    "_dwr_fast := COALESCE(NULLIF(pg_catalog.current_setting('dwr.fast_merge', true), ''), '{}')::pg_catalog.bool\n\
                     AND COALESCE(NULLIF(pg_catalog.current_setting('dwr.test_hold_after_classify', true), ''), '0') OPERATOR(pg_catalog.=) '0';\n\
                     IF _dwr_fast THEN\nBEGIN\n\
                     PERFORM pg_catalog.set_config('lock_timeout', dwr._row_lock_timeout(), true);\n",
                    crate::settings::on_off(crate::settings::FAST_MERGE),
                ));
                emit_steps(first, prefix, owner, out, body);
                body.push_str(
                    "PERFORM pg_catalog.set_config('lock_timeout', _dwr_saved, true);\n\
                     EXCEPTION WHEN OTHERS THEN\n\
                     IF NOT (SQLSTATE OPERATOR(pg_catalog.=) ANY ('{55P03,40P01,21000}') OR dwr._is_row_error(SQLSTATE)) THEN\n    RAISE;\nEND IF;\n\
                     _dwr_fast := false;\nEND;\nEND IF;\nIF NOT _dwr_fast THEN\n",
                );
                emit_steps(otherwise, prefix, owner, out, body);
                body.push_str("END IF;\n");
            }
        }
    }
}

/// Function definition `def` (of `stmt_function`) with `SET setting = value` for the time it runs.
fn configured(def: &str, setting: &str, value: &str) -> String {
    const PINNED: &str = "SET search_path = pg_catalog, pg_temp AS ";
    assert!(def.contains(PINNED), "a statement function: {def}");
    def.replacen(
        PINNED,
        &format!(
            "SET search_path = pg_catalog, pg_temp SET {} = {} AS ",
            quote_ident(setting),
            crate::ident::quote_literal(value)
        ),
        1,
    )
}

/// Add the function definition `def` to `out` unless it is there already (a statement both ways
/// of an attempt run, such as the work table's `ANALYZE`).
fn push_once(out: &mut String, def: &str) {
    let head = def
        .lines()
        .find(|l| l.starts_with("CREATE FUNCTION"))
        .unwrap_or(def);
    if !out.contains(head) {
        out.push_str(def);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::Params;

    #[test]
    fn a_ranged_step_splits_and_records_single_rows() {
        let mut p = Params::new();
        let stmt = format!(
            "UPDATE t SET a = 1 WHERE n >= {} AND n <= {} AND b = {}",
            p.get(Param::FirstRow),
            p.get(Param::LastRow),
            p.get(Param::Since)
        );
        let r = Ranged::one(p.stmt("write", stmt), true);
        let f = ranged_function("_t1p", &r, "dwr.\"_t1p_row_failed\"");
        // its parameters in declaration order: Since before FirstRow, LastRow
        assert!(f.contains("CREATE FUNCTION dwr.\"_t1p_write_range\"(pg_catalog.timestamptz, pg_catalog.int8, pg_catalog.int8)"), "{f}");
        // the statement called with its own parameter order, mapped by name
        assert!(f.contains("PERFORM dwr.\"_t1p_write\"($2, $3, $1);"), "{f}");
        // halves: the first up to the middle, the second from after it
        assert!(
            f.contains("PERFORM dwr.\"_t1p_write_range\"($1, $2, _dwr_mid);"),
            "{f}"
        );
        assert!(
            f.contains(
                "PERFORM dwr.\"_t1p_write_range\"($1, _dwr_mid OPERATOR(pg_catalog.+) 1, $3);"
            ),
            "{f}"
        );
        assert!(
            f.contains("PERFORM dwr.\"_t1p_row_failed\"($2, _dwr_st"),
            "{f}"
        );
        assert!(f.contains("IF NOT dwr._is_row_error(_dwr_st)"));
        assert!(!f.contains("EXECUTE"));
    }

    #[test]
    fn a_configured_step_is_a_function_with_its_setting() {
        let analyze = Step::analyze(Stmt::plain("analyze_work", "ANALYZE pg_temp.w".into()));
        let (mut out, mut body) = (String::new(), String::new());
        emit_steps(&[analyze], "_t1p", "owner", &mut out, &mut body);
        // the server sets the parameter back when the function returns
        assert!(
            out.contains(
                "SET search_path = pg_catalog, pg_temp SET \"default_statistics_target\" = '10' AS "
            ),
            "{out}"
        );
        assert!(out.contains("ANALYZE pg_temp.w;"), "{out}");
        assert_eq!(body, "PERFORM dwr.\"_t1p_analyze_work\"();\n");
    }
}
