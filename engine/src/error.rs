//! One error type for the whole engine, each variant carrying the SQLSTATE a PostgreSQL client can
//! catch, a message, a DETAIL that names the object and a HINT that says what to do.
//!
//! The engine never depends on pgrx: the extension maps [`SqlState`] onto `PgSqlErrorCode` at the
//! execution edge, a command-line tool prints it.

use std::fmt;

/// The classes of SQLSTATE of an error about one row's data (a bad value, a violated constraint, a
/// trigger's complaint, a function the row's values made fail): such an error marks that staged row
/// `ERROR`, where any other error (cancel, deadlock, out of memory, a lock wait that ran out, a bug)
/// fails the whole merge. The one definition of the rule: the compiled extension asks
/// [`is_row_error`], the pg_tle package's `dwr._is_row_error` is written from [`is_row_error_sql`].
pub const ROW_ERROR_CLASSES: [&str; 7] = ["22", "23", "44", "P0", "2F", "38", "39"];

/// Single SQLSTATEs outside [`ROW_ERROR_CLASSES`] that are about one row's data: 42804, a value of
/// the wrong type (a staged text that no cast of the row's value turns into the column's type).
pub const ROW_ERROR_STATES: [&str; 1] = ["42804"];

/// Whether an error of SQLSTATE `state` is about one row's data (see [`ROW_ERROR_CLASSES`]).
pub fn is_row_error(state: &str) -> bool {
    ROW_ERROR_CLASSES.iter().any(|c| state.starts_with(c)) || ROW_ERROR_STATES.contains(&state)
}

/// The same rule as a boolean SQL expression of the text expression `state`.
pub fn is_row_error_sql(state: &str) -> String {
    format!(
        "pg_catalog.left({state}, 2) OPERATOR(pg_catalog.=) ANY ('{{{}}}') OR {state} OPERATOR(pg_catalog.=) ANY ('{{{}}}')",
        ROW_ERROR_CLASSES.join(","),
        ROW_ERROR_STATES.join(","),
    )
}

/// The SQLSTATEs this project raises. Codes are PostgreSQL's own (Appendix A of its manual); `XX000`
/// only for a bug of this project, and only through [`DwrError::bug`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlState {
    /// 22004: a required argument is NULL
    NullValueNotAllowed,
    /// 22023: an argument has a value that makes no sense (an empty name, a window that ends first)
    InvalidParameterValue,
    /// 42501: the caller lacks a privilege, or an object is owned by the wrong role
    InsufficientPrivilege,
    /// 42703: a column does not exist
    UndefinedColumn,
    /// 42702: a column name matches several columns
    AmbiguousColumn,
    /// 42804: a type cannot do what is asked of it (a version column without ordering)
    DatatypeMismatch,
    /// 42846: no conversion exists between two types
    CannotCoerce,
    /// 42809: the object is of the wrong kind (a view where a table is needed)
    WrongObjectType,
    /// 42P01: a table does not exist
    UndefinedTable,
    /// 42P07: a table already exists
    DuplicateTable,
    /// 42704: an object (a reload, a run) does not exist
    UndefinedObject,
    /// 55000: the object is not in the state this needs (no primary key, not registered)
    ObjectNotInPrerequisiteState,
    /// 55P03: a lock could not be had in time
    LockNotAvailable,
    /// 0A000: a feature this project does not support
    FeatureNotSupported,
    /// 25001: the call cannot run inside a transaction block (a procedure that commits)
    ActiveSqlTransaction,
    /// XX000: a bug of this project (an invariant broken): only [`DwrError::bug`] makes it
    InternalError,
}

impl SqlState {
    /// The five-character code.
    pub fn code(self) -> &'static str {
        match self {
            SqlState::NullValueNotAllowed => "22004",
            SqlState::InvalidParameterValue => "22023",
            SqlState::InsufficientPrivilege => "42501",
            SqlState::UndefinedColumn => "42703",
            SqlState::AmbiguousColumn => "42702",
            SqlState::DatatypeMismatch => "42804",
            SqlState::CannotCoerce => "42846",
            SqlState::WrongObjectType => "42809",
            SqlState::UndefinedTable => "42P01",
            SqlState::DuplicateTable => "42P07",
            SqlState::UndefinedObject => "42704",
            SqlState::ObjectNotInPrerequisiteState => "55000",
            SqlState::LockNotAvailable => "55P03",
            SqlState::FeatureNotSupported => "0A000",
            SqlState::ActiveSqlTransaction => "25001",
            SqlState::InternalError => "XX000",
        }
    }
}

