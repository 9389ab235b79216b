//! Stage 1 of the data flow: what the catalog says about a relation.
//!
//! The SQL that reads the catalog lives in `engine/sql/*.sql`, is run by whoever has a connection
//! (the extension through SPI, a command-line tool through a client library) and returns one jsonb
//! document, parsed here into typed structs. Nothing here talks to a server.

use crate::error::{DwrError, Result, SqlState};
use crate::ident::{display_qualified, quote_qualified};
use serde::Deserialize;

/// Reads one relation: `$1` is its oid (bind as `oid`). Returns one text column holding a jsonb
/// document for [`Relation::from_json`], or no row when the oid names no relation.
pub const RELATION_SQL: &str = include_str!("../sql/relation.sql");

/// Classifies conversions between pairs of types: `$1` and `$2` are `oid[]` paired by position.
/// Returns one text column for [`CastInfo::list_from_json`].
pub const CASTS_SQL: &str = include_str!("../sql/casts.sql");

/// A column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Column {
    pub name: String,
    pub num: i32,
    pub type_oid: u32,
    /// `format_type(atttypid, atttypmod)`: `character varying(100)`, `numeric(10,2)`
    pub type_name: String,
    /// `format_type(atttypid, NULL)`: `character varying`, `numeric`; a cast to it never truncates
    pub base_type_name: String,
    pub typmod: i32,
    /// `pg_attribute.attcollation`: 0 for a type without collation
    #[serde(default)]
    pub collation: u32,
    /// `pg_type.typcategory` of the (domain's base) type: `N` numeric, `S` string, `D` date/time
    pub type_category: String,
    pub not_null: bool,
    pub has_default: bool,
    /// `pg_attribute.attgenerated`: empty, or `s` for a stored generated column
    pub generated: String,
    /// `pg_attribute.attidentity`: empty, `a` (ALWAYS) or `d` (BY DEFAULT)
    pub identity: String,
    /// schema of the type's default btree `<`; `None` when the type has no ordering
    pub ordering_schema: Option<String>,
}

impl Column {
    pub fn is_generated(&self) -> bool {
        !self.generated.is_empty()
    }

    pub fn is_identity_always(&self) -> bool {
        self.identity == "a"
    }

    pub fn is_identity(&self) -> bool {
        !self.identity.is_empty()
    }

    /// Whether AWS DMS moves its values as LOBs (and truncates them at `LobMaxSize` in limited LOB
    /// mode): text, varchar without a length, bytea, json, jsonb, xml.
    pub fn is_lob_like(&self) -> bool {
        const LOB_TYPES: [u32; 6] = [25, 1043, 17, 114, 3802, 142];
        LOB_TYPES.contains(&self.type_oid) && !(self.type_oid == 1043 && self.typmod >= 0)
    }

    /// Whether its values' length in bytes is `octet_length` of the value itself (a string or
    /// bytea), not of its text form.
    pub fn is_measured_directly(&self) -> bool {
        [25, 1043, 17, 1042].contains(&self.type_oid)
    }
}

/// A primary key: its constraint name, its columns in key order, and the schema of each column's
/// equality operator (from the operator classes of the key's index).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PrimaryKey {
    pub name: String,
    pub columns: Vec<String>,
    pub equality_schemas: Vec<String>,
}

/// A relation as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Relation {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// `pg_class.relkind`: `r` table, `p` partitioned table, `v` view, `f` foreign table, ...
    pub relkind: String,
    /// `pg_class.relpersistence`: `p` permanent, `u` unlogged, `t` temporary
    pub persistence: String,
    pub owner: String,
    pub owner_oid: u32,
    pub columns: Vec<Column>,
    pub primary_key: Option<PrimaryKey>,
}

impl Relation {
    /// Parse the document [`RELATION_SQL`] returns.
    pub fn from_json(json: &str) -> Result<Relation> {
        serde_json::from_str(json).map_err(|e| {
            DwrError::new(
                SqlState::FeatureNotSupported,
                format!("could not read the catalog description of a relation: {e}"),
            )
            .hint("This is a bug in dms_window_reload; please report it with the server version.")
        })
    }

    /// `"schema"."name"`, for SQL text.
    pub fn quoted(&self) -> String {
        quote_qualified(&self.schema, &self.name)
    }

    /// `schema.name`, for messages (a temporary table's schema as `pg_temp`, the name that works in
    /// any session, rather than the session's own `pg_temp_N`).
    pub fn display(&self) -> String {
        if self.persistence == "t" {
            return display_qualified("pg_temp", &self.name);
        }
        display_qualified(&self.schema, &self.name)
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// What kind of relation this is, in words, for messages.
    pub fn kind_name(&self) -> &'static str {
        kind_name_of(&self.relkind)
    }

