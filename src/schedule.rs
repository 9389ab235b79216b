//! `dwr_schedule`, `dwr_unschedule`: merges as pg_cron jobs.

use crate::exec::{self, query_one, raise};
use crate::registry::registration_or_raise;
use dwr_engine::ident::{quote_ident, quote_literal};
use dwr_engine::{DwrError, SqlState};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// The schema pg_cron is installed in, in this database; or an error that says how to get there.
fn cron_schema(merge_command: &str, job: &str, cron: &str) -> String {
    // pg_cron keeps its functions in a schema of its own ("cron"), whatever its extnamespace says:
    // ask where the extension's cron.schedule lives
    if let Some(schema) = query_one::<String>(
        "SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_extension e \
         JOIN pg_catalog.pg_depend d ON d.refobjid OPERATOR(pg_catalog.=) e.oid \
          AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass \
          AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass \
         JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.objid \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace \
         WHERE e.extname OPERATOR(pg_catalog.=) 'pg_cron' AND p.proname OPERATOR(pg_catalog.=) 'schedule' \
         LIMIT 1",
        &[],
    ) {
        return schema;
    }
    let preloaded = query_one::<String>(
        "SELECT pg_catalog.current_setting('shared_preload_libraries')",
        &[],
    )
    .unwrap_or_default()
    .split(',')
    .any(|l| l.trim().trim_matches('"') == "pg_cron");
    let cron_db = query_one::<String>(
        "SELECT pg_catalog.current_setting('cron.database_name', true)",
        &[],
    );
    let here = query_one::<String>("SELECT pg_catalog.current_database()::pg_catalog.text", &[])
        .unwrap_or_default();
    match (preloaded, cron_db) {
        (true, Some(db)) if !db.is_empty() && db != here => raise(
            DwrError::new(SqlState::FeatureNotSupported, format!("pg_cron runs in database {db}, not in {here}"))
                .hint(format!(
                    "Schedule the merge from {db}: SELECT cron.schedule_in_database({}, {}, {}, {});",
                    quote_literal(job),
                    quote_literal(cron),
                    quote_literal(merge_command),
                    quote_literal(&here)
                )),
        ),
        (true, _) => raise(
            DwrError::new(SqlState::FeatureNotSupported, "the pg_cron extension is not created in this database")
                .hint("Run CREATE EXTENSION pg_cron; in the database named by cron.database_name."),
        ),
        (false, _) => raise(
            DwrError::new(SqlState::FeatureNotSupported, "pg_cron is not installed")
                .detail("dwr_schedule makes pg_cron jobs; pg_cron is not in shared_preload_libraries.")
                .hint("Install pg_cron (Debian: apt-get install postgresql-15-cron), add pg_cron to shared_preload_libraries, restart PostgreSQL, then CREATE EXTENSION pg_cron; or run dwr_merge from any other scheduler."),
        ),
    }
}

/// The job's name and command for `target`.
fn job_for(target: pg_sys::Oid) -> (String, String) {
    let t = exec::relation_or_raise(target, "table");
    let ext_schema = query_one::<String>(
        "SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_extension e \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace \
         WHERE e.extname OPERATOR(pg_catalog.=) 'dms_window_reload'",
        &[],
    )
    .expect("the extension is installed");
    let command = format!(
        "SELECT * FROM {}.dwr_merge({}::pg_catalog.regclass)",
        quote_ident(&ext_schema),
        quote_literal(&t.quoted())
    );
    (format!("dwr_merge {}", t.display()), command)
}

#[pg_extern(sql = false)]
fn dwr_schedule(target: Option<pg_sys::Oid>, cron: Option<&str>) -> i64 {
    let target = target.unwrap_or_else(|| raise(DwrError::null_argument("dwr_schedule", "target")));
    let cron = cron.unwrap_or_else(|| raise(DwrError::null_argument("dwr_schedule", "cron")));
    registration_or_raise(target);
    let (job, command) = job_for(target);
    let schema = cron_schema(&command, &job, cron);
    query_one::<i64>(
        &format!("SELECT {}.schedule($1, $2, $3)", quote_ident(&schema)),
        &[job.as_str().into(), cron.into(), command.as_str().into()],
    )
    .expect("cron.schedule returns the job id")
}

#[pg_extern(sql = false)]
fn dwr_unschedule(target: Option<pg_sys::Oid>) {
    let target =
        target.unwrap_or_else(|| raise(DwrError::null_argument("dwr_unschedule", "target")));
    let (job, command) = job_for(target);
    let schema = cron_schema(&command, &job, "* * * * *");
    let removed = query_one::<bool>(
        &format!(
            "SELECT {s}.unschedule(j.jobid) FROM {s}.job j WHERE j.jobname OPERATOR(pg_catalog.=) $1",
            s = quote_ident(&schema)
        ),
        &[job.as_str().into()],
    );
    if removed.is_none() {
        raise(
            DwrError::new(
                SqlState::UndefinedObject,
                format!("no pg_cron job named \"{job}\""),
            )
            .hint("See SELECT * FROM cron.job;"),
        );
    }
}
