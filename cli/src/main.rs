//! `dwr`: the command-line edge of dms_window_reload for managed PostgreSQL (Amazon RDS, Aurora),
//! where the compiled extension cannot be installed. It reads the catalog of the registered tables
//! with the engine's own queries, plans their merges with the engine, and writes (or installs) a
//! pg_tle package holding the same SQL interface in SQL and PL/pgSQL (`dwr_engine::tle`); and it
//! writes the AWS DMS documents of a reload. One module per command group (`tle`, `dms`); the
//! connection follows libpq's conventions (`conninfo`).
//!
//! Exit codes: 0 success; 1 an error (the message on stderr); 2 a usage error (clap's);
//! [`EXIT_STALE`] `dwr tle check` found registered tables whose merge is missing or stale.

mod conninfo;
mod dms;
mod tle;

use clap::{Args, Parser, Subcommand};
use conninfo::{ConnInfo, Error};
use postgres::Client;
use std::process::ExitCode;

/// `dwr tle check`: a registered table has no generated merge, or one generated for other columns.
const EXIT_STALE: u8 = 3;

#[derive(Parser)]
#[command(
    name = "dwr",
    version,
    about = "Generate and install the pg_tle package of dms_window_reload (managed PostgreSQL: Amazon RDS, Aurora), and write the AWS DMS documents of a reload",
    after_help = "CONNECTION: a libpq connection string, as a URI (postgresql://user@host:5432/db?sslmode=verify-full&sslrootcert=global-bundle.pem) or key=value words (host=... dbname=... sslmode=verify-full sslrootcert=...); what it leaves out comes from PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGPASSFILE, PGSSLMODE, PGSSLROOTCERT, then libpq's defaults; a missing password is looked up in ~/.pgpass.\n\nEXIT STATUS: 0 success, 1 error, 2 usage error, 3 `dwr tle check` found tables whose merge is missing or stale."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The pg_tle package: install it, print it, or check that it is current
    #[command(subcommand)]
    Tle(TleCommand),
    /// The AWS DMS documents of an open reload (one JSON object on stdout)
    #[command(subcommand)]
    Dms(DmsCommand),
}

/// Where to connect.
#[derive(Args, Debug)]
struct Conn {
    /// libpq connection string (URI or key=value words; several words are joined); empty: the
    /// PG* environment variables and libpq's defaults
    #[arg(value_name = "CONNECTION")]
    conninfo: Vec<String>,
    /// verify the server's certificate against these CAs (the RDS bundle): the same as
    /// `sslmode=verify-full sslrootcert=PEM`
    #[arg(long, value_name = "PEM")]
    ca_file: Option<String>,
}

impl Conn {
    fn info(&self) -> Result<ConnInfo, Error> {
        self.info_with(|v| std::env::var(v).ok())
    }

    /// The parameters, `env` looking up what the string leaves out.
    fn info_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<ConnInfo, Error> {
        let mut info = ConnInfo::parse(&self.conninfo.join(" "))?.with_environment(env);
        if let Some(pem) = &self.ca_file {
            info.0.insert("sslrootcert".into(), pem.clone());
            info.0
                .entry("sslmode".into())
                .or_insert_with(|| "verify-full".into());
        }
        Ok(info)
    }

    fn connect(&self) -> Result<Client, Error> {
        self.info()?.connect()
    }
}

#[derive(Subcommand)]
enum TleCommand {
    /// Generate the package for every registered table and install it: CREATE EXTENSION
    /// dms_window_reload_tle the first time, else a new version through an update path
    Install {
        #[command(flatten)]
        conn: Conn,
        /// the schema of the package's functions, the first time
        #[arg(long, default_value = "public")]
        schema: String,
        /// print nothing on success
        #[arg(long, short)]
        quiet: bool,
    },
    /// Print the script `install` would run, for review
    Sql {
        #[command(flatten)]
        conn: Conn,
    },
    /// Exit 3, naming them, when a registered table has no generated merge or one generated for
    /// other columns (run it after migrations)
    Check {
        #[command(flatten)]
        conn: Conn,
    },
}

/// The reload and the source's names, for the documents that name source tables.
#[derive(Args, Debug)]
pub struct Source {
    /// the reload (dwr_begin_reload's id)
    #[arg(long)]
    reload: i64,
    /// the source schema (Oracle: the owner)
    #[arg(long)]
    source_schema: String,
    /// the source engine: oracle (upper-case names) or another
    #[arg(long, default_value = "oracle")]
    source_engine: String,
    /// other source names of production tables, as a JSON object {"production.orders": "ORDER_HEADERS"}
    #[arg(long, value_name = "JSON")]
    source_tables: Option<String>,
}

