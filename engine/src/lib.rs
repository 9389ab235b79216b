//! The engine of dms_window_reload: everything between the catalog and the SQL text of a merge,
//! free of pgrx and of any server connection, so the PostgreSQL extension and a command-line tool
//! run the same code.
//!
//! The data flow, one module per stage:
//! 1. [`catalog`]: what the catalog says about production and staging (SQL in `engine/sql/`,
//!    parsed into typed structs);
//! 2. [`plan`]: which staging column feeds which production column, keys, version, problems;
//! 3. [`sqlgen`] (and [`undo`], [`citus`]): the [`program`] of a merge or undo, every identifier
//!    quoted, every value a named parameter, each staged row in a [`class`] ([`ddl`]: the staging
//!    tables and their triggers); [`tle`]: a program as PL/pgSQL for the pg_tle package.
//!
//! Execution (SPI, the one interpreter of programs) and the audit trail live in the extension
//! crate, at the edge.

pub mod catalog;
pub mod citus;
pub mod citus_source;
pub mod class;
pub mod ddl;
pub mod diff;
pub mod dms;
pub mod error;
pub mod ident;
pub mod plan;
pub mod program;
pub mod settings;
pub mod sqlgen;
pub mod tle;
pub mod undo;

pub use error::{DwrError, Result, SqlState};
