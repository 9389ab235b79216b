//! The delete production never saw: a CDC `DELETE` by key that matched no row (the source deleted a
//! row that was inserted during the lost window, so production never had it) fires no row trigger,
//! yet the window's full load may hold that row, and a merge would bring it back. A SQL applier
//! that deletes by key, one statement per change (DMS's transactional apply), runs
//! `DELETE FROM t WHERE key = $1`; this module records such a statement's key as a tombstone when
//! it deleted nothing.
//!
//! Two parts: a `BEFORE DELETE FOR EACH STATEMENT` trigger on every registered local production
//! table (`dwr_record_missed_delete`, `ENABLE ALWAYS`, its arguments the primary key's columns),
//! written in C so that the first `DELETE` of a session loads this library, which arms the table for
//! the statement; and an `ExecutorEnd` hook that, for an armed `DELETE` that processed no row, reads
//! the key from the statement's plan: equality conditions on every key column with a constant or a
//! parameter (`WHERE id = 42`, `WHERE a = $1 AND b = $2`; more conditions may follow). A `DELETE`
//! of another shape (a join, `IN`, a range) records nothing. The tombstone is written as the
//! extension's owner, like the row trigger's.

use crate::exec::{self, execute};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgList};
use std::cell::RefCell;
use std::ffi::CStr;

/// The most armed statements kept: a statement that failed after its trigger fired leaves its entry
/// behind (an aborted statement never reaches `ExecutorEnd`); the oldest are dropped.
const MAX_ARMED: usize = 16;

thread_local! {
    /// The tables whose `DELETE` statements are running, with their key columns, innermost last.
    static ARMED: RefCell<Vec<(pg_sys::Oid, Vec<String>)>> = const { RefCell::new(Vec::new()) };
}

static mut PREV_EXECUTOR_END: pg_sys::ExecutorEnd_hook_type = None;

/// Install the `ExecutorEnd` hook (`_PG_init`).
pub fn init() {
    unsafe {
        PREV_EXECUTOR_END = pg_sys::ExecutorEnd_hook;
        pg_sys::ExecutorEnd_hook = Some(executor_end);
    }
}

/// `dwr._arm_missed_deletes()`: the statement trigger; arms its table with the key columns given
/// as its arguments.
#[pg_trigger(sql = false)]
fn dwr_arm_missed_deletes<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    let relid = trigger.relid()?;
    let keys = trigger.extra_args()?;
    ARMED.with(|a| {
        let mut a = a.borrow_mut();
        if a.len() >= MAX_ARMED {
            a.remove(0);
        }
        a.push((relid, keys));
    });
    Ok(None)
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_end(query: *mut pg_sys::QueryDesc) {
    if (*query).operation == pg_sys::CmdType::CMD_DELETE && ARMED.with(|a| !a.borrow().is_empty()) {
        record_missed_delete(query);
    }
    match PREV_EXECUTOR_END {
        Some(prev) => prev(query),
        None => pg_sys::standard_ExecutorEnd(query),
    }
}

/// A column of the scanned table and, as text, the value the statement compares it with.
struct KeyValue {
    column: String,
    text: String,
}

