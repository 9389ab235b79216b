//! `dwr`: the command-line edge of dms_window_reload for managed PostgreSQL (Amazon RDS, Aurora),
//! where the compiled extension cannot be installed. It reads the catalog of the registered tables
//! with the engine's own queries, plans their merges with the engine, and writes (or installs) a
//! pg_tle package holding the same SQL interface in SQL and PL/pgSQL (`dwr_engine::tle`).
//!
//! ```text
//! dwr tle install <connection string> [--schema public] [--quiet] [--ca-file PEM]
//! dwr tle sql     <connection string>
//! dwr tle check   <connection string>
//! dwr dms table-mappings <connection string> --reload ID --source-schema NAME [...]
//! dwr dms task-settings  <connection string> --reload ID [--overrides JSON]
//! ```
//!
//! TLS as libpq's `sslmode` says (`prefer` by default, `require`, `disable`); the server's
//! certificate is verified against `--ca-file` (for Amazon RDS, its CA bundle) when given, and not
//! verified otherwise (what libpq does with `sslmode=require`). The password: `password=` in the
//! connection string, or `PGPASSWORD`.

use dwr_engine::catalog::{CastInfo, Casts, Relation, CASTS_SQL, RELATION_SQL};
use dwr_engine::plan::{plan_merge, verify};
use dwr_engine::tle::{self, TableCode, TableInput, EXTENSION};
use postgres::Client;
use std::process::ExitCode;

const USAGE: &str = "usage:
  dwr dms table-mappings <connection string> --reload ID --source-schema NAME
      [--source-engine oracle] [--source-tables JSON] [--lowercase-columns true|false]
      [--source-time-zone UTC]
  dwr dms task-settings <connection string> --reload ID [--overrides JSON]
      the AWS DMS documents of an open reload, as the compiled extension's
      dwr_dms_table_mappings and dwr_dms_task_settings write them (one JSON object on stdout)
  dwr tle install <connection string> [--schema NAME] [--quiet] [--ca-file PEM]
      generate the pg_tle package for every registered table and install it: CREATE EXTENSION
      dms_window_reload_tle the first time (in schema NAME, default public), else a new version
      with an update path and ALTER EXTENSION ... UPDATE
  dwr tle sql <connection string>
      print the script install would run, for review
  dwr tle check <connection string>
      exit 1 when a registered table has no generated merge, or one generated for other columns
  --ca-file PEM: verify the server's TLS certificate against these CAs (the RDS bundle)";

type Error = Box<dyn std::error::Error>;

struct Options {
    /// `tle` or `dms`
    group: String,
    command: String,
    conn: String,
    schema: String,
    quiet: bool,
    ca_file: Option<String>,
    /// the other `--name value` options (the `dms` commands')
    values: std::collections::BTreeMap<String, String>,
}

fn parse_args(args: &[String]) -> Option<Options> {
    let mut it = args.iter();
    let group = it.next()?.clone();
    if group != "tle" && group != "dms" {
        return None;
    }
    let command = it.next()?.clone();
    // the connection string may come as one argument or as several (key=value words)
    let mut conn: Vec<String> = Vec::new();
    let mut schema = "public".to_string();
    let mut quiet = false;
    let mut ca_file = None;
    let mut values = std::collections::BTreeMap::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--schema" => schema = it.next()?.clone(),
            "--quiet" | "-q" => quiet = true,
            "--ca-file" => ca_file = Some(it.next()?.clone()),
            _ if a.starts_with("--") => {
                values.insert(a.trim_start_matches("--").to_string(), it.next()?.clone());
            }
            _ if a.starts_with('-') => return None,
            _ => conn.push(a.clone()),
        }
    }
    // a misspelt option is an error, never ignored
    const DMS_OPTIONS: [&str; 7] = [
        "reload",
        "source-schema",
        "source-engine",
        "source-tables",
        "lowercase-columns",
        "source-time-zone",
        "overrides",
    ];
    let known = |k: &String| group == "dms" && DMS_OPTIONS.contains(&k.as_str());
    if conn.is_empty() || !values.keys().all(known) {
        return None;
    }
    Some(Options {
        group,
        command,
        conn: conn.join(" "),
        schema,
        quiet,
        ca_file,
        values,
    })
}

