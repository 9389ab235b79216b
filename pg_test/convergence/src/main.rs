//! The randomized convergence test of dms_window_reload (issue "CDC safety").
//!
//! For each seed: an in-memory model of the source holds N rows with versions; production starts
//! equal to it. During an "outage" a fraction of the source's changes (updates, inserts, deletes)
//! never reaches production. A reload is opened around the outage window and staging is loaded from
//! the source the way a DMS full load with a `between` filter would. Then live CDC resumes: several
//! applier connections write the source's newer changes (updates and inserts as whole-row upserts,
//! deletes as deletes, in source order per key) while `dwr_merge` runs again and again in another
//! connection. At the end production must equal the source model exactly.
//!
//! Usage: `dwr_convergence --host /tmp --port 54329 --dbname postgres --seeds 1,2,3 --rows 20000
//! --events 5000`. Against the pg_tle package: `--user <its owner> --tle-sync '<dwr tle install ...>'`
//! (the command an operator runs once staging exists, run after `dwr_create_staging`). On a Citus
//! coordinator: `--citus on` distributes the production table, and CDC writes through the coordinator. Prints one line per seed and exits non-zero on any difference or deadlock.
//!
//! What it does not model: a CDC delete or update of a row that production does not have yet (its
//! insert was lost in the outage and the merge has not brought it back) affects no row in PostgreSQL
//! and leaves nothing a trigger could see. Live deletes therefore pick keys production had when the
//! live phase began; live updates are upserts, as a DMS task that inserts missing rows applies them.

use postgres::{Client, NoTls};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// splitmix64: a small deterministic generator, so a seed replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    /// insert or update: the whole row, as the source has it after the change
    Upsert {
        id: i32,
        version: i64,
    },
    Delete {
        id: i32,
    },
}

impl Event {
    fn id(&self) -> i32 {
        match self {
            Event::Upsert { id, .. } | Event::Delete { id } => *id,
        }
    }
}

fn payload(id: i32, version: i64) -> String {
    format!("row {id} version {version}")
}

struct Options {
    conn: String,
    /// the pg_tle package: the command that generates it, run once staging exists
    tle_sync: Option<String>,
    /// `--citus on`: distribute the production table (on a Citus coordinator)
    citus: bool,
    seeds: Vec<u64>,
    rows: i32,
    events: usize,
    appliers: usize,
    lost_percent: u64,
}

