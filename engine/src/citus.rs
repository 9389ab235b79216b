//! Citus: what kind of Citus table a relation is, and the merge of a distributed (or reference)
//! table pushed down to its shards.
//!
//! The single-server merge joins staging and production to a temporary work table and writes
//! production by `ctid` after a `FOR UPDATE SKIP LOCKED`: none of that reaches the shards of a
//! Citus table. So for a distributed or reference production table the merge runs as statements
//! that Citus pushes down whole to every shard group, in parallel, on the workers:
//!
//! - staging is distributed *co-located* with production (same distribution column, same shards),
//!   and so are the merge's two work tables, made in staging's schema by the first merge and
//!   emptied at the end of every merge: every statement joins them on the key, which contains the distribution
//!   column (Citus requires it of a primary key), so each shard group joins on its own node;
//! - deletes are recorded by a trigger on the shards in a tombstone table co-located with
//!   production, typed like its key (see [`create_tombstones`] and `dwr._record_delete_citus`);
//! - rows are identified by their key (staging must have production's primary key: no duplicates to
//!   rank) and numbered by a 63-bit hash of it for the bisection that isolates a failing row;
//! - "did this write go through?" is answered per shard without a `RETURNING` that would pull rows
//!   to the coordinator: each attempt first records its rows in the attempts table, in the same
//!   (sub)transaction as the write, on the same worker connection, so a production row this attempt
//!   wrote has the attempt row's `xmin`. An update also requires production's row to still be the
//!   one the attempt read (`t.xmin = a.seen`), which is what the single-server lock step ensures.
//!   A reference table has a copy on every node, each with its own `xmin`, and every copy must take
//!   the same decision: there the update requires the version column the attempt read instead, and
//!   `dwr_undo` is refused.
//!
//! Tables Citus does not manage merge as on a single server. Citus local tables are refused.

use crate::catalog::Relation;
use crate::error::{DwrError, Result, SqlState};
use crate::ident::{quote_ident, quote_literal, quote_qualified};
use crate::plan::{
    Conversion, MergePlan, CHANGE_OP, META_ERROR, META_LOADED_AT, META_RUN_ID, META_STATUS,
};
use crate::program::{mark_statements, Cond, Guard, Param, Params, Program, Ranged, Step, Stmt};
use crate::sqlgen::{kcol, op, pg_op, MergeOptions, RowClass};
use crate::undo::UndoClass;

/// Whether Citus's catalog exists in this database (`CITUS_TABLE_SQL` may only run then).
pub const HAS_CITUS_SQL: &str =
    "SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL";

/// `$1` (oid): the Citus kind of a relation (`distributed`, `reference`, `local`) and for a
/// distributed table its distribution column; no row when Citus does not manage it.
pub const CITUS_TABLE_SQL: &str = "SELECT CASE WHEN p.partmethod OPERATOR(pg_catalog.<>) 'n' AND p.repmodel OPERATOR(pg_catalog.=) 'c' THEN 'replicated' \
     WHEN p.partmethod OPERATOR(pg_catalog.<>) 'n' THEN 'distributed' \
     WHEN p.repmodel OPERATOR(pg_catalog.=) 't' THEN 'reference' ELSE 'local' END, \
     CASE WHEN p.partmethod OPERATOR(pg_catalog.<>) 'n' \
          THEN pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) END \
     FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass";

/// How Citus holds a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// hash-distributed on this column
    Distributed(String),
    /// one shard, a copy on every node
    Reference,
    /// a Citus local table
    Local,
    /// distributed with more than one copy of each shard (`citus.shard_replication_factor` > 1,
    /// statement-based replication)
    Replicated,
}

impl Placement {
    /// From the two columns of [`CITUS_TABLE_SQL`].
    pub fn parse(kind: &str, column: Option<String>) -> Placement {
        match (kind, column) {
            ("distributed", Some(c)) => Placement::Distributed(c),
            ("reference", _) => Placement::Reference,
            ("replicated", _) => Placement::Replicated,
            _ => Placement::Local,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Placement::Distributed(_) => "distributed",
            Placement::Reference => "reference",
            Placement::Local => "local",
            Placement::Replicated => "replicated",
        }
    }

    /// `SELECT` that makes `table` (qualified, quoted) a Citus table placed like production
    /// `target` (qualified, quoted): co-located with it, or a reference table.
    pub fn place_like(&self, table: &str, target: &str) -> String {
        match self {
            Placement::Distributed(column) => format!(
                "SELECT pg_catalog.create_distributed_table({}, {}, colocate_with => {})",
                quote_literal(table),
                quote_literal(column),
                quote_literal(target)
            ),
            Placement::Reference | Placement::Local | Placement::Replicated => format!(
                "SELECT pg_catalog.create_reference_table({})",
                quote_literal(table)
            ),
        }
    }
}

/// The refusal of a Citus table this version cannot merge (a Citus local table): `role` is
/// "production" or "staging".
pub fn unsupported(table: &str, role: &str, kind: &str) -> DwrError {
    let what = match kind {
        "local" => "a Citus local table (added to Citus's metadata)".to_string(),
        "replicated" => {
            "a Citus distributed table with replicated shards (citus.shard_replication_factor > 1)"
                .to_string()
        }
        other => format!("a Citus {other} table"),
    };
    DwrError::new(
        SqlState::FeatureNotSupported,
        format!("{role} table {table} is {what}, which this version cannot merge"),
    )
    .detail(
        "Distributed tables (one copy of each shard) and reference tables merge on their shards; a \
         Citus local table has no shards to merge on, and the copies of a replicated shard each \
         have their own row versions, which the merge decides on.",
    )
    .hint(
        "Distribute it with citus.shard_replication_factor = 1 (create_distributed_table), or \
         undistribute it (undistribute_table); see README, \"Citus\".",
    )
}

/// `dwr_undo` on a Citus reference table: refused. The undo recognises a row still as the run left
/// it by its `xmin`, which differs between a reference table's copies on the nodes; deciding on one
/// copy and writing all of them could make the copies disagree.
pub fn undo_reference_unsupported(table: &str) -> DwrError {
    DwrError::new(
        SqlState::FeatureNotSupported,
        format!("dwr_undo cannot undo a run on {table}, a Citus reference table"),
    )
    .detail("The run's row images are in dwr.row_changes; nothing was changed.")
    .hint("Restore the rows from dwr.row_changes (action, before, after) by hand; see README, \"Citus\".")
}

/// Staging placed differently from production (not co-located with a Citus production table, or
/// a Citus table next to a production table Citus does not manage): the merge's joins could not
/// run where the rows are.
pub fn staging_not_colocated(
    staging: &str,
    target: &str,
    placement: Option<&Placement>,
) -> DwrError {
    let detail = match placement {
        Some(p) => format!(
            "{target} is a Citus {} table; the merge joins staging with it shard by shard.",
            p.kind()
        ),
        None => format!("{target} is a plain table of this server, and staging is a Citus table."),
    };
    DwrError::new(
        SqlState::FeatureNotSupported,
        format!("staging table {staging} is not placed like {target}"),
    )
    .detail(detail)
    .hint("Put staging back the way dwr_create_staging made it (co-located with production, or a plain table next to a plain one), or drop it and run dwr_create_staging again.")
}

/// A Citus merge needs what `dwr_create_staging` makes: staging with production's key (its own
/// primary key, so no key is staged twice) and production's key and version types.
pub fn check_plan(plan: &MergePlan) -> Result<()> {
    let reason = if !plan.with_metadata {
        Some("a staging table without the _dwr_ metadata columns (dwr_merge reads a source table through a copy that has them)")
    } else if !plan.staging_keys_unique {
        Some("a staging table whose primary key is not production's (it could stage a key twice)")
    } else if plan.version.needs_cast || plan.keys.iter().any(|k| k.needs_cast) {
        Some("staging key or version columns of other types than production's")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(r) => Err(DwrError::new(
            SqlState::FeatureNotSupported,
            format!("{} is a Citus table: {r} cannot be merged into it", plan.target_display),
        )
        .detail(format!("staging: {}", plan.staging_display))
        .hint("Let dwr_create_staging create staging (production's key, types and placement), and merge from it.")),
    }
}

/// The name of the tombstone table of staging table `staging_name`, in staging's schema.
pub fn tombstones_name(staging_name: &str) -> String {
    const SUFFIX: &str = "_dwr_tombstones";
    let mut base = staging_name.to_string();
    while base.len() + SUFFIX.len() > 63 {
        base.pop();
    }
    format!("{base}{SUFFIX}")
}

/// The tombstone table of a Citus production table: its key columns (typed and collated like
/// production's, by `CREATE TABLE AS ... WITH NO DATA`) and when the row was deleted. Placed like
/// production by [`Placement::place_like`]; filled on the workers by the shards' delete trigger.
pub fn create_tombstones(target: &Relation, schema: &str, name: &str) -> Vec<String> {
    let keys = key_columns(target);
    let table = quote_qualified(schema, name);
    vec![
        format!(
            "CREATE TABLE {table} AS SELECT {} FROM ONLY {} t WITH NO DATA",
            keys.iter()
                .map(|k| format!("t.{}", quote_ident(k)))
                .collect::<Vec<_>>()
                .join(", "),
            target.quoted()
        ),
        format!(
            "ALTER TABLE {table} ADD COLUMN deleted_at pg_catalog.timestamptz NOT NULL \
             DEFAULT pg_catalog.clock_timestamp()"
        ),
        format!(
            "CREATE INDEX ON {table} ({}, deleted_at)",
            keys.iter()
                .map(|k| quote_ident(k))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "COMMENT ON TABLE {table} IS {}",
            quote_literal(&format!(
                "dms_window_reload: deletes seen on the shards of {} (by its delete-tracking trigger), co-located with it",
                target.display()
            ))
        ),
    ]
}

fn key_columns(target: &Relation) -> Vec<String> {
    target
        .primary_key
        .as_ref()
        .map(|pk| pk.columns.clone())
        .unwrap_or_default()
}