/// An error a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DwrError {
    pub state: SqlState,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl fmt::Display for DwrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(d) = &self.detail {
            write!(f, "\nDETAIL: {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\nHINT: {h}")?;
        }
        Ok(())
    }
}

impl DwrError {
    pub fn new(state: SqlState, message: impl Into<String>) -> Self {
        DwrError {
            state,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A required argument was NULL.
    pub fn null_argument(function: &str, argument: &str) -> Self {
        DwrError::new(
            SqlState::NullValueNotAllowed,
            format!("{function}: argument \"{argument}\" must not be NULL"),
        )
        .hint(format!("Pass a value for {argument}."))
    }

    /// `dwr_merge_batches` with a batch size below 1 (`shown`: the size as the caller passed it).
    pub fn batch_size_invalid(shown: &str) -> Self {
        DwrError::new(
            SqlState::InvalidParameterValue,
            "dwr_merge_batches: batch_size must be at least 1",
        )
        .detail(format!("batch_size is {shown}."))
        .hint("Pass the number of staged keys to merge per transaction, for example 50000.")
    }

    /// `dwr_merge_batches` inside a transaction block.
    pub fn batches_in_transaction() -> Self {
        DwrError::new(
            SqlState::ActiveSqlTransaction,
            "dwr_merge_batches cannot run inside a transaction block",
        )
        .detail("It commits after every batch.")
        .hint("CALL it on its own, outside BEGIN ... COMMIT; for one transaction use SELECT * FROM dwr_merge(target).")
    }

    /// A source of `dwr_merge(..., source =>)` or `dwr_diff` that has no rows to read (`kind`: "an
    /// index", "a sequence").
    pub fn source_not_a_table(source: &str, kind: &str) -> Self {
        DwrError::new(
            SqlState::WrongObjectType,
            format!("{source} is {kind}, not a table"),
        )
        .hint("Name a table, view, materialized view or foreign table as the source.")
    }

    /// A source owned by `owner`, who is neither the owner (`target_owner`) of `target` nor the
    /// caller.
    pub fn source_owned_by_other(
        source: &str,
        owner: &str,
        target: &str,
        target_owner: &str,
    ) -> Self {
        DwrError::new(
            SqlState::InsufficientPrivilege,
            format!("source {source} is owned by {owner}, neither the owner of {target} nor you"),
        )
        .detail("Reading it could run that role's code (a view's functions, a foreign table's wrapper) with your privileges.")
        .hint(format!(
            "Give the source to {target_owner} (ALTER TABLE {source} OWNER TO {target_owner}), or merge as its owner."
        ))
    }

    /// The pg_tle package reads a source through the columns of the staging table, and `source`
    /// has no column (`how`: "no column", "several columns") that matches staging's `column`.
    pub fn source_column_unmatched(source: &str, how: &str, column: &str, staging: &str) -> Self {
        DwrError::new(
            SqlState::FeatureNotSupported,
            format!("source {source} has {how} matching column {column} of staging table {staging}"),
        )
        .detail("The pg_tle package was generated for the columns of the staging table, and reads a source table by those names (case ignored when one column matches).")
        .hint("Select the staging table's columns in a view over the source and merge from the view, or use the compiled extension.")
    }

    /// `dwr_replay`: the change log `log` has no column `column` (the operation or an order column,
    /// `role`).
    pub fn change_log_column_missing(log: &str, role: &str, column: &str) -> Self {
        DwrError::new(
            SqlState::UndefinedColumn,
            format!("change log {log} has no column {column}"),
        )
        .detail(format!("dwr_replay reads the {role} from column {column}."))
        .hint("Name the change log's operation column (operation =>, DMS writes Op) and the columns that order its changes (order_by =>, e.g. the commit timestamp DMS writes with TimestampColumnName, then a change sequence).")
    }

    /// `dwr_delete_absent` with a negative limit.
    pub fn max_deletes_invalid(max: &str) -> Self {
        DwrError::new(
            SqlState::InvalidParameterValue,
            "dwr_delete_absent: max_deletes must not be negative".to_string(),
        )
        .detail(format!("max_deletes is {max}."))
        .hint("Pass how many production rows you expect it to remove (see dwr_diff's missing_in_staging).")
    }

    /// `dwr_delete_absent` of a table without an open reload (the window says which rows the full
    /// load covered).
    pub fn absent_without_reload(target: &str) -> Self {
        DwrError::new(
            SqlState::ObjectNotInPrerequisiteState,
            format!("dwr_delete_absent: {target} is in no open reload"),
        )
        .detail("Only the rows of a reload's window can be missing from its full load.")
        .hint("Open the reload with dwr_begin_reload, load the window into staging, then call it.")
    }

    /// `dwr_delete_absent` that would remove more rows than the caller expects.
    pub fn absent_over_limit(target: &str, n: &str, max: &str) -> Self {
        DwrError::new(
            SqlState::ObjectNotInPrerequisiteState,
            format!("dwr_delete_absent: production rows of {target} missing from staging: {n}, more than max_deletes ({max})"),
        )
        .detail("Nothing was removed: the production rows of the reload's window whose key the full load lacks are more than you said to expect.")
        .hint("Check the load is complete (SELECT * FROM dwr_diff(target) WHERE difference = 'missing_in_staging'), then call it again with a larger max_deletes.")
    }

    /// `dwr_replay` without an order.
    pub fn change_log_unordered(log: &str) -> Self {
        DwrError::new(
            SqlState::InvalidParameterValue,
            format!("dwr_replay: no order given for the changes of {log}"),
        )
        .detail("Per key the last change decides: the changes need an order.")
        .hint("Pass order_by => the columns that order the log, e.g. '{commit_ts, change_seq}'.")
    }

    /// A bug of this project: `what` went wrong where it cannot (an invariant of the code broken, an
    /// SPI failure that is no PostgreSQL error). The one way to `XX000`.
    pub fn bug(what: impl fmt::Display) -> Self {
        DwrError::new(
            SqlState::InternalError,
            format!("dms_window_reload: internal error: {what}"),
        )
        .hint("This is a bug in dms_window_reload, not in your data or call; please report it with this message.")
    }

    /// `dwr_merge_batches` of a table whose staging key column `column` has no ordering.
    pub fn batch_key_unordered(column: &str, staging: &str) -> Self {
        DwrError::new(
            SqlState::DatatypeMismatch,
            format!("dwr_merge_batches: staging key column {column} cannot be ordered"),
        )
        .detail(format!(
            "Batches are ranges of staging table {staging}'s key, in the order of its key columns' types."
        ))
        .hint("Merge in one transaction with dwr_merge, or stage the key in an ordered type.")
    }
}

pub type Result<T> = std::result::Result<T, DwrError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_error_is_one_rule_in_rust_and_in_sql() {
        for state in [
            "22001", "23505", "23514", "44000", "P0001", "2F005", "38001", "39P01", "42804",
        ] {
            assert!(is_row_error(state), "{state}");
        }
        for state in [
            "55P03", "40P01", "57014", "53200", "XX000", "42501", "42P01", "0A000",
        ] {
            assert!(!is_row_error(state), "{state}");
        }
        assert_eq!(
            is_row_error_sql("state"),
            "pg_catalog.left(state, 2) OPERATOR(pg_catalog.=) ANY ('{22,23,44,P0,2F,38,39}') \
             OR state OPERATOR(pg_catalog.=) ANY ('{42804}')"
        );
    }

    #[test]
    fn codes_are_five_characters_and_never_internal() {
        let all = [
            SqlState::NullValueNotAllowed,
            SqlState::InvalidParameterValue,
            SqlState::InsufficientPrivilege,
            SqlState::UndefinedColumn,
            SqlState::AmbiguousColumn,
            SqlState::DatatypeMismatch,
            SqlState::CannotCoerce,
            SqlState::WrongObjectType,
            SqlState::UndefinedTable,
            SqlState::DuplicateTable,
            SqlState::UndefinedObject,
            SqlState::ObjectNotInPrerequisiteState,
            SqlState::LockNotAvailable,
            SqlState::FeatureNotSupported,
            SqlState::ActiveSqlTransaction,
        ];
        for s in all {
            assert_eq!(s.code().len(), 5, "{s:?}");
            assert_ne!(s.code(), "XX000");
        }
        // XX000 says it is a bug, and what it is
        let bug = DwrError::bug("a role that exists has no name");
        assert_eq!(bug.state.code(), "XX000");
        assert!(bug
            .message
            .contains("internal error: a role that exists has no name"));
        assert!(bug.hint.as_deref().unwrap_or("").contains("bug"));
    }

    #[test]
    fn display_carries_detail_and_hint() {
        let e = DwrError::new(SqlState::UndefinedColumn, "no column")
            .detail("table t")
            .hint("add it");
        assert_eq!(e.to_string(), "no column\nDETAIL: table t\nHINT: add it");
    }
}
