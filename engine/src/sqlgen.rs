//! Stage 3 of the data flow: the SQL text of a merge, written from a [`MergePlan`].
//!
//! Rules every statement here keeps (and the unit tests check):
//! - identifiers only through [`quote_ident`] (the plan holds them already quoted or raw names that
//!   are quoted here);
//! - values only as `$n` parameters; the only literals are this module's own constants;
//! - every function, operator and type schema-qualified: `pg_catalog.count`,
//!   `OPERATOR(pg_catalog.=)`, and for key and version columns the schema of the operator class the
//!   catalog named, so a type whose operators live outside `pg_catalog` (citext) still works.
//!
//! The merge works through a temporary work table with one row per staged row in status `NEW`:
//! each statement moves rows from one class ([`RowClass`]) to the next, so every staged row ends in
//! exactly one class, and the counts of `dwr.merge_result` are a `GROUP BY` over it.

use crate::ident::{quote_ident, quote_literal};
use crate::plan::{Conversion, MergePlan, META_ERROR, META_LOADED_AT, META_RUN_ID, META_STATUS};

/// The work table, in the session's temporary schema.
pub const WORK: &str = "pg_temp.\"_dwr_work\"";

/// Where a staged row stands during and after a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowClass {
    /// read from staging, not yet classified
    New,
    /// outside the open reload's window: stays `NEW`
    OutsideWindow,
    /// a higher version of the same key is staged too: `SKIPPED`
    Duplicate,
    /// production has the key with a lower (or NULL) version: to be updated
    Update,
    /// ... and the merge holds the production row's lock
    Locked,
    /// production has the same version: `PROCESSED`, nothing written
    Unchanged,
    /// production has a higher version: `SKIPPED`
    Stale,
    /// production lacks the key: to be inserted
    Insert,
    /// production deleted the key since the reload began: `SKIPPED`
    Deleted,
    /// written
    Updated,
    Inserted,
    /// CDC held the row (a lock, or a concurrent insert of the key): stays `NEW` for a later merge
    Deferred,
    /// production rejected the row, or its key or version is unusable: `ERROR`
    Error,
}

impl RowClass {
    pub const ALL: [RowClass; 13] = [
        RowClass::New,
        RowClass::OutsideWindow,
        RowClass::Duplicate,
        RowClass::Update,
        RowClass::Locked,
        RowClass::Unchanged,
        RowClass::Stale,
        RowClass::Insert,
        RowClass::Deleted,
        RowClass::Updated,
        RowClass::Inserted,
        RowClass::Deferred,
        RowClass::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RowClass::New => "new",
            RowClass::OutsideWindow => "outside_window",
            RowClass::Duplicate => "duplicate",
            RowClass::Update => "update",
            RowClass::Locked => "locked",
            RowClass::Unchanged => "unchanged",
            RowClass::Stale => "stale",
            RowClass::Insert => "insert",
            RowClass::Deleted => "deleted",
            RowClass::Updated => "updated",
            RowClass::Inserted => "inserted",
            RowClass::Deferred => "deferred",
            RowClass::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<RowClass> {
        RowClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The staging status a row of this class ends in; `None` leaves it `NEW`.
    pub fn final_status(self) -> Option<&'static str> {
        match self {
            RowClass::Updated | RowClass::Inserted | RowClass::Unchanged => Some("PROCESSED"),
            RowClass::Duplicate | RowClass::Stale | RowClass::Deleted => Some("SKIPPED"),
            RowClass::Error => Some("ERROR"),
            _ => None,
        }
    }

    fn lit(self) -> String {
        quote_literal(self.as_str())
    }
}

/// What a merge did with the staged rows: the counts of `dwr.merge_result`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub skipped_stale: i64,
    pub skipped_deleted: i64,
    pub skipped_outside_window: i64,
    pub deferred: i64,
    pub errors: i64,
}

