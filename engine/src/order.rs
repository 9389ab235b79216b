//! The order `dwr_merge_all` merges tables in: parents before children, by the foreign keys among
//! the tables merged together.

use crate::error::{DwrError, Result, SqlState};
use std::collections::{BTreeMap, BTreeSet};

/// Order `tables` so that every parent comes before its children; `edges` are (child, parent)
/// pairs (a table referencing itself is no constraint). Ties go alphabetically, so the order is
/// stable. A cycle is an error that names its tables.
pub fn parents_first(tables: &[String], edges: &[(String, String)]) -> Result<Vec<String>> {
    let set: BTreeSet<&String> = tables.iter().collect();
    let mut parents: BTreeMap<&String, BTreeSet<&String>> =
        set.iter().map(|t| (*t, BTreeSet::new())).collect();
    for (child, parent) in edges {
        if child != parent && set.contains(child) && set.contains(parent) {
            parents.get_mut(child).expect("child in set").insert(parent);
        }
    }
    let mut done: Vec<String> = Vec::new();
    let mut left: BTreeSet<&String> = set.clone();
    while !left.is_empty() {
        let ready: Vec<&String> = left
            .iter()
            .copied()
            .filter(|t| parents[t].iter().all(|p| !left.contains(p)))
            .collect();
        if ready.is_empty() {
            let cycle: Vec<&str> = left.iter().map(|s| s.as_str()).collect();
            return Err(DwrError::new(
                SqlState::ObjectNotInPrerequisiteState,
                "the foreign keys among these tables form a cycle, so no table can be merged first",
            )
            .detail(format!("tables on or behind the cycle: {}", cycle.join(", ")))
            .hint("Merge them one by one with dwr_merge, in an order your data allows (or make one of the foreign keys DEFERRABLE INITIALLY DEFERRED)."));
        }
        for t in ready {
            left.remove(t);
            done.push(t.clone());
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn e(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parents_come_first() {
        let order = parents_first(
            &s(&["p.order_lines", "p.orders", "p.customers", "p.products"]),
            &e(&[
                ("p.orders", "p.customers"),
                ("p.order_lines", "p.orders"),
                ("p.order_lines", "p.products"),
            ]),
        )
        .unwrap();
        assert_eq!(
            order,
            s(&["p.customers", "p.products", "p.orders", "p.order_lines"])
        );
    }

    #[test]
    fn self_references_and_outside_tables_are_ignored() {
        let order = parents_first(
            &s(&["p.employees", "p.teams"]),
            &e(&[
                ("p.employees", "p.employees"),
                ("p.employees", "p.teams"),
                ("p.teams", "hr.companies"),
            ]),
        )
        .unwrap();
        assert_eq!(order, s(&["p.teams", "p.employees"]));
    }

    #[test]
    fn a_cycle_is_named() {
        let err = parents_first(
            &s(&["p.a", "p.b", "p.c"]),
            &e(&[("p.a", "p.b"), ("p.b", "p.a")]),
        )
        .unwrap_err();
        assert_eq!(err.state, SqlState::ObjectNotInPrerequisiteState);
        assert!(err.detail.unwrap().contains("p.a, p.b"));
    }
}