#[derive(Subcommand)]
enum DmsCommand {
    /// The table mappings: selection rules, the window's filter, renames into staging
    TableMappings {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        source: Source,
        /// lower-case the column names into staging (default: true for oracle)
        #[arg(long)]
        lowercase_columns: Option<bool>,
        /// the time zone the window is written in
        #[arg(long, default_value = "UTC")]
        source_time_zone: String,
    },
    /// A CDC-only task to Amazon S3 that replays the window: its start and stop, table mappings,
    /// settings, the S3 endpoint's settings, and per table the change-log table and dwr_replay call
    CdcTask {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        source: Source,
        /// the S3 target's TimestampColumnName: each change's commit time
        #[arg(long, default_value = "commit_ts")]
        timestamp_column: String,
    },
    /// Task settings for a full load into the existing staging tables
    TaskSettings {
        #[command(flatten)]
        conn: Conn,
        /// the reload (dwr_begin_reload's id)
        #[arg(long)]
        reload: i64,
        /// settings merged in deeply, as a JSON object
        #[arg(long, value_name = "JSON")]
        overrides: Option<String>,
    },
}

fn run(command: &Command) -> Result<ExitCode, Error> {
    match command {
        Command::Tle(TleCommand::Install {
            conn,
            schema,
            quiet,
        }) => {
            let summary = tle::install(&mut conn.connect()?, schema)?;
            if !quiet {
                println!("{summary}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tle(TleCommand::Sql { conn }) => {
            let state = tle::read_state(&mut conn.connect()?)?;
            print!("{}", tle::script(&state));
            Ok(ExitCode::SUCCESS)
        }
        Command::Tle(TleCommand::Check { conn }) => {
            let stale = tle::check(&mut conn.connect()?)?;
            for s in &stale {
                println!("{s}");
            }
            Ok(if stale.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_STALE)
            })
        }
        Command::Dms(d) => {
            let conn = match d {
                DmsCommand::TableMappings { conn, .. }
                | DmsCommand::CdcTask { conn, .. }
                | DmsCommand::TaskSettings { conn, .. } => conn,
            };
            println!("{}", dms::documents(&mut conn.connect()?, d)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli.command) {
        Ok(code) => code,
        Err(e) => {
            // the postgres crate says "db error"; the server's message is in the source chain
            let mut text = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            eprintln!("dwr: {text}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("dwr").chain(line.split_whitespace()))
    }

    #[test]
    fn connection_string_in_one_or_several_words() {
        let Command::Tle(TleCommand::Install {
            conn,
            quiet,
            schema,
        }) = parse("tle install host=/tmp port=5432 dbname=app --quiet")
            .unwrap()
            .command
        else {
            panic!("not tle install");
        };
        assert_eq!(conn.conninfo.join(" "), "host=/tmp port=5432 dbname=app");
        assert!(quiet);
        assert_eq!(schema, "public");
        // none at all: the environment
        assert!(parse("tle check").is_ok());
    }

    #[test]
    fn misspelt_options_are_refused_and_named() {
        let e = parse("tle install host=/tmp --scema x").err().unwrap();
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
        assert!(e.to_string().contains("--scema"));
        assert!(parse("tle install host=/tmp --reload 1").is_err());
        assert!(parse("dms table-mappings host=/tmp --reload 1 --source-schema A").is_ok());
        let e = parse("dms table-mappings host=/tmp --relaod 1")
            .err()
            .unwrap();
        assert!(e.to_string().contains("--relaod"));
        assert_eq!(
            parse("dms table-mappings host=/tmp --reload x --source-schema A")
                .err()
                .unwrap()
                .kind(),
            ErrorKind::ValueValidation
        );
        assert!(parse("nope install host=/tmp").is_err());
    }

    #[test]
    fn help_and_version_are_not_errors_of_use() {
        assert_eq!(
            parse("--version").err().unwrap().kind(),
            ErrorKind::DisplayVersion
        );
        assert_eq!(
            parse("--help").err().unwrap().kind(),
            ErrorKind::DisplayHelp
        );
        assert_eq!(
            parse("tle install --help").err().unwrap().kind(),
            ErrorKind::DisplayHelp
        );
    }

    #[test]
    fn ca_file_means_verify_full_against_it() {
        let Command::Tle(TleCommand::Check { conn }) =
            parse("tle check host=db.example.com --ca-file /etc/rds.pem")
                .unwrap()
                .command
        else {
            panic!("not tle check");
        };
        let info = conn.info_with(|_| None).unwrap();
        assert_eq!(info.get("sslrootcert"), Some("/etc/rds.pem"));
        assert_eq!(info.get("sslmode"), Some("verify-full"));
        // an sslmode the string gives stays
        let Command::Tle(TleCommand::Check { conn }) =
            parse("tle check sslmode=verify-ca --ca-file /etc/rds.pem")
                .unwrap()
                .command
        else {
            panic!("not tle check");
        };
        assert_eq!(
            conn.info_with(|_| None).unwrap().get("sslmode"),
            Some("verify-ca")
        );
    }
}
