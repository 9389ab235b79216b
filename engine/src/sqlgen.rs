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
//! The merge works through a temporary work table with one row per staged row in status `NEW`. The
//! statements are few and each passes over the data once, because every pass over hundreds of
//! thousands of rows costs about as much as the writes themselves:
//! 1. `classify` reads staging, joins production and the tombstones, ranks duplicates and writes
//!    each row's [`RowClass`] into the work table, in one statement;
//! 2. `apply_inserts` and `apply_updates` write production and move only the rows production did
//!    not take (a concurrent insert, a row lock) to `Deferred`: the work table is not rewritten for
//!    the rows that went through;
//! 3. `write_statuses` writes every staged row's final status in one `UPDATE` of staging.
//!
//! The counts of `dwr.merge_result` are a `GROUP BY` over the classes.

use crate::ident::{quote_ident, quote_literal};
use crate::plan::{Conversion, MergePlan, META_ERROR, META_LOADED_AT, META_RUN_ID, META_STATUS};

/// The work table, in the session's temporary schema.
pub const WORK: &str = "pg_temp.\"_dwr_work\"";
/// With row audit, the before and after images of the rows a merge wrote, in the session's
/// temporary schema until `write_row_changes` copies them to `dwr.row_changes`.
pub const IMAGES: &str = "pg_temp.\"_dwr_images\"";

/// Where a staged row stands during and after a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowClass {
    /// read from staging, not yet classified (only between the steps of a merge whose keys need a
    /// cast)
    New,
    /// outside the open reload's window: stays `NEW`
    OutsideWindow,
    /// a higher version of the same key is staged too: `SKIPPED`
    Duplicate,
    /// production has the key with a lower (or NULL) version: updated. `apply_updates` moves the
    /// rows it could not write to `Deferred` or `Error`
    Update,
    /// production has the same version: `PROCESSED`, nothing written
    Unchanged,
    /// production has a higher version: `SKIPPED`
    Stale,
    /// production lacks the key: inserted. `apply_inserts` moves the rows it could not write to
    /// `Deferred` or `Error`
    Insert,
    /// production deleted the key since the reload began: `SKIPPED`
    Deleted,
    /// CDC held the row (a lock, or a concurrent insert of the key): stays `NEW` for a later merge
    Deferred,
    /// production rejected the row, or its key or version is unusable: `ERROR`
    Error,
}

