//! `dwr_merge(..., source =>)`, `dwr_diff(..., source =>)` and `dwr_diff_summary(..., source =>)`
//! in the pg_tle package.
//!
//! The compiled extension plans a source merge at the call, from the source's own columns. The
//! package is generated before any source is known, so it reads every source through one shape
//! fixed at generation time: the registered staging table's columns (its `_dwr_` metadata left
//! out), each as `text`. A merge copies the source into the session's temporary table of that shape
//! ([`COPY`]) and runs the merge program planned from it (no metadata: every row is read, no status
//! written, the source never changed); a diff reads the same shape as a `WITH` query over the source
//! ([`diff_plan`]), so that `dwr_diff` stays a read-only function. Every staged value converts into
//! production's type as staging's would, row by row: a value that does not convert is an `ERROR` row
//! of the merge, as it is in the compiled extension.
//!
//! What this shape cannot do, the package refuses with `0A000` and says so: a source must have a
//! column for every column of staging (the same name, or the only one of that name when case is
//! ignored). A value reaches production as its text would (`1.5` from a `numeric` source does not
//! become the integer 2, as the compiled extension's assignment cast would make it).

use crate::catalog::{kind_name_of, Column, Relation};
use crate::error::DwrError;
use crate::ident::{quote_ident, quote_literal};
use crate::plan::{MergePlan, META_COLUMNS};

/// The name of the session's copy of a source (`pg_temp`), and of the `WITH` query a diff reads.
pub const COPY: &str = "_dwr_source";

/// The relation the package's source merges are planned from: `staging`'s columns without the
/// metadata, each `text`, in the session's temporary schema.
pub fn copy_relation(staging: &Relation) -> Relation {
    let columns = staging
        .columns
        .iter()
        .filter(|c| !META_COLUMNS.contains(&c.name.as_str()))
        .enumerate()
        .map(|(i, c)| Column {
            name: c.name.clone(),
            num: i as i32 + 1,
            type_oid: TEXT_OID,
            type_name: "text".into(),
            base_type_name: "text".into(),
            typmod: -1,
            collation: DEFAULT_COLLATION_OID,
            type_category: "S".into(),
            not_null: false,
            has_default: false,
            generated: String::new(),
            identity: String::new(),
            ordering_schema: Some("pg_catalog".into()),
        })
        .collect();
    Relation {
        oid: 0,
        schema: "pg_temp".into(),
        name: COPY.into(),
        relkind: "r".into(),
        persistence: "t".into(),
        owner: staging.owner.clone(),
        owner_oid: staging.owner_oid,
        columns,
        primary_key: None,
    }
}

const TEXT_OID: u32 = 25;
const DEFAULT_COLLATION_OID: u32 = 100;

/// The merge plan of [`copy_relation`], with the diff reading the `WITH` query named [`COPY`]
/// instead of the temporary table.
pub fn diff_plan(copy_plan: &MergePlan) -> MergePlan {
    let mut plan = copy_plan.clone();
    plan.staging = quote_ident(COPY);
    plan
}

/// `RAISE` of `e`, whose texts are `pg_catalog.format` templates of `args` (`%1$s`, ...).
pub(super) fn raise_formatted(e: &DwrError, args: &str) -> String {
    let f = |text: &str| format!("pg_catalog.format({}, {args})", quote_literal(text));
    let mut using = vec![
        format!("MESSAGE = {}", f(&e.message)),
        format!("ERRCODE = {}", quote_literal(e.state.code())),
    ];
    if let Some(d) = &e.detail {
        using.push(format!("DETAIL = {}", f(d)));
    }
    if let Some(h) = &e.hint {
        using.push(format!("HINT = {}", f(h)));
    }
    format!("RAISE EXCEPTION USING {};", using.join(", "))
}

