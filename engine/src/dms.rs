//! AWS DMS documents for a reload: the table mappings of a filtered full-load task into staging, and
//! its task settings. Pure JSON (serde_json); the extension feeds it catalog facts.
//!
//! DMS rules this follows (AWS DMS User Guide, "Table mapping"): a `selection` rule includes a
//! table; its `filters` are ANDed, and the `filter-conditions` inside one filter are ORed, so a
//! window must be one `between` condition (both ends included), never `gte` and `lte` in one filter
//! (which selects every row). `transformation` rules rename the schema and tables into staging,
//! lower-case column names, and `change-data-type` columns. Timestamps are `YYYY-MM-DD HH:MI:SS`.

use crate::error::{DwrError, Result, SqlState};
use serde_json::{json, Map, Value};

/// `$1`: reload id, `$2`: the source's time zone. The reload's tables (oid[]) and its window as the
/// source's wall-clock `YYYY-MM-DD HH:MI:SS`, the start rounded down and the end up to the second;
/// no row when the reload does not exist.
pub const RELOAD_SQL: &str = "SELECT targets::pg_catalog.oid[], \
     pg_catalog.to_char(pg_catalog.date_trunc('second', window_start AT TIME ZONE $2), 'YYYY-MM-DD HH24:MI:SS'), \
     pg_catalog.to_char(pg_catalog.date_trunc('second', (window_end AT TIME ZONE $2) \
         OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => 0.999999)), 'YYYY-MM-DD HH24:MI:SS') \
     FROM dwr.reloads WHERE reload_id OPERATOR(pg_catalog.=) $1";

/// One table of a reload, as the mapping needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmsTable {
    /// production `schema.table`, for ordering and messages
    pub target: String,
    /// the table's name in the source
    pub source_table: String,
    /// the version column's name in the source
    pub source_version_column: String,
    pub staging_schema: String,
    pub staging_table: String,
    /// columns whose staging type differs from production: (source column name, DMS data type)
    pub type_changes: Vec<(String, Value)>,
    /// staging's columns without its metadata, with their types (`format_type`): the row part of
    /// a change log
    pub columns: Vec<(String, String)>,
}

/// How the source names things and what to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingOptions {
    pub source_schema: String,
    /// add `convert-lowercase` for every column (an Oracle source names columns in upper case)
    pub lowercase_columns: bool,
    /// `YYYY-MM-DD HH:MI:SS`, already rounded down to the second
    pub window_start: String,
    /// `YYYY-MM-DD HH:MI:SS`, already rounded up to the second
    pub window_end: String,
}

/// The DMS facts of one registered table: its source names (`oracle`: upper-cased, as an Oracle
/// source spells unquoted names; `renamed`: the source table's name when the caller gave one) and
/// the columns whose staging type differs from production's (DMS must write production's type).
pub fn dms_table(
    target: &crate::catalog::Relation,
    staging: &crate::catalog::Relation,
    version_column: &str,
    renamed: Option<&str>,
    oracle: bool,
) -> DmsTable {
    let source_name = |name: &str| {
        if oracle {
            name.to_uppercase()
        } else {
            name.to_string()
        }
    };
    let type_changes = crate::plan::match_columns(target, staging)
        .into_iter()
        .filter_map(|p| {
            let staged = p.staging?;
            if staged.type_name == p.target.type_name || p.target.is_generated() {
                return None;
            }
            dms_data_type(&p.target.type_name).map(|dt| (source_name(&p.target.name), dt))
        })
        .collect();
    DmsTable {
        target: target.display(),
        source_table: renamed
            .map(str::to_string)
            .unwrap_or_else(|| source_name(&target.name)),
        source_version_column: source_name(version_column),
        staging_schema: staging.schema.clone(),
        staging_table: staging.name.clone(),
        type_changes,
        columns: staging
            .columns
            .iter()
            .filter(|c| !crate::plan::is_meta_column(&c.name))
            .map(|c| (c.name.clone(), c.type_name.clone()))
            .collect(),
    }
}

