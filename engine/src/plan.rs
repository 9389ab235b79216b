//! Stage 2 of the data flow: from two catalog descriptions (production and staging) to a typed
//! merge plan, and the list of problems `dwr_verify` reports.
//!
//! Pure functions over [`Relation`]s: which staging column feeds which production column, how its
//! value converts, which columns are keys, which one is the version, what cannot work.

use crate::catalog::{CastContext, Casts, Column, Relation};
use crate::error::{DwrError, Result, SqlState};
use crate::ident::{display_ident, quote_ident};

/// The staging metadata columns; they never match a production column.
pub const META_STATUS: &str = "_dwr_status";
pub const META_LOADED_AT: &str = "_dwr_loaded_at";
pub const META_ERROR: &str = "_dwr_error";
pub const META_RUN_ID: &str = "_dwr_run_id";
pub const META_COLUMNS: [&str; 4] = [META_STATUS, META_LOADED_AT, META_ERROR, META_RUN_ID];
/// A replayed change log's copy (`dwr_replay`): the change's operation, as the log wrote it
/// (`I`, `U`, `D` as DMS writes; `c`, `u`, `d`, `r` as Debezium does; any case)
pub const CHANGE_OP: &str = "_dwr_op";
/// ... and its place in the log: 1 for the first change, by the log's order columns
pub const CHANGE_SEQ: &str = "_dwr_seq";

/// How a change log (`dwr_replay`) is read: its operation column and the columns that order its
/// changes.
#[derive(Debug, Clone)]
pub struct ChangeLog {
    pub operation: String,
    pub order_by: Vec<String>,
}

pub fn is_meta_column(name: &str) -> bool {
    META_COLUMNS.contains(&name)
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; nothing goes wrong.
    Info,
    /// The merge runs, but some rows may become `ERROR` rows or values may change on the way.
    Warning,
    /// The merge refuses to run.
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// What `dwr_verify` can find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemCode {
    NotATable,
    TemporaryTable,
    NoPrimaryKey,
    VersionMissingInProduction,
    VersionNotOrderable,
    KeyMissingInStaging,
    VersionMissingInStaging,
    MetadataMissing,
    AmbiguousName,
    NoCast,
    ExplicitCast,
    Narrowing,
    TruncationRisk,
    Lossy,
    NotNullWithoutValue,
    MissingInStaging,
    ExtraInStaging,
    MatchedByCase,
    GeneratedNotWritten,
    IdentityKeptOnUpdate,
}

impl ProblemCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::NotATable => "not_a_table",
            ProblemCode::TemporaryTable => "temporary_table",
            ProblemCode::NoPrimaryKey => "no_primary_key",
            ProblemCode::VersionMissingInProduction => "version_missing_in_production",
            ProblemCode::VersionNotOrderable => "version_not_orderable",
            ProblemCode::KeyMissingInStaging => "key_missing_in_staging",
            ProblemCode::VersionMissingInStaging => "version_missing_in_staging",
            ProblemCode::MetadataMissing => "metadata_missing",
            ProblemCode::AmbiguousName => "ambiguous_name",
            ProblemCode::NoCast => "no_cast",
            ProblemCode::ExplicitCast => "explicit_cast",
            ProblemCode::Narrowing => "narrowing",
            ProblemCode::TruncationRisk => "truncation_risk",
            ProblemCode::Lossy => "lossy",
            ProblemCode::NotNullWithoutValue => "not_null_without_value",
            ProblemCode::MissingInStaging => "missing_in_staging",
            ProblemCode::ExtraInStaging => "extra_in_staging",
            ProblemCode::MatchedByCase => "matched_by_case",
            ProblemCode::GeneratedNotWritten => "generated_not_written",
            ProblemCode::IdentityKeptOnUpdate => "identity_kept_on_update",
        }
    }

    fn severity(self) -> Severity {
        use ProblemCode::*;
        match self {
            NotATable
            | TemporaryTable
            | NoPrimaryKey
            | VersionMissingInProduction
            | VersionNotOrderable
            | KeyMissingInStaging
            | VersionMissingInStaging
            | MetadataMissing
            | AmbiguousName
            | NoCast => Severity::Error,
            ExplicitCast | Narrowing | TruncationRisk | Lossy | NotNullWithoutValue => {
                Severity::Warning
            }
            MissingInStaging | ExtraInStaging | MatchedByCase | GeneratedNotWritten
            | IdentityKeptOnUpdate => Severity::Info,
        }
    }

    fn sqlstate(self) -> SqlState {
        use ProblemCode::*;
        match self {
            NotATable => SqlState::WrongObjectType,
            TemporaryTable => SqlState::FeatureNotSupported,
            NoPrimaryKey | MetadataMissing => SqlState::ObjectNotInPrerequisiteState,
            VersionMissingInProduction | KeyMissingInStaging | VersionMissingInStaging => {
                SqlState::UndefinedColumn
            }
            VersionNotOrderable => SqlState::DatatypeMismatch,
            AmbiguousName => SqlState::AmbiguousColumn,
            NoCast => SqlState::CannotCoerce,
            _ => SqlState::FeatureNotSupported,
        }
    }
}

