//! SQL text of `dwr_undo`: take a merge back from its row images in `dwr.row_changes`.
//!
//! Like the merge, undo works through a temporary work table, one row per image, moved from class
//! to class: `gone` (production no longer has the row: left alone, a delete is never undone),
//! `changed` (production's row is no longer the merge's after image: left alone), `delete` /
//! `restore` (the row is as the merge left it), then `*_locked`, `deleted` / `restored`, `deferred`
//! (CDC held the row), `error` (production refused, e.g. a child row still references an inserted
//! row).

use crate::catalog::Relation;
use crate::ident::{quote_ident, quote_literal};

/// The undo work table, in the session's temporary schema.
pub const UNDO_WORK: &str = "pg_temp.\"_dwr_undo\"";

/// The statements of one undo. "Ranged" statements take `$1`, `$2` (first and last row number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoSql {
    pub create_work: String,
    /// `$1`: run id (run as the extension owner: it reads `dwr.row_changes`)
    pub fill_work: String,
    pub classify: String,
    pub lock: String,
    pub defer_unlocked: String,
    /// ranged
    pub apply_deletes: String,
    /// ranged
    pub apply_restores: String,
    /// `$1`: undo run id, `$2`: target oid (run as the extension owner)
    pub write_row_changes: String,
    pub counts: String,
    /// `$1`: row number, `$2`: error text
    pub mark_row_error: String,
    /// `$1`: row number
    pub mark_row_deferred: String,
    pub max_row: String,
    pub drop_work: String,
}

fn lit(s: &str) -> String {
    quote_literal(s)
}

fn eq(a: &str, b: &str) -> String {
    format!("{a} OPERATOR(pg_catalog.=) {b}")
}

/// `$1`: run id. Copies the run's insert and update images into the undo work table (run as the
/// extension owner: it reads `dwr.row_changes`). The same for every table.
pub fn undo_fill_work() -> String {
    format!(
        "INSERT INTO {UNDO_WORK} (n, key, action, before, after) \
         SELECT pg_catalog.row_number() OVER (), c.key, c.action, c.before, c.after \
         FROM dwr.row_changes c WHERE {} AND {}",
        eq("c.run_id", "$1"),
        eq("c.action", "ANY ('{insert,update}'::pg_catalog.text[])")
    )
}

