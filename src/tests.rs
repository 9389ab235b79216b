//! `#[pg_test]`s: what needs a running server. SQL-level scenarios live in `pg_test/`.

use pgrx::prelude::*;

#[pg_test]
fn merge_inserts_updates_and_skips() {
    Spi::run("CREATE SCHEMA production; CREATE TABLE production.c (id int PRIMARY KEY, name text, updated_at timestamp)").unwrap();
    Spi::run("INSERT INTO production.c VALUES (1, 'a', '2025-01-01'), (2, 'b', '2025-01-01')")
        .unwrap();
    Spi::run("SELECT dwr_create_staging('production.c')").unwrap();
    Spi::run("INSERT INTO staging.c (id, name, updated_at) VALUES (1, 'a2', '2025-01-02'), (2, 'b0', '2024-12-31'), (3, 'c', '2025-01-01')").unwrap();
    let (ins, upd, stale) = Spi::get_three::<i64, i64, i64>(
        "SELECT inserted, updated, skipped_stale FROM dwr_merge('production.c')",
    )
    .unwrap();
    assert_eq!((ins, upd, stale), (Some(1), Some(1), Some(1)));
    let name = Spi::get_one::<String>("SELECT name FROM production.c WHERE id = 1").unwrap();
    assert_eq!(name.as_deref(), Some("a2"));
}
