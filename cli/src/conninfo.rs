//! Connections the libpq way: a `postgresql://` URI or a `key=value` string, every parameter it
//! leaves out taken from the environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`,
//! `PGSSLMODE`, `PGSSLROOTCERT`, ...) and then libpq's defaults, the password from `~/.pgpass` when
//! none is given, and `sslmode` with libpq's meaning, `verify-ca` and `verify-full` included.

use postgres::config::SslMode;
use postgres::Client;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub type Error = Box<dyn std::error::Error>;

/// The libpq keywords this tool understands, and the environment variable of each.
const KEYWORDS: [(&str, Option<&str>); 12] = [
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("dbname", Some("PGDATABASE")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("sslmode", Some("PGSSLMODE")),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("application_name", Some("PGAPPNAME")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("options", Some("PGOPTIONS")),
];

/// Connection parameters by libpq keyword.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ConnInfo(pub BTreeMap<String, String>);

impl ConnInfo {
    /// Parse a connection string: a URI (`postgresql://` or `postgres://`) or `key=value` words.
    pub fn parse(text: &str) -> Result<ConnInfo, Error> {
        let text = text.trim();
        let params = if let Some(rest) = text
            .strip_prefix("postgresql://")
            .or_else(|| text.strip_prefix("postgres://"))
        {
            parse_uri(rest)?
        } else {
            parse_keywords(text)?
        };
        for key in params.keys() {
            if !KEYWORDS.iter().any(|(k, _)| k == key) {
                return Err(format!("invalid connection option \"{key}\"").into());
            }
        }
        Ok(ConnInfo(params))
    }

    /// Fill what the string left out from the environment (`env` looks a variable up), as libpq.
    pub fn with_environment(mut self, env: impl Fn(&str) -> Option<String>) -> ConnInfo {
        for (key, var) in KEYWORDS {
            if let (false, Some(value)) = (self.0.contains_key(key), var.and_then(&env)) {
                self.0.insert(key.to_string(), value);
            }
        }
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The `sslmode`, `prefer` when not given.
    pub fn sslmode(&self) -> Result<&str, Error> {
        match self.get("sslmode").unwrap_or("prefer") {
            m @ ("disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full") => Ok(m),
            other => Err(format!("invalid sslmode value: \"{other}\"").into()),
        }
    }

    /// The password from the password file (`passfile`, or `~/.pgpass`) for this host, port,
    /// database and user, as libpq looks it up; the file is ignored (with a warning, as libpq)
    /// when others may read it.
    pub fn password_from_file(
        &self,
        host: &str,
        port: &str,
        dbname: &str,
        user: &str,
    ) -> Option<String> {
        let path = match self.get("passfile") {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".pgpass"),
        };
        let text = std::fs::read_to_string(&path).ok()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).ok()?.permissions().mode();
            if mode & 0o077 != 0 {
                eprintln!(
                    "dwr: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                    path.display()
                );
                return None;
            }
        }
        // a socket directory matches "localhost" in the file, as in libpq
        let host = if host.starts_with('/') {
            "localhost"
        } else {
            host
        };
        pgpass_lookup(&text, [host, port, dbname, user])
    }

    /// Connect: the environment and libpq's defaults for what is not given, TLS as `sslmode` says.
    pub fn connect(&self) -> Result<Client, Error> {
        let user = self
            .get("user")
            .map(str::to_string)
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .unwrap_or_else(|| "postgres".into());
        let dbname = self.get("dbname").unwrap_or(&user).to_string();
        let hosts: Vec<String> = self
            .get("host")
            .or(self.get("hostaddr"))
            .map(|h| h.split(',').map(str::to_string).collect())
            .unwrap_or_else(|| vec![default_socket_dir()]);
        let ports: Vec<u16> = match self.get("port") {
            None => vec![5432],
            Some(p) => p
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse()
                        .map_err(|_| format!("invalid port number: \"{p}\""))
                })
                .collect::<Result<_, _>>()?,
        };
        let mut config = postgres::Config::new();
        for h in &hosts {
            config.host(h);
        }
        for p in &ports {
            config.port(*p);
        }
        config.user(&user).dbname(&dbname);
        config.application_name(self.get("application_name").unwrap_or("dwr"));
        if let Some(o) = self.get("options") {
            config.options(o);
        }
        if let Some(t) = self.get("connect_timeout") {
            let secs: u64 = t
                .parse()
                .map_err(|_| format!("invalid connect_timeout: \"{t}\""))?;
            config.connect_timeout(std::time::Duration::from_secs(secs.max(2)));
        }
        let port = ports[0].to_string();
        match self.get("password").map(str::to_string) {
            Some(p) => {
                config.password(p);
            }
            None => {
                if let Some(p) = self.password_from_file(&hosts[0], &port, &dbname, &user) {
                    config.password(p);
                }
            }
        }
        let mode = self.sslmode()?;
        config.ssl_mode(match mode {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            _ => SslMode::Require,
        });
        let connector = postgres_native_tls::MakeTlsConnector::new(self.tls(mode)?);
        Ok(config.connect(connector)?)
    }

    /// The TLS client of `sslmode`: `verify-full` checks the certificate chain against
    /// `sslrootcert` and the host name; `verify-ca` the chain only; the weaker modes encrypt
    /// without checking (libpq's `require`).
    fn tls(&self, mode: &str) -> Result<native_tls::TlsConnector, Error> {
        let mut tls = native_tls::TlsConnector::builder();
        if mode == "verify-ca" || mode == "verify-full" {
            match self.get("sslrootcert") {
                // the system's trusted roots (libpq 16's sslrootcert=system)
                Some("system") => {}
                Some(path) => {
                    for cert in read_pem(path)? {
                        tls.add_root_certificate(cert);
                    }
                }
                None => {
                    let default = PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".postgresql/root.crt");
                    let path = default.to_string_lossy();
                    for cert in read_pem(&path).map_err(|_| {
                        format!("root certificate file \"{path}\" does not exist; either provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification")
                    })? {
                        tls.add_root_certificate(cert);
                    }
                }
            }
            if mode == "verify-ca" {
                tls.danger_accept_invalid_hostnames(true);
            }
        } else {
            tls.danger_accept_invalid_certs(true);
        }
        Ok(tls.build()?)
    }
}

