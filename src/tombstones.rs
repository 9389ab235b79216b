//! The tombstones of a registered table (`dwr.tombstones`, and on Citus beside staging): written by
//! the delete-tracking triggers (and `missed_deletes`), read by the merge, pruned here and nowhere
//! else.

use crate::exec::{self, as_role, execute, query_one};
use crate::registry::registration;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;

/// Delete the tombstones of `target` that neither its staging table nor an open reload can need:
/// those older than both when staging was created or last emptied and when its open reload began.
pub fn prune_tombstones(target: pg_sys::Oid) {
    // (the cutoff is the shared dwr._tombstone_cutoff, which the package's pruning asks too)
    exec::require_current_sql("dwr._tombstone_cutoff");
    let cutoff = query_one::<TimestampWithTimeZone>(
        "SELECT dwr._tombstone_cutoff($1::pg_catalog.oid)",
        &[target.into()],
    );
    let Some(cutoff) = cutoff else { return };
    as_role(exec::extension_owner(), || {
        execute(
            "DELETE FROM dwr.tombstones tb WHERE tb.target OPERATOR(pg_catalog.=) $1 \
             AND tb.deleted_at OPERATOR(pg_catalog.<) $2",
            &[target.into(), cutoff.into()],
        );
    });
    // and those kept beside staging (a Citus table's, on the shards)
    if let (Some(t), Some(reg)) = (exec::relation(target), registration(target)) {
        if let Some(s) = exec::relation(reg.staging) {
            crate::topology::of_registered(&t).prune_tombstones(&t, &s, cutoff);
        }
    }
}
