//! The extension's settings.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `dwr.lock_timeout`: how long a merge waits for another merge of the same table (milliseconds;
/// 0 waits as long as it takes).
pub static LOCK_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(0);

pub fn register() {
    GucRegistry::define_int_guc(
        c"dwr.lock_timeout",
        c"How long a merge waits for another merge of the same table to finish.",
        c"0 waits as long as it takes; otherwise the merge fails with SQLSTATE 55P03 after this long.",
        &LOCK_TIMEOUT,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    #[cfg(any(feature = "pg15", feature = "pg16", feature = "pg17", feature = "pg18"))]
    unsafe {
        pgrx::pg_sys::MarkGUCPrefixReserved(c"dwr".as_ptr())
    };
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    unsafe {
        pgrx::pg_sys::EmitWarningsOnPlaceholders(c"dwr".as_ptr())
    };
}