impl Counts {
    /// Add `n` rows that ended in `class`. A row superseded by a newer staged row of its key counts
    /// as stale. Classes that are not final (a merge always moves rows on from them) count nowhere.
    pub fn add(&mut self, class: RowClass, n: i64) {
        match class {
            RowClass::Inserted => self.inserted += n,
            RowClass::Updated => self.updated += n,
            RowClass::Unchanged => self.unchanged += n,
            RowClass::Stale | RowClass::Duplicate => self.skipped_stale += n,
            RowClass::Deleted => self.skipped_deleted += n,
            RowClass::OutsideWindow => self.skipped_outside_window += n,
            RowClass::Deferred => self.deferred += n,
            RowClass::Error => self.errors += n,
            RowClass::New | RowClass::Update | RowClass::Locked | RowClass::Insert => {}
        }
    }

    pub fn total(&self) -> i64 {
        self.inserted
            + self.updated
            + self.unchanged
            + self.skipped_stale
            + self.skipped_deleted
            + self.skipped_outside_window
            + self.deferred
            + self.errors
    }
}

/// `a OPERATOR(schema.op) b`
fn op(a: &str, schema: &str, operator: &str, b: &str) -> String {
    format!("{a} OPERATOR({}.{operator}) {b}", quote_ident(schema))
}

/// `a OPERATOR(pg_catalog.op) b`
fn pg_op(a: &str, operator: &str, b: &str) -> String {
    format!("{a} OPERATOR(pg_catalog.{operator}) {b}")
}

fn class_is(alias: &str, class: RowClass) -> String {
    pg_op(&format!("{alias}cls"), "=", &class.lit())
}

/// `w.rn` within the range `$1 .. $2`.
fn in_range(alias: &str) -> String {
    format!(
        "{} AND {}",
        pg_op(&format!("{alias}rn"), ">=", "$1"),
        pg_op(&format!("{alias}rn"), "<=", "$2")
    )
}

/// Work-table column holding key part `i`.
fn kcol(i: usize) -> String {
    format!("k{}", i + 1)
}

/// The statements of one merge. Statements marked "ranged" take `$1`, `$2`: the first and last
/// work-table row number they touch, so the executor can bisect a failing range down to the row
/// that production rejects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSql {
    pub create_work: String,
    /// fill the work table, keys and version included (when no key or version needs a cast, so
    /// the statement cannot fail on a bad value)
    pub fill_work: String,
    /// fill the work table with row numbers only; then `cast_keys` (ranged) fills keys and version
    pub fill_work_rows: String,
    /// ranged
    pub cast_keys: String,
    /// whether `fill_work` may be used (nothing to cast)
    pub keys_need_cast: bool,
    /// `$1`: message for a NULL version, `$2`: message for a NULL key
    pub mark_nulls: String,
    /// `$1`, `$2`: the open reload's window (timestamptz, both ends included)
    pub mark_outside_window: String,
    pub mark_duplicates: String,
    pub classify_existing: String,
    /// `$1`: target oid, `$2`: deletes count from this moment (timestamptz)
    pub classify_missing: String,
    pub lock_updates: String,
    pub defer_unlocked: String,
    /// ranged
    pub apply_updates: String,
    /// ranged
    pub apply_inserts: String,
    pub defer_conflicts: String,
    /// `$1`: target oid, `$2`: since. Whether an inserted key has a tombstone now (a CDC delete that
    /// committed while the insert ran); only then is `recheck_inserted` run (it needs DELETE)
    pub any_inserted_tombstoned: String,
    /// `$1`: target oid, `$2`: since. Takes back an insert whose key CDC deleted while the insert
    /// ran (the delete's tombstone committed after the insert's snapshot)
    pub recheck_inserted: String,
    /// `$1`: run id. Empty for a source table without metadata columns: it is never written
    pub write_statuses: String,
    /// `$1`: run id, `$2`: target oid. Copies the kept images to `dwr.row_changes` (run as the
    /// extension owner)
    pub write_row_changes: String,
    pub counts: String,
    /// `$1`: row number, `$2`: error text
    pub mark_row_error: String,
    /// `$1`: row number
    pub mark_row_deferred: String,
    /// the highest row number in the work table
    pub max_row: String,
    /// statistics for the work table, so the planner joins it to production with hashes or merges
    /// rather than nested loops (a fresh temporary table has none)
    pub analyze_work: String,
    pub drop_work: String,
}

