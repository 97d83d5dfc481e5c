//! Configuration, upstream URL stage: a `postgres://` URL parsed into an [`UpstreamTarget`],
//! with libpq's defaults, its `sslmode` values and percent-decoding. Errors never carry the
//! URL, its user or its password.

use std::net::IpAddr;
use std::path::PathBuf;

use super::{Shown, SslMode, UpstreamTarget};

#[cfg(test)]
mod tests;

/// libpq's default port, used when a URL names none.
const DEFAULT_PG_PORT: u16 = 5432;

/// Why a `postgres://` URL was refused. No variant carries the URL, its user or its password.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("not a valid URL: {0}")]
    Syntax(url::ParseError),
    #[error("the scheme must be postgres:// or postgresql://")]
    Scheme,
    #[error("the URL names no host")]
    MissingHost,
    #[error("the URL names no user")]
    MissingUser,
    #[error("port 0 is not a valid port")]
    PortZero,
    #[error("the {part} is not valid percent-encoded UTF-8")]
    Encoding { part: &'static str },
    #[error("invalid sslmode {value}: expected disable, prefer, require, verify-ca or verify-full")]
    SslMode { value: Shown },
    /// libpq lets these override the URL; silently ignoring them could connect to the wrong
    /// place, so they are refused instead.
    #[error("query parameter {name} is not supported: put it in the URL itself")]
    Unsupported { name: &'static str },
}

impl SslMode {
    /// Parses libpq's `sslmode` value. `allow` is not offered: it would let an attacker on the
    /// path downgrade to plaintext without the operator asking for it.
    pub fn from_param(value: &str) -> Option<SslMode> {
        match value {
            "disable" => Some(SslMode::Disable),
            "prefer" => Some(SslMode::Prefer),
            "require" => Some(SslMode::Require),
            "verify-ca" => Some(SslMode::VerifyCa),
            "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl UpstreamTarget {
    /// Parses `postgres://user:password@host:port/database?sslmode=...&sslrootcert=...`.
    /// User, password and database are percent-decoded. The port defaults to 5432, the
    /// database to the user, and `sslmode` to `prefer`, as in libpq. Other query parameters
    /// are ignored, except the ones that would change where or as whom to connect.
    pub fn from_url(s: &str) -> Result<Self, UrlError> {
        let url = url::Url::parse(s.trim()).map_err(UrlError::Syntax)?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(UrlError::Scheme);
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(UrlError::MissingHost),
        };
        let port = url.port().unwrap_or(DEFAULT_PG_PORT);
        if port == 0 {
            return Err(UrlError::PortZero);
        }
        let user = percent_decode(url.username()).ok_or(UrlError::Encoding { part: "user" })?;
        if user.is_empty() {
            return Err(UrlError::MissingUser);
        }
        let password = match url.password().filter(|p| !p.is_empty()) {
            Some(p) => Some(percent_decode(p).ok_or(UrlError::Encoding { part: "password" })?),
            None => None,
        };
        let path = url.path().strip_prefix('/').unwrap_or(url.path());
        let database = match path {
            "" => user.clone(),
            db => percent_decode(db).ok_or(UrlError::Encoding { part: "database" })?,
        };
        let (sslmode, sslrootcert) = query_params(url.query().unwrap_or_default())?;
        Ok(UpstreamTarget {
            host,
            port,
            user,
            password,
            database,
            sslmode,
            sslrootcert,
        })
    }

    /// Whether the host is this machine: `localhost` or a loopback IP.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.to_canonical().is_loopback())
    }
}

/// Reads the query string by hand: `url::Url::query_pairs` decodes `+` as a space, which
/// libpq does not, and that would corrupt an `sslrootcert` path.
fn query_params(query: &str) -> Result<(SslMode, Option<PathBuf>), UrlError> {
    const OVERRIDES: [&str; 6] = ["host", "hostaddr", "port", "user", "password", "dbname"];
    let mut sslmode = SslMode::Prefer;
    let mut sslrootcert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value).ok_or(UrlError::Encoding {
            part: "query string",
        })?;
        match key {
            "sslmode" => {
                sslmode = SslMode::from_param(&value).ok_or(UrlError::SslMode {
                    value: Shown::new(&value),
                })?;
            }
            "sslrootcert" if !value.is_empty() => sslrootcert = Some(PathBuf::from(value)),
            _ => {
                if let Some(name) = OVERRIDES.iter().find(|o| **o == key) {
                    return Err(UrlError::Unsupported { name });
                }
            }
        }
    }
    Ok((sslmode, sslrootcert))
}

/// RFC 3986 percent-decoding to UTF-8; `None` on a bad escape or invalid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
