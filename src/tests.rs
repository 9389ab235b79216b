//! `#[pg_test]`s: what needs a running server but is not a SQL scenario (those live in
//! `pg_test/sql`): the execution edge's own machinery.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use crate::exec::{self, rolled_back, sqlstate_code, sqlstate_text, subtransaction};
    use crate::program::{self, Bindings};
    use dwr_engine::program::{Param, Params, Program, Ranged, Step, Stmt};
    use pgrx::prelude::*;

    /// A program of one ranged statement over rows 1..=100 that marks the rows it cannot write in
    /// table `bad` (row, error): the interpreter's bisection on its own.
    fn ranged(sql: impl FnOnce(&str, &str) -> String) -> Program {
        let mut p = Params::new();
        let (lo, hi) = (p.get(Param::FirstRow), p.get(Param::LastRow));
        let stmt = p.stmt("write", sql(&lo, &hi));
        let mut p = Params::new();
        let (row, error) = (p.get(Param::Row), p.get(Param::ErrorText));
        let mark_error = p.stmt(
            "mark_row_error",
            format!("INSERT INTO bad VALUES ({row}, {error})"),
        );
        let mut p = Params::new();
        let row = p.get(Param::Row);
        let mark_deferred = p.stmt(
            "mark_row_deferred",
            format!("INSERT INTO bad VALUES ({row}, 'deferred')"),
        );
        Program {
            steps: vec![
                Step::RowRange(Stmt::plain("rows", "SELECT 1::int8, 100::int8".into())),
                Step::Ranged(Ranged::one(stmt, false)),
            ],
            mark_error,
            mark_deferred,
            counts: Stmt::plain("counts", "SELECT 'x'::text, 0::int8 WHERE false".into()),
            cleanup: vec![],
            propagate_settings: false,
            halves_wait_ms: None,
        }
    }

    fn bindings() -> Bindings {
        Bindings::for_undo(pg_sys::Oid::INVALID, 0, 0)
    }

    #[pg_test]
    fn sqlstates_round_trip() {
        for code in [
            "22004", "22023", "42501", "42703", "55000", "55P03", "0A000", "P0001", "23505",
        ] {
            assert_eq!(sqlstate_text(sqlstate_code(code)), code);
        }
        assert_eq!(
            sqlstate_code("23505"),
            PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
            "MAKE_SQLSTATE packs the code the server's way"
        );
    }

    #[pg_test]
    fn subtransaction_rolls_back_only_its_own_work() {
        Spi::run("CREATE TABLE sub_t (id int PRIMARY KEY)").unwrap();
        exec::execute("INSERT INTO sub_t VALUES (1)", &[]);
        let failed = subtransaction(|| {
            exec::execute("INSERT INTO sub_t VALUES (2)", &[]);
            exec::execute("INSERT INTO sub_t VALUES (1)", &[]); // unique violation
        });
        let e = failed.unwrap_err();
        assert_eq!(e.sqlstate, "23505");
        assert!(e.is_row_error());
        assert!(e.message.contains("duplicate key"), "{}", e.message);
        // 2 was rolled back with the subtransaction, 1 survives, and the transaction goes on
        let ids = Spi::get_one::<String>("SELECT string_agg(id::text, ',' ORDER BY id) FROM sub_t")
            .unwrap();
        assert_eq!(ids.as_deref(), Some("1"));
        assert!(subtransaction(|| exec::execute("INSERT INTO sub_t VALUES (3)", &[])).is_ok());
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM sub_t").unwrap(),
            Some(2)
        );
    }

    #[pg_test]
    fn rolled_back_keeps_the_result_and_drops_the_changes() {
        Spi::run("CREATE TABLE rb_t (id int)").unwrap();
        let n = rolled_back(|| {
            exec::execute("INSERT INTO rb_t SELECT generate_series(1, 5)", &[]);
            exec::query_one::<i64>("SELECT count(*) FROM rb_t", &[])
        })
        .unwrap();
        assert_eq!(n, Some(5));
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM rb_t").unwrap(),
            Some(0)
        );
    }

    #[pg_test]
    fn bisect_isolates_exactly_the_bad_rows() {
        Spi::run("CREATE TABLE bis_src (rn bigint, v text); CREATE TABLE bis_dst (v int CHECK (v <> 13))").unwrap();
        Spi::run("INSERT INTO bis_src SELECT g, CASE WHEN g IN (7, 13, 64) THEN 'x' || g ELSE g::text END FROM generate_series(1, 100) g").unwrap();
        Spi::run("UPDATE bis_src SET v = '13' WHERE rn = 13").unwrap();
        Spi::run("CREATE TABLE bad (rn bigint, err text)").unwrap();
        program::run(
            &ranged(|lo, hi| {
                format!("INSERT INTO bis_dst SELECT v::int FROM bis_src WHERE rn >= {lo} AND rn <= {hi}")
            }),
            &bindings(),
        );
        assert_eq!(
            Spi::get_one::<String>("SELECT string_agg(rn || ': ' || err, '; ' ORDER BY rn) FROM bad")
                .unwrap()
                .as_deref(),
            Some(
                "7: invalid input syntax for type integer: \"x7\"; \
                 13: new row for relation \"bis_dst\" violates check constraint \"bis_dst_v_check\" (Failing row contains (13).); \
                 64: invalid input syntax for type integer: \"x64\""
            )
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM bis_dst").unwrap(),
            Some(97)
        );
    }

    #[pg_test]
    #[should_panic(expected = "canceling statement due to user request")]
    fn bisect_does_not_swallow_errors_that_are_not_about_a_row() {
        // a cancel (57014) in the middle of a ranged statement must fail the merge, not mark rows
        Spi::run(
            "CREATE FUNCTION cancel_at(lo int8, hi int8) RETURNS void LANGUAGE plpgsql AS $$ \
             BEGIN IF lo <= 5 AND hi >= 5 THEN \
               RAISE EXCEPTION 'canceling statement due to user request' USING ERRCODE = 'query_canceled'; \
             END IF; END $$",
        )
        .unwrap();
        Spi::run("CREATE TABLE bad (rn bigint, err text)").unwrap();
        program::run(
            &ranged(|lo, hi| format!("SELECT cancel_at({lo}, {hi})")),
            &bindings(),
        );
    }

    #[pg_test]
    fn as_role_switches_and_restores_the_user() {
        Spi::run("CREATE ROLE dwr_test_other").unwrap();
        let other = Spi::get_one::<pg_sys::Oid>("SELECT 'dwr_test_other'::regrole::oid")
            .unwrap()
            .unwrap();
        let me = exec::current_user();
        let inside = exec::as_role(other, || {
            exec::query_one::<String>("SELECT current_user::text", &[])
        });
        assert_eq!(inside.as_deref(), Some("dwr_test_other"));
        assert_eq!(exec::current_user(), me);
    }

    #[pg_test]
    fn merge_returns_a_merge_result_row() {
        Spi::run(
            "CREATE SCHEMA p; CREATE TABLE p.c (id int PRIMARY KEY, name text, updated_at timestamp); \
             INSERT INTO p.c VALUES (1, 'a', '2025-01-01'), (2, 'b', '2025-01-01')",
        )
        .unwrap();
        Spi::run("SELECT dwr_create_staging('p.c')").unwrap();
        Spi::run(
            "INSERT INTO staging.c (id, name, updated_at) VALUES \
             (1, 'a2', '2025-01-02'), (2, 'b0', '2024-12-31'), (3, 'c', '2025-01-01')",
        )
        .unwrap();
        let (ins, upd, stale) = Spi::get_three::<i64, i64, i64>(
            "SELECT inserted, updated, skipped_stale FROM dwr_merge('p.c')",
        )
        .unwrap();
        assert_eq!((ins, upd, stale), (Some(1), Some(1), Some(1)));
        let run_status = Spi::get_one::<String>(
            "SELECT status FROM dwr.merge_runs ORDER BY run_id DESC LIMIT 1",
        )
        .unwrap();
        assert_eq!(run_status.as_deref(), Some("SUCCEEDED"));
    }
}
