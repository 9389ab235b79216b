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
use crate::ident::{quote_ident, quote_qualified};
use crate::plan::{Conversion, MergePlan, META_COLUMNS};
use crate::program::{Param, Params, Stmt};
use crate::sqlgen::{op, pg_op, staged, RowClass};

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
/// the copy like production.
pub fn source_sql(
    source_plan: &MergePlan,
    copy_plan: &MergePlan,
    staging: &str,
    copy: &str,
    dropped: &[String],
    place: String,
) -> CitusSourceSql {
    let mut create = vec![format!(
        "CREATE TABLE {copy} (LIKE {staging} INCLUDING DEFAULTS INCLUDING INDEXES)"
    )];
    if !dropped.is_empty() {
        create.push(format!(
            "ALTER TABLE {copy} {}",
            dropped
                .iter()
                .map(|c| format!("DROP COLUMN {}", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    create.push(place);

    // the source's rows in production's key and version types: k1.., v, then the values c1..
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
    let keys: Vec<String> = (1..=source_plan.keys.len())
        .map(|i| format!("x.k{i}"))
        .collect();
    let mut p = Params::new();
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
    // as the local merge ranks duplicates: among usable rows inside the window, newest first
    let classify = p.stmt(
        "classify_source",
        format!(
            "CREATE TEMPORARY TABLE \"_dwr_source_rows\" ON COMMIT DROP AS \
             SELECT x.*, CASE WHEN NOT {usable} THEN {} WHEN NOT {in_window} THEN {} \
             WHEN pg_catalog.row_number() OVER (PARTITION BY {}, ({usable} AND {in_window}) ORDER BY x.v DESC) \
             OPERATOR(pg_catalog.>) 1 THEN {} ELSE {COPIED} END AS cls \
             FROM (SELECT {} FROM {} s) x",
            RowClass::Error.lit(),
            RowClass::OutsideWindow.lit(),
            keys.join(", "),
            RowClass::Duplicate.lit(),
            cols.join(", "),
            source_plan.staging,
        ),
    );
    // into the copy, by production's column names (the copy's are staging's)
    let copy_of = |target: &str| {
        quote_ident(&staging_column(copy_plan, target).expect("the copy has every fed column"))
    };
    let mut into: Vec<String> = source_plan
        .keys
        .iter()
        .map(|k| copy_of(&k.target))
        .collect();
    into.push(copy_of(&ver.target));
    into.extend(source_plan.values.iter().map(|v| copy_of(&v.target)));
    let mut from: Vec<String> = (1..=source_plan.keys.len())
        .map(|i| format!("r.k{i}"))
        .collect();
    from.push("r.v".into());
    from.extend((1..=source_plan.values.len()).map(|i| format!("r.c{i}")));
    let fill_copy = Stmt::plain(
        "fill_source_copy",
        format!(
            "INSERT INTO {copy} ({}) SELECT {} FROM {ROWS} r WHERE {}",
            into.join(", "),
            from.join(", "),
            pg_op("r.cls", "=", COPIED)
        ),
    );
    CitusSourceSql {
        create,
        fill: vec![classify, fill_copy],
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
    }
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
        let (target, staging, source) = tables();
        let staging_plan =
            plan_merge(&target, &staging, &Casts::default(), "updated_at", true).unwrap();
        let source_plan = plan_merge(&target, &source, &casts(), "updated_at", false).unwrap();
        let copy = copy_relation(&staging, &staging_plan, &source_plan, 7);
        let copy_plan = plan_merge(&target, &copy, &Casts::default(), "updated_at", true).unwrap();
        let sql = source_sql(
            &source_plan,
            &copy_plan,
            "stage.t",
            &copy_name("stage", 7),
            &["note".to_string()],
            "SELECT place()".into(),
        );
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
}