impl RowClass {
    pub const ALL: [RowClass; 10] = [
        RowClass::New,
        RowClass::OutsideWindow,
        RowClass::Duplicate,
        RowClass::Update,
        RowClass::Unchanged,
        RowClass::Stale,
        RowClass::Insert,
        RowClass::Deleted,
        RowClass::Deferred,
        RowClass::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RowClass::New => "new",
            RowClass::OutsideWindow => "outside_window",
            RowClass::Duplicate => "duplicate",
            RowClass::Update => "update",
            RowClass::Unchanged => "unchanged",
            RowClass::Stale => "stale",
            RowClass::Insert => "insert",
            RowClass::Deleted => "deleted",
            RowClass::Deferred => "deferred",
            RowClass::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<RowClass> {
        RowClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The staging status a row of this class ends in (once the apply statements ran); `None`
    /// leaves it `NEW`.
    pub fn final_status(self) -> Option<&'static str> {
        match self {
            RowClass::Update | RowClass::Insert | RowClass::Unchanged => Some("PROCESSED"),
            RowClass::Duplicate | RowClass::Stale | RowClass::Deleted => Some("SKIPPED"),
            RowClass::Error => Some("ERROR"),
            RowClass::New | RowClass::OutsideWindow | RowClass::Deferred => None,
        }
    }

    pub(crate) fn lit(self) -> String {
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
    /// Add `n` rows that ended in `class` (once the apply statements ran). A row superseded by a
    /// newer staged row of its key counts as stale. `New` is not final and counts nowhere.
    pub fn add(&mut self, class: RowClass, n: i64) {
        match class {
            RowClass::Insert => self.inserted += n,
            RowClass::Update => self.updated += n,
            RowClass::Unchanged => self.unchanged += n,
            RowClass::Stale | RowClass::Duplicate => self.skipped_stale += n,
            RowClass::Deleted => self.skipped_deleted += n,
            RowClass::OutsideWindow => self.skipped_outside_window += n,
            RowClass::Deferred => self.deferred += n,
            RowClass::Error => self.errors += n,
            RowClass::New => {}
        }
    }

    /// Add another batch's counts.
    pub fn merge(&mut self, other: &Counts) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.skipped_stale += other.skipped_stale;
        self.skipped_deleted += other.skipped_deleted;
        self.skipped_outside_window += other.skipped_outside_window;
        self.deferred += other.deferred;
        self.errors += other.errors;
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
pub(crate) fn op(a: &str, schema: &str, operator: &str, b: &str) -> String {
    format!("{a} OPERATOR({}.{operator}) {b}", quote_ident(schema))
}

/// `a OPERATOR(pg_catalog.op) b`
pub(crate) fn pg_op(a: &str, operator: &str, b: &str) -> String {
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
pub(crate) fn kcol(i: usize) -> String {
    format!("k{}", i + 1)
}

/// The statements of one merge. Statements marked "ranged" take `$1`, `$2`: the first and last
/// work-table row number they touch, so the executor can bisect a failing range down to the row
/// that production rejects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSql {
    /// the work table, for a merge whose keys need a cast (`fill_classified` creates its own)
    pub create_work: String,
    /// with row audit: the images table; empty otherwise
    pub create_images: String,
    /// Create and fill the work table from staging and classify every row, in one statement (when
    /// no key or version needs a cast, so the statement cannot fail on a bad value; `create_work`
    /// is for the other case). `$1`: message for a NULL
    /// version, `$2`: message for a NULL key, `$3`, `$4`: the open reload's window (timestamptz,
    /// both ends included; NULL without a reload), `$5`: target oid, `$6`: deletes count from this
    /// moment (timestamptz). Returns no rows; its row count is the number of work rows.
    pub fill_classified: String,
    /// fill the work table with row numbers only; then `cast_keys` (ranged) fills keys and version,
    /// and `classify_work` classifies
    pub fill_work_rows: String,
    /// ranged
    pub cast_keys: String,
    /// the parameters of `fill_classified`, over the rows `cast_keys` left in class `New`
    pub classify_work: String,
    /// whether `fill_classified` may be used (nothing to cast)
    pub keys_need_cast: bool,
    /// ranged. Inserts the rows of class `Insert`; moves those production did not take (a
    /// concurrent insert of the key) to `Deferred`
    pub apply_inserts: String,
    /// ranged. Locks (`SKIP LOCKED`, version re-checked on the newest row version) and updates the
    /// rows of class `Update`; moves those it could not lock or that are no longer newer to
    /// `Deferred`
    pub apply_updates: String,
    /// ranged. Without row audit: updates the rows of class `Update` without a lock step (waiting
    /// for rows CDC holds); moves the rows whose version is no longer newer to `Deferred`. Empty
    /// with row audit
    pub apply_updates_direct: String,
    /// `$1`: target oid, `$2`: since. Whether any delete of the target since then was recorded: if
    /// none, no insert can need taking back
    pub any_tombstones: String,
    /// `$1`: target oid, `$2`: since. Whether an inserted key has a tombstone now (a CDC delete that
    /// committed while the insert ran); only then is `recheck_inserted` run (it needs DELETE)
    pub any_inserted_tombstoned: String,
    /// `$1`: target oid, `$2`: since. Takes back an insert whose key CDC deleted while the insert
    /// ran (the delete's tombstone committed after the insert's snapshot)
    pub recheck_inserted: String,
    /// `$1`: run id (and in a batch `$2`, `$3`: its key range). Empty for a source table without
    /// metadata columns: it is never written
    pub write_statuses: String,
    /// `$1`: run id, `$2`: target oid. Copies the kept images to `dwr.row_changes` (run as the
    /// extension owner)
    pub write_row_changes: String,
    pub counts: String,
    /// `$1`: row number, `$2`: error text
    pub mark_row_error: String,
    /// `$1`: row number
    pub mark_row_deferred: String,
    /// statistics for the work table, so the planner joins it to production with hashes or merges
    /// rather than nested loops (a fresh temporary table has none)
    pub analyze_work: String,
    pub drop_work: String,
}

/// `key > bound` (or `key <= bound`) in the lexicographic order of the key columns, on staging's
/// key columns (`s.`, staging's types), or with `production` on production's (`t.`, production's
/// types; meaningful only when the plan's key order is shared): a row comparison when every key
/// type orders with `pg_catalog` operators (so an index on the key serves it), spelled out column
/// by column otherwise.
fn key_compare_on(plan: &MergePlan, strict_greater: bool, bound: &str, production: bool) -> String {
    let keys = &plan.keys;
    let col = |i: usize| {
        if production {
            format!("t.{}", quote_ident(&keys[i].target))
        } else {
            format!("s.{}", quote_ident(&keys[i].staging))
        }
    };
    let val = |i: usize| {
        format!(
            "CAST(({bound}::pg_catalog.text[])[{}] AS {})",
            i + 1,
            if production {
                &keys[i].base_type
            } else {
                &keys[i].staging_base_type
            }
        )
    };
    let schema = |i: usize| {
        if production {
            &keys[i].ord_schema
        } else {
            &keys[i].staging_ord_schema
        }
        .clone()
        .unwrap_or_else(|| "pg_catalog".to_string())
    };
    let (last_op, inner_op) = if strict_greater {
        (">", ">")
    } else {
        ("<=", "<")
    };
    if keys.len() == 1 {
        return op(&col(0), &schema(0), last_op, &val(0));
    }
    if (0..keys.len()).all(|i| schema(i) == "pg_catalog") {
        let cols: Vec<String> = (0..keys.len()).map(col).collect();
        let vals: Vec<String> = (0..keys.len()).map(val).collect();
        return pg_op(
            &format!("ROW({})", cols.join(", ")),
            last_op,
            &format!("ROW({})", vals.join(", ")),
        );
    }
    // k1 op1 v1 OR (k1 = v1 AND (k2 op2 v2 OR (k2 = v2 AND ... kn op vn)))
    let mut expr = op(
        &col(keys.len() - 1),
        &schema(keys.len() - 1),
        last_op,
        &val(keys.len() - 1),
    );
    for i in (0..keys.len() - 1).rev() {
        expr = format!(
            "({} OR ({} AND {expr}))",
            op(&col(i), &schema(i), inner_op, &val(i)),
            op(&col(i), &schema(i), "=", &val(i)),
        );
    }
    expr
}

/// The staged rows of one batch: key greater than `lo` (the previous batch's upper bound, `NULL`
/// for the first batch, which also takes the rows with a NULL key part) and at most `hi` (`NULL`
/// for the last batch). Both bounds are `text[]`, a key's parts in their text form.
pub fn batch_range(plan: &MergePlan, lo: &str, hi: &str) -> String {
    let null_key = plan
        .keys
        .iter()
        .map(|k| format!("s.{} IS NULL", quote_ident(&k.staging)))
        .collect::<Vec<_>>()
        .join(" OR ");
    format!(
        "(({lo}::pg_catalog.text[] IS NULL AND ({null_key})) OR (({lo}::pg_catalog.text[] IS NULL OR {}) \
         AND ({hi}::pg_catalog.text[] IS NULL OR {})))",
        key_compare_on(plan, true, lo, false),
        key_compare_on(plan, false, hi, false),
    )
}

/// The statements of `dwr_merge_batches` around the batches themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSql {
    /// `$1`: batch size (int8). Cuts the NEW staged rows' distinct keys, in staging's key order,
    /// into batches of that many keys: one row per batch but the last, its upper bound (`text[]`)
    pub create_bounds: String,
    /// the NEW staged rows, all batches together
    pub count_new: String,
    /// whether the session still has bounds (of a call that was cancelled)
    pub bounds_exist: String,
    pub drop_bounds: String,
}

/// The table of batch bounds, in the session's temporary schema; it outlives the commits between
/// batches.
pub const BATCHES: &str = "pg_temp.\"_dwr_batches\"";

/// `$1`: batch number. That batch's upper bound; no row for the last batch, which is open above.
pub fn batch_bound_sql() -> String {
    format!(
        "SELECT hi FROM {BATCHES} WHERE {}",
        pg_op("batch", "=", "$1")
    )
}

/// The SQL around the batches of `plan`, or the key column that cannot be ordered.
pub fn batch_sql(plan: &MergePlan) -> std::result::Result<BatchSql, String> {
    if let Some(k) = plan.keys.iter().find(|k| k.staging_ord_schema.is_none()) {
        return Err(k.staging.clone());
    }
    let s = &plan.staging;
    let cols: Vec<String> = plan
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("s.{} AS c{}", quote_ident(&k.staging), i + 1))
        .collect();
    let c: Vec<String> = (1..=plan.keys.len()).map(|i| format!("d.c{i}")).collect();
    let not_null: Vec<String> = plan
        .keys
        .iter()
        .map(|k| format!("s.{} IS NOT NULL", quote_ident(&k.staging)))
        .collect();
    let new = pg_op(&format!("s.{}", quote_ident(META_STATUS)), "=", "'NEW'");
    let create_bounds = format!(
        "CREATE TEMPORARY TABLE \"_dwr_batches\" ON COMMIT PRESERVE ROWS AS \
         SELECT ({})::pg_catalog.int4 AS batch, x.hi FROM \
         (SELECT ARRAY[{}] AS hi, pg_catalog.row_number() OVER (ORDER BY {}) AS r, pg_catalog.count(*) OVER () AS n \
          FROM (SELECT {} FROM {s} s WHERE {new} AND {} GROUP BY {}) d) x \
         WHERE {} AND {}",
        pg_op("x.r", "/", "$1::pg_catalog.int8"),
        c.iter()
            .map(|c| format!("CAST({c} AS pg_catalog.text)"))
            .collect::<Vec<_>>()
            .join(", "),
        c.join(", "),
        cols.join(", "),
        not_null.join(" AND "),
        (1..=plan.keys.len()).map(|i| i.to_string()).collect::<Vec<_>>().join(", "),
        pg_op(&pg_op("x.r", "%", "$1::pg_catalog.int8"), "=", "0"),
        pg_op("x.r", "<", "x.n"),
    );
    Ok(BatchSql {
        create_bounds,
        count_new: format!("SELECT pg_catalog.count(*) FROM {s} s WHERE {new}"),
        bounds_exist: format!(
            "SELECT pg_catalog.to_regclass({}) IS NOT NULL",
            quote_literal(BATCHES)
        ),
        drop_bounds: format!("DROP TABLE {BATCHES}"),
    })
}

/// Write the SQL of a merge of `plan`.
/// With `row_audit`, the apply statements also keep each written row's before and after image
/// (`to_jsonb`) in [`IMAGES`], and `write_row_changes` copies them to `dwr.row_changes`.
pub fn merge_sql(plan: &MergePlan, row_audit: bool) -> MergeSql {
    merge_sql_inner(plan, row_audit, false)
}

/// The SQL of one batch of `dwr_merge_batches`: [`merge_sql`] reading only the staged rows whose
/// key lies in the batch's range (see [`batch_range`]): `fill_classified` takes the range as `$7`
/// (lower bound, exclusive) and `$8` (upper bound, inclusive), `fill_work_rows` as `$1` and `$2`,
/// the ranged apply statements as `$3` and `$4`, `write_statuses` as `$2` and `$3`.
pub fn merge_sql_batch(plan: &MergePlan, row_audit: bool) -> MergeSql {
    merge_sql_inner(plan, row_audit, true)
}

fn merge_sql_inner(plan: &MergePlan, row_audit: bool, batched: bool) -> MergeSql {
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
         loaded_at pg_catalog.timestamptz, {}, v {}, cls pg_catalog.text NOT NULL DEFAULT {}, err pg_catalog.text) \
         ON COMMIT DROP",
        key_cols_def.join(", "),
        ver.base_type,
        RowClass::New.lit()
    );
    let create_images = if row_audit {
        "CREATE TEMPORARY TABLE \"_dwr_images\" (key pg_catalog.jsonb NOT NULL, action pg_catalog.text NOT NULL, \
         before pg_catalog.jsonb, after pg_catalog.jsonb) ON COMMIT DROP"
            .to_string()
    } else {
        String::new()
    };

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
    let prefixed = |alias: &str| -> Vec<String> {
        key_list
            .iter()
            .map(|k| format!("{alias}.{k}"))
            .collect::<Vec<_>>()
    };
    // a registered staging table: its NEW rows; a source table: all of it
    let new_rows = if plan.with_metadata {
        format!(
            "FROM {s} s WHERE {}",
            pg_op(&format!("s.{}", quote_ident(META_STATUS)), "=", "'NEW'")
        )
    } else {
        format!("FROM {s} s")
    };
    // ... of one batch: within its key range
    let (new_rows, new_rows_numbered) = if batched {
        (
            format!("{new_rows} AND {}", batch_range(plan, "$7", "$8")),
            format!("{new_rows} AND {}", batch_range(plan, "$1", "$2")),
        )
    } else {
        (new_rows.clone(), new_rows)
    };
    let loaded_at = if plan.with_metadata {
        format!("s.{}", quote_ident(META_LOADED_AT))
    } else {
        "NULL::pg_catalog.timestamptz".to_string()
    };
    let fill_work_rows = format!(
        "INSERT INTO {WORK} (rn, sctid, loaded_at) \
         SELECT pg_catalog.row_number() OVER (), s.ctid, {loaded_at} {new_rows_numbered}",
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

    // ---- classification: one SELECT over rows y(rn, sctid, loaded_at, k1.., v) ----
    let y_keys = prefixed("y");
    let x_keys = prefixed("x");
    let null_key = x_keys
        .iter()
        .map(|k| format!("{k} IS NULL"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let window_bound =
        |param: &str| format!("CAST({param}::pg_catalog.timestamptz AS {})", ver.base_type);
    // only a date/time version can lie in a reload's window (reloads refuse other version types)
    let in_window = |alias: &str| {
        if !ver.is_datetime {
            return "true".to_string();
        }
        let v = format!("{alias}.v");
        format!(
            "($3::pg_catalog.timestamptz IS NULL OR ({} AND {}))",
            op(&v, &ver.ord_schema, ">=", &window_bound("$3")),
            op(&v, &ver.ord_schema, "<=", &window_bound("$4")),
        )
    };
    // the rows that compete as duplicates: usable key and version, inside the window
    let eligible = format!(
        "({} AND {} IS NOT NULL AND {})",
        y_keys
            .iter()
            .map(|k| format!("{k} IS NOT NULL"))
            .collect::<Vec<_>>()
            .join(" AND "),
        "y.v",
        in_window("y"),
    );
    // production row t matches the work row (or classified row) `alias`
    let join_keys = |alias: &str| {
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                op(
                    &format!("t.{}", quote_ident(&k.target)),
                    &k.eq_schema,
                    "=",
                    &format!("{alias}.{}", kcol(i)),
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let join_keys_x = join_keys("x");
    let tv = format!("t.{}", quote_ident(&ver.target));
    let newer_than = |alias: &str| {
        format!(
            "({tv} IS NULL OR {})",
            op(&tv, &ver.ord_schema, "<", &format!("{alias}.v"))
        )
    };
    let key_json = |alias: &str| {
        format!(
            "pg_catalog.jsonb_build_array({})",
            prefixed(alias).join(", ")
        )
    };
    // the keys CDC deleted since the reload began: an uncorrelated sub-select, hashed once
    let tombstoned_keys = |target: &str, since: &str| {
        format!(
            "(SELECT tb.key FROM dwr.tombstones tb WHERE {} AND {})",
            pg_op("tb.target", "=", &format!("{target}::pg_catalog.oid")),
            pg_op(
                "tb.deleted_at",
                ">=",
                &format!("{since}::pg_catalog.timestamptz")
            ),
        )
    };
    // production's key columns are NOT NULL (a primary key): t matched when its first one is set
    let matched = format!("t.{} IS NOT NULL", quote_ident(&keys[0].target));
    let class_case = format!(
        "CASE WHEN x.v IS NULL OR {null_key} THEN {} \
         WHEN NOT {} THEN {} \
         WHEN {} THEN {} \
         WHEN {matched} THEN CASE WHEN {} THEN {} WHEN {} THEN {} ELSE {} END \
         WHEN {} OPERATOR(pg_catalog.=) ANY {} THEN {} \
         ELSE {} END",
        RowClass::Error.lit(),
        in_window("x"),
        RowClass::OutsideWindow.lit(),
        pg_op("x.dup", ">", "1"),
        RowClass::Duplicate.lit(),
        newer_than("x"),
        RowClass::Update.lit(),
        op(&tv, &ver.ord_schema, "=", "x.v"),
        RowClass::Unchanged.lit(),
        RowClass::Stale.lit(),
        key_json("x"),
        tombstoned_keys("$5", "$6"),
        RowClass::Deleted.lit(),
        RowClass::Insert.lit(),
    );
    let err_case = format!("CASE WHEN x.v IS NULL THEN $1 WHEN {null_key} THEN $2 END");
    // y ranked: x; x joined to production. Staging whose own key rules out duplicates needs no
    // ranking (a sort of every staged row)
    let rank = if plan.staging_keys_unique {
        "1::pg_catalog.int8".to_string()
    } else {
        format!(
            "pg_catalog.row_number() OVER (PARTITION BY {}, {eligible} \
             ORDER BY y.v DESC, y.loaded_at DESC NULLS LAST, y.sctid DESC)",
            y_keys.join(", ")
        )
    };
    // a batch whose key order production shares reads only production's rows in its key range
    // (an index range scan), not all of production for every batch
    let prod_range = if batched && plan.key_order_shared {
        format!(
            " AND ($7::pg_catalog.text[] IS NULL OR {}) AND ($8::pg_catalog.text[] IS NULL OR {})",
            key_compare_on(plan, true, "$7", true),
            key_compare_on(plan, false, "$8", true),
        )
    } else {
        String::new()
    };
    let classified = |rows: &str| {
        format!(
            "FROM (SELECT y.*, {rank} AS dup FROM {rows} y) x LEFT JOIN {t} t ON {join_keys_x}{prod_range}"
        )
    };
    // CREATE TABLE AS rather than INSERT into a created table: it writes with a bulk-insert state
    // (measured 10 to 25% faster for 200,000 rows); the column types are those of the expressions
    let fill_classified = format!(
        "CREATE TEMPORARY TABLE \"_dwr_work\" ON COMMIT DROP AS \
         SELECT x.rn, x.sctid, x.loaded_at, {}, x.v, ({class_case})::pg_catalog.text AS cls, \
         ({err_case})::pg_catalog.text AS err {}",
        x_keys.join(", "),
        classified(&format!(
            "(SELECT pg_catalog.row_number() OVER () AS rn, s.ctid AS sctid, {loaded_at} AS loaded_at, {}, \
             {staged_version} AS v {new_rows})",
            staged_keys
                .iter()
                .zip(&key_list)
                .map(|(e, k)| format!("{e} AS {k}"))
                .collect::<Vec<_>>()
                .join(", "),
        )),
    );
    let classify_work = format!(
        "UPDATE {WORK} w SET cls = c.cls, err = c.err FROM (SELECT x.rn, {class_case} AS cls, {err_case} AS err {}) c \
         WHERE {}",
        classified(&format!(
            "(SELECT rn, sctid, loaded_at, {}, v FROM {WORK} WHERE {})",
            key_list.join(", "),
            class_is("", RowClass::New)
        )),
        pg_op("w.rn", "=", "c.rn"),
    );

    // ---- apply ----
    // in a batch, the statements that join staging read only the batch's key range of it (through
    // staging's key index) rather than all of staging for every batch
    let staged_in = |lo: &str, hi: &str| {
        if batched {
            format!(" AND {}", batch_range(plan, lo, hi))
        } else {
            String::new()
        }
    };
    let staged_apply = staged_in("$3", "$4");
    let value_expr = |v: &crate::plan::ValueColumn| {
        let col = format!("s.{}", quote_ident(&v.staging));
        match v.conversion {
            Conversion::Explicit => format!("CAST({col} AS {})", v.base_type),
            _ => col,
        }
    };
    let same_key = |a: &str, b: &str| {
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                op(
                    &format!("{a}.{}", kcol(i)),
                    &k.eq_schema,
                    "=",
                    &format!("{b}.{}", kcol(i)),
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    // with row audit, a write also keeps the row's images: before from the locked row, after from
    // RETURNING
    let img = if row_audit {
        ", pg_catalog.to_jsonb(t.*) AS img"
    } else {
        ""
    };
    let keep = |cte: &str, action: &str, before: &str| {
        if row_audit {
            format!(
                ", a AS (INSERT INTO {IMAGES} (key, action, before, after) \
                 SELECT {}, {}, {before}, {cte}.img FROM {cte})",
                key_json(cte),
                quote_literal(action),
            )
        } else {
            String::new()
        }
    };

    let mut insert_cols: Vec<String> = keys.iter().map(|k| quote_ident(&k.target)).collect();
    insert_cols.push(quote_ident(&ver.target));
    insert_cols.extend(plan.values.iter().map(|v| quote_ident(&v.target)));
    let mut insert_vals: Vec<String> = prefixed("w");
    insert_vals.push("w.v".to_string());
    insert_vals.extend(plan.values.iter().map(value_expr));
    let returning: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("t.{} AS {}", quote_ident(&k.target), kcol(i)))
        .collect();
    let apply_inserts = format!(
        "WITH i AS (INSERT INTO {t} AS t ({}) {}SELECT {} FROM {WORK} w JOIN {s} s ON {}{staged_apply} \
         WHERE {} AND {} ON CONFLICT ON CONSTRAINT {} DO NOTHING RETURNING {}{img}){} \
         UPDATE {WORK} w SET cls = {} WHERE {} AND {} AND NOT EXISTS (SELECT FROM i WHERE {})",
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
        keep("i", "insert", "NULL::pg_catalog.jsonb"),
        RowClass::Deferred.lit(),
        class_is("w.", RowClass::Insert),
        in_range("w."),
        same_key("i", "w"),
    );

    // in a batch, production's rows between the lowest and the highest first key part of the work
    // table: a bound that never excludes a match, and lets the planner read one key range of
    // production (an index range scan) instead of all of it for every batch
    let work_range = match (&keys[0].ord_schema, batched) {
        (Some(schema), true) => {
            let t0 = format!("t.{}", quote_ident(&keys[0].target));
            format!(
                " AND {} AND {}",
                op(
                    &t0,
                    schema,
                    ">=",
                    &format!("(SELECT b.k1 FROM {WORK} b ORDER BY b.k1 LIMIT 1)")
                ),
                op(
                    &t0,
                    schema,
                    "<=",
                    &format!("(SELECT b.k1 FROM {WORK} b ORDER BY b.k1 DESC NULLS LAST LIMIT 1)")
                ),
            )
        }
        _ => String::new(),
    };
    // the lock reads the staged values too, so the update finds its rows by ctid: the newest row
    // version, the one the lock returned (a version committed after this statement's snapshot is
    // not visible to it: that row is left for the next merge, never written over)
    let updated: Vec<&crate::plan::ValueColumn> =
        plan.values.iter().filter(|v| !v.insert_only).collect();
    let mut sets: Vec<String> = updated
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{} = l.c{}", quote_ident(&v.target), i + 1))
        .collect();
    sets.push(format!("{} = l.v", quote_ident(&ver.target)));
    let staged_values: Vec<String> = updated
        .iter()
        .enumerate()
        .map(|(i, v)| format!(", {} AS c{}", value_expr(v), i + 1))
        .collect();
    let apply_updates = format!(
        "WITH l AS (SELECT t.ctid AS tid, w.rn, {}, w.v{}{} FROM {WORK} w JOIN {t} t ON {}{work_range} \
         JOIN {s} s ON {}{staged_apply} WHERE {} AND {} AND {} FOR UPDATE OF t SKIP LOCKED), \
         u AS (UPDATE {t} t SET {} FROM l WHERE {} RETURNING l.rn, {}{}){} \
         UPDATE {WORK} w SET cls = {} WHERE {} AND {} AND NOT EXISTS (SELECT FROM u WHERE {})",
        prefixed("w").join(", "),
        staged_values.concat(),
        if row_audit {
            ", pg_catalog.to_jsonb(t.*) AS before"
        } else {
            ""
        },
        join_keys("w"),
        pg_op("s.ctid", "=", "w.sctid"),
        class_is("w.", RowClass::Update),
        in_range("w."),
        newer_than("w"),
        sets.join(", "),
        pg_op("t.ctid", "=", "l.tid"),
        prefixed("l").join(", "),
        if row_audit {
            ", l.before, pg_catalog.to_jsonb(t.*) AS img"
        } else {
            ""
        },
        keep("u", "update", "u.before"),
        RowClass::Deferred.lit(),
        class_is("w.", RowClass::Update),
        in_range("w."),
        pg_op("u.rn", "=", "w.rn"),
    );

    // without row audit (nothing to read before the write), the update first runs without the lock
    // step: one join, rows updated in place with the version compared again on a row that changed
    // meanwhile. It waits for a row CDC holds (at most dwr.row_lock_timeout); if that runs out, the
    // executor runs `apply_updates` (lock step, SKIP LOCKED) over the same range instead
    let apply_updates_direct = if row_audit {
        String::new()
    } else {
        let direct_sets: Vec<String> = updated
            .iter()
            .map(|v| format!("{} = {}", quote_ident(&v.target), value_expr(v)))
            .chain(std::iter::once(format!(
                "{} = w.v",
                quote_ident(&ver.target)
            )))
            .collect();
        format!(
            "WITH u AS (UPDATE {t} t SET {} FROM {WORK} w JOIN {s} s ON {}{staged_apply} WHERE {} AND {} AND {}{work_range} AND {} \
             RETURNING w.rn) \
             UPDATE {WORK} w SET cls = {} WHERE {} AND {} AND NOT EXISTS (SELECT FROM u WHERE {})",
            direct_sets.join(", "),
            pg_op("s.ctid", "=", "w.sctid"),
            class_is("w.", RowClass::Update),
            in_range("w."),
            join_keys("w"),
            newer_than("w"),
            RowClass::Deferred.lit(),
            class_is("w.", RowClass::Update),
            in_range("w."),
            pg_op("u.rn", "=", "w.rn"),
        )
    };

    let any_tombstones = format!(
        "SELECT EXISTS (SELECT FROM dwr.tombstones tb WHERE {} AND {})",
        pg_op("tb.target", "=", "$1::pg_catalog.oid"),
        pg_op("tb.deleted_at", ">=", "$2::pg_catalog.timestamptz"),
    );
    let any_inserted_tombstoned = format!(
        "SELECT EXISTS (SELECT FROM {WORK} x WHERE {} AND {} OPERATOR(pg_catalog.=) ANY {})",
        class_is("x.", RowClass::Insert),
        key_json("x"),
        tombstoned_keys("$1", "$2"),
    );
    let recheck_inserted = format!(
        "WITH gone AS (DELETE FROM {t} t USING {WORK} x WHERE {} AND {join_keys_x} AND {} OPERATOR(pg_catalog.=) ANY {} \
         RETURNING x.rn, {}){} \
         UPDATE {WORK} w SET cls = {} FROM gone WHERE {}",
        class_is("x.", RowClass::Insert),
        key_json("x"),
        tombstoned_keys("$1", "$2"),
        prefixed("x").join(", "),
        if row_audit {
            format!(
                ", a AS (DELETE FROM {IMAGES} im USING gone WHERE {} AND {})",
                pg_op("im.key", "=", &key_json("gone")),
                pg_op("im.action", "=", "'insert'"),
            )
        } else {
            String::new()
        },
        RowClass::Deleted.lit(),
        pg_op("w.rn", "=", "gone.rn"),
    );

    let write_row_changes = format!(
        "INSERT INTO dwr.row_changes (run_id, target, key, action, before, after) \
         SELECT $1, $2::pg_catalog.oid, im.key, im.action, im.before, im.after FROM {IMAGES} im"
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
         WHERE {} AND {}{}",
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
            staged_in("$2", "$3"),
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
    let drop_work = if row_audit {
        format!("DROP TABLE {WORK}, {IMAGES}")
    } else {
        format!("DROP TABLE {WORK}")
    };
    let analyze_work = format!("ANALYZE {WORK}");

    MergeSql {
        create_work,
        create_images,
        fill_classified,
        fill_work_rows,
        cast_keys,
        classify_work,
        keys_need_cast,
        apply_inserts,
        apply_updates,
        apply_updates_direct,
        any_tombstones,
        any_inserted_tombstoned,
        recheck_inserted,
        write_statuses,
        write_row_changes,
        counts,
        mark_row_error,
        mark_row_deferred,
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
                    staging_base_type: "text".into(),
                    staging_ord_schema: Some("pg_catalog".into()),
                    ord_schema: Some("pg_catalog".into()),
                },
                KeyPart {
                    target: "customer_id".into(),
                    staging: "CUSTOMER_ID".into(),
                    base_type: "integer".into(),
                    needs_cast: true,
                    eq_schema: "pg_catalog".into(),
                    staging_base_type: "numeric".into(),
                    staging_ord_schema: Some("pg_catalog".into()),
                    ord_schema: Some("pg_catalog".into()),
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
            staging_keys_unique: false,
            key_order_shared: false,
        }
    }

    fn all(sql: &MergeSql) -> Vec<&str> {
        vec![
            &sql.create_work,
            &sql.create_images,
            &sql.fill_classified,
            &sql.fill_work_rows,
            &sql.cast_keys,
            &sql.classify_work,
            &sql.apply_inserts,
            &sql.apply_updates,
            &sql.apply_updates_direct,
            &sql.any_tombstones,
            &sql.any_inserted_tombstoned,
            &sql.recheck_inserted,
            &sql.write_statuses,
            &sql.write_row_changes,
            &sql.counts,
            &sql.mark_row_error,
            &sql.mark_row_deferred,
            &sql.analyze_work,
            &sql.drop_work,
        ]
    }

    #[test]
    fn batch_statements_qualify_every_operator_too() {
        let b = batch_sql(&plan()).unwrap();
        let batch = merge_sql_batch(&plan(), false);
        for stmt in [
            &b.create_bounds,
            &b.count_new,
            &batch_bound_sql(),
            &batch.fill_classified,
            &batch.fill_work_rows,
        ] {
            let bare = bare_text(stmt);
            for bad in ["<", ">", "!=", "||", "+", "%", "/ "] {
                assert!(!bare.contains(bad), "bare {bad:?} in {stmt}\n{bare}");
            }
        }
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
        assert!(
            sql.apply_updates
                .contains(", s.\"NAME\" AS c1, CAST(s.\"WEIRD\" AS integer) AS c2"),
            "assignment conversion: no explicit cast; explicit: a cast\n{}",
            sql.apply_updates
        );
        assert!(sql.apply_updates.contains(
            "SET \"name\" = l.c1, \"weird \"\"col\"\"; DROP TABLE x\" = l.c2, \"updated_at\" = l.v"
        ));
        assert!(sql
            .apply_inserts
            .contains("ON CONFLICT ON CONSTRAINT \"customers_pkey\" DO NOTHING"));
        assert!(!sql.apply_inserts.contains("OVERRIDING"));
        assert!(sql
            .fill_classified
            .contains("LEFT JOIN \"production\".\"customers\" t ON t.\"region\" OPERATOR(\"pg_catalog\".=) x.k1 AND t.\"customer_id\" OPERATOR(\"pg_catalog\".=) x.k2"));
        assert!(sql
            .apply_updates
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
        let deleted = "pg_catalog.jsonb_build_array(x.k1, x.k2) OPERATOR(pg_catalog.=) ANY \
                       (SELECT tb.key FROM dwr.tombstones tb WHERE tb.target OPERATOR(pg_catalog.=) $5::pg_catalog.oid \
                       AND tb.deleted_at OPERATOR(pg_catalog.>=) $6::pg_catalog.timestamptz) THEN 'deleted'";
        assert!(
            sql.fill_classified.contains(deleted),
            "{}",
            sql.fill_classified
        );
        assert!(sql.classify_work.contains(deleted), "{}", sql.classify_work);
        // the tombstone test comes after the production match: a key production has is never
        // classified deleted
        let fill = &sql.fill_classified;
        assert!(fill.find("WHEN t.\"region\" IS NOT NULL").unwrap() < fill.find(deleted).unwrap());
        assert!(sql
            .recheck_inserted
            .starts_with("WITH gone AS (DELETE FROM \"production\".\"customers\" t"));
        assert!(sql.recheck_inserted.contains(
            "pg_catalog.jsonb_build_array(x.k1, x.k2) OPERATOR(pg_catalog.=) ANY (SELECT tb.key"
        ));
        assert!(sql
            .any_tombstones
            .contains("tb.target OPERATOR(pg_catalog.=) $1::pg_catalog.oid"));
    }

    #[test]
    fn classification_keeps_the_order_of_the_rules() {
        let sql = merge_sql(&plan(), false);
        let fill = &sql.fill_classified;
        let at = |needle: &str| {
            fill.find(needle)
                .unwrap_or_else(|| panic!("{needle:?} not in {fill}"))
        };
        // unusable rows first, then the window, then duplicates, then production, then tombstones
        let order = [
            "WHEN x.v IS NULL OR x.k1 IS NULL OR x.k2 IS NULL THEN 'error'",
            "WHEN NOT ($3::pg_catalog.timestamptz IS NULL OR (x.v OPERATOR(\"pg_catalog\".>=) \
             CAST($3::pg_catalog.timestamptz AS timestamp without time zone)",
            "WHEN x.dup OPERATOR(pg_catalog.>) 1 THEN 'duplicate'",
            "THEN 'update'",
            "THEN 'unchanged' ELSE 'stale'",
            "THEN 'deleted'",
            "ELSE 'insert' END",
        ];
        for pair in order.windows(2) {
            assert!(
                at(pair[0]) < at(pair[1]),
                "{:?} before {:?}",
                pair[0],
                pair[1]
            );
        }
        // duplicates compete only among usable rows inside the window, newest version first
        assert!(fill.contains(
            "PARTITION BY y.k1, y.k2, (y.k1 IS NOT NULL AND y.k2 IS NOT NULL AND y.v IS NOT NULL AND \
             ($3::pg_catalog.timestamptz IS NULL"
        ));
        assert!(fill.contains("ORDER BY y.v DESC, y.loaded_at DESC NULLS LAST, y.sctid DESC"));
        // one pass: staging's NEW rows read once, keys cast where the plan says so
        assert_eq!(fill.matches("FROM \"staging\".\"customers\" s").count(), 1);
        assert!(fill.contains("s.\"_dwr_status\" OPERATOR(pg_catalog.=) 'NEW'"));
        assert!(fill.contains("CAST(s.\"CUSTOMER_ID\" AS integer) AS k2"));
        // the cast path classifies the rows cast_keys left NEW, with the same rules
        assert!(sql.classify_work.contains(&order[0].replace("WHEN ", "")));
        assert!(sql
            .classify_work
            .contains("FROM pg_temp.\"_dwr_work\" WHERE cls OPERATOR(pg_catalog.=) 'new'"));
    }

    #[test]
    fn unique_staging_keys_skip_the_duplicate_ranking() {
        let mut p = plan();
        p.staging_keys_unique = true;
        let sql = merge_sql(&p, false);
        assert!(
            !sql.fill_classified.contains("PARTITION BY"),
            "{}",
            sql.fill_classified
        );
        assert!(sql
            .fill_classified
            .contains("SELECT y.*, 1::pg_catalog.int8 AS dup"));
        assert!(merge_sql(&plan(), false)
            .fill_classified
            .contains("PARTITION BY"));
    }

    #[test]
    fn batches_are_ranges_of_staging_key_order() {
        let p = plan();
        let range = batch_range(&p, "$7", "$8");
        // both key types order with pg_catalog operators: one row comparison each way (an index on
        // staging's key serves it), bounds cast from text to staging's own types
        assert!(range.contains(
            "ROW(s.\"REGION\", s.\"CUSTOMER_ID\") OPERATOR(pg_catalog.>) ROW(CAST(($7::pg_catalog.text[])[1] AS text), \
             CAST(($7::pg_catalog.text[])[2] AS numeric))"
        ), "{range}");
        assert!(
            range.contains("OPERATOR(pg_catalog.<=) ROW(CAST(($8::pg_catalog.text[])[1] AS text)")
        );
        // the first batch also takes the rows with a NULL key part
        assert!(range.starts_with(
            "(($7::pg_catalog.text[] IS NULL AND (s.\"REGION\" IS NULL OR s.\"CUSTOMER_ID\" IS NULL))"
        ));
        let batch = merge_sql_batch(&p, false);
        assert!(batch.fill_classified.contains(&range));
        assert!(batch.fill_work_rows.contains(&batch_range(&p, "$1", "$2")));
        assert!(!merge_sql(&p, false).fill_classified.contains("$7"));

        // a key type whose operators live elsewhere: spelled out column by column
        let mut q = plan();
        q.keys[0].staging_ord_schema = Some("public".into());
        let range = batch_range(&q, "$7", "$8");
        assert!(range.contains(
            "(s.\"REGION\" OPERATOR(\"public\".>) CAST(($7::pg_catalog.text[])[1] AS text) OR \
             (s.\"REGION\" OPERATOR(\"public\".=) CAST(($7::pg_catalog.text[])[1] AS text) AND \
             s.\"CUSTOMER_ID\" OPERATOR(\"pg_catalog\".>) CAST(($7::pg_catalog.text[])[2] AS numeric)))"
        ), "{range}");
        assert!(range.contains("OPERATOR(\"public\".<) CAST(($8"), "{range}");

        // production is read in the batch's range: by the bounds when its key order is staging's,
        // by the work table's lowest and highest key in the apply statements
        assert!(!batch
            .fill_classified
            .contains("t.\"region\" OPERATOR(pg_catalog.>)"));
        let mut shared = plan();
        shared.key_order_shared = true;
        let sb = merge_sql_batch(&shared, false);
        assert!(sb.fill_classified.contains(
            "AND ($7::pg_catalog.text[] IS NULL OR ROW(t.\"region\", t.\"customer_id\") OPERATOR(pg_catalog.>) \
             ROW(CAST(($7::pg_catalog.text[])[1] AS text), CAST(($7::pg_catalog.text[])[2] AS integer)))"
        ), "{}", sb.fill_classified);
        assert!(!merge_sql(&shared, false).fill_classified.contains("$7"));
        let lowest = "t.\"region\" OPERATOR(\"pg_catalog\".>=) (SELECT b.k1 FROM pg_temp.\"_dwr_work\" b ORDER BY b.k1 LIMIT 1)";
        assert!(
            batch.apply_updates_direct.contains(lowest),
            "{}",
            batch.apply_updates_direct
        );
        assert!(batch.apply_updates.contains(lowest));
        assert!(batch
            .apply_updates
            .contains("ORDER BY b.k1 DESC NULLS LAST LIMIT 1)"));
        assert!(!merge_sql(&p, false).apply_updates_direct.contains(lowest));

        // every statement that joins staging reads only the batch's range of it
        assert!(batch.apply_inserts.contains(&batch_range(&p, "$3", "$4")));
        assert!(batch.apply_updates.contains(&batch_range(&p, "$3", "$4")));
        assert!(batch
            .apply_updates_direct
            .contains(&batch_range(&p, "$3", "$4")));
        assert!(batch.write_statuses.contains(&batch_range(&p, "$2", "$3")));
        let single = merge_sql(&p, false);
        for stmt in [
            &single.apply_inserts,
            &single.apply_updates_direct,
            &single.write_statuses,
        ] {
            assert!(!stmt.contains("::pg_catalog.text[] IS NULL"), "{stmt}");
        }

        let b = batch_sql(&p).unwrap();
        assert!(
            b.create_bounds.contains("ORDER BY d.c1, d.c2"),
            "{}",
            b.create_bounds
        );
        assert!(b.create_bounds.contains("GROUP BY 1, 2"));
        assert!(b
            .create_bounds
            .contains("x.r OPERATOR(pg_catalog.%) $1::pg_catalog.int8 OPERATOR(pg_catalog.=) 0"));
        // the last batch has no upper bound
        assert!(b
            .create_bounds
            .ends_with("AND x.r OPERATOR(pg_catalog.<) x.n"));
        q.keys[1].staging_ord_schema = None;
        assert_eq!(batch_sql(&q).unwrap_err(), "CUSTOMER_ID");
    }

    #[test]
    fn apply_statements_defer_only_what_production_did_not_take() {
        let sql = merge_sql(&plan(), false);
        assert!(sql.apply_inserts.contains(
            "UPDATE pg_temp.\"_dwr_work\" w SET cls = 'deferred' WHERE w.cls OPERATOR(pg_catalog.=) 'insert' AND \
             w.rn OPERATOR(pg_catalog.>=) $1 AND w.rn OPERATOR(pg_catalog.<=) $2 AND NOT EXISTS (SELECT FROM i WHERE \
             i.k1 OPERATOR(\"pg_catalog\".=) w.k1 AND i.k2 OPERATOR(\"pg_catalog\".=) w.k2)"
        ), "{}", sql.apply_inserts);
        let upd = &sql.apply_updates;
        assert!(upd.contains("FOR UPDATE OF t SKIP LOCKED"), "{upd}");
        // the version is compared again on the newest row version the lock returns
        assert!(upd.contains(
            "AND (t.\"updated_at\" IS NULL OR t.\"updated_at\" OPERATOR(\"pg_catalog\".<) w.v) FOR UPDATE"
        ), "{upd}");
        assert!(upd.contains("\"updated_at\" = l.v"), "{upd}");
        assert!(
            upd.contains("WHERE t.ctid OPERATOR(pg_catalog.=) l.tid"),
            "{upd}"
        );
        assert!(upd.contains(
            "SET cls = 'deferred' WHERE w.cls OPERATOR(pg_catalog.=) 'update' AND w.rn OPERATOR(pg_catalog.>=) $1 \
             AND w.rn OPERATOR(pg_catalog.<=) $2 AND NOT EXISTS (SELECT FROM u WHERE u.rn OPERATOR(pg_catalog.=) w.rn)"
        ), "{upd}");
    }

    #[test]
    fn the_direct_update_guards_the_version_and_exists_only_without_row_audit() {
        let sql = merge_sql(&plan(), false);
        let d = &sql.apply_updates_direct;
        assert!(d.starts_with("WITH u AS (UPDATE \"production\".\"customers\" t SET \"name\" = s.\"NAME\", \
             \"weird \"\"col\"\"; DROP TABLE x\" = CAST(s.\"WEIRD\" AS integer), \"updated_at\" = w.v FROM"), "{d}");
        // the version predicate is part of the UPDATE's WHERE, so it is evaluated again on a row
        // version committed while the statement ran
        assert!(d.contains("AND (t.\"updated_at\" IS NULL OR t.\"updated_at\" OPERATOR(\"pg_catalog\".<) w.v) RETURNING w.rn"), "{d}");
        assert!(!d.contains("FOR UPDATE"));
        assert!(d.contains("NOT EXISTS (SELECT FROM u WHERE u.rn OPERATOR(pg_catalog.=) w.rn)"));
        assert!(merge_sql(&plan(), true).apply_updates_direct.is_empty());
    }

    #[test]
    fn row_audit_keeps_images_only_when_asked() {
        let plain = merge_sql(&plan(), false);
        let audited = merge_sql(&plan(), true);
        assert!(plain.create_images.is_empty());
        for stmt in [
            &plain.apply_updates,
            &plain.apply_inserts,
            &plain.recheck_inserted,
        ] {
            assert!(
                !stmt.contains("to_jsonb") && !stmt.contains("_dwr_images"),
                "{stmt}"
            );
        }
        assert!(audited.create_images.contains("\"_dwr_images\""));
        assert!(audited
            .apply_updates
            .contains("AS c2, pg_catalog.to_jsonb(t.*) AS before FROM"));
        assert!(
            audited.apply_updates.contains(
                "a AS (INSERT INTO pg_temp.\"_dwr_images\" (key, action, before, after) SELECT \
             pg_catalog.jsonb_build_array(u.k1, u.k2), 'update', u.before, u.img FROM u)"
            ),
            "{}",
            audited.apply_updates
        );
        assert!(audited.apply_inserts.contains(
            "RETURNING t.\"region\" AS k1, t.\"customer_id\" AS k2, pg_catalog.to_jsonb(t.*) AS img"
        ));
        assert!(audited
            .apply_inserts
            .contains("SELECT pg_catalog.jsonb_build_array(i.k1, i.k2), 'insert', NULL::pg_catalog.jsonb, i.img FROM i"));
        // an insert taken back leaves no image behind
        assert!(audited
            .recheck_inserted
            .contains("DELETE FROM pg_temp.\"_dwr_images\" im USING gone"));
        assert!(audited
            .write_row_changes
            .contains("FROM pg_temp.\"_dwr_images\" im"));
        assert!(audited.drop_work.contains("\"_dwr_images\""));
    }

    #[test]
    fn statuses_follow_classes() {
        assert_eq!(RowClass::Insert.final_status(), Some("PROCESSED"));
        assert_eq!(RowClass::Update.final_status(), Some("PROCESSED"));
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
                .contains("ANY ('{duplicate,update,unchanged,stale,insert,deleted,error}'::pg_catalog.text[])"),
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
        c.add(RowClass::Insert, 1);
        c.add(RowClass::Update, 2);
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
            !sql.apply_updates.contains("\"name\" =") && !sql.apply_updates.contains("NAME"),
            "insert-only column not updated"
        );
    }
}
