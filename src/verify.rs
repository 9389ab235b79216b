//! `dwr_verify`: type and shape problems between production and its staging table.

use crate::exec::{self, query_rows, raise};
use crate::registry::registration_or_raise;
use dwr_engine::plan::{plan_merge, verify};
use dwr_engine::sqlgen::lob_verify_sql;
use dwr_engine::DwrError;
use pgrx::pg_sys;
use pgrx::prelude::*;

#[allow(clippy::type_complexity)] // pgrx reads the column names from this signature
#[pg_extern(sql = false)]
fn dwr_verify(
    target: Option<pg_sys::Oid>,
) -> TableIterator<
    'static,
    (
        name!(column_name, String),
        name!(problem, String),
        name!(production_type, Option<String>),
        name!(staging_type, Option<String>),
        name!(severity, String),
        name!(detail, String),
    ),
> {
    let target = target.unwrap_or_else(|| raise(DwrError::null_argument("dwr_verify", "target")));
    let reg = registration_or_raise(target);
    let t = exec::relation_or_raise(target, "table");
    let s = exec::relation_or_raise(reg.staging, "staging table");
    let casts = exec::casts_between(&s, &t);
    let mut rows: Vec<_> = verify(&t, &s, &casts, &reg.version_column, true)
        .into_iter()
        .map(|p| {
            (
                p.column,
                p.code.as_str().to_string(),
                p.production_type,
                p.staging_type,
                p.severity.as_str().to_string(),
                p.detail,
            )
        })
        .collect();
    // staged values at the open reload's LOB limit: the rows the merge will mark ERROR
    let plan = plan_merge(&t, &s, &casts, &reg.version_column, true).ok();
    if let Some(q) = plan.as_ref().and_then(lob_verify_sql) {
        rows.extend(exec::without_jit(|| {
            query_rows(&q.sql, &[target.into()], |row| {
                (
                    exec::col::<String>(row, 1).unwrap_or_default(),
                    exec::col::<String>(row, 2).unwrap_or_default(),
                    exec::col::<String>(row, 3),
                    exec::col::<String>(row, 4),
                    exec::col::<String>(row, 5).unwrap_or_default(),
                    exec::col::<String>(row, 6).unwrap_or_default(),
                )
            })
        }));
    }
    TableIterator::new(rows)
}
