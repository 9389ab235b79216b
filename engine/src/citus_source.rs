//! `dwr_merge(..., source =>)` into a Citus table: the source moves into a co-located copy first.
//!
//! The pushed-down merge ([`crate::citus`]) reads a staging table placed like production, keyed by
//! production's key (so no key is staged twice), with production's key and version types. A source
//! table is none of that: a plain table of the coordinator, a view, a table keyed otherwise, with
//! duplicates and other types. So the source's rows are first classified on the coordinator the way
//! the local merge classifies them, as far as the pushed-down merge cannot: a NULL key or version is
//! an error, a version outside the open reload's window is left alone, and of the rows of one key
//! inside it only the newest goes on (the others are duplicates). Those rows go into a table shaped
//! like staging (the columns the source has), placed like production; the merge then reads it as
//! staging. The classes of the rows left behind are counted with the merge's.
//!
//! A value that does not convert to production's type fails the copy, and with it the merge (the
//! local merge isolates such a row as an `ERROR` row): the conversion runs on the coordinator,
//! where no per-row isolation is.

use crate::catalog::Relation;
use crate::error::{DwrError, Result};
use crate::ident::{quote_ident, quote_qualified};
use crate::plan::{ChangeLog, Conversion, MergePlan, CHANGE_OP, META_COLUMNS};
use crate::program::{Param, Params, Stmt};
use crate::sqlgen::{known_operation, op, pg_op, staged, RowClass};

/// The session's classified source rows (a temporary table of the coordinator).
const ROWS: &str = "pg_temp.\"_dwr_source_rows\"";

/// The class of a source row the copy takes.
const COPIED: &str = "'copy'";

/// The copy of a source, next to staging (in staging's schema `schema`), for production table
/// `target_oid`.
pub fn copy_name(schema: &str, target_oid: u32) -> String {
    quote_qualified(schema, &copy_table(target_oid))
}

fn copy_table(target_oid: u32) -> String {
    format!("_dwr_source_{target_oid}")
}

/// The copy as the merge is planned from it: staging's metadata columns and those of staging's
/// columns the source feeds (`source_plan`: the source planned into production), in staging's
/// schema ([`copy_name`]), with staging's key.
pub fn copy_relation(
    staging: &Relation,
    staging_plan: &MergePlan,
    source_plan: &MergePlan,
    target_oid: u32,
) -> Relation {
    let fed: Vec<&str> = source_plan
        .keys
        .iter()
        .map(|k| k.target.as_str())
        .chain([source_plan.version.target.as_str()])
        .chain(source_plan.values.iter().map(|v| v.target.as_str()))
        .collect();
    let staging_of = |target: &str| staging_column(staging_plan, target);
    let keep: Vec<String> = fed.iter().filter_map(|t| staging_of(t)).collect();
    let mut rel = staging.clone();
    rel.oid = 0;
    rel.name = copy_table(target_oid);
    rel.columns
        .retain(|c| META_COLUMNS.contains(&c.name.as_str()) || keep.contains(&c.name));
    rel
}

/// The staging column that feeds production column `target` in `plan`.
fn staging_column(plan: &MergePlan, target: &str) -> Option<String> {
    plan.keys
        .iter()
        .find(|k| k.target == target)
        .map(|k| k.staging.clone())
        .or_else(|| (plan.version.target == target).then(|| plan.version.staging.clone()))
        .or_else(|| {
            plan.values
                .iter()
                .find(|v| v.target == target)
                .map(|v| v.staging.clone())
        })
}

/// What a merge from a source into a Citus table runs before the pushed-down merge, and after.
#[derive(Debug, Clone)]
pub struct CitusSourceSql {
    /// make the copy (qualified, quoted `copy`): staging's shape without the columns the source
    /// does not feed, placed like production (`place`: the statement that places it); the merge
    /// drops it at its end, in its transaction
    pub create: Vec<String>,
    /// classify the source's rows into the session's [`ROWS`], then copy those that go on
    pub fill: Vec<Stmt>,
    /// the classes of the source rows the copy left out (`SELECT cls, count(*)`)
    pub counts: Stmt,
    /// after the merge: the classified rows and the copy dropped
    pub cleanup: Vec<Stmt>,
}

