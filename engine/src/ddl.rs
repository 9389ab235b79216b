//! SQL text for the staging tables: create one from a production table, or adopt one a DMS full
//! load created.

use crate::catalog::Relation;
use crate::ident::{quote_ident, quote_literal, quote_qualified};
use crate::plan::{META_ERROR, META_LOADED_AT, META_RUN_ID, META_STATUS};

/// The name of the delete-tracking trigger on a registered production table.
pub const DELETE_TRIGGER: &str = "dwr_record_delete";

/// A trigger of `target` that fires whatever `session_replication_role` says (`ENABLE ALWAYS`: CDC
/// appliers run with `replica`), calling `function` with the primary key's column names: its
/// `CREATE TRIGGER` (`events` such as `AFTER DELETE`, `level` `ROW` or `STATEMENT`) and its
/// `ALTER TABLE`.
fn key_trigger(
    target: &Relation,
    trigger: &str,
    events: &str,
    level: &str,
    function: &str,
) -> Vec<String> {
    let keys = target
        .primary_key
        .as_ref()
        .map(|pk| pk.columns.clone())
        .unwrap_or_default();
    let args: Vec<String> = keys.iter().map(|k| quote_literal(k)).collect();
    let trigger = quote_ident(trigger);
    vec![
        format!(
            "CREATE TRIGGER {trigger} {events} ON {} FOR EACH {level} EXECUTE FUNCTION {function}({})",
            target.quoted(),
            args.join(", ")
        ),
        format!("ALTER TABLE {} ENABLE ALWAYS TRIGGER {trigger}", target.quoted()),
    ]
}

/// `DROP TRIGGER trigger ON target`.
fn drop_trigger(target: &Relation, trigger: &str) -> String {
    format!(
        "DROP TRIGGER {} ON {}",
        quote_ident(trigger),
        target.quoted()
    )
}

/// Install delete tracking on `target` (drop an older one first with [`remove_delete_tracking`]):
/// an `AFTER DELETE FOR EACH ROW` trigger calling `dwr._record_delete` with the primary key's column
/// names, `ENABLE ALWAYS` so that it fires when the applier runs with
/// `session_replication_role = replica`.
pub fn install_delete_tracking(target: &Relation) -> Vec<String> {
    key_trigger(
        target,
        DELETE_TRIGGER,
        "AFTER DELETE",
        "ROW",
        "dwr._record_delete",
    )
}

/// Remove delete tracking from `target`.
pub fn remove_delete_tracking(target: &Relation) -> String {
    drop_trigger(target, DELETE_TRIGGER)
}

/// The name of the statement trigger that arms the compiled extension's capture of a `DELETE` by
/// key that matched no row (the extension's `missed_deletes` module).
pub const MISSED_DELETE_TRIGGER: &str = "dwr_record_missed_delete";

/// Install the capture of deletes by key that match no row on `target` (the compiled extension,
/// a table on this server): a `BEFORE DELETE FOR EACH STATEMENT` trigger calling
/// `dwr._arm_missed_deletes` with the primary key's column names, `ENABLE ALWAYS` (drop an older
/// one first with [`remove_missed_delete_tracking`]).
pub fn install_missed_delete_tracking(target: &Relation) -> Vec<String> {
    key_trigger(
        target,
        MISSED_DELETE_TRIGGER,
        "BEFORE DELETE",
        "STATEMENT",
        "dwr._arm_missed_deletes",
    )
}

/// Remove the capture of missed deletes from `target`.
pub fn remove_missed_delete_tracking(target: &Relation) -> String {
    drop_trigger(target, MISSED_DELETE_TRIGGER)
}

/// The statuses a staged row can have.
pub const STATUSES: [&str; 4] = ["NEW", "PROCESSED", "SKIPPED", "ERROR"];

fn status_check() -> String {
    format!(
        "CHECK ({} OPERATOR(pg_catalog.=) ANY ('{{{}}}'::pg_catalog.text[]))",
        quote_ident(META_STATUS),
        STATUSES.join(",")
    )
}

/// The metadata column definitions, as in `CREATE TABLE` or `ADD COLUMN`.
pub fn meta_column_defs() -> [String; 4] {
    [
        format!(
            "{} pg_catalog.text NOT NULL DEFAULT 'NEW' {}",
            quote_ident(META_STATUS),
            status_check()
        ),
        format!(
            "{} pg_catalog.timestamptz DEFAULT pg_catalog.clock_timestamp()",
            quote_ident(META_LOADED_AT)
        ),
        format!("{} pg_catalog.text", quote_ident(META_ERROR)),
        format!("{} pg_catalog.int8", quote_ident(META_RUN_ID)),
    ]
}

/// The fill factor of the staging tables `create_staging` makes. A merge rewrites every staged row
/// once to write its status; with half of each page free, that new row version lands on the same
/// page as a heap-only tuple: no new index entry, no other page touched, a smaller WAL record. At
/// 100 the status write-back moves every row to a new page and adds an index entry for it (the
/// benchmark in `bench/merge.sql` measures the difference).
pub const STAGING_FILLFACTOR: u32 = 50;

