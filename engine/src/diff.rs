//! SQL text of `dwr_diff` and `dwr_diff_summary`: what differs between staging (or any source
//! table with the target's key and version columns) and production, in one pass (a hash full join),
//! changing nothing.
//!
//! Per key, the staged row with the highest version stands for the key (as in a merge). Kinds:
//! - `missing_in_production`: staged, production has no row;
//! - `missing_in_staging`: a production row whose version lies in the open reload's window (`$1`,
//!   `$2`) that staging does not have (a candidate for a delete the source made); without an open
//!   reload (`$1` NULL) this kind is not reported;
//! - `older_in_production` / `newer_in_production`: versions differ;
//! - `same_version_other_content`: equal versions, some matched column differs.

use crate::ident::{quote_ident, quote_literal};
use crate::plan::{Conversion, MergePlan, META_COLUMNS, META_LOADED_AT};

/// Differences as (key, difference, production, staged); `$1`, `$2`: the window (timestamptz, or
/// NULL for no reload). Images are built only for the rows reported.
pub fn diff_sql(plan: &MergePlan) -> String {
    let meta = META_COLUMNS.join(",");
    format!(
        "SELECT d.key, d.difference, pg_catalog.to_jsonb(d.prow), \
         pg_catalog.to_jsonb(d.srow) OPERATOR(pg_catalog.-) '{{{meta}}}'::pg_catalog.text[] \
         FROM ({}) d WHERE d.difference IS NOT NULL",
        classified(plan, true)
    )
}

/// Counts per kind of difference, in one pass; `$1`, `$2` as in [`diff_sql`].
pub fn diff_summary_sql(plan: &MergePlan) -> String {
    format!(
        "SELECT d.difference, pg_catalog.count(*) FROM ({}) d WHERE d.difference IS NOT NULL \
         GROUP BY d.difference ORDER BY d.difference",
        classified(plan, false)
    )
}

/// `jsonb_build_object` of name/value pairs, in chunks (a function takes at most 100 arguments).
fn json_object(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return "'{}'::pg_catalog.jsonb".to_string();
    }
    pairs
        .chunks(40)
        .map(|chunk| {
            let args: Vec<String> = chunk
                .iter()
                .map(|(k, v)| format!("{}, {v}", quote_literal(k)))
                .collect();
            format!("pg_catalog.jsonb_build_object({})", args.join(", "))
        })
        .collect::<Vec<_>>()
        .join(" OPERATOR(pg_catalog.||) ")
}