/// One finding of `dwr_verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// the production column's name (the staging column's when production has none; empty for the
    /// table as a whole)
    pub column: String,
    pub code: ProblemCode,
    pub severity: Severity,
    pub production_type: Option<String>,
    pub staging_type: Option<String>,
    pub detail: String,
}

/// How a staged value becomes a production value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// the same type: used as is
    Same,
    /// INSERT and UPDATE convert it themselves (and enforce the column's length or precision, so a
    /// value that does not fit is an error, never silently cut)
    Assign,
    /// only an explicit `CAST` converts it; a value that does not convert is a row error
    Explicit,
    /// no conversion exists
    Impossible,
}

/// A production column and the staging column that feeds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPair<'a> {
    pub target: &'a Column,
    pub staging: Option<&'a Column>,
    pub matched_by_case: bool,
    /// staging columns that match only case-insensitively, when there is more than one
    pub ambiguous: Vec<&'a str>,
}

/// Pair every production column with the staging column of the same name, or failing that the one
/// staging column whose name matches case-insensitively (Oracle's `CUSTOMER_ID`). Metadata columns
/// never match.
pub fn match_columns<'a>(target: &'a Relation, staging: &'a Relation) -> Vec<ColumnPair<'a>> {
    let candidates: Vec<&Column> = staging
        .columns
        .iter()
        .filter(|c| !is_meta_column(&c.name))
        .collect();
    target
        .columns
        .iter()
        .map(|t| {
            if let Some(s) = candidates.iter().find(|s| s.name == t.name) {
                return ColumnPair {
                    target: t,
                    staging: Some(s),
                    matched_by_case: false,
                    ambiguous: vec![],
                };
            }
            let folded = t.name.to_lowercase();
            let by_case: Vec<&Column> = candidates
                .iter()
                .copied()
                .filter(|s| s.name.to_lowercase() == folded)
                .collect();
            match by_case.len() {
                0 => ColumnPair {
                    target: t,
                    staging: None,
                    matched_by_case: false,
                    ambiguous: vec![],
                },
                1 => ColumnPair {
                    target: t,
                    staging: Some(by_case[0]),
                    matched_by_case: true,
                    ambiguous: vec![],
                },
                _ => ColumnPair {
                    target: t,
                    staging: None,
                    matched_by_case: false,
                    ambiguous: by_case.iter().map(|c| c.name.as_str()).collect(),
                },
            }
        })
        .collect()
}

const INTEGER_TYPES: [u32; 3] = [21, 23, 20];
const FRACTIONAL_TYPES: [u32; 3] = [700, 701, 1700];
const TIMESTAMP_TYPES: [u32; 2] = [1114, 1184];
const DATE_TYPE: u32 = 1082;
const NUMERIC_TYPE: u32 = 1700;

/// How the staged column converts into the production column.
pub fn conversion(staging: &Column, target: &Column, casts: &Casts) -> Conversion {
    match casts.context(staging.type_oid, target.type_oid) {
        CastContext::Same
            if staging.type_oid == target.type_oid && staging.typmod == target.typmod =>
        {
            Conversion::Same
        }
        CastContext::Same | CastContext::Implicit | CastContext::Assignment => Conversion::Assign,
        CastContext::Explicit => Conversion::Explicit,
        CastContext::None => Conversion::Impossible,
    }
}

/// Whether staging's column may not hold every value production's can: the loader had to cut
/// values (DMS truncates some types to the target's length) or reject rows. Same type with a
/// smaller modifier (`varchar(50)` for `varchar(100)`, `numeric(10,2)` for `numeric(12,2)`), or a
/// character type with a length limit for production's unlimited string.
fn truncates(staging: &Column, target: &Column) -> bool {
    const STRINGS: [u32; 3] = [25, 1043, 1042];
    let comparable = staging.type_oid == target.type_oid
        || (STRINGS.contains(&staging.type_oid) && STRINGS.contains(&target.type_oid));
    comparable && narrows(target, staging)
}

/// Whether the target's type modifier may not hold every value the staged column can hold.
fn narrows(staging: &Column, target: &Column) -> bool {
    if target.typmod < 0 {
        return false;
    }
    if staging.typmod < 0 {
        return true;
    }
    if target.type_oid == NUMERIC_TYPE && staging.type_oid == NUMERIC_TYPE {
        let (sp, ss) = (
            ((staging.typmod - 4) >> 16) & 0xffff,
            (staging.typmod - 4) & 0xffff,
        );
        let (tp, ts) = (
            ((target.typmod - 4) >> 16) & 0xffff,
            (target.typmod - 4) & 0xffff,
        );
        return sp - ss > tp - ts || ss > ts;
    }
    staging.typmod > target.typmod
}

fn loses_precision(staging: &Column, target: &Column) -> bool {
    (FRACTIONAL_TYPES.contains(&staging.type_oid) && INTEGER_TYPES.contains(&target.type_oid))
        || (TIMESTAMP_TYPES.contains(&staging.type_oid) && target.type_oid == DATE_TYPE)
}

