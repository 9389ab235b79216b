//! The `dwr` binary as a user runs it: `--help`, `--version`, usage errors (exit 2, naming the
//! option), and, against a real server with TLS (started by pg_test/run-all, which runs these with
//! `--ignored` and DWR_TLS_PORT, DWR_TLS_CA, DWR_TLS_OTHER_CA set), connections the libpq way:
//! environment variables, a URI, `sslmode=verify-full` and `verify-ca`, `~/.pgpass`.

use std::process::{Command, Output};

fn dwr(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dwr"));
    c.args(args);
    // only what the test gives: no PG* variable of the caller's
    for (k, _) in std::env::vars() {
        if k.starts_with("PG") {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().copied());
    c.output().expect("run dwr")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn help_version_and_usage_errors() {
    let v = dwr(&["--version"], &[]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("dwr {}", env!("CARGO_PKG_VERSION"))
    );
    for args in [
        &["--help"][..],
        &["tle", "install", "--help"],
        &["dms", "--help"],
    ] {
        let h = dwr(args, &[]);
        assert_eq!(h.status.code(), Some(0), "{}", text(&h));
        assert!(
            String::from_utf8_lossy(&h.stdout).contains("Usage: dwr"),
            "{}",
            text(&h)
        );
    }
    let e = dwr(&["tle", "install", "host=/tmp", "--scema", "x"], &[]);
    assert_eq!(e.status.code(), Some(2), "{}", text(&e));
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("--scema"),
        "{}",
        text(&e)
    );
    let e = dwr(&["tle", "instal"], &[]);
    assert_eq!(e.status.code(), Some(2), "{}", text(&e));
    // a connection string libpq would refuse is an error (1), named
    let e = dwr(&["tle", "check", "hots=x"], &[]);
    assert_eq!(e.status.code(), Some(1), "{}", text(&e));
    assert!(String::from_utf8_lossy(&e.stderr).contains("invalid connection option \"hots\""));
}

/// The server pg_test/run-all starts: TLS with a certificate for `localhost` signed by DWR_TLS_CA,
/// role dwr_tls (password "tls secret", SCRAM over TCP) owning database dwr_tls with pg_tle.
struct Server {
    port: String,
    ca: String,
    other_ca: String,
}

fn server() -> Server {
    let var = |v: &str| {
        std::env::var(v).unwrap_or_else(|_| panic!("{v} is not set: run through pg_test/run-all"))
    };
    Server {
        port: var("DWR_TLS_PORT"),
        ca: var("DWR_TLS_CA"),
        other_ca: var("DWR_TLS_OTHER_CA"),
    }
}

/// `dwr tle sql` reads the catalog: it succeeds only when the connection does.
fn sql(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec!["tle", "sql"];
    all.extend_from_slice(args);
    dwr(&all, env)
}

fn connected(o: &Output) -> bool {
    o.status.code() == Some(0) && String::from_utf8_lossy(&o.stdout).contains("CREATE SCHEMA dwr")
}

#[test]
#[ignore = "needs the TLS server of pg_test/run-all"]
fn environment_variables_alone() {
    let s = server();
    let o = sql(
        &[],
        &[
            ("PGHOST", "localhost"),
            ("PGPORT", &s.port),
            ("PGUSER", "dwr_tls"),
            ("PGDATABASE", "dwr_tls"),
            ("PGPASSWORD", "tls secret"),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", &s.ca),
        ],
    );
    assert!(connected(&o), "{}", text(&o));
}

#[test]
#[ignore = "needs the TLS server of pg_test/run-all"]
fn uri_with_verify_full_as_aws_documents_it_for_rds() {
    let s = server();
    let uri = |ca: &str, host: &str, mode: &str| {
        format!(
            "postgresql://dwr_tls:tls%20secret@{host}:{}/dwr_tls?sslmode={mode}&sslrootcert={ca}",
            s.port
        )
    };
    let ok = sql(&[&uri(&s.ca, "localhost", "verify-full")], &[]);
    assert!(connected(&ok), "{}", text(&ok));
    // a certificate another CA signed is refused
    let wrong = sql(&[&uri(&s.other_ca, "localhost", "verify-full")], &[]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("certificate"),
        "{}",
        text(&wrong)
    );
    // the certificate names localhost, not 127.0.0.1: verify-full refuses, verify-ca accepts
    let by_ip = sql(&[&uri(&s.ca, "127.0.0.1", "verify-full")], &[]);
    assert_eq!(by_ip.status.code(), Some(1), "{}", text(&by_ip));
    let chain_only = sql(&[&uri(&s.ca, "127.0.0.1", "verify-ca")], &[]);
    assert!(connected(&chain_only), "{}", text(&chain_only));
    // key=value words, and the --ca-file shorthand
    let words = sql(
        &[
            &format!("host=localhost port={} dbname=dwr_tls user=dwr_tls", s.port),
            "password='tls secret'",
            "--ca-file",
            &s.ca,
        ],
        &[],
    );
    assert!(connected(&words), "{}", text(&words));
}

#[test]
#[ignore = "needs the TLS server of pg_test/run-all"]
fn password_from_the_password_file() {
    let s = server();
    let dir = std::env::temp_dir().join(format!("dwr-pgpass-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pgpass");
    std::fs::write(
        &file,
        format!("# test\nlocalhost:{}:dwr_tls:dwr_tls:tls secret\n", s.port),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let conn = format!(
        "host=localhost port={} dbname=dwr_tls user=dwr_tls sslmode=verify-full sslrootcert={}",
        s.port, s.ca
    );
    let with = sql(&[&conn], &[("PGPASSFILE", file.to_str().unwrap())]);
    assert!(connected(&with), "{}", text(&with));
    // a file others may read is ignored, as libpq does: no password, no connection
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = sql(&[&conn], &[("PGPASSFILE", file.to_str().unwrap())]);
    assert_eq!(open.status.code(), Some(1), "{}", text(&open));
    assert!(
        String::from_utf8_lossy(&open.stderr).contains("group or world access"),
        "{}",
        text(&open)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