/// The package's functions that read a source: `dwr._check_source` (the compiled extension's
/// `checked_source`, with the same errors), `dwr._source_select` (the query of the source in the
/// staging table's shape) and `dwr._copy_source` (the session's copy of it).
pub fn functions() -> String {
    let kinds: Vec<String> = ["S", "i", "I", "c", "t"]
        .iter()
        .map(|k| {
            let kind = kind_name_of(k);
            let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            format!(
                "({}, {})",
                quote_literal(k),
                quote_literal(&format!("{article} {kind}"))
            )
        })
        .collect();
    let not_a_table = raise_formatted(
        &DwrError::source_not_a_table("%1$s", "%2$s"),
        "r.shown, r.kind",
    );
    let foreign_owned = raise_formatted(
        &DwrError::source_owned_by_other("%1$s", "%2$s", "%3$s", "%4$s"),
        "r.shown, pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r.relowner)), dwr._display(target), pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(t.relowner))",
    );
    let unmatched = raise_formatted(
        &DwrError::source_column_unmatched("%1$s", "%2$s", "%3$s", "%4$s"),
        "dwr._display(source), CASE WHEN m IS NULL THEN 'no column' ELSE 'several columns' END, pg_catalog.quote_ident(c.attname), dwr._display(staging)",
    );
    let meta = META_COLUMNS
        .iter()
        .map(|m| quote_literal(m))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "\nCREATE OR REPLACE FUNCTION dwr._check_source(target pg_catalog.regclass, source pg_catalog.regclass)\n\
         RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS {Q}\n\
         DECLARE\n    r record;\n    t record;\nBEGIN\n\
         SELECT c.relkind, c.relowner, dwr._display(c.oid) AS shown,\n\
                COALESCE((SELECT k.shown FROM (VALUES {kinds}) AS k(kind, shown)\n\
                           WHERE k.kind::pg_catalog.\"char\" OPERATOR(pg_catalog.=) c.relkind), 'a relation') AS kind\n\
           INTO r FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) source;\n\
         IF NOT r.relkind OPERATOR(pg_catalog.=) ANY ('{{r,p,v,m,f}}'::pg_catalog.\"char\"[]) THEN\n    {not_a_table}\nEND IF;\n\
         SELECT c.relowner INTO t FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) target;\n\
         IF r.relowner OPERATOR(pg_catalog.<>) t.relowner\n\
            AND r.relowner OPERATOR(pg_catalog.<>) (SELECT a.oid FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN\n    {foreign_owned}\nEND IF;\n\
         END\n{Q};\n\
         COMMENT ON FUNCTION dwr._check_source(pg_catalog.regclass, pg_catalog.regclass) IS\n\
         'Implementation of dwr_merge, dwr_diff and dwr_diff_summary with a source: a relation with rows, owned by the target''s owner or the caller (a privileged merge must not run code a less trusted role planted in the source).';\n\
         \nCREATE OR REPLACE FUNCTION dwr._source_columns(staging pg_catalog.regclass, source pg_catalog.regclass)\n\
         RETURNS pg_catalog.text LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS {Q}\n\
         DECLARE\n    c record;\n    m pg_catalog.name[];\n    cols pg_catalog.text[] := '{{}}';\nBEGIN\n\
         FOR c IN SELECT a.attname FROM pg_catalog.pg_attribute a\n\
                   WHERE a.attrelid OPERATOR(pg_catalog.=) staging AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped\n\
                     AND a.attname OPERATOR(pg_catalog.<>) ALL (ARRAY[{meta}]::pg_catalog.name[])\n\
                   ORDER BY a.attnum LOOP\n\
             m := (SELECT pg_catalog.array_agg(s.attname) FROM pg_catalog.pg_attribute s\n\
                    WHERE s.attrelid OPERATOR(pg_catalog.=) source AND s.attnum OPERATOR(pg_catalog.>) 0 AND NOT s.attisdropped\n\
                      AND s.attname OPERATOR(pg_catalog.=) c.attname);\n\
             IF m IS NULL THEN\n\
                 m := (SELECT pg_catalog.array_agg(s.attname) FROM pg_catalog.pg_attribute s\n\
                        WHERE s.attrelid OPERATOR(pg_catalog.=) source AND s.attnum OPERATOR(pg_catalog.>) 0 AND NOT s.attisdropped\n\
                          AND pg_catalog.lower(s.attname) OPERATOR(pg_catalog.=) pg_catalog.lower(c.attname));\n\
             END IF;\n\
             IF m IS NULL OR pg_catalog.cardinality(m) OPERATOR(pg_catalog.>) 1 THEN\n        {unmatched}\n    END IF;\n\
             cols := cols OPERATOR(pg_catalog.||) pg_catalog.format('s.%I::pg_catalog.text AS %I', m[1], c.attname);\n\
         END LOOP;\n\
         RETURN pg_catalog.array_to_string(cols, ', ');\n\
         END\n{Q};\n\
         COMMENT ON FUNCTION dwr._source_columns(pg_catalog.regclass, pg_catalog.regclass) IS\n\
         'Implementation of dwr_merge, dwr_diff, dwr_diff_summary and dwr_replay with a source (pg_tle package): the select list of the source''s (alias s) columns in the shape the package''s source merge was generated for, the staging table''s columns as text.';\n\
         \nCREATE OR REPLACE FUNCTION dwr._source_select(staging pg_catalog.regclass, source pg_catalog.regclass)\n\
         RETURNS pg_catalog.text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS {Q}\n\
         SELECT pg_catalog.format('SELECT %s FROM %s s', dwr._source_columns(staging, source), source)\n\
         {Q};\n\
         COMMENT ON FUNCTION dwr._source_select(pg_catalog.regclass, pg_catalog.regclass) IS\n\
         'Implementation of dwr_merge, dwr_diff and dwr_diff_summary with a source (pg_tle package): the query of the source''s rows in the shape the package''s source merge was generated for, the staging table''s columns as text.';\n\
         \nCREATE OR REPLACE FUNCTION dwr._copy_source(staging pg_catalog.regclass, source pg_catalog.regclass)\n\
         RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS {Q}\n\
         BEGIN\n\
         IF pg_catalog.to_regclass('pg_temp.{copy}') IS NOT NULL THEN\n    DROP TABLE pg_temp.{copy};\nEND IF;\n\
         EXECUTE 'CREATE TEMPORARY TABLE {copy} ON COMMIT DROP AS ' OPERATOR(pg_catalog.||) dwr._source_select(staging, source);\n\
         END\n{Q};\n\
         COMMENT ON FUNCTION dwr._copy_source(pg_catalog.regclass, pg_catalog.regclass) IS\n\
         'Implementation of dwr_merge with a source (pg_tle package): the session''s copy of the source (pg_temp._dwr_source, dropped at commit), which the merge reads; the source itself is never written.';\n\
         \nCREATE OR REPLACE FUNCTION dwr._copy_change_log(staging pg_catalog.regclass, changes pg_catalog.regclass,\n\
         operation pg_catalog.text, order_by pg_catalog.text[])\n\
         RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS {Q}\n\
         DECLARE\n    o pg_catalog.text;\n    ord pg_catalog.text[] := '{{}}';\nBEGIN\n\
         IF pg_catalog.cardinality(order_by) OPERATOR(pg_catalog.=) 0 THEN\n    {unordered}\nEND IF;\n\
         IF NOT dwr._has_column(changes, operation) THEN\n    {no_operation}\nEND IF;\n\
         FOREACH o IN ARRAY order_by LOOP\n\
             IF NOT dwr._has_column(changes, o) THEN\n        {no_order}\n    END IF;\n\
             ord := ord OPERATOR(pg_catalog.||) pg_catalog.format('s.%I', o);\n\
         END LOOP;\n\
         IF pg_catalog.to_regclass('pg_temp.{copy}') IS NOT NULL THEN\n    DROP TABLE pg_temp.{copy};\nEND IF;\n\
         EXECUTE pg_catalog.format('CREATE TEMPORARY TABLE {copy} ON COMMIT DROP AS SELECT %s, s.%I::pg_catalog.text AS {op}, \
         pg_catalog.row_number() OVER (ORDER BY %s) AS {seq} FROM %s s',\n\
             dwr._source_columns(staging, changes), operation, pg_catalog.array_to_string(ord, ', '), changes);\n\
         END\n{Q};\n\
         COMMENT ON FUNCTION dwr._copy_change_log(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.text, pg_catalog.text[]) IS\n\
         'Implementation of dwr_replay (pg_tle package): the session''s copy of a change log in the source shape, with each change''s operation and its place by order_by (pg_temp._dwr_source, dropped at commit); the log itself is never written.';\n\
         \nCREATE OR REPLACE FUNCTION dwr._has_column(rel pg_catalog.regclass, name pg_catalog.text)\n\
         RETURNS pg_catalog.bool LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS {Q}\n\
         SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) rel\n\
         AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped AND a.attname OPERATOR(pg_catalog.=) name)\n\
         {Q};\n\
         COMMENT ON FUNCTION dwr._has_column(pg_catalog.regclass, pg_catalog.text) IS\n\
         'Implementation of dwr_replay (pg_tle package): whether the relation has a column of that name.';\n",
        unordered = raise_formatted(&DwrError::change_log_unordered("%1$s"), "dwr._display(changes)"),
        no_operation = raise_formatted(
            &DwrError::change_log_column_missing("%1$s", "operation of each change", "%2$s"),
            "dwr._display(changes), pg_catalog.quote_ident(operation)"
        ),
        no_order = raise_formatted(
            &DwrError::change_log_column_missing("%1$s", "order of the changes", "%2$s"),
            "dwr._display(changes), pg_catalog.quote_ident(o)"
        ),
        op = quote_ident(crate::plan::CHANGE_OP),
        seq = quote_ident(crate::plan::CHANGE_SEQ),
        kinds = kinds.join(", "),
        copy = quote_ident(COPY),
        Q = super::Q,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_has_stagings_columns_as_text_and_no_metadata() {
        use crate::catalog::fixtures::*;
        let mut cols = vec![
            col("ID", INT4, "integer"),
            col("name", VARCHAR, "character varying(100)"),
        ];
        cols.push(col("_dwr_status", TEXT, "text"));
        let staging = table("staging", "t", cols, &["ID"]);
        let copy = copy_relation(&staging);
        let names: Vec<&str> = copy.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ID", "name"]);
        assert!(copy
            .columns
            .iter()
            .all(|c| c.type_oid == TEXT_OID && c.typmod == -1));
        assert_eq!(copy.quoted(), "\"pg_temp\".\"_dwr_source\"");
    }

    #[test]
    fn source_errors_are_format_templates_of_the_engines_errors() {
        let sql = functions();
        let e = DwrError::source_owned_by_other("%1$s", "%2$s", "%3$s", "%4$s");
        assert!(sql.contains(&quote_literal(&e.message)));
        assert!(sql.contains(&quote_literal(e.hint.as_deref().unwrap())));
        assert!(sql.contains("('i', 'an index')"));
        assert!(sql.contains("ERRCODE = '0A000'"));
    }
}