    /// The kind with its article, for messages: "a view", "an index".
    pub fn a_kind(&self) -> String {
        a_kind_of(&self.relkind)
    }

    /// A table rows can be merged into: an ordinary or partitioned table.
    pub fn is_table(&self) -> bool {
        matches!(self.relkind.as_str(), "r" | "p")
    }
}

/// What kind of relation `pg_class.relkind` `relkind` is, in words, for messages.
pub fn kind_name_of(relkind: &str) -> &'static str {
    match relkind {
        "r" => "table",
        "p" => "partitioned table",
        "v" => "view",
        "m" => "materialized view",
        "f" => "foreign table",
        "S" => "sequence",
        "i" | "I" => "index",
        "c" => "composite type",
        "t" => "TOAST table",
        _ => "relation",
    }
}

/// [`kind_name_of`] with its article: "a view", "an index". The shared PL/pgSQL's `dwr._a_kind`
/// says the same (a test compares them), so both modes word a refusal alike.
pub fn a_kind_of(relkind: &str) -> String {
    let kind = kind_name_of(relkind);
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {kind}")
}

/// How a value of one type becomes another (see `engine/sql/casts.sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CastContext {
    Same,
    Implicit,
    Assignment,
    Explicit,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CastInfo {
    pub source: u32,
    pub target: u32,
    pub context: CastContext,
}

impl CastInfo {
    pub fn list_from_json(json: &str) -> Result<Vec<CastInfo>> {
        serde_json::from_str(json).map_err(|e| {
            DwrError::new(
                SqlState::FeatureNotSupported,
                format!("could not read the catalog's cast information: {e}"),
            )
        })
    }
}

/// The conversions a plan needs to know about: how each pair of (source type, target type) converts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Casts(pub Vec<CastInfo>);

impl Casts {
    /// The `$1`, `$2` of [`CASTS_SQL`]: the type of every staging column and of the production
    /// column of the same (or case-insensitively same) name, pair by pair.
    pub fn type_pairs(staging: &Relation, target: &Relation) -> (Vec<u32>, Vec<u32>) {
        let mut sources = Vec::new();
        let mut targets = Vec::new();
        for s in &staging.columns {
            for t in target
                .columns
                .iter()
                .filter(|t| t.name.to_lowercase() == s.name.to_lowercase())
            {
                sources.push(s.type_oid);
                targets.push(t.type_oid);
            }
        }
        (sources, targets)
    }

    pub fn context(&self, source: u32, target: u32) -> CastContext {
        if source == target {
            return CastContext::Same;
        }
        self.0
            .iter()
            .find(|c| c.source == source && c.target == target)
            .map(|c| c.context)
            .unwrap_or(CastContext::None)
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Hand-written catalog documents in the shape `relation.sql` returns, for unit tests.
    use super::*;

    pub const INT4: u32 = 23;
    pub const INT8: u32 = 20;
    pub const TEXT: u32 = 25;
    pub const VARCHAR: u32 = 1043;
    pub const NUMERIC: u32 = 1700;
    pub const TIMESTAMP: u32 = 1114;
    pub const JSON: u32 = 114;

    pub fn col(name: &str, type_oid: u32, type_name: &str) -> Column {
        let (base, category) = match type_oid {
            INT4 => ("integer", "N"),
            INT8 => ("bigint", "N"),
            TEXT => ("text", "S"),
            VARCHAR => ("character varying", "S"),
            NUMERIC => ("numeric", "N"),
            TIMESTAMP => ("timestamp without time zone", "D"),
            JSON => ("json", "U"),
            _ => (type_name, "U"),
        };
        let typmod = match type_name {
            "character varying(100)" => 104,
            "character varying(200)" => 204,
            _ => -1,
        };
        Column {
            name: name.into(),
            num: 0,
            type_oid,
            type_name: type_name.into(),
            base_type_name: base.into(),
            typmod,
            collation: if category == "S" { 100 } else { 0 },
            type_category: category.into(),
            not_null: false,
            has_default: false,
            generated: String::new(),
            identity: String::new(),
            ordering_schema: if type_oid == JSON {
                None
            } else {
                Some("pg_catalog".into())
            },
        }
    }

    /// `p.t (id integer PRIMARY KEY, name text, g integer GENERATED ALWAYS AS (...) STORED)`: the
    /// table the undo tests restore (a generated column is never written back).
    pub fn table_with_generated_column() -> Relation {
        let mut t = table(
            "p",
            "t",
            vec![
                col("id", INT4, "integer"),
                col("name", TEXT, "text"),
                col("g", INT4, "integer"),
            ],
            &["id"],
        );
        t.columns[2].generated = "s".into();
        t
    }

    /// The staging table `dwr_create_staging` makes for `target` in `schema`: its columns and key,
    /// and the metadata columns.
    pub fn staging_of(target: &Relation, schema: &str) -> Relation {
        let mut columns = target.columns.clone();
        for (n, t, name) in [
            ("_dwr_status", TEXT, "text"),
            ("_dwr_loaded_at", 1184, "timestamp with time zone"),
            ("_dwr_error", TEXT, "text"),
            ("_dwr_run_id", INT8, "bigint"),
        ] {
            columns.push(col(n, t, name));
        }
        let pk: Vec<&str> = target
            .primary_key
            .as_ref()
            .map(|k| k.columns.iter().map(String::as_str).collect())
            .unwrap_or_default();
        table(schema, &target.name, columns, &pk)
    }

    pub fn table(schema: &str, name: &str, columns: Vec<Column>, pk: &[&str]) -> Relation {
        let columns = columns
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                c.num = i as i32 + 1;
                c
            })
            .collect();
        Relation {
            oid: 16384,
            schema: schema.into(),
            name: name.into(),
            relkind: "r".into(),
            persistence: "p".into(),
            owner: "postgres".into(),
            owner_oid: 10,
            columns,
            primary_key: if pk.is_empty() {
                None
            } else {
                Some(PrimaryKey {
                    name: format!("{name}_pkey"),
                    columns: pk.iter().map(|s| s.to_string()).collect(),
                    equality_schemas: pk.iter().map(|_| "pg_catalog".to_string()).collect(),
                })
            },
        }
    }
}

