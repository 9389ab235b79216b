//! `dwr dms`: the AWS DMS documents of an open reload, as the compiled extension's
//! `dwr_dms_table_mappings`, `dwr_dms_task_settings` and `dwr_dms_cdc_task` write them.

use crate::conninfo::Error;
use crate::tle::relation;
use crate::DmsCommand;
use postgres::Client;

/// The DMS documents of a reload: the engine's `dms` module fed with the catalog, as the compiled
/// extension's `src/dms.rs` does.
pub fn documents(db: &mut Client, command: &DmsCommand) -> Result<serde_json::Value, Error> {
    use dwr_engine::dms::{
        cdc_task, dms_table, table_mappings, task_settings, CdcOptions, MappingOptions, RELOAD_SQL,
    };
    db.batch_execute("SET search_path = pg_catalog, pg_temp")?;
    let json_option = |name: &str, value: &Option<String>| -> Result<serde_json::Value, Error> {
        match value {
            None => Ok(serde_json::Value::Null),
            Some(v) => {
                let value: serde_json::Value =
                    serde_json::from_str(v).map_err(|e| format!("--{name}: {e}"))?;
                if !value.is_object() {
                    return Err(format!("--{name} must be a JSON object").into());
                }
                Ok(value)
            }
        }
    };
    let (reload, engine, time_zone, renames) = match command {
        DmsCommand::TableMappings {
            source,
            source_time_zone,
            ..
        } => (
            source.reload,
            source.source_engine.to_lowercase(),
            source_time_zone.clone(),
            json_option("source-tables", &source.source_tables)?,
        ),
        DmsCommand::CdcTask { source, .. } => (
            source.reload,
            source.source_engine.to_lowercase(),
            // DMS takes a CDC task's start and stop in UTC
            "UTC".into(),
            json_option("source-tables", &source.source_tables)?,
        ),
        DmsCommand::TaskSettings { reload, .. } => (
            *reload,
            "oracle".into(),
            "UTC".into(),
            serde_json::Value::Null,
        ),
    };
    let oracle = engine == "oracle";
    let row = db
        .query_opt(RELOAD_SQL, &[&reload, &time_zone])?
        .ok_or_else(|| format!("reload {reload} does not exist (see SELECT * FROM dwr.reloads)"))?;
    let (targets, start, end): (Vec<u32>, String, String) = (row.get(0), row.get(1), row.get(2));
    let mut tables = Vec::new();
    // the largest value of the tables' LOB-like columns, for LobMaxSize
    let mut lob_max_bytes: Option<i64> = None;
    for oid in targets {
        let reg = db
            .query_opt(
                "SELECT staging::oid, version_column::text FROM dwr.tables WHERE target::oid = $1",
                &[&oid],
            )?
            .ok_or_else(|| format!("table with OID {oid} has no registered staging table"))?;
        let (s_oid, version_column): (u32, String) = (reg.get(0), reg.get(1));
        let target = relation(db, oid)?.ok_or("a table of the reload does not exist")?;
        if let Some(q) = dwr_engine::dms::lob_size_sql(&target) {
            let size: Option<i64> = db.query_one(q.as_str(), &[])?.get(0);
            lob_max_bytes = lob_max_bytes.max(size);
        }
        let staging = relation(db, s_oid)?.ok_or("a staging table of the reload does not exist")?;
        let renamed = renames
            .get(target.display())
            .or_else(|| renames.get(&target.name))
            .and_then(|v| v.as_str());
        tables.push(dms_table(
            &target,
            &staging,
            &version_column,
            renamed,
            oracle,
        ));
    }
    match command {
        DmsCommand::TableMappings {
            source,
            lowercase_columns,
            ..
        } => {
            let options = MappingOptions {
                source_schema: source.source_schema.clone(),
                lowercase_columns: lowercase_columns.unwrap_or(oracle),
                window_start: start,
                window_end: end,
            };
            Ok(table_mappings(&tables, &options).map_err(|e| e.message)?)
        }
        DmsCommand::CdcTask {
            source,
            timestamp_column,
            ..
        } => {
            let options = CdcOptions {
                source_schema: source.source_schema.clone(),
                window_start_utc: start,
                window_end_utc: end,
                timestamp_column: timestamp_column.clone(),
                lob_max_bytes,
            };
            Ok(cdc_task(&tables, &options).map_err(|e| e.message)?)
        }
        DmsCommand::TaskSettings { overrides, .. } => {
            let mut schemas: Vec<String> =
                tables.iter().map(|t| t.staging_schema.clone()).collect();
            schemas.sort();
            schemas.dedup();
            if schemas.len() != 1 {
                return Err(format!(
                    "the tables of this reload are staged in different schemas ({}): a DMS task has one TargetSchema",
                    schemas.join(", ")
                )
                .into());
            }
            let settings = task_settings(
                &schemas[0],
                lob_max_bytes,
                &json_option("overrides", overrides)?,
            );
            // the limit the loader will cut LOBs at: the merge's guard against truncated values
            let limit = dwr_engine::dms::recorded_lob_limit(&settings);
            db.execute(dwr_engine::dms::RECORD_LOB_LIMIT_SQL, &[&reload, &limit])?;
            Ok(settings)
        }
    }
}