fn parse_args() -> Options {
    let mut host = "/tmp".to_string();
    let mut port = "54329".to_string();
    let mut dbname = "postgres".to_string();
    let mut user = "postgres".to_string();
    let mut o = Options {
        conn: String::new(),
        tle_sync: None,
        citus: false,
        seeds: vec![1, 2, 3],
        rows: 20_000,
        events: 5_000,
        appliers: 4,
        lost_percent: 30,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < args.len() {
        let v = args[i + 1].clone();
        match args[i].as_str() {
            "--host" => host = v,
            "--port" => port = v,
            "--dbname" => dbname = v,
            "--user" => user = v,
            "--tle-sync" => o.tle_sync = Some(v),
            "--citus" => o.citus = v == "on",
            "--seeds" => {
                o.seeds = v
                    .split(',')
                    .map(|s| s.trim().parse().expect("seed"))
                    .collect()
            }
            "--rows" => o.rows = v.parse().expect("rows"),
            "--events" => o.events = v.parse().expect("events"),
            "--appliers" => o.appliers = v.parse().expect("appliers"),
            "--lost-percent" => o.lost_percent = v.parse().expect("lost percent"),
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o.conn = format!("host={host} port={port} dbname={dbname} user={user}");
    o
}

/// What one seed found.
#[derive(Default, Debug)]
struct Outcome {
    staged: i64,
    live_events: usize,
    merges: usize,
    /// merges during which CDC applied at least one event (started before CDC finished and saw
    /// its progress move): a pass needs one, or the seed tested merges after CDC, not beside it
    overlapping: usize,
    inserted: i64,
    updated: i64,
    deferred: i64,
    skipped_deleted: i64,
    skipped_stale: i64,
    lost: usize,
    regressed: usize,
    resurrected: usize,
    duplicated: i64,
    deadlocks: usize,
    /// deletes the outage lost: out of a reload's reach, expected, reported
    unrepairable: usize,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.lost == 0
            && self.regressed == 0
            && self.resurrected == 0
            && self.duplicated == 0
            && self.deadlocks == 0
            && self.overlapping > 0
    }
}

const VERSION_SQL: &str = "'2025-01-01 00:00:00+00'::timestamptz + $V * interval '1 second'";

fn ts(param: usize) -> String {
    VERSION_SQL.replace("$V", &format!("${param}"))
}

/// Write events to production, as CDC applies them.
fn apply(client: &mut Client, events: &[Event]) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    for e in events {
        match e {
            Event::Upsert { id, version } => {
                tx.execute(
                    &format!(
                        "INSERT INTO conv.t (id, payload, updated_at) VALUES ($1, $2, {}) \
                         ON CONFLICT (id) DO UPDATE SET payload = EXCLUDED.payload, updated_at = EXCLUDED.updated_at",
                        ts(3)
                    ),
                    &[id, &payload(*id, *version), &(*version as f64)],
                )?;
            }
            Event::Delete { id } => {
                tx.execute("DELETE FROM conv.t WHERE id = $1", &[id])?;
            }
        }
    }
    tx.commit()
}

fn is_deadlock(e: &postgres::Error) -> bool {
    e.code().map(|c| c.code() == "40P01").unwrap_or(false)
}

fn run_seed(o: &Options, seed: u64) -> Outcome {
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0xdead_beef);
    let mut db = Client::connect(&o.conn, NoTls).expect("connect");
    if o.tle_sync.is_none() {
        db.batch_execute(
            "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS dms_window_reload;",
        )
        .expect("extension");
    }
    // one transaction each: on Citus, a schema command may not follow parallel work on a
    // distributed table in the same transaction
    for stmt in [
        "SET client_min_messages = warning",
        "SELECT dwr_end_reload(reload_id) FROM dwr.reloads
          WHERE ended_at IS NULL AND 'conv.t' = ANY (targets::text[])",
        "SELECT dwr_drop_staging(target) FROM dwr.tables WHERE target::text = 'conv.t'",
        "DROP SCHEMA IF EXISTS conv CASCADE",
        "DROP SCHEMA IF EXISTS conv_staging CASCADE",
        "CREATE SCHEMA conv",
        "CREATE TABLE conv.t (id int PRIMARY KEY, payload text NOT NULL, updated_at timestamptz NOT NULL)",
    ] {
        db.batch_execute(stmt).expect("setup");
    }
    if o.citus {
        // a Citus coordinator: production is distributed, and CDC writes through the coordinator
        db.batch_execute(
            "SET citus.shard_count = 4; SELECT create_distributed_table('conv.t', 'id');",
        )
        .expect("distribute conv.t");
    }

    // the source model, and what production holds (tracked to choose observable deletes)
    let mut source: BTreeMap<i32, Option<i64>> = BTreeMap::new();
    let mut prod: HashMap<i32, i64> = HashMap::new();
    let mut next_id = o.rows + 1;
    // before the outage: versions 0 ..< 1000, production complete
    for id in 1..=o.rows {
        let v = rng.below(1000) as i64;
        source.insert(id, Some(v));
        prod.insert(id, v);
    }
    let ids: Vec<i32> = source.keys().copied().collect();
    let vers: Vec<f64> = ids.iter().map(|id| source[id].unwrap() as f64).collect();
    let pays: Vec<String> = ids
        .iter()
        .map(|id| payload(*id, source[id].unwrap()))
        .collect();
    db.execute(
        &format!(
            "INSERT INTO conv.t SELECT i, p, {} FROM unnest($1::int4[], $2::text[], $3::float8[]) AS u(i, p, v)",
            VERSION_SQL.replace("$V", "v")
        ),
        &[&ids, &pays, &vers],
    )
    .expect("initial rows");
    db.execute("SELECT dwr_create_staging('conv.t', 'conv_staging')", &[])
        .expect("create staging");
    if let Some(cmd) = &o.tle_sync {
        // the pg_tle package: generate the table's merge, as an operator would now
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .status()
            .expect("run --tle-sync");
        assert!(status.success(), "--tle-sync failed: {cmd}");
    }

    // the outage: versions 1000 ..< 2000; a share of the changes never reaches production
    let outage_events = o.events.max(1000);
    let mut t: i64 = 1000;
    let mut applied: Vec<Event> = Vec::new();
    // keys whose delete the outage lost: production keeps them, and a reload, which brings back
    // rows, cannot repair that (dwr_diff reports them as missing_in_staging)
    let mut lost_deletes: std::collections::HashSet<i32> = Default::default();
    for _ in 0..outage_events {
        t += 1000 / outage_events as i64 + 1;
        let t = t.min(1999);
        let e = random_event(&mut rng, &source, &mut next_id, t, None);
        apply_to_model(&mut source, &e);
        lost_deletes.remove(&e.id());
        if rng.chance(o.lost_percent) {
            if let Event::Delete { id } = e {
                lost_deletes.insert(id);
            }
        } else {
            match &e {
                Event::Upsert { id, version } => {
                    prod.insert(*id, *version);
                }
                Event::Delete { id } => {
                    prod.remove(id);
                }
            }
            applied.push(e);
        }
    }
    for chunk in applied.chunks(500) {
        apply(&mut db, chunk).expect("outage changes");
    }

    // open the reload around the outage, and load the window from the source
    db.execute(
        &format!(
            "SELECT dwr_begin_reload('{{conv.t}}', {}, {})",
            ts(1),
            ts(2)
        ),
        &[&1000f64, &1999f64],
    )
    .expect("begin reload");
    let window: Vec<(i32, i64)> = source
        .iter()
        .filter_map(|(id, v)| v.filter(|v| (1000..=1999).contains(v)).map(|v| (*id, v)))
        .collect();
    let sids: Vec<i32> = window.iter().map(|(id, _)| *id).collect();
    let svers: Vec<f64> = window.iter().map(|(_, v)| *v as f64).collect();
    let spays: Vec<String> = window.iter().map(|(id, v)| payload(*id, *v)).collect();
    db.execute(
        &format!(
            "INSERT INTO conv_staging.t (id, payload, updated_at) \
             SELECT i, p, {} FROM unnest($1::int4[], $2::text[], $3::float8[]) AS u(i, p, v)",
            VERSION_SQL.replace("$V", "v")
        ),
        &[&sids, &spays, &svers],
    )
    .expect("load staging");

    // live CDC: newer versions, applied by several connections while merges run
    let mut deletable: Vec<i32> = prod
        .keys()
        .copied()
        .filter(|id| matches!(source.get(id), Some(Some(_))))
        .collect();
    deletable.sort_unstable();
    let staged_set: std::collections::HashSet<i32> = sids.iter().copied().collect();
    let deletable_staged: Vec<i32> = deletable
        .iter()
        .copied()
        .filter(|id| staged_set.contains(id))
        .collect();
    let mut live: Vec<Event> = Vec::new();
    let mut t: i64 = 2000;
    let mut deleted_live: std::collections::HashSet<i32> = Default::default();
    for _ in 0..o.events {
        t += 1;
        // half of the live changes hit the reloaded keys, where the merge races them
        let focus = if rng.chance(50) && !sids.is_empty() {
            Some(&sids[..])
        } else {
            None
        };
        let mut e = random_event(&mut rng, &source, &mut next_id, t, focus);
        if let Event::Delete { id } = e {
            // only deletes production can see (see the module comment); half of them hit rows the
            // merge is updating
            let from = if rng.chance(50) && !deletable_staged.is_empty() {
                &deletable_staged
            } else {
                &deletable
            };
            let pick = from[rng.below(from.len() as u64) as usize];
            e = if matches!(source.get(&pick), Some(Some(_))) && !deleted_live.contains(&pick) {
                deleted_live.insert(pick);
                Event::Delete { id: pick }
            } else {
                Event::Upsert { id, version: t }
            };
        }
        apply_to_model(&mut source, &e);
        lost_deletes.remove(&e.id());
        live.push(e);
    }
    let mut out = Outcome {
        staged: sids.len() as i64,
        live_events: live.len(),
        ..Default::default()
    };

    let progress = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let deadlocks = AtomicUsize::new(0);
    let mut per_applier: Vec<Vec<Event>> = vec![Vec::new(); o.appliers];
    for e in &live {
        per_applier[(e.id() as usize) % o.appliers].push(e.clone());
    }
    let (merge_results, overlapping) = std::thread::scope(|s| {
        for mine in &per_applier {
            let (progress, deadlocks, conn) = (&progress, &deadlocks, &o.conn);
            s.spawn(move || {
                let mut c = Client::connect(conn, NoTls).expect("applier connect");
                let mut i = 0;
                let mut r = Rng(mine.len() as u64 ^ seed);
                while i < mine.len() {
                    let n = (1 + r.below(3) as usize).min(mine.len() - i);
                    match apply(&mut c, &mine[i..i + n]) {
                        Ok(()) => {
                            i += n;
                            progress.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) if is_deadlock(&e) => {
                            deadlocks.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("applier: {e:?}"),
                    }
                    if r.chance(10) {
                        std::thread::sleep(Duration::from_micros(300));
                    }
                }
            });
        }
        let (progress, done, total) = (&progress, &done, live.len());
        let merger = s.spawn(move || {
            let mut c = Client::connect(&o.conn, NoTls).expect("merge connect");
            // odd seeds merge with row audit, even seeds without it; seeds 1, 4, 5, 8, ... try the
            // fast way first (dwr.fast_merge), the others go step by step: seeds 1 to 4 cover the
            // four pairings (the update waits up to dwr.row_lock_timeout, then gives way to the
            // locking one)
            c.batch_execute(&format!(
                "SET dwr.row_audit = {}; SET dwr.fast_merge = {}",
                if seed.is_multiple_of(2) { "off" } else { "on" },
                if seed % 4 < 2 { "on" } else { "off" },
            ))
            .expect("row audit and fast merge settings");
            let mut results = Vec::new();
            // start once CDC is under way, then merge again and again while it runs
            while progress.load(Ordering::Relaxed) < total / 10 {
                std::thread::sleep(Duration::from_millis(2));
            }
            let mut overlapping = 0;
            loop {
                let before = progress.load(Ordering::Relaxed);
                let finished = before >= total;
                match c.query_one(
                    "SELECT inserted, updated, deferred, skipped_deleted, skipped_stale FROM dwr_merge('conv.t')",
                    &[],
                ) {
                    Ok(row) => results.push(Ok((row.get::<_, i64>(0), row.get(1), row.get(2), row.get(3), row.get(4)))),
                    Err(e) if is_deadlock(&e) => results.push(Err(())),
                    Err(e) => panic!("merge: {e:?}"),
                }
                if progress.load(Ordering::Relaxed) > before {
                    overlapping += 1;
                }
                if finished {
                    break;
                }
            }
            done.store(true, Ordering::Relaxed);
            (results, overlapping)
        });
        merger.join().expect("merger")
    });
    let started = Instant::now();
    // after CDC stopped: merge until nothing is deferred any more
    let mut merges = merge_results;
    loop {
        let row = db
            .query_one(
                "SELECT inserted, updated, deferred, skipped_deleted, skipped_stale FROM dwr_merge('conv.t')",
                &[],
            )
            .expect("final merge");
        let r: (i64, i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        merges.push(Ok(r));
        if r.2 == 0 || started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    db.execute(
        "SELECT dwr_end_reload(reload_id) FROM dwr.reloads WHERE ended_at IS NULL AND 'conv.t' = ANY (targets::text[])",
        &[],
    )
    .expect("end reload");
    out.merges = merges.len();
    out.overlapping = overlapping;
    for r in &merges {
        match r {
            Ok((i, u, d, sd, ss)) => {
                out.inserted += i;
                out.updated += u;
                out.deferred += d;
                out.skipped_deleted += sd;
                out.skipped_stale += ss;
            }
            Err(()) => out.deadlocks += 1,
        }
    }
    out.deadlocks += deadlocks.load(Ordering::Relaxed);

    // compare production with the source model
    let rows = db
        .query(
            "SELECT id, payload, extract(epoch FROM updated_at - '2025-01-01 00:00:00+00'::timestamptz)::float8 FROM conv.t",
            &[],
        )
        .expect("read production");
    let mut seen: HashMap<i32, (String, i64)> = HashMap::new();
    for r in rows {
        let v: f64 = r.get(2);
        seen.insert(r.get(0), (r.get(1), v.round() as i64));
    }
    for (id, want) in &source {
        match (want, seen.get(id)) {
            (Some(_), None) => out.lost += 1,
            (Some(v), Some((p, got))) => {
                if got < v || *p != payload(*id, *got) {
                    out.regressed += 1;
                } else if got > v {
                    out.lost += 1; // production ahead of the source cannot happen; count it
                }
            }
            (None, Some(_)) if lost_deletes.contains(id) => out.unrepairable += 1,
            (None, Some(_)) => out.resurrected += 1,
            (None, None) => {}
        }
    }
    for id in seen.keys() {
        if !source.contains_key(id) {
            out.resurrected += 1;
        }
    }
    out.duplicated = db
        .query_one("SELECT count(*) - count(DISTINCT id) FROM conv.t", &[])
        .expect("duplicates")
        .get(0);
    out
}

/// A random change of the source at version `t`. With `focus`, updates and deletes pick from those
/// keys.
fn random_event(
    rng: &mut Rng,
    source: &BTreeMap<i32, Option<i64>>,
    next_id: &mut i32,
    t: i64,
    focus: Option<&[i32]>,
) -> Event {
    let kind = rng.below(100);
    if kind < 15 {
        let id = *next_id;
        *next_id += 1;
        return Event::Upsert { id, version: t };
    }
    let pick = |rng: &mut Rng| -> i32 {
        match focus {
            Some(keys) => keys[rng.below(keys.len() as u64) as usize],
            None => 1 + rng.below((*next_id - 1) as u64) as i32,
        }
    };
    let id = pick(rng);
    match source.get(&id) {
        Some(Some(_)) if kind < 30 => Event::Delete { id },
        _ => Event::Upsert { id, version: t },
    }
}

fn apply_to_model(source: &mut BTreeMap<i32, Option<i64>>, e: &Event) {
    match e {
        Event::Upsert { id, version } => {
            source.insert(*id, Some(*version));
        }
        Event::Delete { id } => {
            source.insert(*id, None);
        }
    }
}

fn main() {
    let o = parse_args();
    let mut failed = 0;
    for &seed in &o.seeds {
        let started = Instant::now();
        let r = run_seed(&o, seed);
        println!(
            "seed {seed} (row audit {}, {}): {} rows, {} staged, {} live CDC events by {} connections during {} merges \
             ({} of them while CDC applied events; inserted {}, updated {}, deferred {}, skipped_deleted {}, skipped_stale {}): \
             lost {}, regressed {}, resurrected {}, duplicated {}, deadlocks {}; \
             deletes lost in the outage (out of a reload's reach) {} [{:.1} s] {}",
            if seed.is_multiple_of(2) { "off" } else { "on" },
            if seed % 4 < 2 { "the fast way first" } else { "step by step" },
            o.rows,
            r.staged,
            r.live_events,
            o.appliers,
            r.merges,
            r.overlapping,
            r.inserted,
            r.updated,
            r.deferred,
            r.skipped_deleted,
            r.skipped_stale,
            r.lost,
            r.regressed,
            r.resurrected,
            r.duplicated,
            r.deadlocks,
            r.unrepairable,
            started.elapsed().as_secs_f64(),
            if r.ok() { "ok" } else { "FAILED" }
        );
        if !r.ok() {
            failed += 1;
        }
    }
    println!(
        "convergence: {} passed, {} failed",
        o.seeds.len() - failed,
        failed
    );
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