/// The problems `dwr_verify` reports, in the order found.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(
        &mut self,
        column: &str,
        code: ProblemCode,
        production_type: Option<&str>,
        staging_type: Option<&str>,
        detail: String,
    ) {
        self.0.push(Problem {
            column: column.to_string(),
            code,
            severity: code.severity(),
            production_type: production_type.map(str::to_string),
            staging_type: staging_type.map(str::to_string),
            detail,
        })
    }

    /// What is wrong with the tables themselves: production's kind, persistence, key and version;
    /// staging's metadata. Returns production's key columns.
    fn tables<'a>(
        &mut self,
        target: &'a Relation,
        staging: &Relation,
        version_column: &str,
        with_metadata: bool,
    ) -> Vec<&'a str> {
        if !target.is_table() {
            self.push(
                "",
                ProblemCode::NotATable,
                None,
                None,
                format!("{} is {}, not a table", target.display(), target.a_kind()),
            );
        }
        if target.persistence == "t" {
            self.push(
                "",
                ProblemCode::TemporaryTable,
                None,
                None,
                format!("{} is a temporary table; its registration, staging table and delete tracking would outlive it", target.display()),
            );
        }
        let key: Vec<&str> = match &target.primary_key {
            Some(pk) => pk.columns.iter().map(String::as_str).collect(),
            None => {
                self.push(
                    "",
                    ProblemCode::NoPrimaryKey,
                    None,
                    None,
                    format!("{} has no primary key", target.display()),
                );
                vec![]
            }
        };
        match target.column(version_column) {
            None => self.push(
                version_column,
                ProblemCode::VersionMissingInProduction,
                None,
                None,
                format!(
                    "{} has no column {}",
                    target.display(),
                    display_ident(version_column)
                ),
            ),
            Some(v) if v.ordering_schema.is_none() => self.push(
                version_column,
                ProblemCode::VersionNotOrderable,
                Some(&v.type_name),
                None,
                format!(
                    "type {} has no ordering, so no version can be newer than another",
                    v.type_name
                ),
            ),
            Some(_) => {}
        }
        let missing_meta: Vec<&str> = META_COLUMNS
            .iter()
            .copied()
            .filter(|m| staging.column(m).is_none())
            .collect();
        if with_metadata && !missing_meta.is_empty() {
            self.push(
                "",
                ProblemCode::MetadataMissing,
                None,
                None,
                format!(
                    "{} lacks the metadata columns {}",
                    staging.display(),
                    missing_meta.join(", ")
                ),
            );
        }
        key
    }

    /// A production column staging lacks (`is_key`, `is_version`: its role).
    fn unstaged(&mut self, t: &Column, is_key: bool, is_version: bool) {
        if t.is_generated() {
            return;
        }
        let (code, detail) = if is_key {
            (
                ProblemCode::KeyMissingInStaging,
                "a primary key column must be staged",
            )
        } else if is_version {
            (
                ProblemCode::VersionMissingInStaging,
                "the version column must be staged",
            )
        } else if t.not_null && !t.has_default && !t.is_identity() {
            (
                ProblemCode::NotNullWithoutValue,
                "NOT NULL without a default: every insert of a staged row will fail",
            )
        } else {
            (
                ProblemCode::MissingInStaging,
                "keeps its value on update and takes its default on insert",
            )
        };
        self.push(&t.name, code, Some(&t.type_name), None, detail.to_string());
    }

    /// A production column and the staging column that feeds it.
    fn pair(&mut self, t: &Column, s: &Column, matched_by_case: bool, is_key: bool, casts: &Casts) {
        if matched_by_case {
            self.push(
                &t.name,
                ProblemCode::MatchedByCase,
                Some(&t.type_name),
                Some(&s.type_name),
                format!(
                    "staging column {} matches when case is ignored",
                    display_ident(&s.name)
                ),
            );
        }
        if t.is_generated() {
            self.push(
                &t.name,
                ProblemCode::GeneratedNotWritten,
                Some(&t.type_name),
                Some(&s.type_name),
                "a generated column is computed by production; the staged value is ignored"
                    .to_string(),
            );
            return;
        }
        if t.is_identity_always() && !is_key {
            self.push(
                &t.name,
                ProblemCode::IdentityKeptOnUpdate,
                Some(&t.type_name),
                Some(&s.type_name),
                "GENERATED ALWAYS identity: written on insert, kept on update".to_string(),
            );
        }
        self.types(t, s, casts);
    }

    /// How the staging column's values convert into production's type.
    fn types(&mut self, t: &Column, s: &Column, casts: &Casts) {
        let (code, detail) = match conversion(s, t, casts) {
            Conversion::Impossible => (
                ProblemCode::NoCast,
                format!("no conversion from {} to {} exists", s.type_name, t.type_name),
            ),
            Conversion::Explicit => (
                ProblemCode::ExplicitCast,
                format!(
                    "{} does not convert to {} by itself: the merge casts it, and a row whose value does not convert becomes an ERROR row",
                    s.type_name, t.type_name
                ),
            ),
            Conversion::Same | Conversion::Assign if loses_precision(s, t) => (
                ProblemCode::Lossy,
                if t.type_oid == DATE_TYPE {
                    format!("{} into {} drops the time of day", s.type_name, t.type_name)
                } else {
                    format!("{} into {} rounds away fractions", s.type_name, t.type_name)
                },
            ),
            Conversion::Same | Conversion::Assign if narrows(s, t) => (
                ProblemCode::Narrowing,
                format!(
                    "{} is narrower than {}: a value that does not fit becomes an ERROR row",
                    t.type_name, s.type_name
                ),
            ),
            Conversion::Same | Conversion::Assign if truncates(s, t) => (
                ProblemCode::TruncationRisk,
                format!(
                    "staging's {} is narrower than production's {}: the loader had to cut or reject longer values; compare the source before trusting this column",
                    s.type_name, t.type_name
                ),
            ),
            Conversion::Same | Conversion::Assign => return,
        };
        self.push(
            &t.name,
            code,
            Some(&t.type_name),
            Some(&s.type_name),
            detail,
        );
    }
}

