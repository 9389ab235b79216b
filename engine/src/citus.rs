//! Citus: what kind of Citus table a relation is, and what this version does with it.
//!
//! The merge joins staging and production to a temporary work table on the server that runs it.
//! On a Citus coordinator the shards of a distributed or reference table live on the workers, which
//! cannot see that temporary table (and Citus refuses the merge's `ctid` joins and multi-shard
//! `FOR UPDATE`). Until the merge is pushed down to the shards, such tables are refused up front
//! with a clear error rather than failing halfway; tables Citus does not manage (plain tables on
//! the coordinator) merge as on a single server.

use crate::error::{DwrError, SqlState};

/// Whether Citus's catalog exists in this database (`CITUS_KIND_SQL` may only run then).
pub const HAS_CITUS_SQL: &str =
    "SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL";

/// `$1` (oid): the Citus kind of a relation (`distributed`, `reference`, `local`), no row when
/// Citus does not manage it.
pub const CITUS_KIND_SQL: &str = "SELECT CASE WHEN p.partmethod OPERATOR(pg_catalog.<>) 'n' THEN 'distributed' \
     WHEN p.repmodel OPERATOR(pg_catalog.=) 't' THEN 'reference' ELSE 'local' END \
     FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass";

/// The refusal of a Citus-managed table: `role` is "production" or "staging", `kind` what
/// `CITUS_KIND_SQL` said.
pub fn unsupported(table: &str, role: &str, kind: &str) -> DwrError {
    let what = match kind {
        "local" => "a Citus local table (added to Citus's metadata)".to_string(),
        other => format!("a Citus {other} table"),
    };
    DwrError::new(
        SqlState::FeatureNotSupported,
        format!("{role} table {table} is {what}, which this version cannot merge"),
    )
    .detail(
        "The merge joins staging and production to a temporary work table on this server; the \
         workers that hold the shards cannot see it.",
    )
    .hint(
        "Reload tables that Citus does not manage (plain tables on the coordinator merge as on a \
         single server); see README, \"Citus\".",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_table_and_kind() {
        let e = unsupported("production.customers", "production", "distributed");
        assert_eq!(e.state.code(), "0A000");
        assert!(e
            .message
            .contains("production.customers is a Citus distributed table"));
        let e = unsupported("staging.customers", "staging", "local");
        assert!(e.message.contains("Citus local table"));
        assert!(e.hint.is_some() && e.detail.is_some());
    }
}
