//! The defaults of the extension's settings (`dwr.*`), written once: the compiled extension
//! defines the settings with them (`src/guc.rs`); the pg_tle package, which cannot define settings,
//! reads each with `current_setting(name, true)` and falls back to the same value
//! (`sql/tle/functions.sql`, filled in by [`crate::tle`], and the generated merge). The shared
//! PL/pgSQL that reads a setting (`sql/shared.sql`) carries its default as a literal (an installed
//! script cannot be filled in); a test checks those literals against these.

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

    /// The shared PL/pgSQL's fallbacks (`dwr._setting_ms(name, default)`) are these defaults:
    /// every call, and each setting read at least once.
    #[test]
    fn the_shared_scripts_fall_back_to_the_same_defaults() {
        let defaults = [
            ("dwr.ddl_lock_timeout", DDL_LOCK_TIMEOUT_MS),
            ("dwr.ddl_lock_wait", DDL_LOCK_WAIT_MS),
            ("dwr.progress_notice_after", PROGRESS_NOTICE_AFTER_MS),
            ("dwr.lock_timeout", LOCK_TIMEOUT_MS),
        ];
        let script = include_str!("../../sql/shared.sql");
        let calls: Vec<(&str, &str)> = script
            .split("_setting_ms('")
            .skip(1)
            .filter_map(|rest| {
                let (name, rest) = rest.split_once("', ")?;
                Some((name, rest.split_once(')')?.0))
            })
            .collect();
        for (name, literal) in &calls {
            let ms = defaults.iter().find(|(n, _)| n == name).map(|(_, ms)| ms);
            assert_eq!(
                ms.map(|ms| ms.to_string()).as_deref(),
                Some(*literal),
                "{name}"
            );
        }
        for (name, _) in defaults {
            assert!(calls.iter().any(|(n, _)| *n == name), "{name} is read");
        }
    }
}