/// Write the SQL of an undo on `target`.
pub fn undo_sql(target: &Relation) -> UndoSql {
    let t = target.quoted();
    let w = UNDO_WORK;
    let pk = target
        .primary_key
        .as_ref()
        .map(|p| (p.columns.clone(), p.equality_schemas.clone()));
    let (key_cols, eq_schemas) = pk.unwrap_or_default();
    // production row t is the image's row: keys compared through the table's own row type
    let image_row = |img: &str| format!("pg_catalog.jsonb_populate_record(NULL::{t}, {img})");
    let keys_match = |row: &str| {
        key_cols
            .iter()
            .zip(&eq_schemas)
            .map(|(k, s)| {
                format!(
                    "t.{} OPERATOR({}.=) ({row}).{}",
                    quote_ident(k),
                    quote_ident(s),
                    quote_ident(k)
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let after_row = image_row("u.after");
    let range = "u.n OPERATOR(pg_catalog.>=) $1 AND u.n OPERATOR(pg_catalog.<=) $2";

    let create_work = format!(
        "CREATE TEMPORARY TABLE \"_dwr_undo\" (n pg_catalog.int8 NOT NULL, key pg_catalog.jsonb NOT NULL, \
         action pg_catalog.text NOT NULL, before pg_catalog.jsonb, after pg_catalog.jsonb, \
         cls pg_catalog.text NOT NULL DEFAULT {}, err pg_catalog.text, now pg_catalog.jsonb) ON COMMIT DROP",
        lit("gone")
    );
    let fill_work = undo_fill_work();
    let classify = format!(
        "UPDATE {w} u SET cls = CASE WHEN {} THEN CASE WHEN {} THEN {} ELSE {} END ELSE {} END \
         FROM {t} t WHERE {}",
        eq("pg_catalog.to_jsonb(t.*)", "u.after"),
        eq("u.action", &lit("insert")),
        lit("delete"),
        lit("restore"),
        lit("changed"),
        keys_match(&after_row),
    );
    let lock = format!(
        "WITH l AS (SELECT u.n FROM {w} u JOIN {t} t ON {} \
         WHERE {} AND {} FOR UPDATE OF t SKIP LOCKED) \
         UPDATE {w} u SET cls = u.cls OPERATOR(pg_catalog.||) {} FROM l WHERE {}",
        keys_match(&after_row),
        eq("u.cls", "ANY ('{delete,restore}'::pg_catalog.text[])"),
        eq("pg_catalog.to_jsonb(t.*)", "u.after"),
        lit("_locked"),
        eq("u.n", "l.n"),
    );
    let defer_unlocked = format!(
        "UPDATE {w} SET cls = {} WHERE {}",
        lit("deferred"),
        eq("cls", "ANY ('{delete,restore}'::pg_catalog.text[])")
    );
    let apply_deletes = format!(
        "WITH d AS (DELETE FROM {t} t USING {w} u WHERE {} AND {range} AND {} RETURNING u.n) \
         UPDATE {w} u SET cls = {} FROM d WHERE {}",
        eq("u.cls", &lit("delete_locked")),
        keys_match(&after_row),
        lit("deleted"),
        eq("u.n", "d.n"),
    );
    let restorable: Vec<&str> = target
        .columns
        .iter()
        .filter(|c| !c.is_generated() && !c.is_identity_always() && !key_cols.contains(&c.name))
        .map(|c| c.name.as_str())
        .collect();
    let sets: Vec<String> = restorable
        .iter()
        .map(|c| format!("{} = (x.b).{}", quote_ident(c), quote_ident(c)))
        .collect();
    let apply_restores = if sets.is_empty() {
        // nothing but the key: nothing to restore
        format!(
            "UPDATE {w} u SET cls = {} WHERE {} AND {range}",
            lit("restored"),
            eq("u.cls", &lit("restore_locked"))
        )
    } else {
        format!(
            "WITH r AS (UPDATE {t} t SET {} FROM (SELECT u.n, {} AS a, {} AS b FROM {w} u WHERE {} AND {range}) x \
             WHERE {} RETURNING x.n, pg_catalog.to_jsonb(t.*) AS img) \
             UPDATE {w} u SET cls = {}, now = r.img FROM r WHERE {}",
            sets.join(", "),
            image_row("u.after"),
            image_row("u.before"),
            eq("u.cls", &lit("restore_locked")),
            keys_match("x.a"),
            lit("restored"),
            eq("u.n", "r.n"),
        )
    };
    let write_row_changes = format!(
        "INSERT INTO dwr.row_changes (run_id, target, key, action, before, after) \
         SELECT $1, $2::pg_catalog.oid, u.key, CASE WHEN {} THEN 'delete' ELSE 'restore' END, u.after, u.now \
         FROM {w} u WHERE {}",
        eq("u.cls", &lit("deleted")),
        eq("u.cls", "ANY ('{deleted,restored}'::pg_catalog.text[])")
    );
    UndoSql {
        create_work,
        fill_work,
        classify,
        lock,
        defer_unlocked,
        apply_deletes,
        apply_restores,
        write_row_changes,
        counts: format!("SELECT cls, pg_catalog.count(*) FROM {w} GROUP BY cls"),
        mark_row_error: format!(
            "UPDATE {w} SET cls = {}, err = $2 WHERE {}",
            lit("error"),
            eq("n", "$1")
        ),
        mark_row_deferred: format!(
            "UPDATE {w} SET cls = {} WHERE {}",
            lit("deferred"),
            eq("n", "$1")
        ),
        max_row: format!("SELECT COALESCE(pg_catalog.max(n), 0) FROM {w}"),
        drop_work: format!("DROP TABLE {w}"),
    }
}

/// What an undo did, from the classes its rows ended in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UndoCounts {
    pub deleted: i64,
    pub restored: i64,
    pub changed_since: i64,
    pub gone_since: i64,
    pub deferred: i64,
    pub errors: i64,
}

impl UndoCounts {
    pub fn add(&mut self, class: &str, n: i64) {
        match class {
            "deleted" => self.deleted += n,
            "restored" => self.restored += n,
            "changed" => self.changed_since += n,
            "gone" => self.gone_since += n,
            "deferred" => self.deferred += n,
            "error" => self.errors += n,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::fixtures::*;

    #[test]
    fn undo_restores_every_writable_non_key_column() {
        let t = table_with_generated_column();
        let sql = undo_sql(&t);
        assert!(
            sql.apply_restores.contains("\"name\" = (x.b).\"name\""),
            "{}",
            sql.apply_restores
        );
        assert!(
            !sql.apply_restores.contains("\"g\" ="),
            "generated columns are not restored"
        );
        assert!(
            !sql.apply_restores.contains("\"id\" ="),
            "keys are not rewritten"
        );
        assert!(sql.classify.contains("t.\"id\" OPERATOR(\"pg_catalog\".=) (pg_catalog.jsonb_populate_record(NULL::\"p\".\"t\", u.after)).\"id\""));
        assert!(sql.lock.contains("FOR UPDATE OF t SKIP LOCKED"));
        for ranged in [&sql.apply_deletes, &sql.apply_restores] {
            assert!(ranged.contains("$1") && ranged.contains("$2"));
        }
    }

    #[test]
    fn counts_by_class() {
        let mut c = UndoCounts::default();
        for (class, n) in [
            ("deleted", 2),
            ("restored", 3),
            ("changed", 1),
            ("gone", 4),
            ("deferred", 1),
            ("error", 1),
        ] {
            c.add(class, n);
        }
        assert_eq!(
            c,
            UndoCounts {
                deleted: 2,
                restored: 3,
                changed_since: 1,
                gone_since: 4,
                deferred: 1,
                errors: 1
            }
        );
    }
}
