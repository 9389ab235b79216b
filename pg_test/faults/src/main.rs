//! Fault tests of dms_window_reload: what a crash, or a dump and restore, in the middle of the work
//! leaves behind (issue "Never stall CDC, never resurrect after a restore").
//!
//! - `kill`: the backend running `dwr_merge` is killed with SIGKILL mid-merge, so the server goes
//!   through crash recovery. Production, the staging statuses and the audit are exactly as before;
//!   the next merge then ends exactly as a merge of an undisturbed copy of the same tables.
//! - `shutdown`: an immediate shutdown (`pg_ctl stop -m immediate`) while `CALL dwr_merge_batches`
//!   runs keeps the batches that committed; calling it again after the restart ends exactly in the
//!   state a single `dwr_merge` of an undisturbed copy reaches.
//! - `dump`: `pg_dump -Fc` and `pg_restore` into a new database in the middle of an open reload.
//!   Registrations, reloads, tombstones and the audit survive; a row CDC deleted before the dump and
//!   staged again is `skipped_deleted` after the restore (not resurrected); `dwr_undo` of a run made
//!   before the dump works; the delete trigger records new deletes.
//!
//! It kills and restarts its server, so `pg_test/run-all` gives it a server of its own, once for
//! the compiled extension and once for the pg_tle package (`--tle-sync`, the command an operator
//! runs after `dwr_create_staging` and after a restore). Prints a line per test; exits 1 if any
//! failed.

use clap::Parser;
use postgres::{Client, NoTls};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Fault tests of dms_window_reload (crash, immediate shutdown, dump and restore)")]
struct Options {
    /// the server's socket directory or host
    #[arg(long, default_value = "/tmp")]
    host: String,
    #[arg(long)]
    port: u16,
    /// the database to test in, with the extension (or the package) installed, owned by --user
    #[arg(long)]
    dbname: String,
    /// the role that owns the tables and runs the merges
    #[arg(long, default_value = "postgres")]
    user: String,
    /// a superuser: dumps, creates the database to restore into, restores
    #[arg(long, default_value = "postgres")]
    superuser: String,
    /// the command that controls this server (pg_ctl with -D, -l, -w, and whatever runs it as the
    /// server's OS user); `stop -m immediate` and `start` are appended
    #[arg(long)]
    pg_ctl: String,
    /// the directory of pg_dump and pg_restore
    #[arg(long)]
    bindir: String,
    /// the pg_tle package: the command that generates it, `{dbname}` standing for the database
    #[arg(long)]
    tle_sync: Option<String>,
    /// the tests to run
    #[arg(long, value_delimiter = ',', default_value = "kill,shutdown,dump")]
    tests: Vec<String>,
    /// staged rows in the crash tests (enough that a merge runs for a while)
    #[arg(long, default_value_t = 60_000)]
    rows: i32,
}

type Outcome = Result<String, String>;

fn fail<T>(what: impl Into<String>) -> Result<T, String> {
    Err(what.into())
}

impl Options {
    fn conn(&self, dbname: &str, user: &str) -> String {
        format!(
            "host={} port={} dbname={dbname} user={user}",
            self.host, self.port
        )
    }

    /// A connection as --user, waiting for the server to accept connections again (after a crash
    /// it restarts and recovers first).
    fn connect(&self, dbname: &str) -> Result<Client, String> {
        self.connect_as(dbname, &self.user)
    }

    fn connect_as(&self, dbname: &str, user: &str) -> Result<Client, String> {
        let started = Instant::now();
        loop {
            match Client::connect(&self.conn(dbname, user), NoTls) {
                Ok(c) => return Ok(c),
                Err(e) if started.elapsed() < Duration::from_secs(90) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return fail(format!("cannot connect to {dbname} as {user}: {e}")),
            }
        }
    }

    /// The pg_tle package: generate it again (after dwr_create_staging, after a restore).
    fn sync(&self, dbname: &str) -> Result<(), String> {
        if let Some(cmd) = &self.tle_sync {
            shell(&cmd.replace("{dbname}", dbname))?;
        }
        Ok(())
    }

