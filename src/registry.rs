//! What the extension keeps about a production table across transactions: its registration
//! (`dwr.tables`) and the reload it is in (`dwr.reloads`). (Its tombstones: `tombstones`.)

use crate::exec::{self, query_one, query_rows, raise, OrBug};
use dwr_engine::{DwrError, SqlState};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;

/// A row of `dwr.tables`.
pub struct Registration {
    pub staging: pg_sys::Oid,
    pub version_column: String,
}

/// The registration of `target`, if any.
pub fn registration(target: pg_sys::Oid) -> Option<Registration> {
    query_rows(
        "SELECT staging::pg_catalog.oid, version_column::pg_catalog.text FROM dwr.tables \
         WHERE target OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
        &[target.into()],
        |row| Registration {
            staging: exec::col::<pg_sys::Oid>(row, 1).or_bug("staging is NOT NULL"),
            version_column: exec::col::<String>(row, 2).or_bug("version_column is NOT NULL"),
        },
    )
    .into_iter()
    .next()
}

/// Like [`registration`], raising 55000 with a hint when `target` is not registered.
pub fn registration_or_raise(target: pg_sys::Oid) -> Registration {
    registration(target).unwrap_or_else(|| {
        let name = exec::relation(target)
            .map(|r| r.display())
            .unwrap_or_else(|| format!("OID {}", target.to_u32()));
        raise(
            DwrError::new(
                SqlState::ObjectNotInPrerequisiteState,
                format!("table {name} has no registered staging table"),
            )
            .detail(format!("dwr.tables has no row for {name}."))
            .hint(format!(
                "Create or adopt its staging table first: SELECT dwr_create_staging('{name}');"
            )),
        )
    })
}

/// The open reload of a table, as a merge needs it.
pub struct OpenReload {
    pub reload_id: i64,
    pub window_start: TimestampWithTimeZone,
    pub window_end: TimestampWithTimeZone,
    /// the LobMaxSize (KB) its DMS task settings gave the loader, in limited LOB mode
    pub lob_max_kb: Option<i32>,
}

/// The open reload that includes `target`, if any.
pub fn open_reload(target: pg_sys::Oid) -> Option<OpenReload> {
    query_rows(
        "SELECT reload_id, window_start, window_end, lob_max_kb FROM dwr.reloads \
         WHERE ended_at IS NULL AND $1::pg_catalog.regclass OPERATOR(pg_catalog.=) ANY (targets)",
        &[target.into()],
        |row| OpenReload {
            reload_id: exec::col::<i64>(row, 1).or_bug("reload_id"),
            window_start: exec::col::<TimestampWithTimeZone>(row, 2).or_bug("window_start"),
            window_end: exec::col::<TimestampWithTimeZone>(row, 3).or_bug("window_end"),
            lob_max_kb: exec::col::<i32>(row, 4),
        },
    )
    .into_iter()
    .next()
}

/// From when deletes in `target` stop staged rows: when its open reload began, or else when its
/// staging table was created or last emptied (`dwr._deletes_count_since`, shared with the package).
pub fn deletes_count_since(target: pg_sys::Oid) -> TimestampWithTimeZone {
    exec::require_current_sql("dwr._deletes_count_since");
    query_one::<TimestampWithTimeZone>(
        "SELECT dwr._deletes_count_since($1::pg_catalog.oid::pg_catalog.regclass)",
        &[target.into()],
    )
    .unwrap_or_else(|| {
        raise(DwrError::new(
            SqlState::ObjectNotInPrerequisiteState,
            "table is not registered",
        ))
    })
}

/// The error of a reload id that names no reload (42704).
pub fn no_such_reload(id: i64) -> ! {
    raise(
        DwrError::new(
            SqlState::UndefinedObject,
            format!("reload {id} does not exist"),
        )
        .hint("See SELECT * FROM dwr.reloads;"),
    )
}
