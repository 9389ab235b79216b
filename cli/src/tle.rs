//! `dwr tle`: generate the pg_tle package of every registered table from the catalog, with the
//! engine (`dwr_engine::tle`), and install it, print it, or check that it is current.

use crate::conninfo::Error;
use dwr_engine::catalog::{CastInfo, Casts, Relation, CASTS_SQL, RELATION_SQL};
use dwr_engine::plan::{plan_merge, verify};
use dwr_engine::tle::{self, TableCode, TableInput, EXTENSION};
use postgres::Client;

/// What the database holds now.
pub struct State {
    /// the installed version of the package, if it is installed
    version: Option<String>,
    /// the package's generated functions (`regprocedure` text)
    generated: Vec<String>,
    /// the registered tables, planned
    tables: Vec<TableInput>,
    owner: String,
}

pub fn relation(db: &mut Client, oid: u32) -> Result<Option<Relation>, Error> {
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

pub fn read_state(db: &mut Client) -> Result<State, Error> {
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
    // the package is generated for this server (its RETURNING, for one)
    let server_version_num: i32 = db
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int4",
            &[],
        )?
        .get(0);
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
        // a source is read through staging's columns as text (dwr_engine::tle::source)
        let copy = tle::source::copy_relation(&staging);
        let copy_casts = self::casts(db, &copy, &target)?;
        tables.push(TableInput {
            plan: plan_merge(&target, &staging, &casts, &version_column, true),
            source_plan: plan_merge(&target, &copy, &copy_casts, &version_column, false),
            problems: verify(&target, &staging, &casts, &version_column, true),
            target,
            staging,
            target_fingerprint,
            staging_fingerprint,
            server_version_num,
        });
    }
    Ok(State {
        version: Some(version),
        generated,
        tables,
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
pub fn script(state: &State) -> String {
    let code = generate(state);
    match &state.version {
        None => tle::install_script(&code, &state.owner),
        Some(installed) => tle::update_script(installed, &state.generated, &code, &state.owner),
    }
}

pub fn install(db: &mut Client, schema: &str) -> Result<String, Error> {
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
                    &tle::install_script(&code, &state.owner),
                ],
            )?;
            tx.batch_execute(&format!(
                "CREATE EXTENSION {} SCHEMA {}",
                dwr_engine::ident::quote_ident(EXTENSION),
                dwr_engine::ident::quote_ident(schema)
            ))?;
            version
        }
        Some(current) => {
            let version = tle::next_version(Some(current));
            let update = tle::update_script(current, &state.generated, &code, &state.owner);
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
                        &tle::install_script(&code, &state.owner),
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
pub fn check(db: &mut Client) -> Result<Vec<String>, Error> {
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