/// Everything `dwr_verify` reports for this pair of tables, most severe first. `with_metadata`:
/// staging must carry the `_dwr_` columns (a registered staging table); a `source` table of
/// `dwr_merge(..., source =>)` need not.
pub fn verify(
    target: &Relation,
    staging: &Relation,
    casts: &Casts,
    version_column: &str,
    with_metadata: bool,
) -> Vec<Problem> {
    let mut problems = Problems::default();
    let key = problems.tables(target, staging, version_column, with_metadata);
    let pairs = match_columns(target, staging);
    for pair in &pairs {
        let t = pair.target;
        let is_key = key.contains(&t.name.as_str());
        if !pair.ambiguous.is_empty() {
            problems.push(
                &t.name,
                ProblemCode::AmbiguousName,
                Some(&t.type_name),
                None,
                format!(
                    "staging columns {} all match {} when case is ignored",
                    pair.ambiguous
                        .iter()
                        .map(|n| display_ident(n))
                        .collect::<Vec<_>>()
                        .join(", "),
                    display_ident(&t.name)
                ),
            );
            continue;
        }
        match pair.staging {
            None => problems.unstaged(t, is_key, t.name == version_column),
            Some(s) => problems.pair(t, s, pair.matched_by_case, is_key, casts),
        }
    }
    let matched: Vec<&str> = pairs
        .iter()
        .filter_map(|p| p.staging.map(|s| s.name.as_str()))
        .collect();
    for s in staging.columns.iter().filter(|c| !is_meta_column(&c.name)) {
        if !matched.contains(&s.name.as_str())
            && !pairs.iter().any(|p| p.ambiguous.contains(&s.name.as_str()))
        {
            problems.push(
                &s.name,
                ProblemCode::ExtraInStaging,
                None,
                Some(&s.type_name),
                format!(
                    "{} has no such column; the staged value is ignored",
                    target.display()
                ),
            );
        }
    }
    let mut problems = problems.0;
    problems.sort_by_key(|p| std::cmp::Reverse(p.severity));
    problems
}

/// A primary key column of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPart {
    pub target: String,
    pub staging: String,
    /// the production column's type without modifier: a cast to it never truncates
    pub base_type: String,
    /// whether the staged value needs an explicit `CAST(... AS base_type)` to compare with production
    pub needs_cast: bool,
    /// schema of the equality operator of the key's index
    pub eq_schema: String,
    /// the staging column's type without modifier (batches are cut in staging's own key order)
    pub staging_base_type: String,
    /// schema of the staging column type's default btree `<`; `None` when it has no ordering
    pub staging_ord_schema: Option<String>,
    /// schema of the production column type's default btree `<`; `None` when it has no ordering
    pub ord_schema: Option<String>,
}

/// The version column of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionPart {
    pub target: String,
    pub staging: String,
    pub base_type: String,
    pub needs_cast: bool,
    /// schema of the type's default btree `<`, `=`, `>`
    pub ord_schema: String,
    /// a date/time type, which a reload's time window can bound
    pub is_datetime: bool,
}

/// A non-key production column the merge writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueColumn {
    pub target: String,
    pub staging: String,
    pub base_type: String,
    pub conversion: Conversion,
    /// written on insert but never on update (a GENERATED ALWAYS identity column)
    pub insert_only: bool,
    /// production's column is one AWS DMS loads as a LOB (see `Column::is_lob_like`): how to
    /// measure a staged value in bytes, for the guard against values the loader truncated
    pub lob: Option<LobLength>,
}

/// How the merge measures a staged LOB value in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LobLength {
    /// `octet_length` of the staged value (a string or bytea)
    Direct,
    /// `octet_length` of its text form (json, jsonb, xml ...)
    AsText,
}