/// Delete tracking on a Citus production table: the trigger of `install_delete_tracking`, calling
/// `dwr._record_delete_citus` with the tombstone table and the key columns. Citus creates it on
/// every shard (and on shards made later); run these with `citus.enable_unsafe_triggers` on (Citus
/// refuses triggers on distributed tables otherwise: the trigger fires on the workers).
pub fn install_delete_tracking(target: &Relation, tombstones: &str, trigger: &str) -> Vec<String> {
    let mut args = vec![quote_literal(tombstones)];
    args.extend(key_columns(target).iter().map(|k| quote_literal(k)));
    let trigger = quote_ident(trigger);
    vec![
        format!(
            "CREATE TRIGGER {trigger} AFTER DELETE ON {} FOR EACH ROW EXECUTE FUNCTION dwr._record_delete_citus({})",
            target.quoted(),
            args.join(", ")
        ),
        format!("ALTER TABLE {} ENABLE ALWAYS TRIGGER {trigger}", target.quoted()),
    ]
}

/// A merge into a Citus table: the placement of its work tables, and its [`Program`], every
/// statement pushed down to the shards. The program fills and classifies the work table
/// (`fill_classified`), numbers rows by a hash of the key (sparse: a failing range lists its
/// numbers with `rows_in_range` to split them), and writes each class in one subtransaction of
/// three statements: record the attempt (with the production row version read), write the rows
/// still as read, defer the rows production did not take. Inserts whose key CDC deleted meanwhile
/// are taken back (`find_retracts`, `apply_retracts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitusMergeSql {
    /// create the work and attempts tables and place them like production (when
    /// [`WORK_FITS_SQL`] says they are missing or no longer fit production)
    pub create: Vec<String>,
    /// drop them first, when they no longer fit
    pub drop_stale: String,
    /// the work and attempts tables (qualified, quoted), and production's columns the work
    /// table's first columns must match ([`WORK_FITS_SQL`])
    pub work: String,
    pub attempts: String,
    pub work_columns: Vec<String>,
    pub program: Program,
}

/// `$1`, `$2`: the work and attempts tables (text), `$3`: production's oid, `$4`: production's
/// key and version column names, in the work table's column order. Whether both tables exist and
/// the work table's key and version columns have production's types, modifiers and collations
/// (placement is checked separately).
pub const WORK_FITS_SQL: &str = "SELECT pg_catalog.to_regclass($1) IS NOT NULL AND pg_catalog.to_regclass($2) IS NOT NULL \
     AND (SELECT pg_catalog.count(*) FROM pg_catalog.pg_attribute w \
            JOIN pg_catalog.pg_attribute t ON t.attrelid OPERATOR(pg_catalog.=) $3 \
             AND t.attname OPERATOR(pg_catalog.=) ($4::pg_catalog.text[])[w.attnum] \
           WHERE w.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1) \
             AND w.attnum OPERATOR(pg_catalog.<=) pg_catalog.cardinality($4) AND NOT w.attisdropped \
             AND w.atttypid OPERATOR(pg_catalog.=) t.atttypid AND w.atttypmod OPERATOR(pg_catalog.=) t.atttypmod \
             AND w.attcollation OPERATOR(pg_catalog.=) t.attcollation) \
         OPERATOR(pg_catalog.=) pg_catalog.cardinality($4)";

/// The columns of production [`WORK_FITS_SQL`] compares the work table's first columns with.
fn work_columns(plan: &MergePlan) -> Vec<String> {
    plan.keys
        .iter()
        .map(|k| k.target.clone())
        .chain(std::iter::once(plan.version.target.clone()))
        .collect()
}

/// The work table and attempts table of merges into `target` (its oid), in staging's `schema`.
pub fn work_tables(schema: &str, target_oid: u32) -> (String, String) {
    (
        quote_qualified(schema, &format!("_dwr_work_{target_oid}")),
        quote_qualified(schema, &format!("_dwr_attempts_{target_oid}")),
    )
}

/// Production's key as the pushed-down statements use it: its column names and the schemas of their
/// equality operators; the work tables hold the key as `k1 .. kn`.
struct Keys {
    names: Vec<String>,
    eq_schemas: Vec<String>,
}

impl Keys {
    /// `alias.k1, alias.k2, ...`: the key columns of a work table.
    fn work(&self, alias: &str) -> Vec<String> {
        (0..self.names.len())
            .map(|i| format!("{alias}.{}", kcol(i)))
            .collect()
    }

    /// `alias."column"` for each of `columns` (production's key names, or staging's).
    fn of(&self, alias: &str, columns: &[String]) -> Vec<String> {
        columns
            .iter()
            .map(|c| format!("{alias}.{}", quote_ident(c)))
            .collect()
    }

    /// Production's key columns of `alias`.
    fn production(&self, alias: &str) -> Vec<String> {
        self.of(alias, &self.names)
    }