/// `CREATE TABLE staging_schema.<target name>`: every production column with its type (generated
/// and identity columns become plain columns; no defaults; NOT NULL only on the primary key, so a
/// row with a NULL version can be staged and reported rather than refused by the load), the same
/// primary key, and the metadata columns.
pub fn create_staging(target: &Relation, staging_schema: &str) -> String {
    let mut defs: Vec<String> = target
        .columns
        .iter()
        .map(|c| format!("{} {}", quote_ident(&c.name), c.type_name))
        .collect();
    if let Some(pk) = &target.primary_key {
        defs.push(format!(
            "PRIMARY KEY ({})",
            pk.columns
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    defs.extend(meta_column_defs());
    format!(
        "CREATE TABLE {} ({}) WITH (fillfactor = {STAGING_FILLFACTOR})",
        quote_qualified(staging_schema, &target.name),
        defs.join(", ")
    )
}

/// `ALTER TABLE` that adds whichever metadata columns `staging` lacks; `None` when it has them all.
/// Rows already in the table become `NEW` with a NULL `_dwr_loaded_at`; no row is rewritten
/// (PostgreSQL adds a column with a constant default without touching rows, and the volatile default
/// of `_dwr_loaded_at` is set after the column exists, so it applies to new rows only).
pub fn adopt_staging(staging: &Relation) -> Option<String> {
    let mut actions = Vec::new();
    for (name, def) in [META_STATUS, META_LOADED_AT, META_ERROR, META_RUN_ID]
        .iter()
        .zip(meta_column_defs())
    {
        if staging.column(name).is_some() {
            continue;
        }
        if *name == META_LOADED_AT {
            actions.push(format!(
                "ADD COLUMN {} pg_catalog.timestamptz",
                quote_ident(name)
            ));
            actions.push(format!(
                "ALTER COLUMN {} SET DEFAULT pg_catalog.clock_timestamp()",
                quote_ident(name)
            ));
        } else {
            actions.push(format!("ADD COLUMN {def}"));
        }
    }
    if actions.is_empty() {
        None
    } else {
        Some(format!(
            "ALTER TABLE {} {}",
            staging.quoted(),
            actions.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::fixtures::*;

    #[test]
    fn created_staging_has_columns_key_and_metadata() {
        let mut t = table(
            "production",
            "Order Lines",
            vec![
                col("id", INT4, "integer"),
                col("note", VARCHAR, "character varying(100)"),
            ],
            &["id"],
        );
        t.columns[0].not_null = true;
        let sql = create_staging(&t, "stage");
        assert_eq!(
            sql,
            "CREATE TABLE \"stage\".\"Order Lines\" (\"id\" integer, \"note\" character varying(100), \
             PRIMARY KEY (\"id\"), \"_dwr_status\" pg_catalog.text NOT NULL DEFAULT 'NEW' \
             CHECK (\"_dwr_status\" OPERATOR(pg_catalog.=) ANY ('{NEW,PROCESSED,SKIPPED,ERROR}'::pg_catalog.text[])), \
             \"_dwr_loaded_at\" pg_catalog.timestamptz DEFAULT pg_catalog.clock_timestamp(), \
             \"_dwr_error\" pg_catalog.text, \"_dwr_run_id\" pg_catalog.int8) WITH (fillfactor = 50)"
        );
    }

    #[test]
    fn delete_tracking_fires_always_and_names_the_key() {
        let t = table(
            "p",
            "Odd\\Name",
            vec![col("a'b", INT4, "integer"), col("c", TEXT, "text")],
            &["a'b", "c"],
        );
        let sql = install_delete_tracking(&t);
        assert_eq!(
            remove_delete_tracking(&t),
            "DROP TRIGGER \"dwr_record_delete\" ON \"p\".\"Odd\\Name\""
        );
        assert_eq!(
            sql[0],
            "CREATE TRIGGER \"dwr_record_delete\" AFTER DELETE ON \"p\".\"Odd\\Name\" FOR EACH ROW \
             EXECUTE FUNCTION dwr._record_delete('a''b', 'c')"
        );
        assert_eq!(
            sql[1],
            "ALTER TABLE \"p\".\"Odd\\Name\" ENABLE ALWAYS TRIGGER \"dwr_record_delete\""
        );
    }

    #[test]
    fn missed_delete_tracking_is_a_statement_trigger_that_fires_always() {
        let t = table(
            "p",
            "Odd\\Name",
            vec![col("a'b", INT4, "integer"), col("c", TEXT, "text")],
            &["a'b", "c"],
        );
        let sql = install_missed_delete_tracking(&t);
        assert_eq!(
            sql[0],
            "CREATE TRIGGER \"dwr_record_missed_delete\" BEFORE DELETE ON \"p\".\"Odd\\Name\" \
             FOR EACH STATEMENT EXECUTE FUNCTION dwr._arm_missed_deletes('a''b', 'c')"
        );
        assert_eq!(
            sql[1],
            "ALTER TABLE \"p\".\"Odd\\Name\" ENABLE ALWAYS TRIGGER \"dwr_record_missed_delete\""
        );
        assert_eq!(
            remove_missed_delete_tracking(&t),
            "DROP TRIGGER \"dwr_record_missed_delete\" ON \"p\".\"Odd\\Name\""
        );
    }

    #[test]
    fn adoption_adds_only_missing_columns() {
        let s = table(
            "staging",
            "customers",
            vec![col("CUSTOMER_ID", NUMERIC, "numeric")],
            &[],
        );
        let sql = adopt_staging(&s).unwrap();
        assert!(sql.starts_with("ALTER TABLE \"staging\".\"customers\" ADD COLUMN \"_dwr_status\""));
        assert!(sql.contains("ADD COLUMN \"_dwr_loaded_at\" pg_catalog.timestamptz, ALTER COLUMN \"_dwr_loaded_at\" SET DEFAULT"));
        let mut full = s.clone();
        for (n, oid, ty) in [
            (META_STATUS, TEXT, "text"),
            (META_LOADED_AT, 1184, "timestamp with time zone"),
            (META_ERROR, TEXT, "text"),
            (META_RUN_ID, INT8, "bigint"),
        ] {
            full.columns.push(col(n, oid, ty));
        }
        assert_eq!(adopt_staging(&full), None);
    }
}