/// The DMS data type for a PostgreSQL type (from `format_type`), if DMS has one.
pub fn dms_data_type(type_name: &str) -> Option<Value> {
    let t = type_name.trim();
    let (base, args) = match t.find('(') {
        Some(i) => (
            &t[..i],
            t[i + 1..]
                .trim_end_matches(')')
                .split(',')
                .map(|a| a.trim().parse::<u32>().ok())
                .collect::<Vec<_>>(),
        ),
        None => (t, vec![]),
    };
    let v = match base {
        "smallint" => json!({"type": "int2"}),
        "integer" => json!({"type": "int4"}),
        "bigint" => json!({"type": "int8"}),
        "numeric" => match args.as_slice() {
            [Some(p), Some(s)] => json!({"type": "numeric", "precision": p, "scale": s}),
            [Some(p)] => json!({"type": "numeric", "precision": p, "scale": 0}),
            _ => json!({"type": "numeric"}),
        },
        "real" => json!({"type": "real4"}),
        "double precision" => json!({"type": "real8"}),
        "boolean" => json!({"type": "boolean"}),
        "date" => json!({"type": "date"}),
        "time without time zone" => json!({"type": "time"}),
        "timestamp without time zone" | "timestamp with time zone" => {
            json!({"type": "datetime", "precision": 6})
        }
        "character varying" | "character" => match args.as_slice() {
            [Some(n)] => json!({"type": "string", "length": n}),
            _ => json!({"type": "string"}),
        },
        "text" => json!({"type": "string"}),
        "bytea" => json!({"type": "blob"}),
        _ => return None,
    };
    Some(v)
}