/// The statements of a merge from the source of `source_plan` (the source planned into production,
/// without metadata) through the copy `copy` of staging table `staging` (quoted), planned as
/// `copy_plan`. `dropped`: staging's columns the copy leaves out; `place`: the statement placing
/// the copy like production. A change log (`log`) is classified as the local replay classifies it
/// (per key its last change goes on; a change without a key, a version or a known operation is an
/// error, whatever its place) and the copy gains each change's operation ([`CHANGE_OP`]).
pub fn source_sql(
    source_plan: &MergePlan,
    copy_plan: &MergePlan,
    staging: &str,
    copy: &str,
    dropped: &[String],
    place: String,
    log: Option<&ChangeLog>,
) -> Result<CitusSourceSql> {
    let mut p = Params::new();
    let classify = format!(
        "CREATE TEMPORARY TABLE \"_dwr_source_rows\" ON COMMIT DROP AS \
         SELECT x.*, {} AS cls FROM (SELECT {} FROM {} s) x",
        source_class(source_plan, log, &mut p),
        source_columns(source_plan, log).join(", "),
        source_plan.staging,
    );
    Ok(CitusSourceSql {
        create: create_copy(staging, copy, dropped, place, log.is_some()),
        fill: vec![
            p.stmt("classify_source", classify),
            fill_copy(source_plan, copy_plan, copy, log.is_some())?,
        ],
        counts: Stmt::plain(
            "source_counts",
            format!(
                "SELECT cls, pg_catalog.count(*) FROM {ROWS} WHERE {} GROUP BY cls",
                pg_op("cls", "<>", COPIED)
            ),
        ),
        cleanup: vec![
            Stmt::plain("drop_source_rows", format!("DROP TABLE {ROWS}")),
            Stmt::plain("drop_source_copy", format!("DROP TABLE {copy}")),
        ],
    })
}

/// Make the copy: staging's shape without the `dropped` columns (with a change log's operation),
/// placed by `place`.
fn create_copy(
    staging: &str,
    copy: &str,
    dropped: &[String],
    place: String,
    changes: bool,
) -> Vec<String> {
    let mut create = vec![format!(
        "CREATE TABLE {copy} (LIKE {staging} INCLUDING DEFAULTS INCLUDING INDEXES)"
    )];
    let mut alter: Vec<String> = dropped
        .iter()
        .map(|c| format!("DROP COLUMN {}", quote_ident(c)))
        .collect();
    if changes {
        alter.push(format!(
            "ADD COLUMN {} pg_catalog.text",
            quote_ident(CHANGE_OP)
        ));
    }
    if !alter.is_empty() {
        create.push(format!("ALTER TABLE {copy} {}", alter.join(", ")));
    }
    create.push(place);
    create
}