/// Write the SQL of a merge of `plan`.
/// With `row_audit`, the statements also keep each written row's before and after image
/// (`to_jsonb`) in the work table, and `write_row_changes` copies them to `dwr.row_changes`.
pub fn merge_sql(plan: &MergePlan, row_audit: bool) -> MergeSql {
    let t = &plan.target;
    let s = &plan.staging;
    let ver = &plan.version;
    let keys = &plan.keys;

    let key_cols_def: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{} {}", kcol(i), k.base_type))
        .collect();
    let create_work = format!(
        "CREATE TEMPORARY TABLE \"_dwr_work\" (rn pg_catalog.int8 NOT NULL, sctid pg_catalog.tid NOT NULL, \
         loaded_at pg_catalog.timestamptz, {}, v {}, cls pg_catalog.text NOT NULL DEFAULT {}, err pg_catalog.text, \
         before pg_catalog.jsonb, after pg_catalog.jsonb) \
         ON COMMIT DROP",
        key_cols_def.join(", "),
        ver.base_type,
        RowClass::New.lit()
    );

    let staged_key = |i: usize| {
        let k = &keys[i];
        let col = format!("s.{}", quote_ident(&k.staging));
        if k.needs_cast {
            format!("CAST({col} AS {})", k.base_type)
        } else {
            col
        }
    };
    let staged_version = {
        let col = format!("s.{}", quote_ident(&ver.staging));
        if ver.needs_cast {
            format!("CAST({col} AS {})", ver.base_type)
        } else {
            col
        }
    };
    let keys_need_cast = ver.needs_cast || keys.iter().any(|k| k.needs_cast);
    let key_list: Vec<String> = (0..keys.len()).map(kcol).collect();
    let staged_keys: Vec<String> = (0..keys.len()).map(staged_key).collect();
    // a registered staging table: its NEW rows; a source table: all of it
    let new_rows = if plan.with_metadata {
        format!(
            "FROM {s} s WHERE {}",
            pg_op(&format!("s.{}", quote_ident(META_STATUS)), "=", "'NEW'")
        )
    } else {
        format!("FROM {s} s")
    };
    let loaded_at = if plan.with_metadata {
        format!("s.{}", quote_ident(META_LOADED_AT))
    } else {
        "NULL::pg_catalog.timestamptz".to_string()
    };
    let fill_work = format!(
        "INSERT INTO {WORK} (rn, sctid, loaded_at, {}, v) \
         SELECT pg_catalog.row_number() OVER (), s.ctid, {loaded_at}, {}, {staged_version} {new_rows}",
        key_list.join(", "),
        staged_keys.join(", "),
    );
    let fill_work_rows = format!(
        "INSERT INTO {WORK} (rn, sctid, loaded_at) \
         SELECT pg_catalog.row_number() OVER (), s.ctid, {loaded_at} {new_rows}",
    );
    let cast_sets: Vec<String> = key_list
        .iter()
        .zip(&staged_keys)
        .map(|(k, e)| format!("{k} = {e}"))
        .collect();
    let cast_keys = format!(
        "UPDATE {WORK} w SET {}, v = {staged_version} FROM {s} s WHERE {} AND {}",
        cast_sets.join(", "),
        pg_op("s.ctid", "=", "w.sctid"),
        in_range("w."),
    );

    let null_key = key_list
        .iter()
        .map(|k| format!("{k} IS NULL"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let mark_nulls = format!(
        "UPDATE {WORK} SET cls = {}, err = CASE WHEN v IS NULL THEN $1 ELSE $2 END \
         WHERE {} AND (v IS NULL OR {null_key})",
        RowClass::Error.lit(),
        class_is("", RowClass::New),
    );

    let mark_outside_window = format!(
        "UPDATE {WORK} SET cls = {} WHERE {} AND NOT ({} AND {})",
        RowClass::OutsideWindow.lit(),
        class_is("", RowClass::New),
        op(
            "v",
            &ver.ord_schema,
            ">=",
            &format!("CAST($1::pg_catalog.timestamptz AS {})", ver.base_type)
        ),
        op(
            "v",
            &ver.ord_schema,
            "<=",
            &format!("CAST($2::pg_catalog.timestamptz AS {})", ver.base_type)
        ),
    );
    let mark_duplicates = format!(
        "UPDATE {WORK} w SET cls = {} FROM (SELECT rn, pg_catalog.row_number() OVER \
         (PARTITION BY {} ORDER BY v DESC, loaded_at DESC NULLS LAST, sctid DESC) AS r \
         FROM {WORK} WHERE {}) d WHERE {} AND {}",
        RowClass::Duplicate.lit(),
        key_list.join(", "),
        class_is("", RowClass::New),
        pg_op("w.rn", "=", "d.rn"),
        pg_op("d.r", ">", "1"),
    );

    // production row t matches work row w
    let join_keys = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            op(
                &format!("t.{}", quote_ident(&k.target)),
                &k.eq_schema,
                "=",
                &format!("w.{}", kcol(i)),
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let tv = format!("t.{}", quote_ident(&ver.target));
    let newer = format!("({tv} IS NULL OR {})", op(&tv, &ver.ord_schema, "<", "w.v"));
    let classify_existing = format!(
        "UPDATE {WORK} w SET cls = CASE WHEN {newer} THEN {} WHEN {} THEN {} ELSE {} END \
         FROM {t} t WHERE {} AND {join_keys}",
        RowClass::Update.lit(),
        op(&tv, &ver.ord_schema, "=", "w.v"),
        RowClass::Unchanged.lit(),
        RowClass::Stale.lit(),
        class_is("w.", RowClass::New),
    );
    let work_key = format!(
        "pg_catalog.jsonb_build_array({})",
        (0..keys.len())
            .map(|i| format!("w.{}", kcol(i)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let tombstoned = format!(
        "EXISTS (SELECT FROM dwr.tombstones tb WHERE {} AND {} AND {})",
        pg_op("tb.target", "=", "$1::pg_catalog.oid"),
        pg_op("tb.key", "=", &work_key),
        pg_op("tb.deleted_at", ">=", "$2::pg_catalog.timestamptz"),
    );
    let classify_missing = format!(
        "UPDATE {WORK} w SET cls = CASE WHEN {tombstoned} THEN {} ELSE {} END WHERE {}",
        RowClass::Deleted.lit(),
        RowClass::Insert.lit(),
        class_is("w.", RowClass::New)
    );
    let any_inserted_tombstoned = format!(
        "SELECT EXISTS (SELECT FROM {WORK} w WHERE {} AND {tombstoned})",
        class_is("w.", RowClass::Inserted)
    );
    let recheck_inserted = format!(
        "WITH gone AS (DELETE FROM {t} t USING {WORK} w WHERE {} AND {join_keys} AND {tombstoned} RETURNING w.rn) \
         UPDATE {WORK} w SET cls = {} FROM gone WHERE {}",
        class_is("w.", RowClass::Inserted),
        RowClass::Deleted.lit(),
        pg_op("w.rn", "=", "gone.rn"),
    );

    // with row audit, a write also keeps the row's image: before from the locked row, after from
    // RETURNING
    let (img, keep_before, keep_after) = if row_audit {
        (
            ", pg_catalog.to_jsonb(t.*) AS img",
            ", before = l.img",
            ", after = {}.img",
        )
    } else {
        ("", "", "")
    };
    let lock_updates = format!(
        "WITH l AS (SELECT w.rn{img} FROM {WORK} w JOIN {t} t ON {join_keys} WHERE {} AND {newer} \
         FOR UPDATE OF t SKIP LOCKED) \
         UPDATE {WORK} w SET cls = {}{keep_before} FROM l WHERE {}",
        class_is("w.", RowClass::Update),
        RowClass::Locked.lit(),
        pg_op("w.rn", "=", "l.rn"),
    );
    let defer_unlocked = format!(
        "UPDATE {WORK} SET cls = {} WHERE {}",
        RowClass::Deferred.lit(),
        class_is("", RowClass::Update)
    );

    let value_expr = |v: &crate::plan::ValueColumn| {
        let col = format!("s.{}", quote_ident(&v.staging));
        match v.conversion {
            Conversion::Explicit => format!("CAST({col} AS {})", v.base_type),
            _ => col,
        }
    };
    let mut sets: Vec<String> = plan
        .values
        .iter()
        .filter(|v| !v.insert_only)
        .map(|v| format!("{} = {}", quote_ident(&v.target), value_expr(v)))
        .collect();
    sets.push(format!("{} = w.v", quote_ident(&ver.target)));
    let apply_updates = format!(
        "WITH u AS (UPDATE {t} t SET {} FROM {WORK} w JOIN {s} s ON {} \
         WHERE {} AND {} AND {join_keys} RETURNING w.rn{img}) \
         UPDATE {WORK} w SET cls = {}{} FROM u WHERE {}",
        sets.join(", "),
        pg_op("s.ctid", "=", "w.sctid"),
        class_is("w.", RowClass::Locked),
        in_range("w."),
        RowClass::Updated.lit(),
        keep_after.replace("{}", "u"),
        pg_op("w.rn", "=", "u.rn"),
    );

    let mut insert_cols: Vec<String> = keys.iter().map(|k| quote_ident(&k.target)).collect();
    insert_cols.push(quote_ident(&ver.target));
    insert_cols.extend(plan.values.iter().map(|v| quote_ident(&v.target)));
    let mut insert_vals: Vec<String> = (0..keys.len()).map(|i| format!("w.{}", kcol(i))).collect();
    insert_vals.push("w.v".to_string());
    insert_vals.extend(plan.values.iter().map(value_expr));
    let returning: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("t.{} AS {}", quote_ident(&k.target), kcol(i)))
        .collect();
    let inserted_match = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            op(
                &format!("w.{}", kcol(i)),
                &k.eq_schema,
                "=",
                &format!("i.{}", kcol(i)),
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let apply_inserts = format!(
        "WITH i AS (INSERT INTO {t} AS t ({}) {}SELECT {} FROM {WORK} w JOIN {s} s ON {} \
         WHERE {} AND {} ON CONFLICT ON CONSTRAINT {} DO NOTHING RETURNING {}{img}) \
         UPDATE {WORK} w SET cls = {}{} FROM i WHERE {} AND {inserted_match}",
        insert_cols.join(", "),
        if plan.overriding_system_value {
            "OVERRIDING SYSTEM VALUE "
        } else {
            ""
        },
        insert_vals.join(", "),
        pg_op("s.ctid", "=", "w.sctid"),
        class_is("w.", RowClass::Insert),
        in_range("w."),
        plan.pk_constraint,
        returning.join(", "),
        RowClass::Inserted.lit(),
        keep_after.replace("{}", "i"),
        class_is("w.", RowClass::Insert),
    );
    let write_row_changes = format!(
        "INSERT INTO dwr.row_changes (run_id, target, key, action, before, after) \
         SELECT $1, $2::pg_catalog.oid, {work_key}, CASE WHEN {} THEN 'insert' ELSE 'update' END, \
         w.before, w.after FROM {WORK} w WHERE {}",
        class_is("w.", RowClass::Inserted),
        pg_op(
            "w.cls",
            "=",
            "ANY ('{inserted,updated}'::pg_catalog.text[])"
        ),
    );
    let defer_conflicts = format!(
        "UPDATE {WORK} SET cls = {} WHERE {}",
        RowClass::Deferred.lit(),
        class_is("", RowClass::Insert)
    );

    let status_case = {
        let mut arms = String::from("CASE");
        for class in RowClass::ALL {
            if let Some(status) = class.final_status() {
                arms.push_str(&format!(
                    " WHEN {} THEN {}",
                    class_is("w.", class),
                    quote_literal(status)
                ));
            }
        }
        arms.push_str(" END");
        arms
    };
    let final_classes: Vec<String> = RowClass::ALL
        .into_iter()
        .filter(|c| c.final_status().is_some())
        .map(|c| c.as_str().to_string())
        .collect();
    let write_statuses = if !plan.with_metadata {
        String::new() // a source table is never written
    } else {
        format!(
            "UPDATE {s} s SET {} = {status_case}, {} = $1, {} = w.err FROM {WORK} w \
         WHERE {} AND {}",
            quote_ident(META_STATUS),
            quote_ident(META_RUN_ID),
            quote_ident(META_ERROR),
            pg_op("s.ctid", "=", "w.sctid"),
            pg_op(
                "w.cls",
                "=",
                &format!(
                    "ANY ({}::pg_catalog.text[])",
                    quote_literal(&format!("{{{}}}", final_classes.join(",")))
                )
            ),
        )
    };
    let counts = format!("SELECT cls, pg_catalog.count(*) FROM {WORK} GROUP BY cls");
    let mark_row_error = format!(
        "UPDATE {WORK} SET cls = {}, err = $2 WHERE {}",
        RowClass::Error.lit(),
        pg_op("rn", "=", "$1")
    );
    let mark_row_deferred = format!(
        "UPDATE {WORK} SET cls = {} WHERE {}",
        RowClass::Deferred.lit(),
        pg_op("rn", "=", "$1")
    );
    let max_row = format!("SELECT COALESCE(pg_catalog.max(rn), 0) FROM {WORK}");
    let drop_work = format!("DROP TABLE {WORK}");
    let analyze_work = format!("ANALYZE {WORK}");

    MergeSql {
        create_work,
        fill_work,
        fill_work_rows,
        cast_keys,
        keys_need_cast,
        mark_nulls,
        mark_outside_window,
        mark_duplicates,
        classify_existing,
        classify_missing,
        lock_updates,
        defer_unlocked,
        apply_updates,
        apply_inserts,
        defer_conflicts,
        any_inserted_tombstoned,
        recheck_inserted,
        write_statuses,
        write_row_changes,
        counts,
        mark_row_error,
        mark_row_deferred,
        max_row,
        analyze_work,
        drop_work,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::{KeyPart, ValueColumn, VersionPart};

    /// A plan with a composite key (one part cast), and value columns with awkward names; shared
    /// by the SQL-generating modules' tests.
    pub(crate) fn plan() -> MergePlan {
        MergePlan {
            target: "\"production\".\"customers\"".into(),
            target_display: "production.customers".into(),
            staging: "\"staging\".\"customers\"".into(),
            staging_display: "staging.customers".into(),
            pk_constraint: "\"customers_pkey\"".into(),
            keys: vec![
                KeyPart {
                    target: "region".into(),
                    staging: "REGION".into(),
                    base_type: "text".into(),
                    needs_cast: false,
                    eq_schema: "pg_catalog".into(),
                },
                KeyPart {
                    target: "customer_id".into(),
                    staging: "CUSTOMER_ID".into(),
                    base_type: "integer".into(),
                    needs_cast: true,
                    eq_schema: "pg_catalog".into(),
                },
            ],
            version: VersionPart {
                target: "updated_at".into(),
                staging: "UPDATED_AT".into(),
                base_type: "timestamp without time zone".into(),
                needs_cast: false,
                ord_schema: "pg_catalog".into(),
                is_datetime: true,
            },
            values: vec![
                ValueColumn {
                    target: "name".into(),
                    staging: "NAME".into(),
                    base_type: "character varying".into(),
                    conversion: Conversion::Assign,
                    insert_only: false,
                },
                ValueColumn {
                    target: "weird \"col\"; DROP TABLE x".into(),
                    staging: "WEIRD".into(),
                    base_type: "integer".into(),
                    conversion: Conversion::Explicit,
                    insert_only: false,
                },
            ],
            overriding_system_value: false,
            with_metadata: true,
        }
    }

    fn all(sql: &MergeSql) -> Vec<&str> {
        vec![
            &sql.create_work,
            &sql.fill_work,
            &sql.fill_work_rows,
            &sql.cast_keys,
            &sql.mark_nulls,
            &sql.mark_outside_window,
            &sql.mark_duplicates,
            &sql.classify_existing,
            &sql.classify_missing,
            &sql.lock_updates,
            &sql.defer_unlocked,
            &sql.apply_updates,
            &sql.apply_inserts,
            &sql.defer_conflicts,
            &sql.any_inserted_tombstoned,
            &sql.recheck_inserted,
            &sql.write_statuses,
            &sql.write_row_changes,
            &sql.counts,
            &sql.mark_row_error,
            &sql.mark_row_deferred,
            &sql.max_row,
            &sql.analyze_work,
            &sql.drop_work,
        ]
    }

    /// The statement with quoted identifiers and string literals blanked out and every
    /// `OPERATOR(schema.op)` removed: what is left must hold no operator spelled bare.
    fn bare_text(stmt: &str) -> String {
        let mut bare = String::new();
        let mut quote: Option<char> = None;
        for ch in stmt.chars() {
            match quote {
                Some(q) if ch == q => {
                    quote = None;
                    bare.push('X');
                }
                Some(_) => {}
                None if ch == '"' || ch == '\'' => quote = Some(ch),
                None => bare.push(ch),
            }
        }
        while let Some(start) = bare.find("OPERATOR(") {
            let end = bare[start..]
                .find(')')
                .map(|e| start + e + 1)
                .expect("closing parenthesis");
            bare.replace_range(start..end, " ");
        }
        bare
    }

    #[test]
    fn every_operator_is_schema_qualified() {
        for audit in [false, true] {
            let sql = merge_sql(&plan(), audit);
            for stmt in all(&sql) {
                let bare = bare_text(stmt);
                for bad in ["<", ">", "!=", "||", " BETWEEN ", " LIKE ", "+", "-"] {
                    assert!(!bare.contains(bad), "bare {bad:?} in {stmt}\n{bare}");
                }
                // "=" survives only as the assignment of SET lists: "<column> = <value>" right after
                // SET or a comma
                let mut rest = bare.as_str();
                while let Some(i) = rest.find(" = ") {
                    let before = rest[..i].trim_end();
                    let token_start = before.rfind([' ', ',', '(']).map(|p| p + 1).unwrap_or(0);
                    let lead = before[..token_start].trim_end();
                    assert!(
                        lead.ends_with("SET") || lead.ends_with(','),
                        "a bare = that is not an assignment in {stmt}\n{bare}"
                    );
                    rest = &rest[i + 3..];
                }
            }
        }
    }

    #[test]
    fn identifiers_are_quoted_and_casts_go_to_base_types() {
        let sql = merge_sql(&plan(), false);
        assert!(sql.keys_need_cast);
        assert!(
            sql.cast_keys
                .contains("k2 = CAST(s.\"CUSTOMER_ID\" AS integer)"),
            "{}",
            sql.cast_keys
        );
        assert!(sql
            .apply_updates
            .contains("\"weird \"\"col\"\"; DROP TABLE x\" = CAST(s.\"WEIRD\" AS integer)"));
        assert!(
            sql.apply_updates.contains("\"name\" = s.\"NAME\""),
            "assignment conversion: no explicit cast"
        );
        assert!(sql
            .apply_inserts
            .contains("ON CONFLICT ON CONSTRAINT \"customers_pkey\" DO NOTHING"));
        assert!(!sql.apply_inserts.contains("OVERRIDING"));
        assert!(sql
            .classify_existing
            .contains("t.\"customer_id\" OPERATOR(\"pg_catalog\".=) w.k2"));
    }

    #[test]
    fn ranged_statements_take_two_parameters() {
        let sql = merge_sql(&plan(), false);
        for stmt in [&sql.cast_keys, &sql.apply_updates, &sql.apply_inserts] {
            assert!(stmt.contains("$1") && stmt.contains("$2"), "{stmt}");
            assert!(!stmt.contains("$3"));
        }
    }

    #[test]
    fn inserts_check_tombstones_before_and_after() {
        let sql = merge_sql(&plan(), false);
        let probe = "pg_catalog.jsonb_build_array(w.k1, w.k2)";
        assert!(
            sql.classify_missing.contains(probe),
            "{}",
            sql.classify_missing
        );
        assert!(sql
            .classify_missing
            .contains("tb.deleted_at OPERATOR(pg_catalog.>=) $2::pg_catalog.timestamptz"));
        assert!(sql
            .recheck_inserted
            .starts_with("WITH gone AS (DELETE FROM \"production\".\"customers\" t"));
        assert!(sql.recheck_inserted.contains(probe));
        assert!(sql
            .mark_outside_window
            .contains("v OPERATOR(\"pg_catalog\".>=) CAST($1::pg_catalog.timestamptz AS timestamp without time zone)"));
    }

    #[test]
    fn row_audit_keeps_images_only_when_asked() {
        let plain = merge_sql(&plan(), false);
        let audited = merge_sql(&plan(), true);
        assert!(!plain.lock_updates.contains("to_jsonb"));
        assert!(audited
            .lock_updates
            .contains("pg_catalog.to_jsonb(t.*) AS img"));
        assert!(audited.lock_updates.contains("before = l.img"));
        assert!(audited.apply_updates.contains("after = u.img"));
        assert!(audited.apply_inserts.contains("after = i.img"));
        assert!(audited
            .apply_inserts
            .contains("RETURNING t.\"region\" AS k1, t.\"customer_id\" AS k2"));
        assert!(audited
            .write_row_changes
            .contains("pg_catalog.jsonb_build_array(w.k1, w.k2)"));
    }

    #[test]
    fn statuses_follow_classes() {
        assert_eq!(RowClass::Inserted.final_status(), Some("PROCESSED"));
        assert_eq!(RowClass::Unchanged.final_status(), Some("PROCESSED"));
        assert_eq!(RowClass::Stale.final_status(), Some("SKIPPED"));
        assert_eq!(RowClass::Duplicate.final_status(), Some("SKIPPED"));
        assert_eq!(RowClass::Error.final_status(), Some("ERROR"));
        assert_eq!(RowClass::Deferred.final_status(), None);
        assert_eq!(RowClass::OutsideWindow.final_status(), None);
        for c in RowClass::ALL {
            assert_eq!(RowClass::parse(c.as_str()), Some(c));
        }
        // exactly the classes with a final status are written back; deferred and out-of-window
        // rows stay NEW
        let sql = merge_sql(&plan(), false);
        assert!(
            sql.write_statuses
                .contains("ANY ('{duplicate,unchanged,stale,deleted,updated,inserted,error}'::pg_catalog.text[])"),
            "{}",
            sql.write_statuses
        );
        let mut source = plan();
        source.with_metadata = false;
        let sql = merge_sql(&source, false);
        assert!(
            sql.write_statuses.is_empty(),
            "a source table is never written"
        );
        assert!(
            !sql.fill_work_rows.contains("_dwr_status"),
            "a source table has no statuses to read"
        );
    }

    #[test]
    fn counts_add_up_by_class() {
        let mut c = Counts::default();
        c.add(RowClass::Inserted, 1);
        c.add(RowClass::Updated, 2);
        c.add(RowClass::Unchanged, 1);
        c.add(RowClass::Stale, 1);
        c.add(RowClass::Duplicate, 2);
        c.add(RowClass::Error, 1);
        c.add(RowClass::Deferred, 3);
        assert_eq!(
            (
                c.inserted,
                c.updated,
                c.unchanged,
                c.skipped_stale,
                c.errors,
                c.deferred
            ),
            (1, 2, 1, 3, 1, 3)
        );
        assert_eq!(c.total(), 11);
    }

    #[test]
    fn generated_identity_always_needs_overriding() {
        let mut p = plan();
        p.overriding_system_value = true;
        p.values[0].insert_only = true;
        let sql = merge_sql(&p, false);
        assert!(sql.apply_inserts.contains("OVERRIDING SYSTEM VALUE SELECT"));
        assert!(
            !sql.apply_updates.contains("\"name\" ="),
            "insert-only column not updated"
        );
    }
}