/// When `query`, a `DELETE` of an armed table, deleted nothing and names every key column with
/// `=`, record its key as a tombstone of that table.
unsafe fn record_missed_delete(query: *mut pg_sys::QueryDesc) {
    let stmt = (*query).plannedstmt;
    let plan = (*stmt).planTree;
    if plan.is_null() || (*plan).type_ != pg_sys::NodeTag::T_ModifyTable {
        return;
    }
    let modify = plan as *mut pg_sys::ModifyTable;
    let rtable = PgList::<pg_sys::RangeTblEntry>::from_pg((*stmt).rtable);
    let relid_of = |index: pg_sys::Index| -> Option<pg_sys::Oid> {
        rtable
            .get_ptr((index as usize).checked_sub(1)?)
            .map(|rte| (*rte).relid)
    };
    // the table the statement names: the partitioned root, or the table itself
    let results = PgList::<std::ffi::c_void>::from_pg((*modify).resultRelations);
    let named = if (*modify).rootRelation != 0 {
        relid_of((*modify).rootRelation)
    } else {
        results
            .get_int(0)
            .and_then(|i| relid_of(i as pg_sys::Index))
    };
    let Some(named) = named else { return };
    // this statement's arming, taken whatever it did
    let Some(keys) = ARMED.with(|a| {
        let mut a = a.borrow_mut();
        let at = a.iter().rposition(|(relid, _)| *relid == named)?;
        Some(a.remove(at).1)
    }) else {
        return;
    };
    let estate = (*query).estate;
    if estate.is_null() || (*estate).es_processed != 0 || keys.is_empty() {
        return;
    }
    let Some(values) = key_values((*modify).plan.lefttree, &rtable, (*query).params) else {
        return;
    };
    let mut row: Vec<&KeyValue> = Vec::with_capacity(keys.len());
    for k in &keys {
        match values.iter().find(|v| &v.column == k) {
            Some(v) => row.push(v),
            None => return, // not a delete by key
        }
    }
    // the applier's DELETE succeeded: a tombstone that cannot be written is a WARNING, never its
    // error (CDC must not stop on it)
    if let Err(e) = exec::subtransaction(|| write_tombstone(named, &keys, &row)) {
        pgrx::warning!(
            "dms_window_reload: the key of a DELETE that removed no row was not recorded: {}",
            e.message
        );
    }
}

/// The key columns' values of a scan's equality conditions, found under `plan` (through a
/// `Result` or an `Append` of one scan), or None for a scan of another kind.
unsafe fn key_values(
    mut plan: *mut pg_sys::Plan,
    rtable: &PgList<pg_sys::RangeTblEntry>,
    params: pg_sys::ParamListInfo,
) -> Option<Vec<KeyValue>> {
    loop {
        if plan.is_null() {
            return None;
        }
        match (*plan).type_ {
            pg_sys::NodeTag::T_Result => plan = (*plan).lefttree,
            pg_sys::NodeTag::T_Append => {
                let subs =
                    PgList::<pg_sys::Plan>::from_pg((*(plan as *mut pg_sys::Append)).appendplans);
                if subs.len() != 1 {
                    return None;
                }
                plan = subs.get_ptr(0)?;
            }
            _ => break,
        }
    }
    // (every scan node begins with a Scan)
    let scanrelid = (*(plan as *mut pg_sys::Scan)).scanrelid;
    let quals: Vec<*mut pg_sys::List> = match (*plan).type_ {
        pg_sys::NodeTag::T_IndexScan => {
            vec![
                (*(plan as *mut pg_sys::IndexScan)).indexqualorig,
                (*plan).qual,
            ]
        }
        pg_sys::NodeTag::T_BitmapHeapScan => {
            vec![
                (*(plan as *mut pg_sys::BitmapHeapScan)).bitmapqualorig,
                (*plan).qual,
            ]
        }
        pg_sys::NodeTag::T_SeqScan => vec![(*plan).qual],
        _ => return None,
    };
    let scanned = (*rtable.get_ptr((scanrelid as usize).checked_sub(1)?)?).relid;
    let mut values = Vec::new();
    for list in quals {
        for node in PgList::<pg_sys::Node>::from_pg(list).iter_ptr() {
            if let Some(v) = key_value(node, scanrelid, scanned, params) {
                values.push(v);
            }
        }
    }
    Some(values)
}

