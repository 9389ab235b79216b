//! SQL text for the staging tables: create one from a production table, or adopt one a DMS full
//! load created.

use crate::catalog::Relation;
use crate::ident::{quote_ident, quote_literal};
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
    meta_columns().map(|(name, def)| format!("{} {def}", quote_ident(name)))
}

/// The metadata columns, each its name and its definition without the name (what
/// `dwr._make_staging` takes in both modes).
pub fn meta_columns() -> [(&'static str, String); 4] {
    [
        (
            META_STATUS,
            format!("pg_catalog.text NOT NULL DEFAULT 'NEW' {}", status_check()),
        ),
        (
            META_LOADED_AT,
            "pg_catalog.timestamptz DEFAULT pg_catalog.clock_timestamp()".to_string(),
        ),
        (META_ERROR, "pg_catalog.text".to_string()),
        (META_RUN_ID, "pg_catalog.int8".to_string()),
    ]
}

/// The fill factor of the staging tables `dwr_create_staging` makes (`dwr._make_staging`). A merge rewrites every staged row
/// once to write its status; with half of each page free, that new row version lands on the same
/// page as a heap-only tuple: no new index entry, no other page touched, a smaller WAL record. At
/// 100 the status write-back moves every row to a new page and adds an index entry for it (the
/// benchmark in `bench/merge.sql` measures the difference).
pub const STAGING_FILLFACTOR: u32 = 50;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::fixtures::*;

    /// The shared `dwr_create_staging` (`sql/shared.sql`, installed as written) passes these
    /// metadata columns and this fill factor to `dwr._make_staging`, as literals.
    #[test]
    fn the_shared_create_staging_passes_these_columns() {
        let array = |items: Vec<String>| format!("ARRAY[{}]::pg_catalog.text[]", items.join(", "));
        let meta = meta_columns();
        let call = format!(
            "dwr._make_staging(target, staging_schema,\n{}{},\n{}{},\n{}{})",
            " ".repeat(24),
            array(
                meta.iter()
                    .map(|(n, _)| crate::ident::quote_literal(n))
                    .collect()
            ),
            " ".repeat(24),
            array(
                meta.iter()
                    .map(|(_, d)| crate::ident::quote_literal(d))
                    .collect()
            ),
            " ".repeat(24),
            STAGING_FILLFACTOR
        );
        let script = include_str!("../../sql/shared.sql");
        assert!(script.contains(&call), "sql/shared.sql calls {call}");
    }

    #[test]
    fn the_metadata_columns_are_the_contracts() {
        let names: Vec<&str> = meta_columns().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [META_STATUS, META_LOADED_AT, META_ERROR, META_RUN_ID]
        );
        assert_eq!(
            meta_column_defs().join(", "),
            "\"_dwr_status\" pg_catalog.text NOT NULL DEFAULT 'NEW' \
             CHECK (\"_dwr_status\" OPERATOR(pg_catalog.=) ANY ('{NEW,PROCESSED,SKIPPED,ERROR}'::pg_catalog.text[])), \
             \"_dwr_loaded_at\" pg_catalog.timestamptz DEFAULT pg_catalog.clock_timestamp(), \
             \"_dwr_error\" pg_catalog.text, \"_dwr_run_id\" pg_catalog.int8"
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
}