    /// `x1 = y1 AND ...`, each with its key part's equality operator.
    fn same(&self, x: &[String], y: &[String]) -> String {
        x.iter()
            .zip(y)
            .zip(&self.eq_schemas)
            .map(|((l, r), schema)| op(l, schema, "=", r))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// `t."id" AS k1, ...`: a work table's key columns, read from production `t`.
    fn select_as_work(&self) -> String {
        self.production("t")
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} AS {}", kcol(i)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Production's key column names, quoted, as in an index definition.
    fn quoted_names(&self) -> String {
        self.names
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn work_names(&self) -> String {
        (0..self.names.len())
            .map(kcol)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// How a work table is placed: distributed on the key part that distributes production (`k<i>`),
    /// or like production.
    fn work_placement(&self, placement: &Placement, table: &str) -> Result<Placement> {
        match placement {
            Placement::Distributed(c) => {
                let i = self.names.iter().position(|k| k == c).ok_or_else(|| {
                    DwrError::new(
                        SqlState::FeatureNotSupported,
                        format!(
                            "{table}: distribution column {} is not in the primary key",
                            crate::ident::display_ident(c)
                        ),
                    )
                    .hint("Citus requires the primary key of a distributed table to contain its distribution column.")
                })?;
                Ok(Placement::Distributed(kcol(i)))
            }
            other => Ok(other.clone()),
        }
    }
}

/// The first and last row number (`column`) of work table `table`; `0, -1` when it is empty.
fn row_range_sql(table: &str, column: &str) -> String {
    format!(
        "SELECT COALESCE(pg_catalog.min({column}), 0), COALESCE(pg_catalog.max({column}), '-1'::pg_catalog.int8) FROM {table}"
    )
}

/// Write the SQL of a merge of `plan` into a Citus table (oid `target_oid`) placed as `placement`,
/// with its work tables in staging's schema `schema` (see [`work_tables`]); `tombstones`: the
/// qualified, quoted tombstone table. The plan may be a replayed change log's (`plan.changes`: its
/// copy, with each change's operation, as staging) or deletes by absence (`plan.absent`).
pub fn merge_sql(
    plan: &MergePlan,
    placement: &Placement,
    schema: &str,
    target_oid: u32,
    tombstones: &str,
    options: MergeOptions,
) -> Result<CitusMergeSql> {
    check_plan(plan)?;
    let (work, attempts) = work_tables(schema, target_oid);
    let m = CitusMerge {
        plan,
        placement,
        options,
        keys: Keys {
            names: plan.keys.iter().map(|k| k.target.clone()).collect(),
            eq_schemas: plan.keys.iter().map(|k| k.eq_schema.clone()).collect(),
        },
        staging_keys: plan.keys.iter().map(|k| k.staging.clone()).collect(),
        w: work.clone(),
        a: attempts.clone(),
        tombstones,
        tv: format!("t.{}", quote_ident(&plan.version.target)),
    };
    Ok(CitusMergeSql {
        create: m.create()?,
        drop_stale: format!("DROP TABLE IF EXISTS {attempts}, {work}"),
        work_columns: work_columns(plan),
        work,
        attempts,
        program: m.program(),
    })
}

/// `alias.cls = 'class'`
fn class_is(alias: &str, c: RowClass) -> String {
    pg_op(&format!("{alias}.cls"), "=", &c.lit())
}

/// The statements of one Citus merge, one method each (as [`crate::sqlgen::MergeBuilder`] for a
/// single server): `t` production, `s` staging (or a source's or change log's copy), `w` the work
/// table (one row per staged key, its class), `a` the attempts table.
struct CitusMerge<'a> {
    plan: &'a MergePlan,
    placement: &'a Placement,
    options: MergeOptions,
    keys: Keys,
    staging_keys: Vec<String>,
    w: String,
    a: String,
    tombstones: &'a str,
    /// production's version, `t."column"`
    tv: String,
}

impl CitusMerge<'_> {
    fn kw(&self, alias: &str) -> Vec<String> {
        self.keys.work(alias)
    }

    fn kt(&self, alias: &str) -> Vec<String> {
        self.keys.production(alias)
    }

    fn ks(&self, alias: &str) -> Vec<String> {
        self.keys.of(alias, &self.staging_keys)
    }

    fn same(&self, x: &[String], y: &[String]) -> String {
        self.keys.same(x, y)
    }

    /// The work and attempts tables: production's key columns (types and collations through
    /// CREATE TABLE AS), placed like production.
    fn create(&self) -> Result<Vec<String>> {
        let (t, w, a, tv) = (&self.plan.target, &self.w, &self.a, &self.tv);
        let work_placement = self
            .keys
            .work_placement(self.placement, &self.plan.target_display)?;
        let key_select = self.keys.select_as_work();
        Ok(vec![
            format!(
                "CREATE TABLE {w} AS SELECT {key_select}, {tv} AS v, NULL::pg_catalog.timestamptz AS loaded_at, \
                 NULL::pg_catalog.int8 AS rn, NULL::pg_catalog.text AS cls, NULL::pg_catalog.text AS err \
                 FROM ONLY {t} t WITH NO DATA"
            ),
            // the key index: the joins of the apply steps look rows up in the work tables by key
            format!("CREATE INDEX ON {w} ({})", self.keys.work_names()),
            work_placement.place_like(w, t),
            format!(
                "CREATE TABLE {a} AS SELECT {key_select}, NULL::pg_catalog.int8 AS rn, NULL::pg_catalog.xid AS seen, \
                 {tv} AS seen_version, NULL::pg_catalog.jsonb AS before FROM ONLY {t} t WITH NO DATA"
            ),
            format!("CREATE INDEX ON {a} ({})", self.keys.work_names()),
            work_placement.place_like(a, t),
        ])
    }

    /// Production's version older than `v` (or NULL).
    fn newer(&self, v: &str) -> String {
        let tv = &self.tv;
        format!(
            "({tv} IS NULL OR {})",
            op(tv, &self.plan.version.ord_schema, "<", v)
        )
    }

    /// Version `v` inside the open reload's window (any version when there is none; always for a
    /// version that is no date).
    fn in_window(&self, p: &mut Params, v: &str) -> String {
        let ver = &self.plan.version;
        if !ver.is_datetime {
            return "true".to_string();
        }
        let bound =
            |param: &str| format!("CAST({param}::pg_catalog.timestamptz AS {})", ver.base_type);
        let (ws, we) = (p.get(Param::WindowStart), p.get(Param::WindowEnd));
        format!(
            "({ws}::pg_catalog.timestamptz IS NULL OR ({} AND {}))",
            op(v, &ver.ord_schema, ">=", &bound(&ws)),
            op(v, &ver.ord_schema, "<=", &bound(&we)),
        )
    }

    /// The class of staged row `s` joined to production `t` and its tombstones `tb`. A staged row:
    /// no version `Error`, outside the window `OutsideWindow`; a replayed change (the copy holds
    /// each key's last change, checked on the coordinator by `citus_source`): a `D` removes
    /// production's row unless production's version is newer (`Delete`, `Stale`), or is `Absent`.
    /// Then as a staged row: a LOB value at the limit `Error`, production older `Update`, the same
    /// `Unchanged`, newer `Stale`, no row but a tombstone `Deleted`, else `Insert`.
    fn class_case(&self, p: &mut Params, lob_rule: &str) -> String {
        let (ver, tv) = (&self.plan.version, &self.tv);
        let sv = format!("s.{}", quote_ident(&ver.staging));
        let matched = format!("{} IS NOT NULL", self.kt("t")[0]);
        let first = if self.plan.changes {
            format!(
                "WHEN {} THEN CASE WHEN NOT {matched} THEN {} WHEN {tv} IS NULL OR {} THEN {} ELSE {} END ",
                pg_op(
                    &format!("pg_catalog.upper(s.{})", quote_ident(CHANGE_OP)),
                    "=",
                    "'D'"
                ),
                RowClass::Absent.lit(),
                op(tv, &ver.ord_schema, "<=", &sv),
                RowClass::Delete.lit(),
                RowClass::Stale.lit(),
            )
        } else {
            format!(
                "WHEN {sv} IS NULL THEN {} WHEN NOT {} THEN {} ",
                RowClass::Error.lit(),
                self.in_window(p, &sv),
                RowClass::OutsideWindow.lit(),
            )
        };
        format!(
            "CASE {first}{lob_rule}WHEN {matched} THEN CASE WHEN {} THEN {} WHEN {} THEN {} ELSE {} END \
             WHEN {} IS NOT NULL THEN {} ELSE {} END",
            self.newer(&sv),
            RowClass::Update.lit(),
            op(tv, &ver.ord_schema, "=", &sv),
            RowClass::Unchanged.lit(),
            RowClass::Stale.lit(),
            self.kt("tb")[0],
            RowClass::Deleted.lit(),
            RowClass::Insert.lit(),
        )
    }

    /// A 63-bit hash of key `columns` numbers the rows (collisions only coarsen the bisection of a
    /// failing row); no sequence, which Citus would evaluate on the coordinator.
    fn rn(&self, columns: &[String]) -> String {
        format!(
            "(pg_catalog.jsonb_hash_extended(pg_catalog.jsonb_build_array({}), 0) OPERATOR(pg_catalog.&) 9223372036854775807)",
            columns.join(", ")
        )
    }

    /// The keys deleted since the merge began (`tb`).
    fn tombstoned(&self, p: &mut Params) -> String {
        format!(
            "(SELECT DISTINCT {} FROM {} d WHERE {}) tb",
            self.kt("d").join(", "),
            self.tombstones,
            pg_op(
                "d.deleted_at",
                ">=",
                &format!("{}::pg_catalog.timestamptz", p.get(Param::Since))
            ),
        )
    }

    /// Every `NEW` staged row into the work table, classified.
    fn fill_classified(&self) -> Stmt {
        let plan = self.plan;
        let (t, s, w) = (&plan.target, &plan.staging, &self.w);
        let mut fill = Params::new();
        let sv = format!("s.{}", quote_ident(&plan.version.staging));
        let null_version = fill.get(Param::NullVersion);
        // a LOB value the loader may have cut is never written (as in sqlgen's classification)
        let (lob_rule, lob_err) = if plan.values.iter().any(|v| v.lob.is_some()) {
            let limit = fill.get(Param::LobLimit);
            let lob = crate::sqlgen::lob_at_limit(plan, &limit).unwrap_or_default();
            (
                format!("WHEN {lob} IS NOT NULL THEN {} ", RowClass::Error.lit()),
                format!(
                    " WHEN {lob} IS NOT NULL THEN {}",
                    crate::sqlgen::lob_error(&lob, &limit)
                ),
            )
        } else {
            (String::new(), String::new())
        };
        let class_case = self.class_case(&mut fill, &lob_rule);
        let tombstoned = self.tombstoned(&mut fill);
        let mut sql = format!(
            "INSERT INTO {w} ({}, v, loaded_at, rn, cls, err) \
             SELECT {}, {sv}, s.{}, {}, {class_case}, CASE WHEN {sv} IS NULL THEN {null_version}{lob_err} END \
             FROM {s} s LEFT JOIN {t} t ON {} LEFT JOIN {tombstoned} ON {} WHERE {}",
            self.keys.work_names(),
            self.ks("s").join(", "),
            quote_ident(META_LOADED_AT),
            self.rn(&self.ks("s")),
            self.same(&self.kt("t"), &self.ks("s")),
            self.same(&self.kt("tb"), &self.ks("s")),
            pg_op(&format!("s.{}", quote_ident(META_STATUS)), "=", "'NEW'"),
        );
        // one batch of dwr_merge_batches: the staged rows of its key range (pushed down with the rest)
        if self.options.batched {
            let (lo, hi) = (fill.get(Param::BatchLo), fill.get(Param::BatchHi));
            sql = format!("{sql} AND {}", crate::sqlgen::batch_range(plan, &lo, &hi));
        }
        fill.stmt("fill_classified", sql)
    }

    /// Deletes by absence (`dwr_delete_absent`): the production rows whose version lies inside the
    /// open reload's window (none without one) and whose key staging lacks (in any status), each of
    /// class `Delete`.
    fn fill_absent(&self) -> Stmt {
        let (t, s, w, tv) = (&self.plan.target, &self.plan.staging, &self.w, &self.tv);
        let mut p = Params::new();
        let (ws, we) = (p.get(Param::WindowStart), p.get(Param::WindowEnd));
        let in_window = self.in_window(&mut p, tv);
        let sql = format!(
            "INSERT INTO {w} ({}, v, rn, cls) SELECT {}, {tv}, {}, {} FROM {t} t \
             WHERE {ws}::pg_catalog.timestamptz IS NOT NULL AND {we}::pg_catalog.timestamptz IS NOT NULL \
             AND {in_window} AND NOT EXISTS (SELECT FROM {s} s WHERE {})",
            self.keys.work_names(),
            self.kt("t").join(", "),
            self.rn(&self.kt("t")),
            RowClass::Delete.lit(),
            self.same(&self.ks("s"), &self.kt("t")),
        );
        p.stmt("fill_absent", sql)
    }

    fn value_expr(&self, v: &crate::plan::ValueColumn) -> String {
        let col = format!("s.{}", quote_ident(&v.staging));
        match v.conversion {
            Conversion::Explicit => format!("CAST({col} AS {})", v.base_type),
            _ => col,
        }
    }

    /// Rows of class `c` in range that production did not take: no production row this attempt
    /// wrote.
    fn defer_untaken(&self, name: &'static str, c: RowClass) -> Stmt {
        let (t, w, a) = (&self.plan.target, &self.w, &self.a);
        ranged_stmt(name, |range| {
            format!(
                "UPDATE {w} w SET cls = {} WHERE {} AND {} AND NOT EXISTS \
                 (SELECT FROM {a} a JOIN {t} t ON {} WHERE {} AND {})",
                RowClass::Deferred.lit(),
                class_is("w", c),
                range("w"),
                self.same(&self.kt("t"), &self.kw("a")),
                self.same(&self.kw("a"), &self.kw("w")),
                pg_op("t.xmin", "=", "a.xmin"),
            )
        })
    }

    fn apply_inserts(&self) -> Vec<Stmt> {
        let plan = self.plan;
        let (t, s, w, a) = (&plan.target, &plan.staging, &self.w, &self.a);
        let mut insert_cols: Vec<String> =
            plan.keys.iter().map(|k| quote_ident(&k.target)).collect();
        insert_cols.push(quote_ident(&plan.version.target));
        insert_cols.extend(plan.values.iter().map(|v| quote_ident(&v.target)));
        let mut insert_vals = self.kw("w");
        insert_vals.push("w.v".to_string());
        insert_vals.extend(plan.values.iter().map(|v| self.value_expr(v)));
        vec![
            ranged_stmt("record_inserts", |range| {
                format!(
                    "INSERT INTO {a} ({}, rn) SELECT {}, w.rn FROM {w} w WHERE {} AND {}",
                    self.keys.work_names(),
                    self.kw("w").join(", "),
                    class_is("w", RowClass::Insert),
                    range("w"),
                )
            }),
            ranged_stmt("apply_inserts", |range| {
                format!(
                    "INSERT INTO {t} AS t ({}) {}SELECT {} FROM {a} a JOIN {w} w ON {} JOIN {s} s ON {} \
                     WHERE {} AND {} ON CONFLICT ON CONSTRAINT {} DO NOTHING",
                    insert_cols.join(", "),
                    if plan.overriding_system_value {
                        "OVERRIDING SYSTEM VALUE "
                    } else {
                        ""
                    },
                    insert_vals.join(", "),
                    self.same(&self.kw("a"), &self.kw("w")),
                    self.same(&self.ks("s"), &self.kw("w")),
                    class_is("w", RowClass::Insert),
                    range("a"),
                    plan.pk_constraint,
                )
            }),
            self.defer_untaken("defer_inserts", RowClass::Insert),
        ]
    }

    /// The row the attempt read is still there: on a distributed table the same row version
    /// (`xmin`, exact); on a reference table the same version column value, because each node's
    /// copy has its own `xmin` and the attempt read one copy (every copy must take the same
    /// decision).
    fn still_as_read(&self) -> String {
        match self.placement {
            Placement::Reference => format!("{} IS NOT DISTINCT FROM a.seen_version", self.tv),
            _ => pg_op("t.xmin", "=", "a.seen"),
        }
    }

    /// Record the attempt on the rows of class `c` in range whose production row passes `test`:
    /// the row version read and, with row audit, its image.
    fn record_seen(&self, name: &'static str, c: RowClass, test: &str) -> Stmt {
        let (t, w, a, tv) = (&self.plan.target, &self.w, &self.a, &self.tv);
        ranged_stmt(name, |range| {
            format!(
                "INSERT INTO {a} ({}, rn, seen, seen_version, before) SELECT {}, w.rn, t.xmin, {tv}, {} \
                 FROM {w} w JOIN {t} t ON {} WHERE {} AND {} AND {test}",
                self.keys.work_names(),
                self.kw("w").join(", "),
                if self.options.row_audit {
                    "pg_catalog.to_jsonb(t.*)"
                } else {
                    "NULL::pg_catalog.jsonb"
                },
                self.same(&self.kt("t"), &self.kw("w")),
                class_is("w", c),
                range("w"),
            )
        })
    }

    fn apply_updates(&self) -> Vec<Stmt> {
        let plan = self.plan;
        let (t, s, w, a) = (&plan.target, &plan.staging, &self.w, &self.a);
        let mut sets: Vec<String> = plan
            .values
            .iter()
            .filter(|v| !v.insert_only)
            .map(|v| format!("{} = {}", quote_ident(&v.target), self.value_expr(v)))
            .collect();
        sets.push(format!("{} = w.v", quote_ident(&plan.version.target)));
        vec![
            self.record_seen("record_updates", RowClass::Update, &self.newer("w.v")),
            // the row the attempt read, unchanged since (a row CDC changed meanwhile has another
            // xmin and is left for the next merge, never written over)
            ranged_stmt("apply_updates", |range| {
                format!(
                    "UPDATE {t} t SET {} FROM {a} a JOIN {w} w ON {} JOIN {s} s ON {} \
                     WHERE {} AND {} AND {} AND {}",
                    sets.join(", "),
                    self.same(&self.kw("a"), &self.kw("w")),
                    self.same(&self.ks("s"), &self.kw("w")),
                    self.same(&self.kt("t"), &self.kw("a")),
                    class_is("w", RowClass::Update),
                    range("a"),
                    self.still_as_read(),
                )
            }),
            self.defer_untaken("defer_updates", RowClass::Update),
        ]
    }

    /// A replayed `D` or a delete by absence: record the attempt on the rows whose production
    /// version is still not newer than the delete's (the work row's), remove those still as read,
    /// and defer the rest (no attempt: changed or gone meanwhile; the row still there).
    fn apply_deletes(&self) -> Vec<Stmt> {
        let (t, w, a, tv) = (&self.plan.target, &self.w, &self.a, &self.tv);
        let not_newer = format!(
            "({tv} IS NULL OR {})",
            op(tv, &self.plan.version.ord_schema, "<=", "w.v")
        );
        vec![
            self.record_seen("record_deletes", RowClass::Delete, &not_newer),
            ranged_stmt("apply_deletes", |range| {
                format!(
                    "DELETE FROM {t} t USING {a} a JOIN {w} w ON {} WHERE {} AND {} AND {} AND {}",
                    self.same(&self.kw("a"), &self.kw("w")),
                    self.same(&self.kt("t"), &self.kw("a")),
                    class_is("w", RowClass::Delete),
                    range("a"),
                    self.still_as_read(),
                )
            }),
            ranged_stmt("defer_deletes", |range| {
                format!(
                    "UPDATE {w} w SET cls = {} WHERE {} AND {} AND (NOT EXISTS (SELECT FROM {a} a WHERE {}) \
                     OR EXISTS (SELECT FROM {t} t WHERE {}))",
                    RowClass::Deferred.lit(),
                    class_is("w", RowClass::Delete),
                    range("w"),
                    self.same(&self.kw("a"), &self.kw("w")),
                    self.same(&self.kt("t"), &self.kw("w")),
                )
            }),
        ]
    }

    /// A replayed `D` of a key production lacks: its tombstone, so that a later merge of the
    /// reload never inserts an older row of the key (the rows `apply_deletes` removed have theirs
    /// from the shards' delete trigger).
    fn tombstone_absent(&self) -> Stmt {
        Stmt::plain(
            "tombstone_absent",
            format!(
                "INSERT INTO {} ({}) SELECT {} FROM {} w WHERE {}",
                self.tombstones,
                self.keys.quoted_names(),
                self.kw("w").join(", "),
                self.w,
                class_is("w", RowClass::Absent),
            ),
        )
    }

    /// Inserts whose key CDC deleted meanwhile: found, taken back, and marked `Deleted`.
    fn retracts(&self) -> Step {
        let (t, w) = (&self.plan.target, &self.w);
        let mut p = Params::new();
        let find_retracts = format!(
            "UPDATE {w} w SET cls = 'retract' FROM {} WHERE {} AND {}",
            self.tombstoned(&mut p),
            class_is("w", RowClass::Insert),
            self.same(&self.kt("tb"), &self.kw("w")),
        );
        Step::When {
            when: vec![Cond::Wrote(p.stmt("find_retracts", find_retracts))],
            then: vec![
                Stmt::plain(
                    "apply_retracts",
                    format!(
                        "DELETE FROM {t} t USING {w} w WHERE {} AND {}",
                        pg_op("w.cls", "=", "'retract'"),
                        self.same(&self.kt("t"), &self.kw("w")),
                    ),
                ),
                Stmt::plain(
                    "mark_retracted",
                    format!(
                        "UPDATE {w} SET cls = {} WHERE {}",
                        RowClass::Deleted.lit(),
                        pg_op("cls", "=", "'retract'")
                    ),
                ),
            ],
        }
    }

    /// Each classified staged row's final status, run and error.
    fn write_statuses(&self) -> Stmt {
        let mut p = Params::new();
        let sql = format!(
            "UPDATE {} s SET {} = {}, {} = {}, {} = w.err FROM {} w WHERE {} AND {}",
            self.plan.staging,
            quote_ident(META_STATUS),
            RowClass::status_case("w."),
            quote_ident(META_RUN_ID),
            p.get(Param::RunId),
            quote_ident(META_ERROR),
            self.w,
            self.same(&self.ks("s"), &self.kw("w")),
            RowClass::has_final_status("w."),
        );
        p.stmt("write_statuses", sql)
    }

    /// The images of the rows written: inserted and updated (after: production's row now), removed
    /// (after: none).
    fn write_row_changes(&self) -> Stmt {
        let mut p = Params::new();
        let sql = format!(
            "INSERT INTO dwr.row_changes (run_id, target, key, action, before, after) \
             SELECT {}, {}::pg_catalog.oid, pg_catalog.jsonb_build_array({}), w.cls, a.before, \
             CASE WHEN {} THEN NULL ELSE pg_catalog.to_jsonb(t.*) END \
             FROM {} w JOIN {} a ON {} LEFT JOIN {} t ON {} WHERE {}",
            p.get(Param::RunId),
            p.get(Param::Target),
            self.kw("w").join(", "),
            class_is("w", RowClass::Delete),
            self.w,
            self.a,
            self.same(&self.kw("a"), &self.kw("w")),
            self.plan.target,
            self.same(&self.kt("t"), &self.kw("w")),
            pg_op(
                "w.cls",
                "=",
                "ANY ('{insert,update,delete}'::pg_catalog.text[])"
            ),
        );
        p.stmt("write_row_changes", sql)
    }

    /// The writes of one class in one subtransaction: record the attempt, write, defer what
    /// production did not take (skipped when the write took every row of the class).
    fn apply(&self, stmts: Vec<Stmt>, class: RowClass) -> Step {
        let w = &self.w;
        Step::Ranged(Ranged {
            stmts,
            fallback: None,
            waits_for_rows: true,
            rows_in_range: Some(ranged_stmt("rows_in_range", |range| {
                format!(
                    "SELECT DISTINCT rn FROM {w} x WHERE {} ORDER BY rn",
                    range("x")
                )
            })),
            skip_tail_when_all: Some(class),
        })
    }

    fn steps(&self) -> Vec<Step> {
        let (absent, changes) = (self.plan.absent, self.plan.changes);
        // a single merge shows its phases (a batch's progress is that of dwr_merge_batches)
        let phase = |name: &'static str| (!self.options.batched).then_some(Step::Phase(name));
        let mut steps: Vec<Step> = phase("classifying").into_iter().collect();
        steps.push(Step::Run(if absent {
            self.fill_absent()
        } else {
            self.fill_classified()
        }));
        // (not a reference table's: ANALYZE reads its copy on this node by local execution, after
        // which Citus refuses the transaction's parallel commands on other tables, as in
        // dwr_merge_all; a reference table is small)
        if !matches!(self.placement, Placement::Reference) {
            steps.push(Step::analyze(Stmt::plain(
                "analyze_work",
                format!("ANALYZE {}", self.w),
            )));
        }
        steps.extend([
            Step::Hold,
            Step::RowRange(Stmt::plain("row_range", row_range_sql(&self.w, "rn"))),
        ]);
        if !absent {
            steps.extend(phase("inserting"));
            steps.push(self.apply(self.apply_inserts(), RowClass::Insert));
            steps.extend(phase("updating"));
            steps.push(self.apply(self.apply_updates(), RowClass::Update));
        }
        if absent || changes {
            steps.extend(phase("deleting"));
            steps.push(self.apply(self.apply_deletes(), RowClass::Delete));
        }
        if !absent {
            steps.push(self.retracts());
        }
        if changes {
            steps.push(Step::Run(self.tombstone_absent()));
        }
        if !absent {
            steps.extend(phase("writing statuses"));
            steps.push(Step::Run(self.write_statuses()));
        }
        if self.options.row_audit {
            steps.extend(phase("writing row images"));
            steps.push(Step::AsOwner {
                share: None,
                stmt: self.write_row_changes(),
                guard: Guard::RunningRun("merge"),
            });
        }
        steps
    }

    fn program(&self) -> Program {
        let w = &self.w;
        let (mark_error, mark_deferred) = mark_statements(
            w,
            "rn",
            &RowClass::Error.lit(),
            &RowClass::Deferred.lit(),
            Some(&pg_op(
                "cls",
                "=",
                "ANY ('{insert,update,delete}'::pg_catalog.text[])",
            )),
        );
        Program {
            steps: self.steps(),
            mark_error,
            mark_deferred,
            counts: Stmt::plain(
                "counts",
                format!("SELECT cls, pg_catalog.count(*) FROM {w} GROUP BY cls"),
            ),
            // the work tables outlive the merge (creating and placing them costs the better part
            // of a second, emptying them milliseconds)
            cleanup: vec![Stmt::plain("clear", format!("TRUNCATE {w}, {}", self.a))],
            // SET LOCAL reaches the workers' transactions while citus.propagate_set_commands is
            // local
            propagate_settings: true,
            // a row CDC holds: the halves wait 1 ms, not dwr.row_lock_timeout each, while the
            // merge holds the rows it has written (a CDC transaction waiting on one of them whose
            // deadlock check fell inside such a wait would get a deadlock error); a row held that
            // long is deferred to the next merge
            halves_wait_ms: Some(1),
        }
    }
}

/// SQL written with `range(alias)`, the test of a row number against a ranged step's rows.
type WithRange<'a> = dyn Fn(&dyn Fn(&str) -> String) -> String + 'a;

/// A ranged statement of a work table: `sql` written with `range(alias)`, the test of `alias.rn`
/// against the step's rows (`FirstRow`, `LastRow`).
fn ranged_stmt(name: &'static str, sql: impl FnOnce(&dyn Fn(&str) -> String) -> String) -> Stmt {
    ranged_stmt_on(name, "rn", sql)
}

/// [`ranged_stmt`] for a work table whose row numbers are in `column`.
fn ranged_stmt_on(
    name: &'static str,
    column: &str,
    sql: impl FnOnce(&dyn Fn(&str) -> String) -> String,
) -> Stmt {
    let mut p = Params::new();
    let (lo, hi) = (p.get(Param::FirstRow), p.get(Param::LastRow));
    let range = |alias: &str| {
        format!(
            "{} AND {}",
            pg_op(&format!("{alias}.{column}"), ">=", &lo),
            pg_op(&format!("{alias}.{column}"), "<=", &hi)
        )
    };
    let sql = sql(&range);
    p.stmt(name, sql)
}

/// The statements of `dwr_undo` on a Citus table, pushed down like the merge's: the run's images
/// are read from `dwr.row_changes` (on the coordinator) into a work table co-located with
/// production, and every comparison and write runs on the shards. Ranged statements take `$1`,
/// `$2` (row numbers: a hash of the key), each apply step's statements run in one subtransaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitusUndoSql {
    /// the work tables, placed like production (made before the program runs)
    pub create: Vec<String>,
    /// fill the work tables with the undone run's images (as the extension owner), classify them
    /// against production (`to_jsonb`, which Citus allows in an `INSERT ... SELECT` but not in an
    /// `UPDATE`), then ranged: delete the rows still as the run left them; record the attempt,
    /// restore the before image over a row still as the run left it, mark the rows it wrote
    /// `restored`; the rest (changed meanwhile) `deferred`; with row audit the undo's images
    pub program: Program,
}

