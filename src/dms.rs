//! `dwr_dms_table_mappings`, `dwr_dms_task_settings`, `dwr_dms_cdc_task`: the AWS DMS documents of a
//! reload, from the catalog (the JSON itself is written by `dwr_engine::dms`).

use crate::exec::{self, check, execute, query_one, query_rows, raise};
use crate::registry::registration_or_raise;
use dwr_engine::dms::{
    cdc_task, dms_table, table_mappings, task_settings, CdcOptions, MappingOptions,
};
use dwr_engine::{DwrError, SqlState};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::JsonB;

/// The reload's tables and window (formatted for DMS in `time_zone`, widened to whole seconds).
fn reload_for_dms(reload_id: i64, time_zone: &str) -> (Vec<pg_sys::Oid>, String, String) {
    query_rows(
        dwr_engine::dms::RELOAD_SQL,
        &[reload_id.into(), time_zone.into()],
        |row| {
            (
                exec::col::<Vec<pg_sys::Oid>>(row, 1).unwrap_or_default(),
                exec::col::<String>(row, 2).unwrap_or_default(),
                exec::col::<String>(row, 3).unwrap_or_default(),
            )
        },
    )
    .into_iter()
    .next()
    .unwrap_or_else(|| crate::registry::no_such_reload(reload_id))
}

/// The DMS facts of the reload's tables ([`dms_table`]), with the source names `source_tables`
/// gives (a JSON object, production table to source table name).
fn reload_tables(
    f: &str,
    targets: &[pg_sys::Oid],
    source_tables: Option<JsonB>,
    oracle: bool,
) -> Vec<dwr_engine::dms::DmsTable> {
    let renames = match source_tables.map(|j| j.0) {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(m)) => m,
        Some(_) => raise(
            DwrError::new(SqlState::InvalidParameterValue, format!("{f}: source_tables must be a JSON object"))
                .hint("Map production tables to source table names: '{\"production.customers\": \"CUST\"}'."),
        ),
    };
    targets
        .iter()
        .map(|&oid| {
            let reg = registration_or_raise(oid);
            let t = exec::relation_or_raise(oid, "table");
            let s = exec::relation_or_raise(reg.staging, "staging table");
            let renamed = renames
                .get(&t.display())
                .or_else(|| renames.get(&t.name))
                .and_then(|v| v.as_str());
            dms_table(&t, &s, &reg.version_column, renamed, oracle)
        })
        .collect()
}

/// The largest value of the tables' LOB-like columns (one scan of each table), which sizes DMS's
/// `LobMaxSize`.
fn lob_max_bytes(targets: &[pg_sys::Oid]) -> Option<i64> {
    targets
        .iter()
        .filter_map(|&oid| {
            let t = exec::relation_or_raise(oid, "table");
            dwr_engine::dms::lob_size_sql(&t).and_then(|q| query_one::<i64>(&q, &[]))
        })
        .max()
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(sql = false)]
fn dwr_dms_table_mappings(
    reload_id: Option<i64>,
    source_schema: Option<&str>,
    source_engine: Option<&str>,
    source_tables: Option<JsonB>,
    lowercase_columns: Option<bool>,
    source_time_zone: Option<&str>,
) -> JsonB {
    let f = "dwr_dms_table_mappings";
    let reload_id = reload_id.unwrap_or_else(|| raise(DwrError::null_argument(f, "reload_id")));
    let source_schema =
        source_schema.unwrap_or_else(|| raise(DwrError::null_argument(f, "source_schema")));
    let oracle = source_engine.unwrap_or("oracle").to_lowercase() == "oracle";
    let time_zone = source_time_zone.unwrap_or("UTC");
    let (targets, start, end) = reload_for_dms(reload_id, time_zone);
    let tables = reload_tables(f, &targets, source_tables, oracle);
    let options = MappingOptions {
        source_schema: source_schema.to_string(),
        lowercase_columns: lowercase_columns.unwrap_or(oracle),
        window_start: start,
        window_end: end,
    };
    JsonB(check(table_mappings(&tables, &options)))
}

#[pg_extern(sql = false)]
fn dwr_dms_cdc_task(
    reload_id: Option<i64>,
    source_schema: Option<&str>,
    source_engine: Option<&str>,
    source_tables: Option<JsonB>,
    timestamp_column: Option<&str>,
) -> JsonB {
    let f = "dwr_dms_cdc_task";
    let reload_id = reload_id.unwrap_or_else(|| raise(DwrError::null_argument(f, "reload_id")));
    let source_schema =
        source_schema.unwrap_or_else(|| raise(DwrError::null_argument(f, "source_schema")));
    let timestamp_column =
        timestamp_column.unwrap_or_else(|| raise(DwrError::null_argument(f, "timestamp_column")));
    let oracle = source_engine.unwrap_or("oracle").to_lowercase() == "oracle";
    // DMS takes a CDC task's start and stop in UTC
    let (targets, start, end) = reload_for_dms(reload_id, "UTC");
    let tables = reload_tables(f, &targets, source_tables, oracle);
    let options = CdcOptions {
        source_schema: source_schema.to_string(),
        window_start_utc: start,
        window_end_utc: end,
        timestamp_column: timestamp_column.to_string(),
        lob_max_bytes: lob_max_bytes(&targets),
    };
    JsonB(check(cdc_task(&tables, &options)))
}

#[pg_extern(sql = false)]
fn dwr_dms_task_settings(reload_id: Option<i64>, overrides: Option<JsonB>) -> JsonB {
    let f = "dwr_dms_task_settings";
    let reload_id = reload_id.unwrap_or_else(|| raise(DwrError::null_argument(f, "reload_id")));
    let overrides = overrides.map(|j| j.0).unwrap_or(serde_json::Value::Null);
    if !overrides.is_object() && !overrides.is_null() {
        raise(DwrError::new(
            SqlState::InvalidParameterValue,
            format!("{f}: overrides must be a JSON object"),
        ));
    }
    let (targets, _, _) = reload_for_dms(reload_id, "UTC");
    let mut schemas: Vec<String> = targets
        .iter()
        .map(|&oid| {
            let reg = registration_or_raise(oid);
            exec::relation_or_raise(reg.staging, "staging table").schema
        })
        .collect();
    schemas.sort();
    schemas.dedup();
    if schemas.len() != 1 {
        raise(
            DwrError::new(SqlState::FeatureNotSupported, "the tables of this reload are staged in different schemas")
                .detail(format!("staging schemas: {}", schemas.join(", ")))
                .hint("A DMS task has one TargetSchema: register the reload's tables with one staging_schema."),
        );
    }
    let settings = task_settings(&schemas[0], lob_max_bytes(&targets), &overrides);
    // the limit the loader will cut LOBs at: the merge's guard against truncated values
    execute(
        dwr_engine::dms::RECORD_LOB_LIMIT_SQL,
        &[
            reload_id.into(),
            dwr_engine::dms::recorded_lob_limit(&settings).into(),
        ],
    );
    JsonB(settings)
}