fn read_pem(path: &str) -> Result<Vec<native_tls::Certificate>, Error> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut certs = Vec::new();
    for block in pem.split_inclusive("-----END CERTIFICATE-----") {
        if let Some(start) = block.find("-----BEGIN CERTIFICATE-----") {
            certs.push(native_tls::Certificate::from_pem(
                &block.as_bytes()[start..],
            )?);
        }
    }
    if certs.is_empty() {
        return Err(format!("{path}: no PEM certificate in it").into());
    }
    Ok(certs)
}

/// libpq's default: the socket directory Debian's server uses, else /tmp.
fn default_socket_dir() -> String {
    if std::path::Path::new("/var/run/postgresql").is_dir() {
        "/var/run/postgresql".into()
    } else {
        "/tmp".into()
    }
}

/// `key=value` words; a value may be single-quoted (`'a b'`), with `\'` and `\\` escapes.
fn parse_keywords(text: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("missing \"=\" after \"{key}\" in connection info string").into());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => {
                        return Err("unterminated quoted string in connection info string".into())
                    }
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.insert(key, value);
    }
}

/// `[user[:password]@][host][:port][/dbname][?key=value&...]`, percent-encoded.
fn parse_uri(rest: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            if !user.is_empty() {
                out.insert("user".into(), decode(user)?);
            }
            if userinfo.contains(':') {
                out.insert("password".into(), decode(password)?);
            }
            hostport
        }
        None => authority,
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, p) = v6
            .split_once(']')
            .ok_or("unterminated [ in the URI's host")?;
        (h.to_string(), p.strip_prefix(':').unwrap_or(""))
    } else {
        let (h, p) = hostport.split_once(':').unwrap_or((hostport, ""));
        (decode(h)?, p)
    };
    if !host.is_empty() {
        out.insert("host".into(), host);
    }
    if !port.is_empty() {
        out.insert("port".into(), decode(port)?);
    }
    if !path.is_empty() {
        out.insert("dbname".into(), decode(path)?);
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("missing \"=\" in URI query parameter \"{pair}\""))?;
        out.insert(decode(k)?, decode(v)?);
    }
    Ok(out)
}