/// Write the SQL of an undo on Citus table `target` placed as `placement`; its work tables go to
/// production's schema for the length of the undo's transaction.
pub fn undo_sql(target: &Relation, placement: &Placement, row_audit: bool) -> Result<CitusUndoSql> {
    let pk = target.primary_key.as_ref().ok_or_else(|| {
        DwrError::new(
            SqlState::ObjectNotInPrerequisiteState,
            format!("{} has no primary key", target.display()),
        )
    })?;
    let name =
        |what: &str| quote_qualified(&target.schema, &format!("_dwr_undo_{what}_{}", target.oid));
    let undo = CitusUndo {
        target,
        placement,
        row_audit,
        key_columns: &pk.columns,
        k: Keys {
            names: pk.columns.clone(),
            eq_schemas: pk.equality_schemas.clone(),
        },
        t: target.quoted(),
        u: name("work"),
        b: name("before"),
        c: name("seen"),
        a: name("attempts"),
    };
    Ok(CitusUndoSql {
        create: undo.create()?,
        program: undo.program(),
    })
}

/// `alias.cls = 'class'`, an undo's
fn undo_class_is(alias: &str, c: UndoClass) -> String {
    pg_op(&format!("{alias}.cls"), "=", &c.lit())
}

/// The statements of one Citus undo, one method each: `t` production, `u` the work table (one row
/// per image of the undone run, its class), `b` the before images, `c` the rows as seen, `a` the
/// attempts.
struct CitusUndo<'a> {
    target: &'a Relation,
    placement: &'a Placement,
    row_audit: bool,
    key_columns: &'a [String],
    k: Keys,
    t: String,
    u: String,
    b: String,
    c: String,
    a: String,
}