/// Everything needed to write the merge's SQL for one pair of tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    pub target: String,
    pub target_display: String,
    pub staging: String,
    pub staging_display: String,
    pub pk_constraint: String,
    pub keys: Vec<KeyPart>,
    pub version: VersionPart,
    pub values: Vec<ValueColumn>,
    /// the INSERT needs `OVERRIDING SYSTEM VALUE` (a GENERATED ALWAYS identity column is written)
    pub overriding_system_value: bool,
    /// staging carries the `_dwr_` metadata columns: read only `NEW` rows, write statuses back
    pub with_metadata: bool,
    /// staging's own primary key guarantees one staged row per production key (its key columns
    /// are among the staged key columns, with the production types and collations, no cast), so
    /// the merge need not look for duplicates
    pub staging_keys_unique: bool,
    /// staging's key columns have production's types and collations: staging's key order is
    /// production's, so a batch's key range bounds production's rows too
    pub key_order_shared: bool,
    /// staging is a change log's copy (`dwr_replay`, columns [`CHANGE_OP`] and [`CHANGE_SEQ`]): per
    /// key the last change decides, and a `D` removes production's row
    pub changes: bool,
    /// staging is the complete full load of the open reload's window: the run removes the
    /// production rows of the window whose key staging lacks (`dwr_delete_absent`) and merges
    /// nothing
    pub absent: bool,
}

impl MergePlan {
    /// The `_dwr_error` of a staged row whose version is NULL.
    pub fn null_version_message(&self) -> String {
        format!(
            "version column {} is NULL",
            crate::ident::display_ident(&self.version.staging)
        )
    }