/// `column = value` (either way round), with `column` a column of the scanned table and `value` a
/// constant or a parameter that is not NULL.
unsafe fn key_value(
    node: *mut pg_sys::Node,
    scanrelid: pg_sys::Index,
    scanned: pg_sys::Oid,
    params: pg_sys::ParamListInfo,
) -> Option<KeyValue> {
    if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_OpExpr {
        return None;
    }
    let op = node as *mut pg_sys::OpExpr;
    let name = pg_sys::get_opname((*op).opno);
    if name.is_null() || CStr::from_ptr(name).to_bytes() != b"=" {
        return None;
    }
    let args = PgList::<pg_sys::Node>::from_pg((*op).args);
    if args.len() != 2 {
        return None;
    }
    let (a, b) = (strip(args.get_ptr(0)?), strip(args.get_ptr(1)?));
    let (var, value) = if is_column(a, scanrelid) {
        (a as *mut pg_sys::Var, b)
    } else if is_column(b, scanrelid) {
        (b as *mut pg_sys::Var, a)
    } else {
        return None;
    };
    let (typ, datum) = match (*value).type_ {
        pg_sys::NodeTag::T_Const => {
            let c = value as *mut pg_sys::Const;
            if (*c).constisnull {
                return None;
            }
            ((*c).consttype, (*c).constvalue)
        }
        pg_sys::NodeTag::T_Param => {
            let p = value as *mut pg_sys::Param;
            if (*p).paramkind != pg_sys::ParamKind::PARAM_EXTERN || params.is_null() {
                return None;
            }
            let (typ, datum, isnull) = extern_param(params, (*p).paramid)?;
            if isnull {
                return None;
            }
            (typ, datum)
        }
        _ => return None,
    };
    let column = pg_sys::get_attname(scanned, (*var).varattno, true);
    if column.is_null() {
        return None;
    }
    let mut output = pg_sys::Oid::INVALID;
    let mut varlena = false;
    pg_sys::getTypeOutputInfo(typ, &mut output, &mut varlena);
    let text = pg_sys::OidOutputFunctionCall(output, datum);
    Some(KeyValue {
        column: CStr::from_ptr(column).to_string_lossy().into_owned(),
        text: CStr::from_ptr(text).to_string_lossy().into_owned(),
    })
}

/// The node under any binary-compatible relabelling (`varchar` compared as `text`).
unsafe fn strip(mut node: *mut pg_sys::Node) -> *mut pg_sys::Node {
    while !node.is_null() && (*node).type_ == pg_sys::NodeTag::T_RelabelType {
        node = (*(node as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
    }
    node
}

unsafe fn is_column(node: *mut pg_sys::Node, scanrelid: pg_sys::Index) -> bool {
    if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_Var {
        return false;
    }
    let v = node as *mut pg_sys::Var;
    (*v).varno as pg_sys::Index == scanrelid && (*v).varlevelsup == 0 && (*v).varattno > 0
}

/// Parameter `id` (1-based) of the statement: its type, value and whether it is NULL.
unsafe fn extern_param(
    params: pg_sys::ParamListInfo,
    id: i32,
) -> Option<(pg_sys::Oid, pg_sys::Datum, bool)> {
    if id < 1 || id > (*params).numParams {
        return None;
    }
    let p: *mut pg_sys::ParamExternData = match (*params).paramFetch {
        Some(fetch) => {
            let mut workspace = pg_sys::ParamExternData::default();
            let p = fetch(params, id, false, &mut workspace);
            if p.is_null() {
                return None;
            }
            // (the workspace lives on this frame: copy out before it goes)
            return Some(((*p).ptype, (*p).value, (*p).isnull));
        }
        None => (*params).params.as_mut_ptr().add(id as usize - 1),
    };
    Some(((*p).ptype, (*p).value, (*p).isnull))
}

/// The tombstone of `target`'s key `row` (values as text, in `keys`' order), each value cast to its
/// column's type so that the key reads as the row trigger writes it (`to_jsonb` of the column).
fn write_tombstone(target: pg_sys::Oid, keys: &[String], row: &[&KeyValue]) {
    let casts: Vec<String> = (0..keys.len())
        .map(|i| {
            format!(
                "pg_catalog.to_jsonb(CAST(${} AS {}))",
                i + 2,
                exec::query_one::<String>(
                    "SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
                     WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2 \
                       AND NOT a.attisdropped",
                    &[target.into(), keys[i].as_str().into()],
                )
                .unwrap_or_else(|| "pg_catalog.text".to_string())
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO dwr.tombstones (target, key) VALUES ($1, pg_catalog.jsonb_build_array({}))",
        casts.join(", ")
    );
    let mut args: Vec<DatumWithOid> = vec![target.into()];
    args.extend(row.iter().map(|v| DatumWithOid::from(v.text.as_str())));
    exec::as_role(exec::extension_owner(), || execute(&sql, &args));
}