/// What the database holds now.
struct State {
    /// the installed version of the package, if it is installed
    version: Option<String>,
    /// the package's generated functions (`regprocedure` text)
    generated: Vec<String>,
    /// the registered tables, planned
    tables: Vec<TableInput>,
    /// their names, parents before children by their foreign keys (or why there is no such order)
    order: Result<Vec<String>, dwr_engine::DwrError>,
    owner: String,
}

fn relation(db: &mut Client, oid: u32) -> Result<Option<Relation>, Error> {
    let row = db.query_opt(RELATION_SQL, &[&oid])?;
    match row {
        None => Ok(None),
        Some(r) => {
            let json: String = r.get(0);
            Ok(Some(Relation::from_json(&json).map_err(|e| e.message)?))
        }
    }
}

/// How every staging column's type converts into the production column of the same name (the
/// query of the compiled extension's `exec::casts_between`).
fn casts(db: &mut Client, staging: &Relation, target: &Relation) -> Result<Casts, Error> {
    let (sources, targets) = Casts::type_pairs(staging, target);
    if sources.is_empty() {
        return Ok(Casts::default());
    }
    let row = db.query_opt(CASTS_SQL, &[&sources, &targets])?;
    let json: String = row.map(|r| r.get(0)).unwrap_or_else(|| "[]".into());
    Ok(Casts(
        CastInfo::list_from_json(&json).map_err(|e| e.message)?,
    ))
}

fn read_state(db: &mut Client) -> Result<State, Error> {
    // the engine's catalog queries expect this search_path: types outside pg_catalog come out
    // schema-qualified, and regclass prints as the generated dispatchers compare it
    db.batch_execute("SET search_path = pg_catalog, pg_temp")?;
    let has_tle = db
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_tle'",
            &[],
        )?
        .is_some();
    if !has_tle {
        return Err("pg_tle is not installed in this database: run CREATE EXTENSION pg_tle as a superuser (rds_superuser on RDS), and GRANT pgtle_admin TO the role that installs the package".into());
    }
    let owner: String = db.query_one("SELECT CURRENT_USER::text", &[])?.get(0);
    let ext = db.query_opt(
        "SELECT oid, extversion FROM pg_catalog.pg_extension WHERE extname = $1",
        &[&EXTENSION],
    )?;
    let Some(ext) = ext else {
        return Ok(State {
            version: None,
            generated: vec![],
            tables: vec![],
            order: Ok(vec![]),
            owner,
        });
    };
    let ext_oid: u32 = ext.get(0);
    let version: String = ext.get(1);
    let generated: Vec<String> = db
        .query(
            "SELECT p.oid::pg_catalog.regprocedure::text, p.proname::text FROM pg_catalog.pg_depend d
               JOIN pg_catalog.pg_proc p ON p.oid = d.objid
              WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                AND d.refobjid = $1 AND d.deptype = 'e'
                AND p.pronamespace = 'dwr'::pg_catalog.regnamespace
              ORDER BY 1",
            &[&ext_oid],
        )?
        .into_iter()
        .filter(|r| tle::is_generated(r.get::<_, &str>(1)))
        .map(|r| r.get(0))
        .collect();
    let regs = db.query(
        "SELECT t.target::oid, t.staging::oid, t.version_column::text FROM dwr.tables t
          WHERE EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = t.target::oid)
            AND EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = t.staging::oid)
          ORDER BY t.target::text",
        &[],
    )?;
    let mut tables = Vec::new();
    for r in regs {
        let (t_oid, s_oid, version_column): (u32, u32, String) = (r.get(0), r.get(1), r.get(2));
        let (Some(target), Some(staging)) = (relation(db, t_oid)?, relation(db, s_oid)?) else {
            continue;
        };
        let casts = casts(db, &staging, &target)?;
        let fingerprint = |db: &mut Client, oid: u32| -> Result<String, Error> {
            Ok(db.query_one(tle::FINGERPRINT_SQL, &[&oid])?.get(0))
        };
        let target_fingerprint = fingerprint(db, t_oid)?;
        let staging_fingerprint = fingerprint(db, s_oid)?;
        tables.push(TableInput {
            plan: plan_merge(&target, &staging, &casts, &version_column, true),
            problems: verify(&target, &staging, &casts, &version_column, true),
            undo: dwr_engine::undo::undo_sql(&target),
            target,
            staging,
            target_fingerprint,
            staging_fingerprint,
        });
    }
    // the foreign keys among the registered tables (the query of the compiled dwr_merge_all)
    let oids: Vec<u32> = tables.iter().map(|t| t.target.oid).collect();
    let name_of = |oid: u32| {
        tables
            .iter()
            .find(|t| t.target.oid == oid)
            .map(|t| t.target.display())
            .unwrap_or_default()
    };
    let edges: Vec<(String, String)> = db
        .query(
            "SELECT c.conrelid, c.confrelid FROM pg_catalog.pg_constraint c
              WHERE c.contype = 'f' AND c.conrelid = ANY ($1) AND c.confrelid = ANY ($1)",
            &[&oids],
        )?
        .into_iter()
        .map(|r| (name_of(r.get(0)), name_of(r.get(1))))
        .collect();
    let names: Vec<String> = tables.iter().map(|t| t.target.display()).collect();
    let order = dwr_engine::order::parents_first(&names, &edges);
    Ok(State {
        version: Some(version),
        generated,
        tables,
        order,
        owner,
    })
}

