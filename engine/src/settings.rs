//! The defaults of the extension's settings (`dwr.*`), written once: the compiled extension
//! defines the settings with them (`src/guc.rs`); the pg_tle package, which cannot define settings,
//! reads each with `current_setting(name, true)` and falls back to the same value
//! (`sql/tle/functions.sql`, filled in by [`crate::tle`], and the generated merge). The shared
//! update scripts that read a setting carry its default as a literal (an installed script cannot
//! be filled in); a test checks those literals against these.

/// `dwr.lock_timeout`, ms: how long a merge waits for another merge of the same table (0: as long
/// as it takes).
pub const LOCK_TIMEOUT_MS: i32 = 0;
/// `dwr.row_lock_timeout`, ms: how long one write waits for a row another transaction holds.
pub const ROW_LOCK_TIMEOUT_MS: i32 = 20;
/// `dwr.row_audit`: whether a merge keeps the before and after image of every row it changes.
pub const ROW_AUDIT: bool = true;
/// `dwr.fast_merge`: whether a merge first tries the fast way (off since 0.6.0: under CDC it holds
/// rows longer and falls back to step by step).
pub const FAST_MERGE: bool = false;
/// `dwr.ddl_lock_timeout`, ms: one attempt of the extension's DDL to lock a production table.
pub const DDL_LOCK_TIMEOUT_MS: i32 = 50;
/// `dwr.ddl_lock_wait`, ms: how long the extension's DDL keeps trying.
pub const DDL_LOCK_WAIT_MS: i32 = 60_000;
/// `dwr.progress_notice_after`, ms: after how long a merge reports its phases as NOTICEs.
pub const PROGRESS_NOTICE_AFTER_MS: i32 = 5_000;

/// How many writes of one merge may run out of `dwr.row_lock_timeout` before it gives up with
/// 55P03: past this, something holds far more than single rows (a table lock), and waiting row by
/// row is pointless.
pub const MAX_LOCK_TIMEOUTS: u32 = 64;

/// A boolean default as `current_setting` spells it.
pub fn on_off(value: bool) -> &'static str {
    if value {
        "on"
    } else {
        "off"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared scripts' fallbacks (`dwr._setting_ms(name, default)`) are these defaults.
    #[test]
    fn the_shared_scripts_fall_back_to_the_same_defaults() {
        let scripts = [
            include_str!("../../sql/dms_window_reload--0.2.0--0.3.0.sql"),
            include_str!("../../sql/dms_window_reload--0.3.0--0.4.0.sql"),
            include_str!("../../sql/dms_window_reload--0.5.0--0.6.0.sql"),
        ]
        .concat();
        for (name, ms) in [
            ("dwr.ddl_lock_timeout", DDL_LOCK_TIMEOUT_MS),
            ("dwr.ddl_lock_wait", DDL_LOCK_WAIT_MS),
            ("dwr.progress_notice_after", PROGRESS_NOTICE_AFTER_MS),
            ("dwr.lock_timeout", LOCK_TIMEOUT_MS),
        ] {
            let call = format!("_setting_ms('{name}', {ms})");
            assert!(scripts.contains(&call), "{call}");
        }
    }
}
