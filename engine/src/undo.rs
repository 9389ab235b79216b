//! SQL text of `dwr_undo`: take a merge back from its row images in `dwr.row_changes`.
//!
//! Like the merge, undo works through a temporary work table, one row per image, moved from class
//! to class: `gone` (production no longer has the row: left alone, a delete is never undone),
//! `changed` (production's row is no longer the merge's after image: left alone), `delete` /
//! `restore` (the row is as the merge left it), then `*_locked`, `deleted` / `restored`, `deferred`
//! (CDC held the row), `error` (production refused, e.g. a child row still references an inserted
//! row). A row a replay removed (`dwr_replay`, image action `delete`) is `reinsert` while production
//! lacks its key, then `reinserted`; `changed` when the key is back.

use crate::catalog::Relation;
use crate::ident::{quote_ident, quote_literal};
use crate::program::{mark_statements, Guard, Param, Params, Program, Ranged, Step, Stmt};

/// The undo work table, in the session's temporary schema.
pub const UNDO_WORK: &str = "pg_temp.\"_dwr_undo\"";

fn eq(a: &str, b: &str) -> String {
    format!("{a} OPERATOR(pg_catalog.=) {b}")
}

/// Production row `t` (of table `table`, quoted) is still the row of image `image` (jsonb): both
/// rendered by this session, the image through the table's row type. A `to_jsonb` image spells
/// `timestamptz` values in the time zone of the session (or Citus worker) that wrote it: compared as
/// stored, an undo run under another `TimeZone` found every such row changed and left it.
pub(crate) fn still_image(table: &str, image: &str) -> String {
    format!(
        "pg_catalog.to_jsonb(t.*) OPERATOR(pg_catalog.=) pg_catalog.to_jsonb(pg_catalog.jsonb_populate_record(NULL::{table}, {image}))"
    )
}

/// Where a row of an undo stands, in its work table's `cls`: one row per image of the undone run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndoClass {
    /// production no longer has the row: left alone (a delete is never undone)
    Gone,
    /// production's row is no longer the run's after image (or a removed row's key is back): left
    /// alone
    Changed,
    /// a row the run inserted, still as it left it: to delete
    Delete,
    /// a row the run updated, still as it left it: to restore
    Restore,
    /// a row the run removed, its key still absent: to put back
    Reinsert,
    /// `Delete` / `Restore`, locked for the write (the single-server undo)
    DeleteLocked,
    RestoreLocked,
    /// written: the inserted row deleted, the updated row restored, the removed row put back
    Deleted,
    Restored,
    Reinserted,
    /// CDC held the row: left for a later undo
    Deferred,
    /// production refused the write
    Error,
}