    /// The `_dwr_error` of a staged row with a NULL key part.
    pub fn null_key_message(&self) -> String {
        format!(
            "primary key ({}) has a NULL value",
            self.keys
                .iter()
                .map(|k| crate::ident::display_ident(&k.staging))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Plan the merge of `staging` into `target`, or say why it cannot run.
pub fn plan_merge(
    target: &Relation,
    staging: &Relation,
    casts: &Casts,
    version_column: &str,
    with_metadata: bool,
) -> Result<MergePlan> {
    let problems = verify(target, staging, casts, version_column, with_metadata);
    if let Some(p) = problems.iter().find(|p| p.severity == Severity::Error) {
        return Err(problem_error(p, target, staging));
    }
    // verify found no error, so the key, the version column and their staging columns exist (a
    // missing one is a bug of verify)
    let pk = target
        .primary_key
        .as_ref()
        .ok_or_else(|| DwrError::bug("plan_merge: verified target without a primary key"))?;
    let pairs = match_columns(target, staging);
    let pair_of = |name: &str| {
        pairs
            .iter()
            .find(|p| p.target.name == name)
            .ok_or_else(|| DwrError::bug(format!("plan_merge: verified column {name} unmatched")))
    };
    fn staged<'a>(p: &ColumnPair<'a>) -> Result<&'a Column> {
        p.staging.ok_or_else(|| {
            DwrError::bug(format!(
                "plan_merge: verified column {} not staged",
                p.target.name
            ))
        })
    }

    let keys = pk
        .columns
        .iter()
        .zip(&pk.equality_schemas)
        .map(|(name, eq_schema)| {
            let p = pair_of(name)?;
            let s = staged(p)?;
            Ok(KeyPart {
                target: name.clone(),
                staging: s.name.clone(),
                base_type: p.target.base_type_name.clone(),
                needs_cast: s.type_oid != p.target.type_oid,
                eq_schema: eq_schema.clone(),
                staging_base_type: s.base_type_name.clone(),
                staging_ord_schema: s.ordering_schema.clone(),
                ord_schema: p.target.ordering_schema.clone(),
            })
        })
        .collect::<Result<Vec<KeyPart>>>()?;
    let mut key_order_shared = true;
    for name in &pk.columns {
        let p = pair_of(name)?;
        let s = staged(p)?;
        key_order_shared &= s.type_oid == p.target.type_oid && s.collation == p.target.collation;
    }
    let staging_keys_unique = key_order_shared
        && staging.primary_key.as_ref().is_some_and(|spk| {
            spk.columns
                .iter()
                .all(|c| keys.iter().any(|k| &k.staging == c))
        });
    let v = pair_of(version_column)?;
    let vs = staged(v)?;
    let version = VersionPart {
        target: v.target.name.clone(),
        staging: vs.name.clone(),
        base_type: v.target.base_type_name.clone(),
        needs_cast: vs.type_oid != v.target.type_oid,
        ord_schema: v.target.ordering_schema.clone().ok_or_else(|| {
            DwrError::bug(format!(
                "plan_merge: verified version column {version_column} without ordering"
            ))
        })?,
        is_datetime: v.target.type_category == "D",
    };
    let values: Vec<ValueColumn> = pairs
        .iter()
        .filter(|p| !pk.columns.contains(&p.target.name) && p.target.name != version_column)
        .filter(|p| !p.target.is_generated())
        .filter_map(|p| {
            p.staging.map(|s| ValueColumn {
                target: p.target.name.clone(),
                staging: s.name.clone(),
                base_type: p.target.base_type_name.clone(),
                conversion: conversion(s, p.target, casts),
                insert_only: p.target.is_identity_always(),
                lob: p
                    .target
                    .is_lob_like()
                    .then_some(if s.is_measured_directly() {
                        LobLength::Direct
                    } else {
                        LobLength::AsText
                    }),
            })
        })
        .collect();
    let overriding_system_value = pairs
        .iter()
        .any(|p| p.staging.is_some() && p.target.is_identity_always() && !p.target.is_generated());
    Ok(MergePlan {
        target: target.quoted(),
        target_display: target.display(),
        staging: staging.quoted(),
        staging_display: staging.display(),
        pk_constraint: quote_ident(&pk.name),
        keys,
        version,
        values,
        overriding_system_value,
        with_metadata,
        staging_keys_unique,
        key_order_shared,
        changes: false,
        absent: false,
    })
}

fn problem_error(p: &Problem, target: &Relation, staging: &Relation) -> DwrError {
    let table = target.display();
    let (message, hint) = match p.code {
        ProblemCode::NotATable => (
            format!("{table} is not a table"),
            "dms_window_reload merges into ordinary and partitioned tables; name the table the view or foreign table reads from.".to_string(),
        ),
        ProblemCode::TemporaryTable => (
            format!("{table} is a temporary table"),
            "Reload into a permanent table.".to_string(),
        ),
        ProblemCode::NoPrimaryKey => (
            format!("table {table} has no primary key"),
            format!("Rows are matched on the primary key: add one with ALTER TABLE {table} ADD PRIMARY KEY (...)."),
        ),
        ProblemCode::VersionMissingInProduction => (
            format!("version column {} does not exist in {table}", display_ident(&p.column)),
            "Name the version column when registering: dwr_create_staging(target, version_column => '...').".to_string(),
        ),
        ProblemCode::VersionNotOrderable => (
            format!("version column {} of {table} cannot be ordered", display_ident(&p.column)),
            "Use a column of an ordered type (timestamp, bigint, numeric) as the version column.".to_string(),
        ),
        ProblemCode::KeyMissingInStaging => (
            format!("primary key column {} of {table} is missing in staging table {}", display_ident(&p.column), staging.display()),
            "Load the key columns into staging, or re-create staging with dwr_create_staging.".to_string(),
        ),
        ProblemCode::VersionMissingInStaging => (
            format!("version column {} of {table} is missing in staging table {}", display_ident(&p.column), staging.display()),
            "Load the version column into staging, or re-create staging with dwr_create_staging.".to_string(),
        ),
        ProblemCode::MetadataMissing => (
            format!("staging table {} lacks the dms_window_reload metadata columns", staging.display()),
            format!("Run SELECT dwr_create_staging('{table}') to adopt the existing staging table."),
        ),
        ProblemCode::AmbiguousName => (
            format!("column {} of {table} matches several staging columns", display_ident(&p.column)),
            "Rename or drop all but one of the staging columns.".to_string(),
        ),
        ProblemCode::NoCast => (
            format!("staging column for {} of {table} cannot be converted", display_ident(&p.column)),
            format!("Change the staging column to type {} (see SELECT * FROM dwr_verify('{table}')).", p.production_type.as_deref().unwrap_or("?")),
        ),
        _ => (p.detail.clone(), String::new()),
    };
    let mut e = DwrError::new(p.code.sqlstate(), message).detail(p.detail.clone());
    if !hint.is_empty() {
        e = e.hint(hint);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::fixtures::*;
    use crate::catalog::{CastContext, CastInfo};

    fn meta() -> Vec<Column> {
        vec![
            col(META_STATUS, TEXT, "text"),
            col(META_LOADED_AT, 1184, "timestamp with time zone"),
            col(META_ERROR, TEXT, "text"),
            col(META_RUN_ID, INT8, "bigint"),
        ]
    }

    fn customers() -> Relation {
        table(
            "production",
            "customers",
            vec![
                col("customer_id", INT4, "integer"),
                col("name", VARCHAR, "character varying(100)"),
                col("updated_at", TIMESTAMP, "timestamp without time zone"),
            ],
            &["customer_id"],
        )
    }

    fn casts() -> Casts {
        let c = |source, target, context| CastInfo {
            source,
            target,
            context,
        };
        Casts(vec![
            c(NUMERIC, INT4, CastContext::Assignment),
            c(TEXT, INT4, CastContext::Explicit),
            c(VARCHAR, VARCHAR, CastContext::Same),
            c(TEXT, TIMESTAMP, CastContext::Explicit),
        ])
    }

    fn dms_staging() -> Relation {
        let mut cols = vec![
            col("CUSTOMER_ID", NUMERIC, "numeric"),
            col("NAME", VARCHAR, "character varying(200)"),
            col("UPDATED_AT", TIMESTAMP, "timestamp without time zone"),
        ];
        cols.extend(meta());
        table("staging", "customers", cols, &[])
    }

    #[test]
    fn oracle_upper_case_columns_match_and_convert() {
        let plan = plan_merge(&customers(), &dms_staging(), &casts(), "updated_at", true).unwrap();
        assert_eq!(plan.keys.len(), 1);
        assert_eq!(plan.keys[0].staging, "CUSTOMER_ID");
        assert!(plan.keys[0].needs_cast, "numeric key compared as integer");
        assert_eq!(plan.version.staging, "UPDATED_AT");
        assert!(!plan.version.needs_cast);
        assert_eq!(plan.values.len(), 1);
        assert_eq!(
            plan.values[0].conversion,
            Conversion::Assign,
            "varchar(200) -> varchar(100) is assigned"
        );
        assert_eq!(plan.pk_constraint, "\"customers_pkey\"");
    }

    #[test]
    fn staging_keys_are_unique_only_when_staging_own_key_proves_it() {
        let mut staging = dms_staging();
        staging.columns[0] = col("CUSTOMER_ID", INT4, "integer");
        let unique = |s: &Relation| {
            plan_merge(&customers(), s, &casts(), "updated_at", true)
                .unwrap()
                .staging_keys_unique
        };
        assert!(
            !unique(&staging),
            "no primary key on staging: duplicates possible"
        );
        assert!(
            plan_merge(&customers(), &staging, &casts(), "updated_at", true)
                .unwrap()
                .key_order_shared,
            "same type: staging's key order is production's"
        );
        assert!(
            !plan_merge(&customers(), &dms_staging(), &casts(), "updated_at", true)
                .unwrap()
                .key_order_shared,
            "numeric staged for an integer key: another order"
        );
        staging.primary_key = customers().primary_key.map(|mut pk| {
            pk.columns = vec!["CUSTOMER_ID".into()];
            pk
        });
        assert!(unique(&staging));
        // a key that needs a cast: '01' and '1' are two staged keys and one production key
        staging.columns[0] = col("CUSTOMER_ID", NUMERIC, "numeric");
        assert!(!unique(&staging));
        // a key over a column that is not part of production's key proves nothing
        staging.columns[0] = col("CUSTOMER_ID", INT4, "integer");
        staging.primary_key.as_mut().unwrap().columns = vec!["CUSTOMER_ID".into(), "NAME".into()];
        assert!(!unique(&staging));
    }

    #[test]
    fn text_keys_need_the_same_collation_to_be_unique() {
        let mut target = customers();
        target.columns[0] = col("customer_id", TEXT, "text");
        let mut staging = dms_staging();
        staging.columns[0] = col("CUSTOMER_ID", TEXT, "text");
        staging.primary_key = customers().primary_key.map(|mut pk| {
            pk.columns = vec!["CUSTOMER_ID".into()];
            pk
        });
        let unique = |t: &Relation, s: &Relation| {
            plan_merge(t, s, &casts(), "updated_at", true)
                .unwrap()
                .staging_keys_unique
        };
        assert!(unique(&target, &staging));
        // production compares case-insensitively, staging did not: 'A' and 'a' are one key
        target.columns[0].collation = 12345;
        assert!(!unique(&target, &staging));
    }

    #[test]
    fn verify_reports_case_matches_and_narrowing_as_non_errors() {
        let problems = verify(&customers(), &dms_staging(), &casts(), "updated_at", true);
        let codes: Vec<_> = problems
            .iter()
            .map(|p| (p.column.as_str(), p.code))
            .collect();
        assert!(
            codes.contains(&("name", ProblemCode::Narrowing)),
            "{codes:?}"
        );
        assert!(codes.contains(&("customer_id", ProblemCode::MatchedByCase)));
        assert!(
            codes.contains(&("customer_id", ProblemCode::Lossy)),
            "numeric into integer rounds"
        );
        assert!(
            problems.iter().all(|p| p.severity != Severity::Error),
            "{problems:?}"
        );
    }

    #[test]
    fn text_into_integer_is_a_warning_and_point_into_integer_an_error() {
        let mut staging = dms_staging();
        staging.columns[0] = col("CUSTOMER_ID", TEXT, "text");
        let problems = verify(&customers(), &staging, &casts(), "updated_at", true);
        let p = problems
            .iter()
            .find(|p| p.code == ProblemCode::ExplicitCast)
            .unwrap();
        assert_eq!(p.severity, Severity::Warning);
        assert_eq!(p.staging_type.as_deref(), Some("text"));

        staging.columns[0] = col("CUSTOMER_ID", 600, "point");
        let err = plan_merge(&customers(), &staging, &casts(), "updated_at", true).unwrap_err();
        assert_eq!(err.state, SqlState::CannotCoerce);
        assert!(err.message.contains("customer_id"), "{}", err.message);
    }

    #[test]
    fn no_primary_key_is_a_clear_error() {
        let mut t = customers();
        t.primary_key = None;
        let err = plan_merge(&t, &dms_staging(), &casts(), "updated_at", true).unwrap_err();
        assert_eq!(err.state, SqlState::ObjectNotInPrerequisiteState);
        assert_eq!(err.message, "table production.customers has no primary key");
        assert!(err.hint.unwrap().contains("ADD PRIMARY KEY"));
    }

    #[test]
    fn missing_version_column_names_it() {
        let err = plan_merge(&customers(), &dms_staging(), &casts(), "modified", true).unwrap_err();
        assert_eq!(err.state, SqlState::UndefinedColumn);
        assert!(err.message.contains("modified"));
    }

    #[test]
    fn unorderable_version_column_is_refused() {
        let mut t = customers();
        t.columns.push(col("doc", JSON, "json"));
        let mut s = dms_staging();
        s.columns.push(col("doc", JSON, "json"));
        let err = plan_merge(&t, &s, &casts(), "doc", true).unwrap_err();
        assert_eq!(err.state, SqlState::DatatypeMismatch);
    }

    #[test]
    fn key_missing_in_staging_is_refused_and_other_columns_are_optional() {
        let mut s = dms_staging();
        s.columns.retain(|c| c.name != "NAME");
        let plan = plan_merge(&customers(), &s, &casts(), "updated_at", true).unwrap();
        assert!(plan.values.is_empty(), "name keeps its value: not written");
        s.columns.retain(|c| c.name != "CUSTOMER_ID");
        let err = plan_merge(&customers(), &s, &casts(), "updated_at", true).unwrap_err();
        assert_eq!(err.state, SqlState::UndefinedColumn);
    }

    #[test]
    fn ambiguous_case_insensitive_names_are_refused() {
        let mut s = dms_staging();
        s.columns
            .push(col("Name", VARCHAR, "character varying(200)"));
        let problems = verify(&customers(), &s, &casts(), "updated_at", true);
        assert!(problems
            .iter()
            .any(|p| p.code == ProblemCode::AmbiguousName));
        // an exact match wins over case-insensitive ones
        s.columns
            .push(col("name", VARCHAR, "character varying(100)"));
        assert!(plan_merge(&customers(), &s, &casts(), "updated_at", true).is_ok());
    }

    #[test]
    fn generated_columns_are_never_written_and_identity_always_is_insert_only() {
        let mut t = customers();
        let mut g = col("name_upper", TEXT, "text");
        g.generated = "s".into();
        t.columns.push(g);
        let mut ident = col("seq_no", INT8, "bigint");
        ident.identity = "a".into();
        t.columns.push(ident);
        let mut s = dms_staging();
        s.columns.push(col("name_upper", TEXT, "text"));
        s.columns.push(col("seq_no", INT8, "bigint"));
        let plan = plan_merge(&t, &s, &casts(), "updated_at", true).unwrap();
        assert!(plan.values.iter().all(|v| v.target != "name_upper"));
        let seq = plan.values.iter().find(|v| v.target == "seq_no").unwrap();
        assert!(seq.insert_only);
        assert!(plan.overriding_system_value);
    }

    #[test]
    fn metadata_columns_are_required_and_never_matched() {
        let mut s = dms_staging();
        s.columns.retain(|c| c.name != META_RUN_ID);
        let err = plan_merge(&customers(), &s, &casts(), "updated_at", true).unwrap_err();
        assert_eq!(err.state, SqlState::ObjectNotInPrerequisiteState);
        assert!(err.hint.unwrap().contains("dwr_create_staging"));
        let mut t = customers();
        t.columns.push(col(META_STATUS, TEXT, "text"));
        let staged = dms_staging();
        let pairs = match_columns(&t, &staged);
        assert!(pairs
            .iter()
            .find(|p| p.target.name == META_STATUS)
            .unwrap()
            .staging
            .is_none());
    }

    #[test]
    fn views_are_not_tables() {
        let mut t = customers();
        t.relkind = "v".into();
        let err = plan_merge(&t, &dms_staging(), &casts(), "updated_at", true).unwrap_err();
        assert_eq!(err.state, SqlState::WrongObjectType);
        assert!(err.detail.unwrap().contains("view"));
    }

    #[test]
    fn staging_narrower_than_production_is_a_truncation_risk() {
        let mut s = col("name", VARCHAR, "character varying(50)");
        let mut t = col("name", VARCHAR, "character varying(100)");
        s.typmod = 50 + 4;
        t.typmod = 100 + 4;
        assert!(truncates(&s, &t));
        assert!(
            !truncates(&t, &s),
            "wider staging is narrowing, the other way"
        );
        // an unlimited production string staged with a length limit
        let text = col("name", TEXT, "text");
        assert!(truncates(&s, &text));
        assert!(!truncates(&text, &s));
        // numeric(10,2) staged for numeric(12,2); not for an integer production column
        let mut sn = col("amount", NUMERIC, "numeric(10,2)");
        let mut tn = col("amount", NUMERIC, "numeric(12,2)");
        sn.typmod = ((10 << 16) | 2) + 4;
        tn.typmod = ((12 << 16) | 2) + 4;
        assert!(truncates(&sn, &tn));
        assert!(!truncates(&sn, &col("amount", INT4, "integer")));
    }

    #[test]
    fn numeric_narrowing_compares_precision_and_scale() {
        let mut s = col("x", NUMERIC, "numeric(12,2)");
        let mut t = col("x", NUMERIC, "numeric(10,2)");
        s.typmod = ((12 << 16) | 2) + 4;
        t.typmod = ((10 << 16) | 2) + 4;
        assert!(narrows(&s, &t));
        assert!(!narrows(&t, &s));
        s.typmod = ((10 << 16) | 3) + 4;
        assert!(narrows(&s, &t), "a smaller scale rounds");
    }
}