fn generate(state: &State) -> Vec<TableCode> {
    state
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| tle::table_code(i + 1, t, &state.owner))
        .collect()
}

/// The script to run: the whole package the first time, else the update from the installed one.
fn script(state: &State) -> String {
    let code = generate(state);
    match &state.version {
        None => tle::install_script(&code, &state.order, &state.owner),
        Some(installed) => tle::update_script(
            installed,
            &state.generated,
            &code,
            &state.order,
            &state.owner,
        ),
    }
}

fn install(db: &mut Client, o: &Options) -> Result<String, Error> {
    let state = read_state(db)?;
    let code = generate(&state);
    let mut tx = db.transaction()?;
    let new_version = match &state.version {
        None => {
            // versions of an earlier install that was dropped are replaced
            tx.execute(
                "SELECT pgtle.uninstall_extension_if_exists($1)",
                &[&EXTENSION],
            )?;
            let version = tle::next_version(None);
            tx.execute(
                "SELECT pgtle.install_extension($1, $2, $3, $4, ARRAY['plpgsql'])",
                &[
                    &EXTENSION,
                    &version,
                    &"dms_window_reload as a pg_tle package: merge a reloaded past time window from staging into CDC-replicated tables",
                    &tle::install_script(&code, &state.order, &state.owner),
                ],
            )?;
            tx.batch_execute(&format!(
                "CREATE EXTENSION {} SCHEMA {}",
                dwr_engine::ident::quote_ident(EXTENSION),
                dwr_engine::ident::quote_ident(&o.schema)
            ))?;
            version
        }
        Some(current) => {
            let version = tle::next_version(Some(current));
            let update =
                tle::update_script(current, &state.generated, &code, &state.order, &state.owner);
            // only an update path: pg_tle makes the extension depend on the install script of
            // every version it reaches, so a full script per version could never be removed
            tx.execute(
                "SELECT pgtle.install_update_path($1, $2, $3, $4)",
                &[&EXTENSION, current, &version, &update],
            )?;
            tx.batch_execute(&format!(
                "ALTER EXTENSION {} UPDATE TO {}",
                dwr_engine::ident::quote_ident(EXTENSION),
                dwr_engine::ident::quote_literal(&version)
            ))?;
            if tle::base_of(current) != tle::BASE_VERSION {
                // a new release changed the extension's tables: a restored dump must re-create
                // them as they are now (pg_dump writes CREATE EXTENSION without a version, which
                // runs the default version's whole script), so the new base gets a whole script
                // of its own, once per release, and becomes the default
                tx.execute(
                    "SELECT pgtle.install_extension_version_sql($1, $2, $3)",
                    &[
                        &EXTENSION,
                        &version,
                        &tle::install_script(&code, &state.order, &state.owner),
                    ],
                )?;
                tx.execute(
                    "SELECT pgtle.set_default_version($1, $2)",
                    &[&EXTENSION, &version],
                )?;
            }
            // applied: the path is not needed any more (the package is regenerated from the
            // catalog, never replayed)
            tx.execute(
                "SELECT pgtle.uninstall_update_path($1, $2, $3)",
                &[&EXTENSION, current, &version],
            )?;
            version
        }
    };
    tx.commit()?;
    let names: Vec<String> = code.iter().map(|c| c.target.clone()).collect();
    Ok(format!(
        "{EXTENSION} {new_version}: {} table(s){}{}",
        names.len(),
        if names.is_empty() { "" } else { ": " },
        names.join(", ")
    ))
}