#[cfg(test)]
mod tests {
    /// The relation kinds in words are the same in Rust and in the shared PL/pgSQL
    /// (`dwr._a_kind`, which the package's `dwr_create_staging` uses).
    #[test]
    fn kinds_read_the_same_in_rust_and_sql() {
        let script = include_str!("../../sql/shared.sql");
        let start = script
            .find("CREATE FUNCTION dwr._a_kind(")
            .expect("dwr._a_kind");
        let body = &script[start..start + script[start..].find("$$;").expect("its end")];
        for relkind in ["r", "p", "v", "m", "f", "S", "i", "I", "c", "t"] {
            let arm = format!("WHEN '{relkind}' THEN '{}'", a_kind_of(relkind));
            assert!(body.contains(&arm), "{arm}");
        }
        assert!(body.contains(&format!("ELSE '{}' END", a_kind_of("?"))));
    }

    use super::*;

    #[test]
    fn parses_the_document_relation_sql_returns() {
        let json = r#"{"oid": 16390, "schema": "production", "name": "customers", "relkind": "r",
            "persistence": "p", "owner": "postgres", "owner_oid": 10,
            "columns": [
              {"name": "customer_id", "num": 1, "type_oid": 23, "type_name": "integer",
               "base_type_name": "integer", "typmod": -1, "type_category": "N", "not_null": true,
               "has_default": false, "generated": "", "identity": "", "ordering_schema": "pg_catalog"},
              {"name": "doc", "num": 2, "type_oid": 114, "type_name": "json",
               "base_type_name": "json", "typmod": -1, "type_category": "U", "not_null": false,
               "has_default": false, "generated": "", "identity": "", "ordering_schema": null}],
            "primary_key": {"name": "customers_pkey", "columns": ["customer_id"],
                            "equality_schemas": ["pg_catalog"]}}"#;
        let r = Relation::from_json(json).unwrap();
        assert_eq!(r.quoted(), "\"production\".\"customers\"");
        assert_eq!(r.columns.len(), 2);
        assert_eq!(r.column("doc").unwrap().ordering_schema, None);
        assert_eq!(r.primary_key.unwrap().columns, vec!["customer_id"]);
    }

    #[test]
    fn bad_documents_are_errors_not_panics() {
        assert!(Relation::from_json("{").is_err());
        assert!(Relation::from_json("null").is_err());
        assert!(CastInfo::list_from_json("[{\"source\": 1}]").is_err());
    }

    #[test]
    fn cast_contexts() {
        let casts = CastInfo::list_from_json(
            r#"[{"source": 25, "target": 23, "context": "explicit"},
                {"source": 1700, "target": 23, "context": "assignment"}]"#,
        )
        .unwrap();
        let casts = Casts(casts);
        assert_eq!(casts.context(25, 23), CastContext::Explicit);
        assert_eq!(casts.context(1700, 23), CastContext::Assignment);
        assert_eq!(casts.context(23, 23), CastContext::Same);
        assert_eq!(casts.context(600, 23), CastContext::None);
    }
}