impl UndoClass {
    pub const ALL: [UndoClass; 12] = [
        UndoClass::Gone,
        UndoClass::Changed,
        UndoClass::Delete,
        UndoClass::Restore,
        UndoClass::Reinsert,
        UndoClass::DeleteLocked,
        UndoClass::RestoreLocked,
        UndoClass::Deleted,
        UndoClass::Restored,
        UndoClass::Reinserted,
        UndoClass::Deferred,
        UndoClass::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UndoClass::Gone => "gone",
            UndoClass::Changed => "changed",
            UndoClass::Delete => "delete",
            UndoClass::Restore => "restore",
            UndoClass::Reinsert => "reinsert",
            UndoClass::DeleteLocked => "delete_locked",
            UndoClass::RestoreLocked => "restore_locked",
            UndoClass::Deleted => "deleted",
            UndoClass::Restored => "restored",
            UndoClass::Reinserted => "reinserted",
            UndoClass::Deferred => "deferred",
            UndoClass::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<UndoClass> {
        UndoClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The class as an SQL literal.
    pub(crate) fn lit(self) -> String {
        quote_literal(self.as_str())
    }

    /// `ANY ('{a,b}'::pg_catalog.text[])` of `classes`.
    pub(crate) fn any(classes: &[UndoClass]) -> String {
        let names: Vec<&str> = classes.iter().map(|c| c.as_str()).collect();
        format!(
            "ANY ({}::pg_catalog.text[])",
            quote_literal(&format!("{{{}}}", names.join(",")))
        )
    }
}

/// The program of an undo on `target` (see [`UndoBuilder`] for its statements): fill the work
/// table with the undone run's images (as the extension owner: they are in `dwr.row_changes`),
/// classify every row against production, lock the rows still as the run left them and defer the
/// others, then delete the inserted rows and restore the updated ones (ranged: a row production
/// refuses is isolated), and with row audit record what the undo wrote.
pub fn undo_program(target: &Relation, row_audit: bool) -> Program {
    let b = UndoBuilder::new(target);
    let mut steps = vec![
        Step::Run(b.create_work()),
        Step::AsOwner {
            share: Some(UNDO_WORK.to_string()),
            stmt: b.fill_work(),
            guard: Guard::ReadableRun,
        },
        Step::analyze(Stmt::plain("analyze_work", format!("ANALYZE {UNDO_WORK}"))),
        Step::Run(b.classify()),
        Step::Run(b.lock()),
        Step::Run(b.defer_unlocked()),
        Step::RowRange(Stmt::plain(
            "row_range",
            format!("SELECT 1::pg_catalog.int8, COALESCE(pg_catalog.max(n), 0) FROM {UNDO_WORK}"),
        )),
        Step::Ranged(Ranged::one(b.apply_deletes(), true)),
        Step::Ranged(Ranged::one(b.apply_restores(), true)),
        Step::Ranged(Ranged::one(b.apply_reinserts(), true)),
    ];
    if row_audit {
        steps.push(Step::AsOwner {
            share: None,
            stmt: b.write_row_changes(),
            guard: Guard::RunningRun("undo"),
        });
    }
    let (mark_error, mark_deferred) = mark_statements(
        UNDO_WORK,
        "n",
        &UndoClass::Error.lit(),
        &UndoClass::Deferred.lit(),
        None,
    );
    Program {
        steps,
        mark_error,
        mark_deferred,
        counts: Stmt::plain(
            "counts",
            format!("SELECT cls, pg_catalog.count(*) FROM {UNDO_WORK} GROUP BY cls"),
        ),
        cleanup: vec![Stmt::plain("drop_work", format!("DROP TABLE {UNDO_WORK}"))],
        propagate_settings: false,
        halves_wait_ms: None,
    }
}

/// The statements of an undo on one table, one method each.
pub struct UndoBuilder<'a> {
    target: &'a Relation,
    t: String,
    key_cols: Vec<String>,
    eq_schemas: Vec<String>,
}

impl<'a> UndoBuilder<'a> {
    pub fn new(target: &'a Relation) -> UndoBuilder<'a> {
        let (key_cols, eq_schemas) = target
            .primary_key
            .as_ref()
            .map(|p| (p.columns.clone(), p.equality_schemas.clone()))
            .unwrap_or_default();
        UndoBuilder {
            target,
            t: target.quoted(),
            key_cols,
            eq_schemas,
        }
    }

    /// Production row t is the image's row: keys compared through the table's own row type.
    fn image_row(&self, img: &str) -> String {
        format!("pg_catalog.jsonb_populate_record(NULL::{}, {img})", self.t)
    }

    fn keys_match(&self, row: &str) -> String {
        self.key_cols
            .iter()
            .zip(&self.eq_schemas)
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
    }

    /// `u.n` within the ranged step's rows.
    fn in_range(&self, p: &mut Params) -> String {
        format!(
            "u.n OPERATOR(pg_catalog.>=) {} AND u.n OPERATOR(pg_catalog.<=) {}",
            p.get(Param::FirstRow),
            p.get(Param::LastRow)
        )
    }

    pub fn create_work(&self) -> Stmt {
        Stmt::plain(
            "create_work",
            format!(
                "CREATE TEMPORARY TABLE \"_dwr_undo\" (n pg_catalog.int8 NOT NULL, key pg_catalog.jsonb NOT NULL, \
                 action pg_catalog.text NOT NULL, before pg_catalog.jsonb, after pg_catalog.jsonb, \
                 cls pg_catalog.text NOT NULL DEFAULT {}, err pg_catalog.text, now pg_catalog.jsonb) ON COMMIT DROP",
                UndoClass::Gone.lit()
            ),
        )
    }

    /// The undone run's insert, update and delete images into the work table (as the extension
    /// owner: it reads `dwr.row_changes`); a removed row starts as `reinsert`.
    pub fn fill_work(&self) -> Stmt {
        let mut p = Params::new();
        let sql = format!(
            "INSERT INTO {UNDO_WORK} (n, key, action, before, after, cls) \
             SELECT pg_catalog.row_number() OVER (), c.key, c.action, c.before, c.after, \
             CASE WHEN {} THEN {} ELSE {} END \
             FROM dwr.row_changes c WHERE {} AND {}",
            eq("c.action", "'delete'"),
            UndoClass::Reinsert.lit(),
            UndoClass::Gone.lit(),
            eq("c.run_id", &p.get(Param::UndoneRun)),
            eq(
                "c.action",
                "ANY ('{insert,update,delete}'::pg_catalog.text[])"
            )
        );
        p.stmt("fill_work", sql)
    }

    pub fn classify(&self) -> Stmt {
        Stmt::plain(
            "classify",
            format!(
                "UPDATE {UNDO_WORK} u SET cls = CASE WHEN {} THEN CASE WHEN {} THEN {} ELSE {} END ELSE {} END \
                 FROM {} t WHERE {}",
                still_image(&self.t, "u.after"),
                eq("u.action", "'insert'"),
                UndoClass::Delete.lit(),
                UndoClass::Restore.lit(),
                UndoClass::Changed.lit(),
                self.t,
                // a removed row's key is in its before image (production has it again: changed)
                self.keys_match(&self.image_row("COALESCE(u.after, u.before)")),
            ),
        )
    }

    pub fn lock(&self) -> Stmt {
        Stmt::plain(
            "lock",
            format!(
                "WITH l AS (SELECT u.n FROM {UNDO_WORK} u JOIN {} t ON {} \
                 WHERE {} AND {} FOR UPDATE OF t SKIP LOCKED) \
                 UPDATE {UNDO_WORK} u SET cls = CASE WHEN {} THEN {} ELSE {} END FROM l WHERE {}",
                self.t,
                self.keys_match(&self.image_row("u.after")),
                eq(
                    "u.cls",
                    &UndoClass::any(&[UndoClass::Delete, UndoClass::Restore])
                ),
                still_image(&self.t, "u.after"),
                eq("u.cls", &UndoClass::Delete.lit()),
                UndoClass::DeleteLocked.lit(),
                UndoClass::RestoreLocked.lit(),
                eq("u.n", "l.n"),
            ),
        )
    }

    pub fn defer_unlocked(&self) -> Stmt {
        Stmt::plain(
            "defer_unlocked",
            format!(
                "UPDATE {UNDO_WORK} SET cls = {} WHERE {}",
                UndoClass::Deferred.lit(),
                eq(
                    "cls",
                    &UndoClass::any(&[UndoClass::Delete, UndoClass::Restore])
                )
            ),
        )
    }

    /// Ranged: delete the inserted rows still as the run left them.
    pub fn apply_deletes(&self) -> Stmt {
        let mut p = Params::new();
        let range = self.in_range(&mut p);
        let sql = format!(
            "WITH d AS (DELETE FROM {} t USING {UNDO_WORK} u WHERE {} AND {range} AND {} RETURNING u.n) \
             UPDATE {UNDO_WORK} u SET cls = {} FROM d WHERE {}",
            self.t,
            eq("u.cls", &UndoClass::DeleteLocked.lit()),
            self.keys_match(&self.image_row("u.after")),
            UndoClass::Deleted.lit(),
            eq("u.n", "d.n"),
        );
        p.stmt("apply_deletes", sql)
    }

    /// Ranged: restore the before image of the updated rows still as the run left them (every
    /// writable column but the key).
    pub fn apply_restores(&self) -> Stmt {
        let mut p = Params::new();
        let range = self.in_range(&mut p);
        let restorable: Vec<&str> = self
            .target
            .columns
            .iter()
            .filter(|c| {
                !c.is_generated() && !c.is_identity_always() && !self.key_cols.contains(&c.name)
            })
            .map(|c| c.name.as_str())
            .collect();
        let sets: Vec<String> = restorable
            .iter()
            .map(|c| format!("{} = (x.b).{}", quote_ident(c), quote_ident(c)))
            .collect();
        let sql = if sets.is_empty() {
            // nothing but the key: nothing to restore
            format!(
                "UPDATE {UNDO_WORK} u SET cls = {} WHERE {} AND {range}",
                UndoClass::Restored.lit(),
                eq("u.cls", &UndoClass::RestoreLocked.lit())
            )
        } else {
            format!(
                "WITH r AS (UPDATE {} t SET {} FROM (SELECT u.n, {} AS a, {} AS b FROM {UNDO_WORK} u WHERE {} AND {range}) x \
                 WHERE {} RETURNING x.n, pg_catalog.to_jsonb(t.*) AS img) \
                 UPDATE {UNDO_WORK} u SET cls = {}, now = r.img FROM r WHERE {}",
                self.t,
                sets.join(", "),
                self.image_row("u.after"),
                self.image_row("u.before"),
                eq("u.cls", &UndoClass::RestoreLocked.lit()),
                self.keys_match("x.a"),
                UndoClass::Restored.lit(),
                eq("u.n", "r.n"),
            )
        };
        p.stmt("apply_restores", sql)
    }

    /// Ranged: put back the rows a replay removed whose key production still lacks (every
    /// insertable column of the before image); a key that came back meanwhile is `changed`.
    pub fn apply_reinserts(&self) -> Stmt {
        let mut p = Params::new();
        let range = self.in_range(&mut p);
        let insertable: Vec<&str> = self
            .target
            .columns
            .iter()
            .filter(|c| !c.is_generated())
            .map(|c| c.name.as_str())
            .collect();
        let overriding = if self.target.columns.iter().any(|c| c.is_identity_always()) {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        let keys_of_r: Vec<String> = self
            .key_cols
            .iter()
            .zip(&self.eq_schemas)
            .map(|(k, s)| {
                format!(
                    "r.{} OPERATOR({}.=) (y.b).{}",
                    quote_ident(k),
                    quote_ident(s),
                    quote_ident(k)
                )
            })
            .collect();
        let sql = format!(
            "WITH y AS (SELECT u.n, {} AS b FROM {UNDO_WORK} u WHERE {} AND {range}), \
             r AS (INSERT INTO {} AS t ({}){overriding} SELECT {} FROM y ON CONFLICT DO NOTHING \
             RETURNING {}, pg_catalog.to_jsonb(t.*) AS img) \
             UPDATE {UNDO_WORK} u SET cls = CASE WHEN r.img IS NULL THEN {} ELSE {} END, now = r.img \
             FROM y LEFT JOIN r ON {} WHERE {}",
            self.image_row("u.before"),
            eq("u.cls", &UndoClass::Reinsert.lit()),
            self.t,
            insertable
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", "),
            insertable
                .iter()
                .map(|c| format!("(y.b).{}", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", "),
            self.key_cols
                .iter()
                .map(|k| format!("t.{}", quote_ident(k)))
                .collect::<Vec<_>>()
                .join(", "),
            UndoClass::Changed.lit(),
            UndoClass::Reinserted.lit(),
            keys_of_r.join(" AND "),
            eq("u.n", "y.n"),
        );
        p.stmt("apply_reinserts", sql)
    }

    /// What the undo wrote, as images of the undo run (as the extension owner).
    pub fn write_row_changes(&self) -> Stmt {
        let mut p = Params::new();
        let sql = format!(
            "INSERT INTO dwr.row_changes (run_id, target, key, action, before, after) \
             SELECT {}, {}::pg_catalog.oid, u.key, CASE WHEN {} THEN 'delete' WHEN {} THEN 'insert' ELSE 'restore' END, u.after, u.now \
             FROM {UNDO_WORK} u WHERE {}",
            p.get(Param::RunId),
            p.get(Param::Target),
            eq("u.cls", &UndoClass::Deleted.lit()),
            eq("u.cls", &UndoClass::Reinserted.lit()),
            eq(
                "u.cls",
                &UndoClass::any(&[UndoClass::Deleted, UndoClass::Restored, UndoClass::Reinserted])
            )
        );
        p.stmt("write_row_changes", sql)
    }
}

/// What an undo did, from the classes its rows ended in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UndoCounts {
    pub deleted: i64,
    pub restored: i64,
    /// rows a replay removed, put back
    pub reinserted: i64,
    pub changed_since: i64,
    pub gone_since: i64,
    pub deferred: i64,
    pub errors: i64,
}

impl UndoCounts {
    /// Add `n` rows that ended in `class` (as the work table names it); a class that is not final
    /// counts nowhere.
    pub fn add(&mut self, class: &str, n: i64) {
        match UndoClass::parse(class) {
            Some(UndoClass::Deleted) => self.deleted += n,
            Some(UndoClass::Restored) => self.restored += n,
            Some(UndoClass::Reinserted) => self.reinserted += n,
            Some(UndoClass::Changed) => self.changed_since += n,
            Some(UndoClass::Gone) => self.gone_since += n,
            Some(UndoClass::Deferred) => self.deferred += n,
            Some(UndoClass::Error) => self.errors += n,
            Some(
                UndoClass::Delete
                | UndoClass::Restore
                | UndoClass::Reinsert
                | UndoClass::DeleteLocked
                | UndoClass::RestoreLocked,
            )
            | None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_undo_class_reads_back_and_only_final_ones_count() {
        for c in UndoClass::ALL {
            assert_eq!(UndoClass::parse(c.as_str()), Some(c));
        }
        let mut counts = UndoCounts::default();
        for c in UndoClass::ALL {
            counts.add(c.as_str(), 1);
        }
        counts.add("no such class", 1);
        let total = counts.deleted
            + counts.restored
            + counts.reinserted
            + counts.changed_since
            + counts.gone_since
            + counts.deferred
            + counts.errors;
        assert_eq!(total, 7);
    }

    #[test]
    fn every_statement_of_the_undo_is_qualified_and_bound_by_name() {
        let t = crate::catalog::fixtures::table_with_generated_column();
        for row_audit in [false, true] {
            for stmt in undo_program(&t, row_audit).stmts() {
                crate::sqlgen::tests::assert_qualified(&stmt.sql);
                crate::sqlgen::tests::assert_numbered_by_name(stmt);
            }
        }
    }

    use super::*;
    use crate::catalog::fixtures::*;

    #[test]
    fn undo_restores_every_writable_non_key_column() {
        let t = table_with_generated_column();
        let program = undo_program(&t, true);
        let sql = |name: &str| program.stmt(name).expect(name).sql.clone();
        let restores = sql("apply_restores");
        assert!(restores.contains("\"name\" = (x.b).\"name\""), "{restores}");
        assert!(
            !restores.contains("\"g\" ="),
            "generated columns are not restored"
        );
        assert!(!restores.contains("\"id\" ="), "keys are not rewritten");
        assert!(sql("classify").contains("t.\"id\" OPERATOR(\"pg_catalog\".=) (pg_catalog.jsonb_populate_record(NULL::\"p\".\"t\", COALESCE(u.after, u.before))).\"id\""));
        // a row a replay removed goes back with every column but the generated one
        let reinserts = sql("apply_reinserts");
        assert!(reinserts.contains("ON CONFLICT DO NOTHING"), "{reinserts}");
        assert!(reinserts.contains("(y.b).\"name\""), "{reinserts}");
        assert!(!reinserts.contains("(y.b).\"g\""), "{reinserts}");
        assert!(sql("lock").contains("FOR UPDATE OF t SKIP LOCKED"));
        for ranged in ["apply_deletes", "apply_restores", "apply_reinserts"] {
            let stmt = program.stmt(ranged).expect(ranged);
            assert_eq!(stmt.params, vec![Param::FirstRow, Param::LastRow]);
        }
        // the images are read by the undone run's id, written by the undo run's
        assert_eq!(
            program.stmt("fill_work").unwrap().params,
            vec![Param::UndoneRun]
        );
        assert_eq!(
            program.stmt("write_row_changes").unwrap().params,
            vec![Param::RunId, Param::Target]
        );
        assert!(!undo_program(&t, false).has("write_row_changes"));
    }

    #[test]
    fn counts_by_class() {
        let mut c = UndoCounts::default();
        for (class, n) in [
            ("deleted", 2),
            ("restored", 3),
            ("reinserted", 5),
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
                reinserted: 5,
                changed_since: 1,
                gone_since: 4,
                deferred: 1,
                errors: 1
            }
        );
    }
}