/// Registered tables without a merge, or whose merge was generated for other columns.
fn check(db: &mut Client) -> Result<Vec<String>, Error> {
    let state = read_state(db)?;
    let Some(_) = state.version else {
        return Ok(vec![format!("{EXTENSION} is not installed")]);
    };
    let mut stale = Vec::new();
    for t in &state.tables {
        let name = t.target.display();
        let generated: Option<String> = db
            .query_opt(
                "SELECT pg_catalog.pg_get_functiondef(p.oid) FROM pg_catalog.pg_proc p
                  WHERE p.pronamespace = 'dwr'::pg_catalog.regnamespace
                    AND p.proname ~ '^_t[0-9]+_merge$'
                    AND pg_catalog.pg_get_functiondef(p.oid) LIKE '%' || $1 || '%'",
                &[&format!("'{}'", name.replace('\'', "''"))],
            )?
            .map(|r| r.get(0));
        match generated {
            None => stale.push(format!("{name}: no merge generated")),
            Some(def)
                if !def.contains(&t.target_fingerprint)
                    || !def.contains(&t.staging_fingerprint) =>
            {
                stale.push(format!(
                    "{name}: columns changed since the merge was generated"
                ))
            }
            Some(_) => {}
        }
    }
    Ok(stale)
}

/// The DMS documents of a reload: the engine's `dms` module fed with the catalog, as the compiled
/// extension's `src/dms.rs` does.
fn dms(db: &mut Client, o: &Options) -> Result<serde_json::Value, Error> {
    use dwr_engine::dms::{dms_table, table_mappings, task_settings, MappingOptions, RELOAD_SQL};
    db.batch_execute("SET search_path = pg_catalog, pg_temp")?;
    let reload: i64 = o
        .values
        .get("reload")
        .ok_or("--reload is required")?
        .parse()
        .map_err(|_| "--reload must be a number")?;
    let json_option = |name: &str| -> Result<serde_json::Value, Error> {
        match o.values.get(name) {
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
    let engine = o
        .values
        .get("source-engine")
        .map(|e| e.to_lowercase())
        .unwrap_or_else(|| "oracle".into());
    let oracle = engine == "oracle";
    let time_zone = o
        .values
        .get("source-time-zone")
        .cloned()
        .unwrap_or_else(|| "UTC".into());
    let row = db
        .query_opt(RELOAD_SQL, &[&reload, &time_zone])?
        .ok_or_else(|| format!("reload {reload} does not exist (see SELECT * FROM dwr.reloads)"))?;
    let (targets, start, end): (Vec<u32>, String, String) = (row.get(0), row.get(1), row.get(2));
    let mut tables = Vec::new();
    let renames = json_option("source-tables")?;
    for oid in targets {
        let reg = db
            .query_opt(
                "SELECT staging::oid, version_column::text FROM dwr.tables WHERE target::oid = $1",
                &[&oid],
            )?
            .ok_or_else(|| format!("table with OID {oid} has no registered staging table"))?;
        let (s_oid, version_column): (u32, String) = (reg.get(0), reg.get(1));
        let target = relation(db, oid)?.ok_or("a table of the reload does not exist")?;
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
    match o.command.as_str() {
        "table-mappings" => {
            let options = MappingOptions {
                source_schema: o
                    .values
                    .get("source-schema")
                    .ok_or("--source-schema is required")?
                    .clone(),
                lowercase_columns: match o.values.get("lowercase-columns") {
                    None => oracle,
                    Some(v) => v
                        .parse()
                        .map_err(|_| "--lowercase-columns: true or false")?,
                },
                window_start: start,
                window_end: end,
            };
            Ok(table_mappings(&tables, &options).map_err(|e| e.message)?)
        }
        "task-settings" => {
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
            Ok(task_settings(&schemas[0], &json_option("overrides")?))
        }
        other => Err(format!("unknown command dwr dms {other}").into()),
    }
}

/// Connect, with TLS when the server offers it (or `sslmode=require` demands it).
fn connect(o: &Options) -> Result<Client, Error> {
    let mut tls = native_tls::TlsConnector::builder();
    match &o.ca_file {
        Some(path) => {
            let pem = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            let mut found = 0;
            for block in pem.split_inclusive("-----END CERTIFICATE-----") {
                if let Some(start) = block.find("-----BEGIN CERTIFICATE-----") {
                    tls.add_root_certificate(native_tls::Certificate::from_pem(
                        &block.as_bytes()[start..],
                    )?);
                    found += 1;
                }
            }
            if found == 0 {
                return Err(format!("{path}: no PEM certificate in it").into());
            }
        }
        None => {
            tls.danger_accept_invalid_certs(true);
        }
    }
    let connector = postgres_native_tls::MakeTlsConnector::new(tls.build()?);
    let mut config: postgres::Config = o.conn.parse()?;
    if config.get_password().is_none() {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    Ok(config.connect(connector)?)
}

fn run(o: &Options) -> Result<ExitCode, Error> {
    let mut db = connect(o)?;
    if o.group == "dms" {
        let doc = dms(&mut db, o)?;
        println!("{doc}");
        return Ok(ExitCode::SUCCESS);
    }
    match o.command.as_str() {
        "install" => {
            let summary = install(&mut db, o)?;
            if !o.quiet {
                println!("{summary}");
            }
            Ok(ExitCode::SUCCESS)
        }
        "sql" => {
            let state = read_state(&mut db)?;
            print!("{}", script(&state));
            Ok(ExitCode::SUCCESS)
        }
        "check" => {
            let stale = check(&mut db)?;
            for s in &stale {
                println!("{s}");
            }
            Ok(if stale.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        _ => {
            eprintln!("{USAGE}");
            Ok(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(o) = parse_args(&args) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(&o) {
        Ok(code) => code,
        Err(e) => {
            // the postgres crate says "db error"; the server's message is in the source chain
            let mut text = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            eprintln!("dwr: {text}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &str) -> Vec<String> {
        a.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn connection_string_in_one_or_several_words() {
        let o = parse_args(&args("tle install host=/tmp port=5432 dbname=app --quiet")).unwrap();
        assert_eq!(o.conn, "host=/tmp port=5432 dbname=app");
        assert!(o.quiet);
        assert_eq!(o.schema, "public");
    }

    #[test]
    fn unknown_options_are_refused() {
        assert!(parse_args(&args("tle install host=/tmp --scema x")).is_none());
        assert!(parse_args(&args("tle install host=/tmp --reload 1")).is_none());
        assert!(parse_args(&args(
            "dms table-mappings host=/tmp --reload 1 --source-schema A"
        ))
        .is_some());
        assert!(parse_args(&args("dms table-mappings host=/tmp --relaod 1")).is_none());
        assert!(parse_args(&args("nope install host=/tmp")).is_none());
        assert!(parse_args(&args("tle install")).is_none());
    }
}