fn rule(id: &mut u32, mut body: Map<String, Value>) -> Value {
    *id += 1;
    let mut r = Map::new();
    r.insert(
        "rule-type".into(),
        body.remove("rule-type").unwrap_or(Value::Null),
    );
    r.insert("rule-id".into(), json!(id.to_string()));
    r.insert("rule-name".into(), json!(id.to_string()));
    r.extend(body);
    Value::Object(r)
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The table-mapping document of a reload. Rule ids are numbered in a fixed order (tables by
/// production name), so the same reload always gives the same document.
pub fn table_mappings(tables: &[DmsTable], o: &MappingOptions) -> Result<Value> {
    let mut tables: Vec<&DmsTable> = tables.iter().collect();
    tables.sort_by(|a, b| a.target.cmp(&b.target));
    let staging_schema = match tables.first() {
        None => {
            return Err(DwrError::new(
                SqlState::InvalidParameterValue,
                "the reload has no tables",
            ));
        }
        Some(t) => t.staging_schema.clone(),
    };
    if let Some(other) = tables.iter().find(|t| t.staging_schema != staging_schema) {
        return Err(DwrError::new(
            SqlState::FeatureNotSupported,
            "the tables of this reload are staged in different schemas",
        )
        .detail(format!(
            "{} is staged in {}, {} in {}; a DMS schema rename has one target.",
            tables[0].target, staging_schema, other.target, other.staging_schema
        ))
        .hint("Register the reload's tables with one staging_schema, or open one reload per staging schema."));
    }
    let mut id = 0u32;
    let mut rules = Vec::new();
    for t in &tables {
        rules.push(rule(
            &mut id,
            obj(json!({
                "rule-type": "selection",
                "object-locator": {"schema-name": o.source_schema, "table-name": t.source_table},
                "rule-action": "include",
                "filters": [{
                    "filter-type": "source",
                    "column-name": t.source_version_column,
                    "filter-conditions": [{
                        "filter-operator": "between",
                        "start-value": o.window_start,
                        "end-value": o.window_end
                    }]
                }]
            })),
        ));
    }
    rules.push(rule(
        &mut id,
        obj(json!({
            "rule-type": "transformation",
            "rule-target": "schema",
            "object-locator": {"schema-name": o.source_schema},
            "rule-action": "rename",
            "value": staging_schema
        })),
    ));
    for t in &tables {
        rules.push(rule(
            &mut id,
            obj(json!({
                "rule-type": "transformation",
                "rule-target": "table",
                "object-locator": {"schema-name": o.source_schema, "table-name": t.source_table},
                "rule-action": "rename",
                "value": t.staging_table
            })),
        ));
        if o.lowercase_columns {
            rules.push(rule(
                &mut id,
                obj(json!({
                    "rule-type": "transformation",
                    "rule-target": "column",
                    "object-locator": {"schema-name": o.source_schema, "table-name": t.source_table, "column-name": "%"},
                    "rule-action": "convert-lowercase"
                })),
            ));
        }
        for (column, data_type) in &t.type_changes {
            rules.push(rule(
                &mut id,
                obj(json!({
                    "rule-type": "transformation",
                    "rule-target": "column",
                    "object-locator": {"schema-name": o.source_schema, "table-name": t.source_table, "column-name": column},
                    "rule-action": "change-data-type",
                    "data-type": data_type
                })),
            ));
        }
    }
    Ok(json!({ "rules": rules }))
}

/// The largest value in bytes of `target`'s LOB-like columns (one scan of the table), or `None`
/// when it has none. Its one row's one column is NULL for an empty table.
pub fn lob_size_sql(target: &crate::catalog::Relation) -> Option<String> {
    let sizes: Vec<String> = target
        .columns
        .iter()
        .filter(|c| c.is_lob_like())
        .map(|c| {
            let col = crate::ident::quote_ident(&c.name);
            let value = if c.is_measured_directly() {
                col
            } else {
                format!("{col}::pg_catalog.text")
            };
            format!("pg_catalog.max(pg_catalog.octet_length({value}))")
        })
        .collect();
    if sizes.is_empty() {
        return None;
    }
    Some(format!(
        "SELECT GREATEST({})::pg_catalog.int8 FROM {}",
        sizes.join(", "),
        target.quoted()
    ))
}

/// DMS's largest `LobMaxSize` in limited LOB mode (KB); above it only full LOB mode loads whole
/// values.
const LOB_MAX_LIMITED_KB: i64 = 102_400;

/// `TargetMetadata`'s LOB settings for the largest LOB-like value of the reload's tables
/// (`max_bytes`; `None`: no such value): limited LOB mode with `LobMaxSize` that value in KB plus a
/// quarter, rounded up, never below 32 (DMS truncates a LOB above `LobMaxSize` and only logs a
/// warning); full LOB mode above 100 MB.
pub fn lob_settings(max_bytes: Option<i64>) -> Value {
    let kb = max_bytes
        .map(|b| (b.saturating_mul(5) / 4 + 1023) / 1024)
        .unwrap_or(0)
        .max(32);
    if kb > LOB_MAX_LIMITED_KB {
        json!({"SupportLobs": true, "FullLobMode": true, "LimitedSizeLobMode": false, "LobMaxSize": 0})
    } else {
        json!({"SupportLobs": true, "FullLobMode": false, "LimitedSizeLobMode": true, "LobMaxSize": kb})
    }
}

/// The LOB limit task settings give the loader, in KB: `LobMaxSize` in limited LOB mode (what the
/// merge's guard checks staged values against), `None` in full LOB mode or without LOB support.
pub fn recorded_lob_limit(settings: &Value) -> Option<i32> {
    let m = settings.get("TargetMetadata")?;
    let on = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
    if !on("SupportLobs") || on("FullLobMode") || !on("LimitedSizeLobMode") {
        return None;
    }
    m.get("LobMaxSize")
        .and_then(Value::as_i64)
        .filter(|&kb| kb > 0)
        .and_then(|kb| i32::try_from(kb).ok())
}

/// `$1` reload id, `$2` its LOB limit in KB ([`recorded_lob_limit`]): records it on the reload
/// (as the current user, who must own the reload's tables).
pub const RECORD_LOB_LIMIT_SQL: &str =
    "SELECT dwr._record_lob_limit($1, $2, CURRENT_USER::pg_catalog.name)";

/// Task settings for a full load into existing staging tables, LOB settings sized for
/// `lob_max_bytes` ([`lob_settings`]); `overrides` is merged in deeply (objects merge key by key,
/// anything else replaces).
pub fn task_settings(staging_schema: &str, lob_max_bytes: Option<i64>, overrides: &Value) -> Value {
    let mut s = json!({
        "TargetMetadata": {
            "TargetSchema": staging_schema,
            "SupportLobs": true,
            "FullLobMode": false,
            "LobChunkSize": 64,
            "LimitedSizeLobMode": true,
            "LobMaxSize": 32,
            "BatchApplyEnabled": false
        },
        "FullLoadSettings": {
            "TargetTablePrepMode": "DO_NOTHING",
            "CreatePkAfterFullLoad": false,
            "StopTaskCachedChangesApplied": false,
            "StopTaskCachedChangesNotApplied": false,
            "MaxFullLoadSubTasks": 8,
            "TransactionConsistencyTimeout": 600,
            "CommitRate": 10000
        },
        "Logging": {
            "EnableLogging": true
        },
        "ErrorBehavior": {
            "DataErrorPolicy": "LOG_ERROR",
            "TableErrorPolicy": "SUSPEND_TABLE"
        }
    });
    deep_merge(
        &mut s,
        &json!({ "TargetMetadata": lob_settings(lob_max_bytes) }),
    );
    // no overrides (SQL NULL, no --overrides): the settings as they are
    if !overrides.is_null() {
        deep_merge(&mut s, overrides);
    }
    s
}

/// What the documents of a CDC-only task that replays a reload's window need besides its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdcOptions {
    pub source_schema: String,
    /// the window in UTC, `YYYY-MM-DD HH:MI:SS` (start rounded down, end up, to the second)
    pub window_start_utc: String,
    pub window_end_utc: String,
    /// the S3 target's `TimestampColumnName`: each change's commit time, the replay's order
    pub timestamp_column: String,
    /// the largest LOB-like value of the tables, for the LOB settings ([`lob_settings`])
    pub lob_max_bytes: Option<i64>,
}

/// The change-log table of `t`: beside its staging table, named after it.
fn change_log_table(t: &DmsTable) -> String {
    crate::ident::quote_qualified(&t.staging_schema, &format!("{}_changes", t.staging_table))
}

/// The documents of a CDC-only DMS task to an Amazon S3 target that replays a reload's window, and
/// what to do with its files: the task's start and stop (the window, in UTC), its table mappings
/// (every table of the reload, no filter: a change log needs every change of the window), its
/// settings, the S3 endpoint's settings (CSV, `Op` first, each change's commit time in
/// `timestamp_column`), and per table the change-log table to load the files into, the `COPY`
/// column list, and the `dwr_replay` call (ordered by commit time, then by the order the files
/// were loaded in).
pub fn cdc_task(tables: &[DmsTable], o: &CdcOptions) -> Result<Value> {
    let mut tables: Vec<&DmsTable> = tables.iter().collect();
    tables.sort_by(|a, b| a.target.cmp(&b.target));
    if tables.is_empty() {
        return Err(DwrError::new(
            SqlState::InvalidParameterValue,
            "the reload has no tables",
        ));
    }
    let q = crate::ident::quote_ident;
    let mut id = 0u32;
    let rules: Vec<Value> = tables
        .iter()
        .map(|t| {
            rule(
                &mut id,
                obj(json!({
                    "rule-type": "selection",
                    "object-locator": {"schema-name": o.source_schema, "table-name": t.source_table},
                    "rule-action": "include"
                })),
            )
        })
        .collect();
    let ts = q(&o.timestamp_column);
    let logs: Vec<Value> = tables
        .iter()
        .map(|t| {
            let log = change_log_table(t);
            let columns: Vec<String> = t
                .columns
                .iter()
                .map(|(name, type_name)| format!("{} {type_name}", q(name)))
                .collect();
            let names: Vec<String> = t.columns.iter().map(|(name, _)| q(name)).collect();
            json!({
                "target": t.target,
                "s3_folder": format!("{}/{}/", o.source_schema, t.source_table),
                "change_log": log,
                "create_table": format!(
                    "CREATE TABLE {log} (\"Op\" pg_catalog.text NOT NULL, {ts} pg_catalog.timestamp NOT NULL, {}, \
                     change_seq pg_catalog.int8 GENERATED ALWAYS AS IDENTITY)",
                    columns.join(", ")
                ),
                "copy_columns": format!("\"Op\", {ts}, {}", names.join(", ")),
                "replay": format!(
                    "SELECT * FROM dwr_replay({}, {}, order_by => ARRAY[{}, 'change_seq'])",
                    crate::ident::quote_literal(&t.target),
                    crate::ident::quote_literal(&log),
                    crate::ident::quote_literal(&o.timestamp_column)
                ),
            })
        })
        .collect();
    let mut settings = json!({
        "TargetMetadata": {"BatchApplyEnabled": false},
        "Logging": {"EnableLogging": true},
        "ErrorBehavior": {"DataErrorPolicy": "LOG_ERROR", "TableErrorPolicy": "SUSPEND_TABLE"}
    });
    deep_merge(
        &mut settings,
        &json!({ "TargetMetadata": lob_settings(o.lob_max_bytes) }),
    );
    Ok(json!({
        "MigrationType": "cdc",
        "CdcStartTime": o.window_start_utc.replace(' ', "T"),
        "CdcStopPosition": format!("server_time:{}", o.window_end_utc.replace(' ', "T")),
        "TableMappings": {"rules": rules},
        "ReplicationTaskSettings": settings,
        "S3Settings": {
            "DataFormat": "csv",
            "TimestampColumnName": o.timestamp_column,
            "CdcInsertsOnly": false,
            "CdcInsertsAndUpdates": false,
            "IncludeOpForFullLoad": true,
            "AddColumnName": false
        },
        "ChangeLogs": logs
    }))
}

/// Merge `patch` into `base`: objects key by key, recursively; any other value replaces.
pub fn deep_merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DMS's documented filter semantics, to test the documents by their meaning: is `row` (column
    /// name → value as DMS compares it, a string) of `schema.table` selected?
    fn dms_selects(
        mapping: &Value,
        schema: &str,
        table: &str,
        row: &[(&str, Option<&str>)],
    ) -> bool {
        let value = |c: &str| row.iter().find(|(n, _)| *n == c).and_then(|(_, v)| *v);
        mapping["rules"].as_array().unwrap().iter().any(|r| {
            r["rule-type"] == "selection"
                && r["rule-action"] == "include"
                && r["object-locator"]["schema-name"] == schema
                && r["object-locator"]["table-name"] == table
                && r["filters"].as_array().is_none_or(|filters| {
                    // filters are ANDed; the conditions of one filter are ORed
                    filters.iter().all(|f| {
                        let v = value(f["column-name"].as_str().unwrap());
                        f["filter-conditions"].as_array().unwrap().iter().any(|c| {
                            let s = |k: &str| c[k].as_str().unwrap_or_default();
                            match (c["filter-operator"].as_str().unwrap(), v) {
                                ("null", v) => v.is_none(),
                                ("notnull", v) => v.is_some(),
                                (_, None) => false,
                                ("eq", Some(v)) => v == s("value"),
                                ("noteq", Some(v)) => v != s("value"),
                                ("gte", Some(v)) => v >= s("value"),
                                ("lte" | "ste", Some(v)) => v <= s("value"),
                                ("between", Some(v)) => {
                                    v >= s("start-value") && v <= s("end-value")
                                }
                                ("notbetween", Some(v)) => {
                                    v < s("start-value") || v > s("end-value")
                                }
                                (op, _) => panic!("unknown operator {op}"),
                            }
                        })
                    })
                })
        })
    }

    fn reload() -> (Vec<DmsTable>, MappingOptions) {
        let t = |target: &str, src: &str, staging: &str| DmsTable {
            target: target.into(),
            source_table: src.into(),
            source_version_column: "UPDATED_AT".into(),
            staging_schema: "staging".into(),
            staging_table: staging.into(),
            type_changes: vec![],
            columns: vec![
                ("id".into(), "integer".into()),
                ("note text".into(), "character varying(20)".into()),
                ("updated_at".into(), "timestamp with time zone".into()),
            ],
        };
        let mut orders = t("production.orders", "ORDERS", "orders");
        orders.type_changes.push((
            "AMOUNT".into(),
            json!({"type": "numeric", "precision": 12, "scale": 2}),
        ));
        (
            vec![orders, t("production.customers", "CUSTOMERS", "customers")],
            MappingOptions {
                source_schema: "SALES".into(),
                lowercase_columns: true,
                window_start: "2025-01-01 00:00:00".into(),
                window_end: "2025-02-01 00:00:00".into(),
            },
        )
    }

    #[test]
    fn a_cdc_task_replays_the_window_into_change_logs() {
        let (tables, _) = reload();
        let o = CdcOptions {
            source_schema: "SALES".into(),
            window_start_utc: "2025-01-01 00:00:00".into(),
            window_end_utc: "2025-02-01 00:00:01".into(),
            timestamp_column: "commit_ts".into(),
            lob_max_bytes: Some(100 * 1024),
        };
        let d = cdc_task(&tables, &o).unwrap();
        assert_eq!(d["MigrationType"], "cdc");
        assert_eq!(d["CdcStartTime"], "2025-01-01T00:00:00");
        assert_eq!(d["CdcStopPosition"], "server_time:2025-02-01T00:00:01");
        // every change of the reload's tables: no filter
        let rules = d["TableMappings"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert!(rules.iter().all(|r| r.get("filters").is_none()
            && r["rule-type"] == "selection"
            && r["rule-action"] == "include"));
        assert_eq!(rules[0]["object-locator"]["table-name"], "CUSTOMERS");
        assert_eq!(d["S3Settings"]["TimestampColumnName"], "commit_ts");
        assert_eq!(d["S3Settings"]["CdcInsertsOnly"], false);
        assert_eq!(
            d["ReplicationTaskSettings"]["TargetMetadata"]["LobMaxSize"],
            125
        );
        let log = &d["ChangeLogs"][0];
        assert_eq!(log["target"], "production.customers");
        assert_eq!(log["s3_folder"], "SALES/CUSTOMERS/");
        assert_eq!(log["change_log"], "\"staging\".\"customers_changes\"");
        assert_eq!(
            log["create_table"],
            "CREATE TABLE \"staging\".\"customers_changes\" (\"Op\" pg_catalog.text NOT NULL, \
             \"commit_ts\" pg_catalog.timestamp NOT NULL, \"id\" integer, \"note text\" character varying(20), \
             \"updated_at\" timestamp with time zone, change_seq pg_catalog.int8 GENERATED ALWAYS AS IDENTITY)"
        );
        assert_eq!(
            log["copy_columns"],
            "\"Op\", \"commit_ts\", \"id\", \"note text\", \"updated_at\""
        );
        assert_eq!(
            log["replay"],
            "SELECT * FROM dwr_replay('production.customers', '\"staging\".\"customers_changes\"', \
             order_by => ARRAY['commit_ts', 'change_seq'])"
        );
        assert!(cdc_task(&[], &o).is_err());
    }

    #[test]
    fn the_window_selects_exactly_its_rows_both_ends_included() {
        let (tables, o) = reload();
        let m = table_mappings(&tables, &o).unwrap();
        for table in ["CUSTOMERS", "ORDERS"] {
            let sel = |v: Option<&str>| dms_selects(&m, "SALES", table, &[("UPDATED_AT", v)]);
            assert!(!sel(Some("2024-12-31 23:59:59")), "just before the start");
            assert!(sel(Some("2025-01-01 00:00:00")), "the start");
            assert!(sel(Some("2025-01-15 12:00:00")));
            assert!(sel(Some("2025-02-01 00:00:00")), "the end");
            assert!(!sel(Some("2025-02-01 00:00:01")), "just after the end");
            assert!(!sel(None), "no version");
        }
        assert!(!dms_selects(
            &m,
            "SALES",
            "INVOICES",
            &[("UPDATED_AT", Some("2025-01-15 00:00:00"))]
        ));
        assert!(!dms_selects(
            &m,
            "HR",
            "CUSTOMERS",
            &[("UPDATED_AT", Some("2025-01-15 00:00:00"))]
        ));
    }

    #[test]
    fn the_seeds_gte_and_lte_in_one_filter_select_everything() {
        // the evaluator is faithful: the seed document's filter (two conditions in one filter) is ORed
        let seed = json!({"rules": [{"rule-type": "selection", "rule-action": "include",
            "object-locator": {"schema-name": "SALES", "table-name": "CUSTOMERS"},
            "filters": [{"filter-type": "source", "column-name": "UPDATED_AT", "filter-conditions": [
                {"filter-operator": "gte", "value": "2025-01-01 00:00:00"},
                {"filter-operator": "lte", "value": "2025-02-01 00:00:00"}]}]}]});
        for v in ["1999-01-01 00:00:00", "2030-01-01 00:00:00"] {
            assert!(dms_selects(
                &seed,
                "SALES",
                "CUSTOMERS",
                &[("UPDATED_AT", Some(v))]
            ));
        }
    }

    #[test]
    fn rules_are_numbered_stably_and_rename_into_staging() {
        let (tables, o) = reload();
        let a = table_mappings(&tables, &o).unwrap();
        let mut reversed = tables.clone();
        reversed.reverse();
        assert_eq!(
            a,
            table_mappings(&reversed, &o).unwrap(),
            "same document whatever the order"
        );
        let rules = a["rules"].as_array().unwrap();
        let ids: Vec<&str> = rules
            .iter()
            .map(|r| r["rule-id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            (1..=rules.len())
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        );
        assert_eq!(
            rules[0]["object-locator"]["table-name"], "CUSTOMERS",
            "tables sorted by production name"
        );
        let schema_rename = rules.iter().find(|r| r["rule-target"] == "schema").unwrap();
        assert_eq!(schema_rename["value"], "staging");
        assert!(rules
            .iter()
            .any(|r| r["rule-target"] == "table" && r["value"] == "orders"));
        assert!(rules.iter().any(|r| r["rule-action"] == "convert-lowercase"
            && r["object-locator"]["column-name"] == "%"));
        let change = rules
            .iter()
            .find(|r| r["rule-action"] == "change-data-type")
            .unwrap();
        assert_eq!(change["object-locator"]["column-name"], "AMOUNT");
        assert_eq!(change["data-type"]["precision"], 12);
    }

    #[test]
    fn different_staging_schemas_are_refused() {
        let (mut tables, o) = reload();
        tables[0].staging_schema = "other".into();
        let e = table_mappings(&tables, &o).unwrap_err();
        assert_eq!(e.state, SqlState::FeatureNotSupported);
        assert!(table_mappings(&[], &o).is_err());
    }

    #[test]
    fn the_recorded_lob_limit_is_that_of_limited_lob_mode() {
        let settings = task_settings("staging", Some(100 * 1024), &Value::Null);
        assert_eq!(recorded_lob_limit(&settings), Some(125));
        // an override that sets one is what is recorded
        let set = json!({"TargetMetadata": {"LobMaxSize": 4096}});
        assert_eq!(
            recorded_lob_limit(&task_settings("staging", None, &set)),
            Some(4096)
        );
        // full LOB mode, or no LOBs at all: nothing to guard against
        let huge = task_settings("staging", Some(200 * 1024 * 1024), &Value::Null);
        assert_eq!(recorded_lob_limit(&huge), None);
        let off = json!({"TargetMetadata": {"SupportLobs": false}});
        assert_eq!(
            recorded_lob_limit(&task_settings("staging", None, &off)),
            None
        );
    }

    #[test]
    fn task_settings_merge_overrides_deeply() {
        let s = task_settings(
            "staging",
            None,
            &json!({"FullLoadSettings": {"CommitRate": 50000}, "Logging": {"EnableLogging": false}, "New": 1}),
        );
        assert_eq!(s["TargetMetadata"]["TargetSchema"], "staging");
        assert_eq!(
            s["FullLoadSettings"]["TargetTablePrepMode"], "DO_NOTHING",
            "kept"
        );
        assert_eq!(s["FullLoadSettings"]["CommitRate"], 50000, "overridden");
        assert_eq!(s["Logging"]["EnableLogging"], false);
        assert_eq!(s["New"], 1);
    }

    #[test]
    fn lob_max_size_fits_the_largest_value_with_headroom() {
        let kb = |b| lob_settings(b)["LobMaxSize"].as_i64().unwrap();
        assert_eq!(kb(None), 32, "no LOB column or an empty table: the floor");
        assert_eq!(kb(Some(1000)), 32);
        assert_eq!(kb(Some(100 * 1024)), 125, "100 KB and a quarter");
        assert_eq!(kb(Some(100 * 1024 + 1)), 126, "rounded up");
        let full = lob_settings(Some(90 * 1024 * 1024));
        assert_eq!(
            full["FullLobMode"], true,
            "above DMS's 100 MB: full LOB mode"
        );
        assert_eq!(full["LimitedSizeLobMode"], false);
        // overrides still win
        let s = task_settings(
            "staging",
            Some(100 * 1024),
            &json!({"TargetMetadata": {"LobMaxSize": 4096}}),
        );
        assert_eq!(s["TargetMetadata"]["LobMaxSize"], 4096);
    }

    #[test]
    fn lob_size_reads_only_lob_like_columns() {
        use crate::catalog::fixtures::*;
        let mut t = table(
            "p",
            "docs",
            vec![
                col("id", INT4, "integer"),
                col("body", TEXT, "text"),
                col("short", VARCHAR, "character varying(10)"),
                col("meta", JSON, "json"),
            ],
            &["id"],
        );
        t.columns[2].typmod = 14;
        assert_eq!(
            lob_size_sql(&t).unwrap(),
            "SELECT GREATEST(pg_catalog.max(pg_catalog.octet_length(\"body\")), \
             pg_catalog.max(pg_catalog.octet_length(\"meta\"::pg_catalog.text)))::pg_catalog.int8 FROM \"p\".\"docs\""
        );
        t.columns.retain(|c| c.name == "id");
        assert_eq!(lob_size_sql(&t), None);
    }

    #[test]
    fn data_types_map_to_dms_names() {
        assert_eq!(dms_data_type("integer"), Some(json!({"type": "int4"})));
        assert_eq!(
            dms_data_type("numeric(10,2)"),
            Some(json!({"type": "numeric", "precision": 10, "scale": 2}))
        );
        assert_eq!(
            dms_data_type("character varying(100)"),
            Some(json!({"type": "string", "length": 100}))
        );
        assert_eq!(dms_data_type("point"), None);
    }
}