impl CitusUndo<'_> {
    fn kw(&self, alias: &str) -> Vec<String> {
        self.k.work(alias)
    }

    fn kt(&self, alias: &str) -> Vec<String> {
        self.k.production(alias)
    }

    fn same(&self, x: &[String], y: &[String]) -> String {
        self.k.same(x, y)
    }

    fn ranged(name: &'static str, sql: &WithRange) -> Stmt {
        ranged_stmt_on(name, "n", |range| sql(range))
    }

    fn create(&self) -> Result<Vec<String>> {
        let (t, u, b, c, a) = (&self.t, &self.u, &self.b, &self.c, &self.a);
        let work_placement = self
            .k
            .work_placement(self.placement, &self.target.display())?;
        let key_select = self.k.select_as_work();
        let key_names = self.k.work_names();
        Ok(vec![
            format!(
                "CREATE TABLE {u} AS SELECT {key_select}, NULL::pg_catalog.int8 AS n, NULL::pg_catalog.text AS action, \
                 NULL::pg_catalog.jsonb AS after, NULL::pg_catalog.text AS cls, NULL::pg_catalog.text AS err, \
                 NULL::pg_catalog.xid AS seen FROM ONLY {t} t WITH NO DATA"
            ),
            format!("CREATE INDEX ON {u} ({key_names})"),
            work_placement.place_like(u, t),
            format!("CREATE TABLE {b} AS SELECT t.* FROM ONLY {t} t WITH NO DATA"),
            format!("CREATE INDEX ON {b} ({})", self.k.quoted_names()),
            self.placement.place_like(b, t),
            format!(
                "CREATE TABLE {c} AS SELECT {key_select}, NULL::pg_catalog.text AS cls, NULL::pg_catalog.xid AS seen \
                 FROM ONLY {t} t WITH NO DATA"
            ),
            format!("CREATE INDEX ON {c} ({key_names})"),
            work_placement.place_like(c, t),
            format!("CREATE TABLE {a} AS SELECT {key_select} FROM ONLY {t} t WITH NO DATA"),
            format!("CREATE INDEX ON {a} ({key_names})"),
            work_placement.place_like(a, t),
        ])
    }

    /// Image `col` as a row of production.
    fn image(&self, col: &str) -> String {
        format!("pg_catalog.jsonb_populate_record(NULL::{}, {col})", self.t)
    }

    /// The undone run's images into the work table (as the extension owner): an inserted or
    /// updated row starts as `gone` (classified against production next), a removed row as
    /// `reinsert`.
    fn fill_work(&self) -> Stmt {
        let mut p = Params::new();
        let run = p.get(Param::UndoneRun);
        let sql = format!(
            "INSERT INTO {} ({}, n, action, after, cls) \
             SELECT {}, pg_catalog.jsonb_hash_extended(x.key, 0) OPERATOR(pg_catalog.&) 9223372036854775807, \
             x.action, x.after, CASE WHEN x.action OPERATOR(pg_catalog.=) 'delete' THEN {} ELSE {} END \
             FROM (SELECT c.key, c.action, c.after, {} AS a FROM dwr.row_changes c WHERE {} AND {}) x",
            self.u,
            self.k.work_names(),
            self.k.production("(x.a)").join(", "),
            UndoClass::Reinsert.lit(),
            UndoClass::Gone.lit(),
            // (a removed row's key is in its before image)
            self.image("COALESCE(c.after, c.before)"),
            pg_op("c.run_id", "=", &run),
            pg_op(
                "c.action",
                "=",
                "ANY ('{insert,update,delete}'::pg_catalog.text[])"
            ),
        );
        p.stmt("fill_work", sql)
    }

    /// The before images of the updated and removed rows, as rows of production.
    fn fill_before(&self) -> Stmt {
        let mut p = Params::new();
        let run = p.get(Param::UndoneRun);
        let sql = format!(
            "INSERT INTO {} SELECT ({}).* FROM dwr.row_changes c WHERE {} AND {}",
            self.b,
            self.image("c.before"),
            pg_op("c.run_id", "=", &run),
            pg_op(
                "c.action",
                "=",
                "ANY ('{update,delete}'::pg_catalog.text[])"
            ),
        );
        p.stmt("fill_before", sql)
    }

    /// Each image against production's row now: as the run left it (`delete` an insert,
    /// `restore` an update) or `changed`, with the row version seen (`to_jsonb`, which Citus
    /// allows in an `INSERT ... SELECT` but not in an `UPDATE`); then into the work table.
    fn classify(&self) -> [Stmt; 2] {
        let (t, u, c) = (&self.t, &self.u, &self.c);
        [
            Stmt::plain(
                "classify_seen",
                format!(
                    "INSERT INTO {c} ({}, cls, seen) SELECT {}, CASE WHEN {} THEN CASE WHEN {} THEN {} ELSE {} END \
                     ELSE {} END, t.xmin FROM {u} w JOIN {t} t ON {}",
                    self.k.work_names(),
                    self.kw("w").join(", "),
                    crate::undo::still_image(t, "w.after"),
                    pg_op("w.action", "=", "'insert'"),
                    UndoClass::Delete.lit(),
                    UndoClass::Restore.lit(),
                    UndoClass::Changed.lit(),
                    self.same(&self.kt("t"), &self.kw("w")),
                ),
            ),
            Stmt::plain(
                "classify",
                format!(
                    "UPDATE {u} w SET cls = s.cls, seen = s.seen FROM {c} s WHERE {}",
                    self.same(&self.kw("s"), &self.kw("w")),
                ),
            ),
        ]
    }

    /// Ranged: the run's inserts still as it left them, deleted.
    fn apply_deletes(&self) -> Vec<Stmt> {
        let (t, u) = (&self.t, &self.u);
        vec![
            Self::ranged("apply_deletes", &|range| {
                format!(
                    "DELETE FROM {t} t USING {u} w WHERE {} AND {} AND {} AND {}",
                    self.same(&self.kt("t"), &self.kw("w")),
                    undo_class_is("w", UndoClass::Delete),
                    range("w"),
                    pg_op("t.xmin", "=", "w.seen"),
                )
            }),
            Self::ranged("mark_deleted", &|range| {
                format!(
                    "UPDATE {u} w SET cls = {} WHERE {} AND {} AND NOT EXISTS (SELECT 1 FROM {t} t WHERE {})",
                    UndoClass::Deleted.lit(),
                    undo_class_is("w", UndoClass::Delete),
                    range("w"),
                    self.same(&self.kt("t"), &self.kw("w")),
                )
            }),
        ]
    }

    /// Ranged: record the attempt, put the before image back over a row still as the run left it,
    /// mark the rows it wrote `restored`.
    fn apply_restores(&self) -> Vec<Stmt> {
        let (t, u, b, a) = (&self.t, &self.u, &self.b, &self.a);
        let restorable: Vec<&str> = self
            .target
            .columns
            .iter()
            .filter(|col| {
                !col.is_generated()
                    && !col.is_identity_always()
                    && !self.key_columns.contains(&col.name)
            })
            .map(|col| col.name.as_str())
            .collect();
        let restore = Self::ranged("apply_restores", &|range| {
            if restorable.is_empty() {
                // nothing but the key: nothing to write, the row is as it was
                format!("SELECT 1 FROM {u} w WHERE false AND {}", range("w"))
            } else {
                format!(
                    "UPDATE {t} t SET {} FROM {u} w JOIN {b} b ON {} WHERE {} AND {} AND {} AND {}",
                    restorable
                        .iter()
                        .map(|col| format!("{} = b.{}", quote_ident(col), quote_ident(col)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.same(&self.kt("b"), &self.kw("w")),
                    self.same(&self.kt("t"), &self.kw("w")),
                    undo_class_is("w", UndoClass::Restore),
                    range("w"),
                    pg_op("t.xmin", "=", "w.seen"),
                )
            }
        });
        vec![
            Self::ranged("record_restores", &|range| {
                format!(
                    "INSERT INTO {a} ({}) SELECT {} FROM {u} w WHERE {} AND {}",
                    self.k.work_names(),
                    self.kw("w").join(", "),
                    undo_class_is("w", UndoClass::Restore),
                    range("w"),
                )
            }),
            restore,
            Self::ranged("mark_restored", &|range| {
                if restorable.is_empty() {
                    format!(
                        "UPDATE {u} w SET cls = {} WHERE {} AND {}",
                        UndoClass::Restored.lit(),
                        undo_class_is("w", UndoClass::Restore),
                        range("w")
                    )
                } else {
                    format!(
                        "UPDATE {u} w SET cls = {} WHERE {} AND {} AND EXISTS \
                         (SELECT 1 FROM {a} x JOIN {t} t ON {} WHERE {} AND {})",
                        UndoClass::Restored.lit(),
                        undo_class_is("w", UndoClass::Restore),
                        range("w"),
                        self.same(&self.kt("t"), &self.kw("x")),
                        self.same(&self.kw("x"), &self.kw("w")),
                        pg_op("t.xmin", "=", "x.xmin"),
                    )
                }
            }),
        ]
    }

    /// Ranged, the rows a replay or a deletion by absence removed (`reinsert`): record the
    /// attempt, put the before image back while production lacks the key, mark the rows this
    /// attempt wrote `reinserted` and the others `changed` (the key came back meanwhile).
    fn apply_reinserts(&self) -> Vec<Stmt> {
        let (t, u, b, a) = (&self.t, &self.u, &self.b, &self.a);
        let insertable: Vec<String> = self
            .target
            .columns
            .iter()
            .filter(|c| !c.is_generated())
            .map(|c| quote_ident(&c.name))
            .collect();
        let overriding = if self.target.columns.iter().any(|c| c.is_identity_always()) {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        vec![
            Self::ranged("record_reinserts", &|range| {
                format!(
                    "INSERT INTO {a} ({}) SELECT {} FROM {u} w WHERE {} AND {}",
                    self.k.work_names(),
                    self.kw("w").join(", "),
                    undo_class_is("w", UndoClass::Reinsert),
                    range("w"),
                )
            }),
            Self::ranged("apply_reinserts", &|range| {
                format!(
                    "INSERT INTO {t} AS t ({}){overriding} SELECT {} FROM {a} x JOIN {u} w ON {} JOIN {b} b ON {} \
                     WHERE {} AND {} ON CONFLICT DO NOTHING",
                    insertable.join(", "),
                    insertable
                        .iter()
                        .map(|c| format!("b.{c}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.same(&self.kw("x"), &self.kw("w")),
                    self.same(&self.kt("b"), &self.kw("w")),
                    undo_class_is("w", UndoClass::Reinsert),
                    range("w"),
                )
            }),
            Self::ranged("mark_reinserted", &|range| {
                format!(
                    "UPDATE {u} w SET cls = {} WHERE {} AND {} AND EXISTS \
                     (SELECT 1 FROM {a} x JOIN {t} t ON {} WHERE {} AND {})",
                    UndoClass::Reinserted.lit(),
                    undo_class_is("w", UndoClass::Reinsert),
                    range("w"),
                    self.same(&self.kt("t"), &self.kw("x")),
                    self.same(&self.kw("x"), &self.kw("w")),
                    pg_op("t.xmin", "=", "x.xmin"),
                )
            }),
            Self::ranged("mark_changed", &|range| {
                format!(
                    "UPDATE {u} w SET cls = {} WHERE {} AND {}",
                    UndoClass::Changed.lit(),
                    undo_class_is("w", UndoClass::Reinsert),
                    range("w"),
                )
            }),
        ]
    }

    /// What the undo wrote, as images of the undo run (as the extension owner).
    fn write_row_changes(&self) -> Stmt {
        let mut p = Params::new();
        let (run, target_oid) = (p.get(Param::RunId), p.get(Param::Target));
        let sql = format!(
            "INSERT INTO dwr.row_changes (run_id, target, key, action, before, after) \
             SELECT {run}, {target_oid}::pg_catalog.oid, pg_catalog.jsonb_build_array({}), \
             CASE WHEN {} THEN 'delete' WHEN {} THEN 'insert' ELSE 'restore' END, w.after, \
             CASE WHEN {} THEN pg_catalog.to_jsonb(t.*) END \
             FROM {} w LEFT JOIN {} t ON {} WHERE {}",
            self.kw("w").join(", "),
            undo_class_is("w", UndoClass::Deleted),
            undo_class_is("w", UndoClass::Reinserted),
            pg_op(
                "w.cls",
                "=",
                &UndoClass::any(&[UndoClass::Restored, UndoClass::Reinserted])
            ),
            self.u,
            self.t,
            self.same(&self.kt("t"), &self.kw("w")),
            pg_op(
                "w.cls",
                "=",
                &UndoClass::any(&[
                    UndoClass::Deleted,
                    UndoClass::Restored,
                    UndoClass::Reinserted,
                ])
            ),
        );
        p.stmt("write_row_changes", sql)
    }

    /// The statements of one apply step in one subtransaction, bisected on failure.
    fn apply(&self, stmts: Vec<Stmt>) -> Step {
        let u = &self.u;
        Step::Ranged(Ranged {
            stmts,
            fallback: None,
            waits_for_rows: true,
            rows_in_range: Some(Self::ranged("rows_in_range", &|range| {
                format!(
                    "SELECT DISTINCT n FROM {u} x WHERE {} ORDER BY n",
                    range("x")
                )
            })),
            skip_tail_when_all: None,
        })
    }

    fn steps(&self) -> Vec<Step> {
        let as_owner = |stmt: Stmt, guard: Guard| Step::AsOwner {
            share: None,
            stmt,
            guard,
        };
        let mut steps = vec![
            as_owner(self.fill_work(), Guard::ReadableRun),
            as_owner(self.fill_before(), Guard::ReadableRun),
        ];
        // (not a reference table's, as in the merge)
        if !matches!(self.placement, Placement::Reference) {
            steps.push(Step::analyze(Stmt::plain(
                "analyze_work",
                format!("ANALYZE {}, {}", self.u, self.b),
            )));
        }
        steps.extend(self.classify().map(Step::Run));
        steps.extend([
            Step::RowRange(Stmt::plain("row_range", row_range_sql(&self.u, "n"))),
            self.apply(self.apply_deletes()),
            self.apply(self.apply_restores()),
            self.apply(self.apply_reinserts()),
            Step::Run(Stmt::plain(
                "defer_rest",
                format!(
                    "UPDATE {} SET cls = {} WHERE {}",
                    self.u,
                    UndoClass::Deferred.lit(),
                    pg_op("cls", "=", &undone_classes())
                ),
            )),
        ]);
        if self.row_audit {
            steps.push(as_owner(
                self.write_row_changes(),
                Guard::RunningRun("undo"),
            ));
        }
        steps
    }

    fn program(&self) -> Program {
        let u = &self.u;
        let (mark_error, mark_deferred) = mark_statements(
            u,
            "n",
            &UndoClass::Error.lit(),
            &UndoClass::Deferred.lit(),
            Some(&pg_op("cls", "=", &undone_classes())),
        );
        Program {
            steps: self.steps(),
            mark_error,
            mark_deferred,
            counts: Stmt::plain(
                "counts",
                format!("SELECT cls, pg_catalog.count(*) FROM {u} GROUP BY cls"),
            ),
            cleanup: vec![Stmt::plain(
                "drop_work",
                format!("DROP TABLE {}, {}, {}, {u}", self.a, self.c, self.b),
            )],
            propagate_settings: true,
            halves_wait_ms: Some(1),
        }
    }
}

/// The classes of an undo's rows still to write: what a step that could not write them defers.
fn undone_classes() -> String {
    UndoClass::any(&[UndoClass::Delete, UndoClass::Restore, UndoClass::Reinsert])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_tables_are_refused_with_a_hint() {
        let e = unsupported("production.customers", "production", "local");
        assert_eq!(e.state.code(), "0A000");
        assert!(e
            .message
            .contains("production.customers is a Citus local table"));
        assert!(e.hint.is_some() && e.detail.is_some());
    }

    #[test]
    fn placement_parses_and_places() {
        let p = Placement::parse("distributed", Some("customer_id".into()));
        assert_eq!(p, Placement::Distributed("customer_id".into()));
        assert_eq!(
            p.place_like("staging.customers", "production.customers"),
            "SELECT pg_catalog.create_distributed_table('staging.customers', 'customer_id', colocate_with => 'production.customers')"
        );
        assert_eq!(Placement::parse("reference", None), Placement::Reference);
        assert!(Placement::Reference
            .place_like("s.\"O'x\"", "p.x")
            .contains("create_reference_table('s.\"O''x\"')"));
        assert_eq!(Placement::parse("local", None), Placement::Local);
        assert_eq!(
            Placement::parse("replicated", Some("id".into())),
            Placement::Replicated
        );
        let e = unsupported("p.t", "production", "replicated");
        assert!(e.message.contains("replicated shards"), "{}", e.message);
    }

    #[test]
    fn tombstone_names_fit_an_identifier() {
        assert_eq!(tombstones_name("customers"), "customers_dwr_tombstones");
        let long = "x".repeat(63);
        assert_eq!(tombstones_name(&long).len(), 63);
        assert!(tombstones_name(&long).ends_with("_dwr_tombstones"));
    }

    /// The shared test plan as dwr_create_staging makes staging on Citus: production's key and
    /// types, staging's own primary key.
    fn citus_plan() -> MergePlan {
        let mut plan = crate::sqlgen::tests::plan();
        for k in &mut plan.keys {
            k.needs_cast = false;
        }
        plan.staging_keys_unique = true;
        plan
    }

    fn sql(row_audit: bool) -> CitusMergeSql {
        merge_sql(
            &citus_plan(),
            &Placement::Distributed("customer_id".into()),
            "staging",
            16384,
            "\"staging\".\"customers_dwr_tombstones\"",
            MergeOptions {
                row_audit,
                ..MergeOptions::default()
            },
        )
        .expect("plan merges on Citus")
    }

    impl CitusMergeSql {
        /// The SQL of the program's statement `name`.
        fn s(&self, name: &str) -> String {
            self.program
                .stmt(name)
                .unwrap_or_else(|| panic!("no statement {name}"))
                .sql
                .clone()
        }

        fn ph(&self, name: &str, p: Param) -> String {
            self.program
                .stmt(name)
                .and_then(|s| s.placeholder(p))
                .unwrap_or_else(|| panic!("{name} does not read {p:?}"))
        }
    }

    fn statements(m: &CitusMergeSql) -> Vec<String> {
        let mut all: Vec<String> = m.create.clone();
        all.push(m.drop_stale.clone());
        all.extend(m.program.stmts().iter().map(|s| s.sql.clone()));
        all
    }

    #[test]
    fn work_tables_are_co_located_on_the_key_part_that_distributes_production() {
        let m = sql(false);
        assert!(m.create[0].starts_with(
            "CREATE TABLE \"staging\".\"_dwr_work_16384\" AS SELECT t.\"region\" AS k1, t.\"customer_id\" AS k2"
        ));
        assert!(m.create[0].ends_with("WITH NO DATA"));
        assert_eq!(
            m.create[2],
            "SELECT pg_catalog.create_distributed_table('\"staging\".\"_dwr_work_16384\"', 'k2', colocate_with => '\"production\".\"customers\"')"
        );
        assert!(m.create[1].starts_with("CREATE INDEX ON") && m.create[1].ends_with("(k1, k2)"));
        assert!(m.create[3].contains("_dwr_attempts_16384"));
        assert!(
            m.s("clear").contains("_dwr_attempts_16384")
                && m.s("clear").contains("_dwr_work_16384")
        );
        assert_eq!(
            work_columns(&citus_plan()),
            vec![
                "region".to_string(),
                "customer_id".into(),
                "updated_at".into()
            ]
        );
    }

    #[test]
    fn every_join_is_on_the_whole_key_so_citus_pushes_it_down() {
        let m = sql(true);
        // the key comparisons every statement joins with: both key parts, production's operators
        assert!(m.s("fill_classified").contains(
            "t.\"region\" OPERATOR(\"pg_catalog\".=) s.\"REGION\" AND t.\"customer_id\" OPERATOR(\"pg_catalog\".=) s.\"CUSTOMER_ID\""
        ));
        assert!(m
            .s("apply_updates")
            .contains("t.\"customer_id\" OPERATOR(\"pg_catalog\".=) a.k2"));
        // no ctid, no temporary table, no row locks, no volatile function in a distributed write
        for stmt in statements(&m) {
            assert!(!stmt.contains("ctid"), "{stmt}");
            assert!(!stmt.contains("pg_temp"), "{stmt}");
            assert!(!stmt.contains("FOR UPDATE"), "{stmt}");
            assert!(
                !stmt.contains("clock_timestamp") && !stmt.contains("now()"),
                "{stmt}"
            );
        }
        // a STABLE function over columns only where Citus allows it: in INSERT ... SELECT
        for stmt in statements(&m) {
            if stmt.contains("to_jsonb") {
                assert!(stmt.starts_with("INSERT INTO"), "{stmt}");
            }
        }
    }

    #[test]
    fn an_update_writes_only_the_row_version_its_attempt_read() {
        let m = sql(false);
        assert!(m.s("record_updates").contains("t.xmin"));
        assert!(m
            .s("apply_updates")
            .contains("t.xmin OPERATOR(pg_catalog.=) a.seen"));
        // and what it could not write is deferred, per shard
        assert!(m
            .s("defer_updates")
            .contains("t.xmin OPERATOR(pg_catalog.=) a.xmin"));
        assert!(m
            .s("apply_inserts")
            .contains("ON CONFLICT ON CONSTRAINT \"customers_pkey\" DO NOTHING"));
        // identifiers quoted, values converted as planned
        assert!(m
            .s("apply_updates")
            .contains("\"weird \"\"col\"\"; DROP TABLE x\" = CAST(s.\"WEIRD\" AS integer)"));
        // no images without row audit
        assert!(m.s("record_updates").contains("NULL::pg_catalog.jsonb"));
        assert!(sql(true)
            .s("record_updates")
            .contains("pg_catalog.to_jsonb(t.*)"));
    }

    #[test]
    fn classification_reads_tombstones_and_window_from_parameters() {
        let m = sql(false);
        let fill = m.s("fill_classified");
        let ph = |p| m.ph("fill_classified", p);
        assert!(fill.contains(&format!(
            "d.deleted_at OPERATOR(pg_catalog.>=) {}::pg_catalog.timestamptz",
            ph(Param::Since)
        )));
        assert!(fill.contains(&format!(
            "{}::pg_catalog.timestamptz IS NULL",
            ph(Param::WindowStart)
        )));
        assert!(fill.contains(&format!("IS NULL THEN {} WHEN", ph(Param::NullVersion))));
        // the LOB guard of the local merge: a staged value reaching the open reload's limit
        let limit = ph(Param::LobLimit);
        let at_limit = format!(
            "pg_catalog.octet_length(s.\"NAME\") OPERATOR(pg_catalog.>=) {limit}::pg_catalog.int8 THEN 'name'"
        );
        assert!(fill.contains(&at_limit), "{fill}");
        assert!(
            fill.contains("END IS NOT NULL THEN 'error' WHEN t.\"region\" IS NOT NULL"),
            "{fill}"
        );
        assert!(m.s("write_statuses").contains(&format!(
            "\"_dwr_run_id\" = {}",
            m.ph("write_statuses", Param::RunId)
        )));
        // every ranged statement reads the step's rows, and only them
        for stmt in m.program.stmts() {
            if stmt.params.contains(&Param::FirstRow) {
                assert_eq!(
                    stmt.params,
                    vec![Param::FirstRow, Param::LastRow],
                    "{}",
                    stmt.name
                );
            }
        }
    }

    #[test]
    fn every_statement_of_the_citus_programs_is_qualified_and_bound_by_name() {
        use crate::sqlgen::tests::{assert_numbered_by_name, assert_qualified};
        for row_audit in [false, true] {
            for (batched, kind) in [(false, 0), (true, 0), (false, 1), (false, 2)] {
                let mut plan = citus_plan();
                (plan.changes, plan.absent) = (kind == 1, kind == 2);
                let m = merge_sql(
                    &plan,
                    &Placement::Distributed("customer_id".into()),
                    "staging",
                    16384,
                    "\"staging\".\"customers_dwr_tombstones\"",
                    MergeOptions {
                        row_audit,
                        batched,
                        ..MergeOptions::default()
                    },
                )
                .unwrap();
                for stmt in m.program.stmts() {
                    assert_qualified(&stmt.sql);
                    assert_numbered_by_name(stmt);
                }
            }
            let mut t = crate::catalog::fixtures::table_with_generated_column();
            t.oid = 42;
            let u = undo_sql(&t, &Placement::Distributed("id".into()), row_audit).unwrap();
            for stmt in u.program.stmts() {
                assert_qualified(&stmt.sql);
                assert_numbered_by_name(stmt);
            }
        }
    }

    /// The merge of `plan` made a change log's (`changes`) or deletes by absence, placed as `p`.
    fn deletes_sql(changes: bool, p: Placement) -> CitusMergeSql {
        let mut plan = citus_plan();
        (plan.changes, plan.absent) = (changes, !changes);
        merge_sql(
            &plan,
            &p,
            "staging",
            16384,
            "\"staging\".\"customers_dwr_tombstones\"",
            MergeOptions {
                row_audit: true,
                ..MergeOptions::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn a_replayed_log_removes_rows_still_as_read_and_tombstones_absent_keys() {
        let m = deletes_sql(true, Placement::Distributed("customer_id".into()));
        let fill = m.s("fill_classified");
        // a D: absent, removed unless production is newer, stale; the window filters no change
        assert!(fill.contains("WHEN pg_catalog.upper(s.\"_dwr_op\") OPERATOR(pg_catalog.=) 'D' THEN CASE WHEN NOT t.\"region\" IS NOT NULL THEN 'absent'"), "{fill}");
        assert!(fill.contains("THEN 'delete' ELSE 'stale' END"), "{fill}");
        assert!(!fill.contains("outside_window"), "{fill}");
        // the removal: recorded with the version read, removed while still as read, the rest deferred
        assert!(m.s("record_deletes").contains(".<=) w.v"));
        assert!(m.s("record_deletes").contains("pg_catalog.to_jsonb(t.*)"));
        assert!(m
            .s("apply_deletes")
            .contains("t.xmin OPERATOR(pg_catalog.=) a.seen"));
        assert!(m.s("defer_deletes").contains("NOT EXISTS"));
        assert!(m.s("tombstone_absent").starts_with(
            "INSERT INTO \"staging\".\"customers_dwr_tombstones\" (\"region\", \"customer_id\")"
        ));
        // a removed row's image has no after
        assert!(m
            .s("write_row_changes")
            .contains("CASE WHEN w.cls OPERATOR(pg_catalog.=) 'delete' THEN NULL"));
        // on a reference table, still as read is the version read
        let r = deletes_sql(true, Placement::Reference);
        assert!(r
            .s("apply_deletes")
            .contains("IS NOT DISTINCT FROM a.seen_version"));
    }

    #[test]
    fn deletes_by_absence_take_the_window_rows_staging_lacks() {
        let m = deletes_sql(false, Placement::Distributed("customer_id".into()));
        let fill = m.s("fill_absent");
        assert!(
            fill.contains("'delete' FROM \"production\".\"customers\" t"),
            "{fill}"
        );
        assert!(
            fill.contains("AND NOT EXISTS (SELECT FROM \"staging\".\"customers\" s WHERE"),
            "{fill}"
        );
        assert_eq!(
            m.program.stmt("fill_absent").unwrap().params,
            vec![Param::WindowStart, Param::WindowEnd]
        );
        // nothing staged is written: no inserts, updates or statuses
        for absent in [
            "apply_inserts",
            "apply_updates",
            "write_statuses",
            "fill_classified",
        ] {
            assert!(m.program.stmt(absent).is_none(), "{absent}");
        }
        assert!(m.program.stmt("apply_deletes").is_some());
    }

    #[test]
    fn a_batch_fills_only_its_key_range_and_shows_no_phases() {
        let batch = merge_sql(
            &citus_plan(),
            &Placement::Distributed("customer_id".into()),
            "staging",
            16384,
            "x",
            MergeOptions {
                batched: true,
                ..MergeOptions::default()
            },
        )
        .unwrap();
        let ph = |p| batch.ph("fill_classified", p);
        let range =
            crate::sqlgen::batch_range(&citus_plan(), &ph(Param::BatchLo), &ph(Param::BatchHi));
        assert!(batch
            .s("fill_classified")
            .ends_with(&format!(" AND {range}")));
        assert!(!batch
            .program
            .steps
            .iter()
            .any(|s| matches!(s, Step::Phase(_))));
        // a whole merge reads no bounds and shows its phases
        let whole = sql(false);
        assert!(!whole
            .s("fill_classified")
            .contains("::pg_catalog.text[] IS NULL"));
        assert!(whole
            .program
            .steps
            .iter()
            .any(|s| matches!(s, Step::Phase(_))));
    }

    #[test]
    fn staging_the_merge_cannot_join_on_the_shards_is_refused() {
        let mut plan = citus_plan();
        plan.staging_keys_unique = false;
        let e = check_plan(&plan).unwrap_err();
        assert_eq!(e.state.code(), "0A000");
        assert!(e.message.contains("could stage a key twice"));
        let mut plan = citus_plan();
        plan.keys[1].needs_cast = true;
        assert!(check_plan(&plan)
            .unwrap_err()
            .message
            .contains("other types"));
        let mut plan = citus_plan();
        plan.with_metadata = false;
        assert!(check_plan(&plan).is_err());
        // a distribution column outside the key
        let e = merge_sql(
            &citus_plan(),
            &Placement::Distributed("name".into()),
            "staging",
            1,
            "x",
            MergeOptions::default(),
        )
        .unwrap_err();
        assert!(e
            .message
            .contains("distribution column name is not in the primary key"));
    }

    #[test]
    fn a_reference_table_merges_through_reference_work_tables() {
        let m = merge_sql(
            &citus_plan(),
            &Placement::Reference,
            "staging",
            7,
            "x",
            MergeOptions::default(),
        )
        .unwrap();
        assert!(m.create[2].contains("create_reference_table"));
        assert!(m.create[5].contains("create_reference_table"));
    }

    #[test]
    fn undo_compares_images_in_insert_select_and_writes_by_key_and_xmin() {
        use crate::catalog::fixtures::*;
        let mut t = table_with_generated_column();
        t.oid = 42;
        let u = undo_sql(&t, &Placement::Distributed("id".into()), true).unwrap();
        let s = |name: &str| u.program.stmt(name).expect(name).sql.clone();
        assert!(u.create[2].contains("'\"p\".\"_dwr_undo_work_42\"', 'k1'"));
        assert!(u.create[4].ends_with("(\"id\")"));
        assert!(u.create[5].contains("'\"p\".\"_dwr_undo_before_42\"', 'id'"));
        assert!(s("classify_seen").starts_with("INSERT INTO"));
        assert!(
            s("classify_seen").contains("pg_catalog.to_jsonb(t.*) OPERATOR(pg_catalog.=) pg_catalog.to_jsonb(pg_catalog.jsonb_populate_record(NULL::\"p\".\"t\", w.after))")
        );
        assert!(s("apply_deletes").contains("t.xmin OPERATOR(pg_catalog.=) w.seen"));
        // the generated column is not restored, the others are, from the typed before image
        assert!(s("apply_restores").contains("SET \"name\" = b.\"name\" FROM"));
        assert!(!s("apply_restores").contains("\"g\" ="));
        // a removed row goes back, every column but the generated one, unless its key is back
        assert!(s("fill_work").contains("THEN 'reinsert' ELSE 'gone' END"));
        assert!(s("apply_reinserts").contains("(\"id\", \"name\") SELECT b.\"id\", b.\"name\""));
        assert!(s("apply_reinserts").ends_with("ON CONFLICT DO NOTHING"));
        assert!(s("mark_reinserted").contains("t.xmin OPERATOR(pg_catalog.=) x.xmin"));
        // the images read by the undone run's id, written by the undo run's, only with row audit
        assert_eq!(
            u.program.stmt("fill_work").unwrap().params,
            vec![Param::UndoneRun]
        );
        assert_eq!(
            u.program.stmt("write_row_changes").unwrap().params,
            vec![Param::RunId, Param::Target]
        );
        let plain = undo_sql(&t, &Placement::Distributed("id".into()), false).unwrap();
        assert!(!plain.program.has("write_row_changes"));
        let writes: Vec<String> = u.program.stmts().iter().map(|s| s.sql.clone()).collect();
        for stmt in u.create.iter().chain(&writes) {
            assert!(
                !stmt.contains("ctid") && !stmt.contains("FOR UPDATE") && !stmt.contains("pg_temp"),
                "{stmt}"
            );
            if stmt.contains("to_jsonb") || stmt.contains("jsonb_populate_record") {
                assert!(stmt.starts_with("INSERT INTO"), "{stmt}");
            }
        }
        assert!(undo_sql(&t, &Placement::Distributed("name".into()), true).is_err());
    }
}