    fn pg_ctl(&self, args: &str) -> Result<(), String> {
        shell(&format!("{} {args}", self.pg_ctl))
    }
}

fn shell(cmd: &str) -> Result<(), String> {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        fail(format!(
            "{cmd}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// An error with the server's message, not only "db error".
fn why(q: &str, e: postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{q}: {}: {}", d.code().code(), d.message()),
        None => format!("{q}: {e}"),
    }
}

fn sql(c: &mut Client, q: &str) -> Result<(), String> {
    c.batch_execute(q).map_err(|e| why(q, e))
}

fn one<T: for<'a> postgres::types::FromSql<'a>>(c: &mut Client, q: &str) -> Result<T, String> {
    c.query_one(q, &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| why(q, e))
}

/// A production table `<schema>.t` and its staging table `<schema>_staging.t`: `rows` production
/// rows at version 10, `rows` staged rows of which half update production (newer, equal or older
/// versions) and half are new keys; one staged key deleted by CDC after staging was created, one
/// staged row that production's CHECK rejects.
fn tables(o: &Options, db: &str, c: &mut Client, schema: &str) -> Result<(), String> {
    let n = o.rows;
    sql(
        c,
        &format!(
            "SET client_min_messages = warning;
             DROP SCHEMA IF EXISTS {schema} CASCADE; DROP SCHEMA IF EXISTS {schema}_staging CASCADE;
             CREATE SCHEMA {schema};
             CREATE TABLE {schema}.t (id int PRIMARY KEY, payload text CHECK (payload <> 'bad'), updated_at bigint);
             INSERT INTO {schema}.t SELECT g, 'old ' || g, 10 FROM generate_series(1, {n}) g;
             SELECT dwr_create_staging('{schema}.t', '{schema}_staging');
             INSERT INTO {schema}_staging.t (id, payload, updated_at)
             SELECT g, CASE WHEN g = {n} / 2 + 3 THEN 'bad' ELSE 'new ' || g END,
                    CASE g % 5 WHEN 0 THEN 5 WHEN 1 THEN 10 ELSE 20 END
               FROM generate_series({n} / 2, {n} / 2 + {n} - 1) g;
             DELETE FROM {schema}.t WHERE id = {n} / 2 + 2;
             ANALYZE {schema}.t; ANALYZE {schema}_staging.t;"
        ),
    )?;
    o.sync(db)
}

/// What a crash must leave as it was: production's rows, the staged rows' statuses, the audit.
fn state(c: &mut Client, schema: &str) -> Result<Vec<String>, String> {
    Ok(vec![
        one(
            c,
            &format!("SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM {schema}.t t"),
        )?,
        one(
            c,
            &format!(
                "SELECT md5(string_agg(concat_ws('|', id, _dwr_status, _dwr_run_id, _dwr_error), ',' ORDER BY id)) \
                 FROM {schema}_staging.t"
            ),
        )?,
        one::<i64>(c, "SELECT count(*) FROM dwr.merge_runs")?.to_string(),
        one::<i64>(c, "SELECT count(*) FROM dwr.row_changes")?.to_string(),
        one::<i64>(c, "SELECT count(*) FROM dwr.tombstones")?.to_string(),
    ])
}

/// Production rows and staged statuses of `a` and `b` are the same (run ids aside).
fn same_end(c: &mut Client, a: &str, b: &str) -> Result<(), String> {
    let prod: i64 = one(
        c,
        &format!(
            "SELECT count(*) FROM ((TABLE {a}.t EXCEPT TABLE {b}.t) UNION ALL (TABLE {b}.t EXCEPT TABLE {a}.t)) d"
        ),
    )?;
    let cols = "id, payload, updated_at, _dwr_status, _dwr_error";
    let staged: i64 = one(
        c,
        &format!(
            "SELECT count(*) FROM ((SELECT {cols} FROM {a}_staging.t EXCEPT SELECT {cols} FROM {b}_staging.t) \
             UNION ALL (SELECT {cols} FROM {b}_staging.t EXCEPT SELECT {cols} FROM {a}_staging.t)) d"
        ),
    )?;
    let new_rows: i64 = one(
        c,
        &format!("SELECT count(*) FROM {a}_staging.t WHERE _dwr_status = 'NEW'"),
    )?;
    if prod != 0 || staged != 0 || new_rows != 0 {
        return fail(format!(
            "{a} differs from the undisturbed {b}: {prod} production rows, {staged} staged rows, {new_rows} left NEW"
        ));
    }
    Ok(())
}

const COUNTS: &str =
    "status, inserted, updated, unchanged, skipped_stale, skipped_deleted, skipped_outside_window, deferred, errors";

fn merge_counts(c: &mut Client, target: &str) -> Result<String, String> {
    let q = format!("SELECT concat_ws(' ', {COUNTS}) FROM dwr_merge('{target}')");
    one(c, &q)
}

/// SIGKILL of the merging backend in the middle of its merge.
fn kill(o: &Options) -> Outcome {
    let db = o.dbname.as_str();
    let mut c = o.connect(db)?;
    tables(o, db, &mut c, "fault_kill")?;
    tables(o, db, &mut c, "fault_kill_twin")?;
    let started = Instant::now();
    let reference = merge_counts(&mut c, "fault_kill_twin.t")?;
    let took = started.elapsed();
    let before = state(&mut c, "fault_kill")?;

    let mut merger = o.connect(db)?;
    let pid: i32 = one(&mut merger, "SELECT pg_backend_pid()")?;
    let merge = std::thread::spawn(move || {
        merger
            .query("SELECT * FROM dwr_merge('fault_kill.t')", &[])
            .map(|_| ())
    });
    // the merge is under way: its backend runs it; kill it when about half of it is done
    let seen = Instant::now();
    loop {
        let active: bool = one(
            &mut c,
            &format!(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = {pid} AND state = 'active' \
                 AND query LIKE '%dwr_merge%')"
            ),
        )?;
        if active {
            break;
        }
        if seen.elapsed() > Duration::from_secs(30) {
            return fail("the merge never showed up as running");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(took / 2);
    shell(&format!("kill -9 {pid}"))?;
    if merge.join().expect("merge thread").is_ok() {
        return fail(format!(
            "the merge finished before it was killed ({took:?} for the twin): raise --rows"
        ));
    }
    drop(c);
    let mut c = o.connect(db)?;
    let after = state(&mut c, "fault_kill")?;
    if before != after {
        return fail(format!(
            "the killed merge left a trace: before {before:?}, after {after:?}"
        ));
    }
    let again = merge_counts(&mut c, "fault_kill.t")?;
    if again != reference {
        return fail(format!(
            "after the crash the merge counted {again}, the undisturbed copy {reference}"
        ));
    }
    same_end(&mut c, "fault_kill", "fault_kill_twin")?;
    Ok(format!(
        "killed {:?} into a merge of {}s: nothing changed; the next merge counted {again}, as the undisturbed copy",
        took / 2,
        took.as_secs_f32()
    ))
}

/// An immediate shutdown in the middle of `CALL dwr_merge_batches`.
fn shutdown(o: &Options) -> Outcome {
    let db = o.dbname.as_str();
    let mut c = o.connect(db)?;
    tables(o, db, &mut c, "fault_stop")?;
    tables(o, db, &mut c, "fault_stop_twin")?;
    merge_counts(&mut c, "fault_stop_twin.t")?;
    let runs = "SELECT count(*) FROM dwr.merge_runs WHERE target = 'fault_stop.t'::regclass";
    let batch = (o.rows / 20).max(100);
    let mut caller = o.connect(db)?;
    // (a CALL that commits must be a statement of its own, outside any transaction block)
    sql(&mut caller, "SET client_min_messages = warning")?;
    let call = std::thread::spawn(move || {
        caller.batch_execute(&format!("CALL dwr_merge_batches('fault_stop.t', {batch})"))
    });
    let seen = Instant::now();
    let committed = loop {
        let n: i64 = one(&mut c, runs)?;
        if n >= 3 {
            break n;
        }
        if call.is_finished() {
            return fail(format!(
                "CALL dwr_merge_batches ended before three batches committed: {:?}",
                call.join().expect("batches thread")
            ));
        }
        if seen.elapsed() > Duration::from_secs(60) {
            return fail("no three batches committed within a minute");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(c);
    o.pg_ctl("stop -m immediate")?;
    if call.join().expect("batches thread").is_ok() {
        return fail("CALL dwr_merge_batches finished before the shutdown: raise --rows");
    }
    o.pg_ctl("start")?;
    let mut c = o.connect(db)?;
    let kept: i64 = one(&mut c, runs)?;
    let left_new: i64 = one(
        &mut c,
        "SELECT count(*) FROM fault_stop_staging.t WHERE _dwr_status = 'NEW'",
    )?;
    if kept < committed {
        return fail(format!(
            "{committed} batches had committed, {kept} runs survived the shutdown"
        ));
    }
    if left_new == 0 {
        return fail("every batch had finished before the shutdown: raise --rows");
    }
    sql(&mut c, "SET client_min_messages = warning")?;
    sql(
        &mut c,
        &format!("CALL dwr_merge_batches('fault_stop.t', {batch})"),
    )?;
    same_end(&mut c, "fault_stop", "fault_stop_twin")?;
    Ok(format!(
        "shut down after {committed} committed batches ({left_new} rows still NEW): they were kept, and calling it again ended as a single merge of the undisturbed copy"
    ))
}

/// `pg_dump` and `pg_restore` into a new database in the middle of an open reload.
fn dump(o: &Options) -> Outcome {
    let db = o.dbname.as_str();
    let restored = format!("{db}_restored");
    let mut c = o.connect(db)?;
    sql(
        &mut c,
        "SET client_min_messages = warning;
         DROP SCHEMA IF EXISTS dump_prod CASCADE; DROP SCHEMA IF EXISTS dump_staging CASCADE;
         CREATE SCHEMA dump_prod;
         CREATE TABLE dump_prod.customers (customer_id int PRIMARY KEY, name text, updated_at timestamptz);
         INSERT INTO dump_prod.customers SELECT g, 'name ' || g, '2025-01-05' FROM generate_series(1, 20) g;
         SELECT dwr_create_staging('dump_prod.customers', 'dump_staging');",
    )?;
    o.sync(db)?;
    let reload: i64 = one(
        &mut c,
        "SELECT dwr_begin_reload('{dump_prod.customers}', '2025-01-01', '2025-02-01')",
    )?;
    sql(
        &mut c,
        "INSERT INTO dump_staging.customers (customer_id, name, updated_at)
         SELECT g, 'reloaded ' || g, '2025-01-10' FROM generate_series(1, 5) g",
    )?;
    let run: i64 = one(
        &mut c,
        "SELECT run_id FROM dwr_merge('dump_prod.customers')",
    )?;
    // CDC deletes a row during the reload
    sql(
        &mut c,
        "DELETE FROM dump_prod.customers WHERE customer_id = 10",
    )?;
    drop(c);

    let file = std::env::temp_dir().join(format!("{db}.dump"));
    let file = file.to_string_lossy();
    let libpq = format!("-h {} -p {} -U {}", o.host, o.port, o.superuser);
    shell(&format!("{}/pg_dump {libpq} -Fc -f {file} {db}", o.bindir))?;
    let mut admin = o.connect_as("postgres", &o.superuser)?;
    sql(&mut admin, &format!("DROP DATABASE IF EXISTS {restored}"))?;
    sql(
        &mut admin,
        &format!("CREATE DATABASE {restored} OWNER {}", o.user),
    )?;
    // restored by the owner of the tables. With the package, as on Amazon RDS: pg_tle is created
    // in the new database first (by rds_superuser there, a superuser here), and the restore, by the
    // package's owner, leaves pg_tle out
    let restorer = if o.tle_sync.is_some() {
        let mut r = o.connect_as(&restored, &o.superuser)?;
        sql(&mut r, "CREATE EXTENSION pg_tle")?;
        &o.user
    } else {
        &o.superuser
    };
    let list = format!("{file}.list");
    shell(&format!(
        "{}/pg_restore -l {file} | grep -v -e 'SCHEMA - pgtle ' -e 'EXTENSION - pg_tle' -e 'EXTENSION pg_tle' > {list}",
        o.bindir
    ))?;
    shell(&format!(
        "{}/pg_restore -h {} -p {} -U {restorer} --exit-on-error -L {list} -d {restored} {file}",
        o.bindir, o.host, o.port
    ))?;
    o.sync(&restored)?;

    let mut r = o.connect(&restored)?;
    let checks = [
        (
            "registration",
            "SELECT count(*) FROM dwr.tables WHERE target = 'dump_prod.customers'::regclass \
             AND staging = 'dump_staging.customers'::regclass",
        ),
        (
            "open reload",
            &*format!(
                "SELECT count(*) FROM dwr.reloads WHERE reload_id = {reload} AND ended_at IS NULL \
                 AND 'dump_prod.customers'::regclass = ANY (targets)"
            ),
        ),
        (
            "tombstone",
            "SELECT count(*) FROM dwr.tombstones WHERE target = 'dump_prod.customers'::regclass AND key = '[10]'",
        ),
        (
            "run",
            &*format!(
                "SELECT count(*) FROM dwr.merge_runs WHERE run_id = {run} AND target = 'dump_prod.customers'::regclass"
            ),
        ),
        (
            "row images",
            &*format!(
                "SELECT (count(*) = 5)::int::int8 FROM dwr.row_changes WHERE run_id = {run} AND target = 'dump_prod.customers'::regclass"
            ),
        ),
    ];
    for (what, q) in checks {
        let n: i64 = one(&mut r, q)?;
        if n != 1 {
            return fail(format!("after the restore the {what} is missing ({q})"));
        }
    }
    // the row CDC deleted, staged again inside the window, is not resurrected
    sql(
        &mut r,
        "INSERT INTO dump_staging.customers (customer_id, name, updated_at) VALUES (10, 'stale copy', '2025-01-15')",
    )?;
    let merged = merge_counts(&mut r, "dump_prod.customers")?;
    if merged != "SUCCEEDED 0 0 0 0 1 0 0 0" {
        return fail(format!(
            "after the restore the merge of a deleted key counted {merged}, not one skipped_deleted"
        ));
    }
    let back: i64 = one(
        &mut r,
        "SELECT count(*) FROM dump_prod.customers WHERE customer_id = 10",
    )?;
    if back != 0 {
        return fail("after the restore a row CDC deleted was inserted again");
    }
    // the merge made before the dump can be undone
    let undo: String = one(&mut r, &format!("SELECT status FROM dwr_undo({run})"))?;
    let names: String = one(
        &mut r,
        "SELECT string_agg(name, ',' ORDER BY customer_id) FROM dump_prod.customers WHERE customer_id <= 5",
    )?;
    if undo != "SUCCEEDED" || names != "name 1,name 2,name 3,name 4,name 5" {
        return fail(format!(
            "dwr_undo({run}) after the restore: {undo}, rows now {names}"
        ));
    }
    // and the restored delete trigger records new deletes
    sql(
        &mut r,
        "DELETE FROM dump_prod.customers WHERE customer_id = 11",
    )?;
    let recorded: i64 = one(
        &mut r,
        "SELECT count(*) FROM dwr.tombstones WHERE target = 'dump_prod.customers'::regclass AND key = '[11]'",
    )?;
    if recorded != 1 {
        return fail("after the restore a delete was not recorded");
    }
    Ok(format!(
        "restored into {restored}: registration, open reload {reload}, tombstone, run {run} and its images kept; \
         the deleted key staged again was skipped_deleted; undo of run {run} restored 5 rows; new deletes recorded"
    ))
}

fn main() -> std::process::ExitCode {
    let o = Options::parse();
    let mut failed = 0;
    for test in &o.tests {
        let outcome = match test.as_str() {
            "kill" => kill(&o),
            "shutdown" => shutdown(&o),
            "dump" => dump(&o),
            other => fail(format!("unknown test {other}")),
        };
        match outcome {
            Ok(what) => println!("{test}: ok: {what}"),
            Err(why) => {
                failed += 1;
                println!("{test}: FAILED: {why}");
            }
        }
    }
    if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