/// The source's rows in production's key and version types: `k1..`, `v`, the values `c1..`, and
/// a change log's operation `op` and place `seq`.
fn source_columns(source_plan: &MergePlan, log: Option<&ChangeLog>) -> Vec<String> {
    let ver = &source_plan.version;
    let mut cols: Vec<String> = source_plan
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            format!(
                "{} AS k{}",
                staged(&k.staging, k.needs_cast.then_some(k.base_type.as_str())),
                i + 1
            )
        })
        .collect();
    cols.push(format!(
        "{} AS v",
        staged(
            &ver.staging,
            ver.needs_cast.then_some(ver.base_type.as_str())
        )
    ));
    cols.extend(source_plan.values.iter().enumerate().map(|(i, v)| {
        format!(
            "{} AS c{}",
            staged(
                &v.staging,
                (v.conversion == Conversion::Explicit).then_some(v.base_type.as_str())
            ),
            i + 1
        )
    }));
    if let Some(log) = log {
        cols.push(format!(
            "s.{}::pg_catalog.text AS op",
            quote_ident(&log.operation)
        ));
        cols.push(format!(
            "pg_catalog.row_number() OVER (ORDER BY {}) AS seq",
            log.order_by
                .iter()
                .map(|o| format!("s.{}", quote_ident(o)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    cols
}

/// The class of source row `x`: as the local merge ranks duplicates (among usable rows inside the
/// window, newest first), or as the local replay ranks changes (per key, the last in the log; a
/// change log is not filtered by the window: it is the window's changes).
fn source_class(source_plan: &MergePlan, log: Option<&ChangeLog>, p: &mut Params) -> String {
    let ver = &source_plan.version;
    let keys: Vec<String> = (1..=source_plan.keys.len())
        .map(|i| format!("x.k{i}"))
        .collect();
    if log.is_some() {
        return format!(
            "CASE WHEN {} THEN {} \
             WHEN pg_catalog.row_number() OVER (PARTITION BY {} ORDER BY x.seq DESC) OPERATOR(pg_catalog.>) 1 THEN {} \
             WHEN x.v IS NULL OR NOT {} THEN {} ELSE {COPIED} END",
            keys.iter()
                .map(|k| format!("{k} IS NULL"))
                .collect::<Vec<_>>()
                .join(" OR "),
            RowClass::Error.lit(),
            keys.join(", "),
            RowClass::Duplicate.lit(),
            known_operation("x.op"),
            RowClass::Error.lit(),
        );
    }
    let in_window = if ver.is_datetime {
        let (ws, we) = (p.get(Param::WindowStart), p.get(Param::WindowEnd));
        let bound =
            |param: &str| format!("CAST({param}::pg_catalog.timestamptz AS {})", ver.base_type);
        format!(
            "({ws}::pg_catalog.timestamptz IS NULL OR ({} AND {}))",
            op("x.v", &ver.ord_schema, ">=", &bound(&ws)),
            op("x.v", &ver.ord_schema, "<=", &bound(&we)),
        )
    } else {
        "true".to_string()
    };
    let usable = format!(
        "({} AND x.v IS NOT NULL)",
        keys.iter()
            .map(|k| format!("{k} IS NOT NULL"))
            .collect::<Vec<_>>()
            .join(" AND ")
    );
    format!(
        "CASE WHEN NOT {usable} THEN {} WHEN NOT {in_window} THEN {} \
         WHEN pg_catalog.row_number() OVER (PARTITION BY {}, ({usable} AND {in_window}) ORDER BY x.v DESC) \
         OPERATOR(pg_catalog.>) 1 THEN {} ELSE {COPIED} END",
        RowClass::Error.lit(),
        RowClass::OutsideWindow.lit(),
        keys.join(", "),
        RowClass::Duplicate.lit(),
    )
}

/// The classified rows that go on, into the copy by production's column names (the copy's are
/// staging's).
fn fill_copy(
    source_plan: &MergePlan,
    copy_plan: &MergePlan,
    copy: &str,
    changes: bool,
) -> Result<Stmt> {
    // the copy is staging's shape, so it has a column for every production column the source
    // feeds (one it lacks is a bug)
    let copy_of = |target: &str| {
        staging_column(copy_plan, target)
            .map(|c| quote_ident(&c))
            .ok_or_else(|| DwrError::bug(format!("the source's copy lacks the column of {target}")))
    };
    let mut into: Vec<String> = source_plan
        .keys
        .iter()
        .map(|k| copy_of(&k.target))
        .collect::<Result<_>>()?;
    into.push(copy_of(&source_plan.version.target)?);
    for v in &source_plan.values {
        into.push(copy_of(&v.target)?);
    }
    let mut from: Vec<String> = (1..=source_plan.keys.len())
        .map(|i| format!("r.k{i}"))
        .collect();
    from.push("r.v".into());
    from.extend((1..=source_plan.values.len()).map(|i| format!("r.c{i}")));
    if changes {
        into.push(quote_ident(CHANGE_OP));
        from.push("r.op".into());
    }
    Ok(Stmt::plain(
        "fill_source_copy",
        format!(
            "INSERT INTO {copy} ({}) SELECT {} FROM {ROWS} r WHERE {}",
            into.join(", "),
            from.join(", "),
            pg_op("r.cls", "=", COPIED)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::fixtures::*;
    use crate::catalog::Casts;
    use crate::plan::plan_merge;

    fn tables() -> (Relation, Relation, Relation) {
        let target = table(
            "app",
            "t",
            vec![
                col("id", INT4, "integer"),
                col("name", TEXT, "text"),
                col("note", TEXT, "text"),
                col("updated_at", TIMESTAMP, "timestamp without time zone"),
            ],
            &["id"],
        );
        let staging = staging_of(&target, "stage");
        // upper-case names, no note, the key as text
        let source = table(
            "replay",
            "t",
            vec![
                col("ID", TEXT, "text"),
                col("NAME", TEXT, "text"),
                col("UPDATED_AT", TIMESTAMP, "timestamp without time zone"),
            ],
            &[],
        );
        (target, staging, source)
    }

    fn casts() -> Casts {
        Casts(vec![crate::catalog::CastInfo {
            source: TEXT,
            target: INT4,
            context: crate::catalog::CastContext::Explicit,
        }])
    }

    /// The source planned into production, and the copy's plan.
    fn source_and_copy_plans() -> (MergePlan, MergePlan) {
        let (target, staging, source) = tables();
        let staging_plan =
            plan_merge(&target, &staging, &Casts::default(), "updated_at", true).unwrap();
        let source_plan = plan_merge(&target, &source, &casts(), "updated_at", false).unwrap();
        let copy = copy_relation(&staging, &staging_plan, &source_plan, 7);
        let copy_plan = plan_merge(&target, &copy, &Casts::default(), "updated_at", true).unwrap();
        (source_plan, copy_plan)
    }

    #[test]
    fn the_copy_keeps_what_the_source_feeds_and_the_metadata() {
        let (target, staging, source) = tables();
        let staging_plan =
            plan_merge(&target, &staging, &Casts::default(), "updated_at", true).unwrap();
        let source_plan = plan_merge(&target, &source, &casts(), "updated_at", false).unwrap();
        let copy = copy_relation(&staging, &staging_plan, &source_plan, 7);
        let names: Vec<&str> = copy.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "name",
                "updated_at",
                "_dwr_status",
                "_dwr_loaded_at",
                "_dwr_error",
                "_dwr_run_id"
            ]
        );
        // the merge from it is a merge from staging: metadata, production's key
        let copy_plan = plan_merge(&target, &copy, &Casts::default(), "updated_at", true).unwrap();
        assert!(copy_plan.with_metadata && copy_plan.staging_keys_unique);
        assert!(crate::citus::check_plan(&copy_plan).is_ok());
    }

    #[test]
    fn rows_are_classified_as_the_local_merge_does_then_copied_by_name() {
        let (source_plan, copy_plan) = source_and_copy_plans();
        let sql = source_sql(
            &source_plan,
            &copy_plan,
            "stage.t",
            &copy_name("stage", 7),
            &["note".to_string()],
            "SELECT place()".into(),
            None,
        )
        .unwrap();
        assert_eq!(
            sql.create[1],
            "ALTER TABLE \"stage\".\"_dwr_source_7\" DROP COLUMN \"note\""
        );
        let classify = &sql.fill[0];
        assert_eq!(classify.params, vec![Param::WindowStart, Param::WindowEnd]);
        assert!(classify.sql.contains("CAST(s.\"ID\" AS integer) AS k1"));
        assert!(classify
            .sql
            .contains("WHEN NOT (x.k1 IS NOT NULL AND x.v IS NOT NULL) THEN 'error'"));
        assert!(classify.sql.contains("THEN 'outside_window'"));
        assert!(classify
            .sql
            .contains("OPERATOR(pg_catalog.>) 1 THEN 'duplicate' ELSE 'copy' END"));
        assert!(classify.sql.contains("FROM \"replay\".\"t\" s"));
        assert_eq!(
            sql.fill[1].sql,
            "INSERT INTO \"stage\".\"_dwr_source_7\" (\"id\", \"updated_at\", \"name\") SELECT r.k1, r.v, r.c1 \
             FROM pg_temp.\"_dwr_source_rows\" r WHERE r.cls OPERATOR(pg_catalog.=) 'copy'"
        );
        // every class the copy leaves out is one the merge counts
        for class in ["error", "outside_window", "duplicate"] {
            assert!(RowClass::parse(class).is_some(), "{class}");
        }
    }

    #[test]
    fn a_change_log_goes_on_with_each_keys_last_change_and_its_operation() {
        let (source_plan, copy_plan) = source_and_copy_plans();
        let log = ChangeLog {
            operation: "Op".into(),
            order_by: vec!["commit_ts".into(), "seq".into()],
        };
        let sql = source_sql(
            &source_plan,
            &copy_plan,
            "stage.t",
            &copy_name("stage", 7),
            &[],
            "SELECT place()".into(),
            Some(&log),
        )
        .unwrap();
        assert_eq!(
            sql.create[1],
            "ALTER TABLE \"stage\".\"_dwr_source_7\" ADD COLUMN \"_dwr_op\" pg_catalog.text"
        );
        let classify = &sql.fill[0];
        // no window: the log is the window's changes
        assert!(classify.params.is_empty());
        assert!(classify
            .sql
            .contains("pg_catalog.row_number() OVER (ORDER BY s.\"commit_ts\", s.\"seq\") AS seq"));
        assert!(classify
            .sql
            .contains("OVER (PARTITION BY x.k1 ORDER BY x.seq DESC) OPERATOR(pg_catalog.>) 1 THEN 'duplicate'"));
        assert!(classify.sql.contains("pg_catalog.upper(x.op)"));
        assert!(sql.fill[1]
            .sql
            .contains("\"_dwr_op\") SELECT r.k1, r.v, r.c1, r.op"));
    }
}