fn decode(s: &str) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoded token: \"{s}\""))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8(out)?)
}

/// The password of the first line of a `.pgpass` text whose fields (`host:port:db:user`, `*` for
/// any) match `want`.
fn pgpass_lookup(text: &str, want: [&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => field.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() == 5
            && fields[..4]
                .iter()
                .zip(want)
                .all(|(f, w)| f == "*" || f == w)
        {
            return fields.pop();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> ConnInfo {
        ConnInfo(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn keyword_strings_as_libpq_reads_them() {
        assert_eq!(
            ConnInfo::parse("host=/tmp port = 5433 dbname='my db' password='it\\'s' user=a\\ b")
                .unwrap(),
            map(&[
                ("host", "/tmp"),
                ("port", "5433"),
                ("dbname", "my db"),
                ("password", "it's"),
                ("user", "a b")
            ])
        );
        assert!(ConnInfo::parse("hots=x")
            .unwrap_err()
            .to_string()
            .contains("invalid connection option \"hots\""));
        assert!(ConnInfo::parse("dbname='open").is_err());
    }

    #[test]
    fn uris_as_libpq_reads_them() {
        assert_eq!(
            ConnInfo::parse("postgresql://dwr_admin:s%40cret@db.example.com:5433/app?sslmode=verify-full&sslrootcert=/etc/rds.pem").unwrap(),
            map(&[("user", "dwr_admin"), ("password", "s@cret"), ("host", "db.example.com"), ("port", "5433"),
                  ("dbname", "app"), ("sslmode", "verify-full"), ("sslrootcert", "/etc/rds.pem")])
        );
        assert_eq!(
            ConnInfo::parse("postgres://%2Ftmp/app").unwrap(),
            map(&[("host", "/tmp"), ("dbname", "app")])
        );
        assert_eq!(
            ConnInfo::parse("postgresql://[::1]:5432/?host=/var/run/postgresql").unwrap(),
            map(&[("host", "/var/run/postgresql"), ("port", "5432")])
        );
        assert!(ConnInfo::parse("postgresql:///app?sslmod=require").is_err());
    }

    #[test]
    fn the_environment_fills_what_the_string_leaves_out() {
        let env = |v: &str| match v {
            "PGHOST" => Some("/run/pg".to_string()),
            "PGUSER" => Some("env_user".to_string()),
            "PGSSLMODE" => Some("verify-full".to_string()),
            _ => None,
        };
        let c = ConnInfo::parse("user=given").unwrap().with_environment(env);
        assert_eq!(
            c,
            map(&[
                ("host", "/run/pg"),
                ("user", "given"),
                ("sslmode", "verify-full")
            ])
        );
        assert_eq!(c.sslmode().unwrap(), "verify-full");
        assert!(map(&[("sslmode", "verify")]).sslmode().is_err());
        assert_eq!(map(&[]).sslmode().unwrap(), "prefer");
    }

    #[test]
    fn pgpass_lines_match_with_wildcards_and_escapes() {
        let file =
            "# comment\nother:5432:*:*:no\nlocalhost:5432:app:dwr:pa\\:ss\n*:*:*:dwr:fallback\n";
        assert_eq!(
            pgpass_lookup(file, ["localhost", "5432", "app", "dwr"]).as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            pgpass_lookup(file, ["db", "5433", "x", "dwr"]).as_deref(),
            Some("fallback")
        );
        assert_eq!(pgpass_lookup(file, ["db", "5433", "x", "someone"]), None);
    }
}