/// The full join of the highest staged version per key with production, classified. Matched
/// columns travel as plain values (`s1..`, `p1..`) and are compared (as jsonb) only for keys whose
/// versions are equal; with `rows`, each side's whole row travels too, for the images.
fn classified(plan: &MergePlan, rows: bool) -> String {
    let t = &plan.target;
    let s = &plan.staging;
    let ver = &plan.version;
    let n = plan.keys.len();
    let k = |i: usize| format!("k{}", i + 1);
    let cast = |col: String, needs: bool, ty: &str| {
        if needs {
            format!("CAST({col} AS {ty})")
        } else {
            col
        }
    };

    let staged_keys: Vec<String> = plan
        .keys
        .iter()
        .enumerate()
        .map(|(i, kp)| {
            format!(
                "{} AS {}",
                cast(
                    format!("s.{}", quote_ident(&kp.staging)),
                    kp.needs_cast,
                    &kp.base_type
                ),
                k(i)
            )
        })
        .collect();
    let staged_v = cast(
        format!("s.{}", quote_ident(&ver.staging)),
        ver.needs_cast,
        &ver.base_type,
    );
    let staged_values: Vec<String> = plan
        .values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let col = format!("s.{}", quote_ident(&v.staging));
            let e = match v.conversion {
                Conversion::Same => col,
                _ => format!("CAST({col} AS {})", v.base_type),
            };
            format!(", {e} AS s{}", i + 1)
        })
        .collect();
    let prod_values: Vec<String> = plan
        .values
        .iter()
        .enumerate()
        .map(|(i, v)| format!(", t.{} AS p{}", quote_ident(&v.target), i + 1))
        .collect();
    let content = |side: &str, prefix: &str| {
        json_object(
            &plan
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| (v.target.clone(), format!("{side}.{prefix}{}", i + 1)))
                .collect::<Vec<_>>(),
        )
    };
    let key_list: Vec<String> = (0..n).map(k).collect();
    let tie_break = if plan.with_metadata {
        format!(", s.{} DESC NULLS LAST", quote_ident(META_LOADED_AT))
    } else {
        String::new()
    };
    let (srow, prow, rows_out) = if rows {
        (", s AS srow", ", t AS prow", ", pr.prow, st.srow")
    } else {
        ("", "", "")
    };
    let prod_keys: Vec<String> = plan
        .keys
        .iter()
        .enumerate()
        .map(|(i, kp)| format!("t.{} AS {}", quote_ident(&kp.target), k(i)))
        .collect();
    let join: Vec<String> = plan
        .keys
        .iter()
        .enumerate()
        .map(|(i, kp)| {
            format!(
                "st.{} OPERATOR({}.=) pr.{}",
                k(i),
                quote_ident(&kp.eq_schema),
                k(i)
            )
        })
        .collect();
    let ord = quote_ident(&ver.ord_schema);
    let coalesced: Vec<String> = (0..n)
        .map(|i| format!("COALESCE(st.{0}, pr.{0})", k(i)))
        .collect();
    // only a date/time version can lie in a reload's window (reloads refuse other version types)
    let in_window = if !ver.is_datetime {
        "false".to_string()
    } else {
        format!(
        "$1::pg_catalog.timestamptz IS NOT NULL AND pr.v OPERATOR({ord}.>=) CAST($1::pg_catalog.timestamptz AS {ty}) \
         AND pr.v OPERATOR({ord}.<=) CAST($2::pg_catalog.timestamptz AS {ty})",
        ty = ver.base_type
    )
    };
    format!(
        "SELECT pg_catalog.jsonb_build_array({coalesced}) AS key, \
         CASE WHEN pr.present IS NULL THEN 'missing_in_production' \
              WHEN st.present IS NULL THEN CASE WHEN {in_window} THEN 'missing_in_staging' END \
              WHEN pr.v IS NULL OR pr.v OPERATOR({ord}.<) st.v THEN 'older_in_production' \
              WHEN pr.v OPERATOR({ord}.>) st.v THEN 'newer_in_production' \
              WHEN {pc} OPERATOR(pg_catalog.<>) {sc} THEN 'same_version_other_content' END AS difference\
         {rows_out} \
         FROM (SELECT DISTINCT ON ({keys}) {skeys}, {staged_v} AS v{svals}{srow}, true AS present \
               FROM {s} s ORDER BY {keys}, {staged_v} DESC NULLS LAST{tie_break}) st \
         FULL JOIN (SELECT {pkeys}, t.{tv} AS v{pvals}{prow}, true AS present FROM {t} t) pr \
           ON {join}",
        coalesced = coalesced.join(", "),
        keys = key_list.join(", "),
        skeys = staged_keys.join(", "),
        svals = staged_values.join(""),
        pvals = prod_values.join(""),
        pc = content("pr", "p"),
        sc = content("st", "s"),
        pkeys = prod_keys.join(", "),
        tv = quote_ident(&ver.target),
        join = join.join(" AND "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlgen::tests::plan;

    #[test]
    fn one_full_join_with_the_highest_staged_version_per_key() {
        let sql = diff_sql(&plan());
        assert_eq!(sql.matches("FULL JOIN").count(), 1);
        assert!(sql.contains(
            "DISTINCT ON (k1, k2) s.\"REGION\" AS k1, CAST(s.\"CUSTOMER_ID\" AS integer) AS k2"
        ));
        assert!(sql.contains("\"_dwr_loaded_at\" DESC NULLS LAST"));
        assert!(sql.contains("st.k1 OPERATOR(\"pg_catalog\".=) pr.k1"));
        assert!(sql.contains("CAST(s.\"NAME\" AS character varying) AS s1"));
        assert!(sql.contains("pg_catalog.jsonb_build_object('name', pr.p1, 'weird \"col\"; DROP TABLE x', pr.p2) OPERATOR(pg_catalog.<>)"));
        assert!(sql.contains(
            "OPERATOR(pg_catalog.-) '{_dwr_status,_dwr_loaded_at,_dwr_error,_dwr_run_id}'"
        ));
    }

    #[test]
    fn the_summary_keeps_no_images() {
        let sql = diff_summary_sql(&plan());
        assert!(!sql.contains("to_jsonb") && !sql.contains("srow"));
        assert!(sql.contains("GROUP BY d.difference"));
    }

    #[test]
    fn wide_tables_build_objects_in_chunks() {
        let pairs: Vec<(String, String)> = (0..90)
            .map(|i| (format!("c{i}"), format!("t.c{i}")))
            .collect();
        let obj = json_object(&pairs);
        assert_eq!(obj.matches("jsonb_build_object(").count(), 3);
    }
}
