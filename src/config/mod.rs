//! Configuration: flags and environment variables, parsed and validated into an immutable
//! [`Config`]. No sockets are opened here.
//!
//! Every contract flag of DESIGN.md also reads an environment variable; a flag given on the
//! command line wins over its variable. A bad value is a [`ConfigError`] whose `Display` is one
//! line that names the flag first; `main` prints it and exits with [`ConfigError::exit_code`]
//! (64, `EX_USAGE`). Passwords never appear in an error, in `Debug` output or in `--help`.
//!
//! This file holds the types the rest of the crate reads and the checks that need more than one
//! value. The clap surface is in `cli`, `postgres://` URL parsing in `url`, and the one-value
//! parsers (durations, sizes, addresses, counts, files) in `values`.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum;

use crate::route::presets::PresetId;

mod cli;
pub mod control;
mod explain;
mod url;
mod values;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

pub use self::cli::Cli;
use self::cli::{AuthArg, ClientArgs, DirectArgs, RoutingArgs, TlsArg, UpstreamArgs};
pub use self::explain::ExplainConfig;
pub use self::url::UrlError;
use self::values::{
    count, duration, message_size, non_empty, readable, readable_flag, socket_addr,
};

/// The validated configuration. Built once at start and shared read-only.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub pooler: UpstreamTarget,
    pub direct: UpstreamTarget,
    /// The effective mode, after the kill-switch variables are applied.
    pub mode: Mode,
    /// What set the mode, for the start-up log line.
    pub mode_source: ModeSource,
    pub routing: RoutingConfig,
    pub direct_lane: DirectLaneConfig,
    pub client: ClientConfig,
    /// Connect timeout for pooler upstreams (TCP + TLS + auth).
    pub connect_timeout: Duration,
    /// How long a pooler unit waits for an unreachable pooler before `08001`.
    pub pooler_connect_wait: Duration,
    pub drain_timeout: Duration,
    pub log_format: LogFormat,
    /// `--control-file`: re-read on SIGHUP and on change (see [`control`]).
    pub control_file: Option<PathBuf>,
    /// `--control-poll-interval`: how often the control file is read to look for a change.
    pub control_poll_interval: Duration,
    /// The runtime-changeable settings as flags, env and defaults give them at start.
    pub start: control::Inputs,
    /// What the control file said at start (empty without one). `mode` above already
    /// includes it.
    pub initial_control: control::Inputs,
    /// The control file's text as read at start, so that the first look for a change compares
    /// with what was applied, not with what the file holds a moment later.
    pub initial_control_text: Option<String>,
}

/// One upstream endpoint, parsed from a `postgres://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
}

impl fmt::Debug for UpstreamTarget {
    // Passwords never appear in logs, errors or metrics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .finish()
    }
}

/// libpq's `sslmode` values that lockroute supports toward an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Split,
    Passthrough,
    Shadow,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Split, Mode::Passthrough, Mode::Shadow];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Split => "split",
            Mode::Passthrough => "passthrough",
            Mode::Shadow => "shadow",
        }
    }
}

/// Whether a client that uses a session feature is moved to a dedicated direct session
/// (`--pin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Pin {
    /// Pin before the unit runs (DESIGN.md, Routing 5).
    Auto,
    /// Never pin: session features behave as they do behind the pooler, and a shared direct
    /// connection that ran one is reset before another client uses it.
    Off,
}

impl Pin {
    pub fn as_str(self) -> &'static str {
        match self {
            Pin::Auto => "auto",
            Pin::Off => "off",
        }
    }
}

/// What decided the effective mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeSource {
    /// `--mode` / `LOCKROUTE_MODE`, or its default.
    Flag,
    /// `LOCKROUTE_PASSTHROUGH=1`.
    LockroutePassthrough,
    /// `GBRAIN_DISABLE_DIRECT_POOL=1|true`.
    GbrainDisableDirectPool,
}

#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// The tag word (`--tag`).
    pub tag: String,
    /// The custom lock-path regexes (`--lock-pattern`), already checked to compile. They add
    /// to the presets.
    pub lock_patterns: Vec<String>,
    /// `--pin`.
    pub pin: Pin,
    /// The enabled job-queue presets (`--preset`), in the order given, without repeats.
    pub presets: Vec<PresetId>,
}

#[derive(Debug, Clone)]
pub struct DirectLaneConfig {
    /// Shared sticky direct connections (`--direct-pool-size`).
    pub pool_size: usize,
    /// Dedicated direct connections for session-tagged clients (`--direct-max-sessions`).
    pub max_sessions: usize,
    /// How long a unit may wait to connect the direct lane before falling back to the pooler.
    pub connect_timeout: Duration,
    /// How long a unit may wait in the FIFO queue for a shared direct connection.
    pub wait_timeout: Duration,
    /// How long a client may hold a shared direct connection while sending nothing.
    pub hold_timeout: Duration,
    /// Idle time after which a shared direct connection gets a keepalive `;`.
    pub keepalive_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub auth: ClientAuth,
    pub tls: ClientTls,
    pub handshake_timeout: Duration,
    /// Largest frame accepted from a client or an upstream, in bytes.
    pub max_message_size: usize,
}

#[derive(Clone)]
pub enum ClientAuth {
    /// SCRAM-SHA-256 against this user and password.
    Scram { user: String, password: String },
    /// No password; only allowed on a loopback listen address.
    Trust,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientAuth::Scram { user, .. } => {
                write!(f, "Scram {{ user: {user:?}, password: <redacted> }}")
            }
            ClientAuth::Trust => write!(f, "Trust"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientTls {
    /// Answer SSLRequest with `N`.
    Disabled,
    /// Generate a self-signed certificate at start.
    SelfSigned,
    /// Use this certificate chain and key (PEM).
    Files { cert: PathBuf, key: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl ModeSource {
    /// For the start-up log line: the flag or the variable that chose the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            ModeSource::Flag => "--mode",
            ModeSource::LockroutePassthrough => "LOCKROUTE_PASSTHROUGH",
            ModeSource::GbrainDisableDirectPool => "GBRAIN_DISABLE_DIRECT_POOL",
        }
    }
}

/// Port of the session endpoint; the default direct URL is the pooler URL with this port.
const DIRECT_PORT: u16 = 5432;

const LOCK_PATTERNS_ENV: &str = "LOCKROUTE_LOCK_PATTERNS";

/// A value echoed in an error: quoted, with control characters escaped so that the error
/// stays one line whatever the operator typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown(String);

impl Shown {
    fn new(value: &str) -> Shown {
        Shown(value.to_owned())
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            if c.is_control() || c == '"' {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str("\"")
    }
}

/// A configuration that cannot run. `Display` is the one line `main` prints, flag name first.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--help` or `--version`: not a failure. The text goes to stdout and the exit code is 0.
    #[error("{text}")]
    Info { text: String },
    /// clap refused the command line (unknown flag, missing required flag, bad choice).
    #[error("{line}")]
    Usage { line: String },
    #[error("{flag}: invalid duration {value}: {source}")]
    Duration {
        flag: &'static str,
        value: Shown,
        source: humantime::DurationError,
    },
    #[error("{flag}: {value} is out of range: must be greater than 0 and at most 1day")]
    DurationRange { flag: &'static str, value: Shown },
    #[error("{flag}: invalid address {value}: expected IP:PORT, e.g. 127.0.0.1:6432 or [::1]:6432")]
    Address { flag: &'static str, value: Shown },
    #[error("{flag}: {source}")]
    Url {
        flag: &'static str,
        source: UrlError,
    },
    #[error("{flag}: cannot read sslrootcert {path:?}: {source}")]
    RootCert {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{flag}: invalid number {value}: expected a whole number from {min} to {max}")]
    Count {
        flag: &'static str,
        value: Shown,
        min: usize,
        max: usize,
    },
    #[error(
        "--max-message-size: invalid size {value}: expected bytes, or a number with B, KB, KiB, MB, MiB, GB or GiB"
    )]
    Size { value: Shown },
    #[error("--max-message-size: {value} is out of range: must be from 1KiB to 1GiB")]
    SizeRange { value: Shown },
    #[error("--tag: must be non-empty and contain no whitespace or control characters")]
    Tag,
    #[error("--lock-pattern: invalid regex {pattern}: {reason}")]
    Regex { pattern: Shown, reason: String },
    #[error("--lock-pattern: an empty pattern would match every statement")]
    EmptyPattern,
    #[error(
        "--preset: unknown preset {value}: expected none or any of {}",
        preset_names()
    )]
    Preset { value: Shown },
    #[error("--pin: invalid value {value}: use auto or off")]
    Pin { value: Shown },
    #[error("--preset: none turns every preset off and cannot be combined with {value}")]
    PresetNone { value: Shown },
    #[error(
        "--client-auth: trust is refused unless --listen is a loopback address (it is {listen})"
    )]
    TrustNotLoopback { listen: SocketAddr },
    #[error(
        "--client-password: scram needs a password: set --client-password (LOCKROUTE_CLIENT_PASSWORD) or put one in --pooler-url"
    )]
    NoClientPassword,
    #[error("{flag}: required when {other} is set")]
    TlsPair {
        flag: &'static str,
        other: &'static str,
    },
    #[error("--client-tls: off conflicts with --tls-cert and --tls-key")]
    TlsOff,
    #[error("{flag}: cannot read {path:?}: {source}")]
    Unreadable {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{var}: invalid value {value}: expected 1, true, 0 or false")]
    KillSwitch { var: &'static str, value: Shown },
    #[error("{var}: {reason}")]
    Env { var: &'static str, reason: String },
    #[error("{0}")]
    ControlFile(#[from] control::ControlFileError),
}

impl ConfigError {
    /// 0 for `--help`/`--version`, otherwise 64 (`EX_USAGE` from sysexits.h).
    pub fn exit_code(&self) -> u8 {
        match self {
            ConfigError::Info { .. } => 0,
            _ => 64,
        }
    }
}

impl Config {
    /// Parses and validates the command line. `env` answers the variables clap does not read
    /// itself: the kill switches and `LOCKROUTE_LOCK_PATTERNS`. Tests pass a closure.
    pub fn from_args<I, T>(
        args: I,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = Cli::parse_args(args)?;
        let general = &cli.general;
        let listen = socket_addr("--listen", &general.listen)?;
        let admin_listen = socket_addr("--admin-listen", &general.admin_listen)?;
        let (pooler, direct) = cli.upstream.targets()?;
        let routing = cli.routing.validate(env)?;
        let start = control::start_inputs(&cli, &routing, env)?;
        let control_file = general
            .control_file
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let initial_control_text = match &control_file {
            Some(path) => Some(control::read_control_file(path)?),
            None => None,
        };
        let initial_control = match &initial_control_text {
            Some(text) => control::parse(text)?,
            None => control::Inputs::default(),
        };
        let effective = initial_control.over(&start).resolve();
        Ok(Config {
            listen,
            admin_listen,
            mode: effective.mode.value,
            mode_source: effective.mode_source,
            control_file,
            control_poll_interval: duration(
                "--control-poll-interval",
                &general.control_poll_interval,
            )?,
            start,
            initial_control,
            initial_control_text,
            routing,
            direct_lane: cli.direct.validate()?,
            client: cli.client.validate(listen, &pooler)?,
            connect_timeout: duration("--connect-timeout", &cli.upstream.connect_timeout)?,
            pooler_connect_wait: duration(
                "--pooler-connect-wait",
                &cli.upstream.pooler_connect_wait,
            )?,
            drain_timeout: duration("--drain-timeout", &general.drain_timeout)?,
            log_format: general.log_format,
            pooler,
            direct,
        })
    }
}

impl UpstreamArgs {
    fn targets(&self) -> Result<(UpstreamTarget, UpstreamTarget), ConfigError> {
        let pooler_url = non_empty(&self.pooler_url).ok_or(ConfigError::Usage {
            line: "--pooler-url: required (or set LOCKROUTE_POOLER_URL)".to_owned(),
        })?;
        let pooler = target("--pooler-url", pooler_url)?;
        let direct = match non_empty(&self.direct_url) {
            Some(url) => target("--direct-url", url)?,
            None => UpstreamTarget {
                port: DIRECT_PORT,
                ..pooler.clone()
            },
        };
        Ok((pooler, direct))
    }
}

fn target(flag: &'static str, url: &str) -> Result<UpstreamTarget, ConfigError> {
    let target =
        UpstreamTarget::from_url(url).map_err(|source| ConfigError::Url { flag, source })?;
    // `system` is libpq's word for the platform's trust store, not a file.
    if let Some(path) = target
        .sslrootcert
        .as_ref()
        .filter(|p| *p != Path::new("system"))
    {
        readable(path).map_err(|source| ConfigError::RootCert {
            flag,
            path: path.clone(),
            source,
        })?;
    }
    Ok(target)
}

impl RoutingArgs {
    fn validate(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<RoutingConfig, ConfigError> {
        // An empty tag would be contained in every application_name; whitespace cannot occur
        // in the comment form the detector looks for.
        if self.tag.is_empty()
            || self
                .tag
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError::Tag);
        }
        Ok(RoutingConfig {
            tag: self.tag.clone(),
            lock_patterns: lock_patterns(&self.lock_patterns, env)?,
            pin: pin(self.pin, env)?,
            presets: presets(&preset_values(&self.presets, env))?,
        })
    }
}

/// The built-in preset names, for the error line.
fn preset_names() -> String {
    PresetId::BUILT_IN.map(PresetId::as_str).join(", ")
}

/// `--preset` values (clap has already split `LOCKROUTE_PRESETS` at commas). Blank items are
/// dropped, so `a,,b` and a trailing comma work; no item at all means every built-in preset.
/// Names are exact and lower case, as DESIGN.md writes them.
/// The flag wins over `LOCKROUTE_PRESETS`, a comma list. (Read here, not by clap, so that the
/// environment is the one `Config::from_args` is given, as for every routing setting.)
fn preset_values(flags: &[String], env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    if !flags.is_empty() {
        return flags.to_vec();
    }
    env(control::PRESETS_VAR)
        .map(|list| list.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// `--pin`, else `LOCKROUTE_PIN`, else `auto`.
fn pin(flag: Option<Pin>, env: &dyn Fn(&str) -> Option<String>) -> Result<Pin, ConfigError> {
    if let Some(pin) = flag {
        return Ok(pin);
    }
    match env(control::PIN_VAR).as_deref().map(str::trim) {
        None | Some("") => Ok(Pin::Auto),
        Some(value) => Pin::from_str(value, true).map_err(|_| ConfigError::Pin {
            value: Shown::new(value),
        }),
    }
}

fn presets(values: &[String]) -> Result<Vec<PresetId>, ConfigError> {
    let names: Vec<&str> = values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(PresetId::BUILT_IN.to_vec());
    }
    if names.contains(&"none") {
        return match names.iter().find(|n| **n != "none") {
            Some(other) => Err(ConfigError::PresetNone {
                value: Shown::new(other),
            }),
            None => Ok(Vec::new()),
        };
    }
    let mut presets = Vec::new();
    for name in names {
        let preset = PresetId::from_name(name).ok_or(ConfigError::Preset {
            value: Shown::new(name),
        })?;
        if !presets.contains(&preset) {
            presets.push(preset);
        }
    }
    Ok(presets)
}

/// Flags win over `LOCKROUTE_LOCK_PATTERNS`; either adds to the presets, and by default there
/// are none. The variable holds one regex per line; blank lines and surrounding whitespace are
/// dropped, so a YAML block scalar works as written.
fn lock_patterns(
    flags: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ConfigError> {
    let from_env: Vec<String> = env(LOCK_PATTERNS_ENV)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let patterns = if !flags.is_empty() {
        flags.to_vec()
    } else {
        from_env
    };
    for pattern in &patterns {
        check_regex(pattern)?;
    }
    Ok(patterns)
}

fn check_regex(pattern: &str) -> Result<(), ConfigError> {
    if pattern.is_empty() {
        return Err(ConfigError::EmptyPattern);
    }
    regex::bytes::Regex::new(pattern).map_err(|e| ConfigError::Regex {
        pattern: Shown::new(pattern),
        reason: regex_reason(&e),
    })?;
    Ok(())
}

/// regex's syntax errors are several lines (`regex parse error:`, the pattern, a caret, then
/// `error: ...`); the `error:` line is the one that says what is wrong.
pub(super) fn regex_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .or_else(|| text.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("invalid");
    line.trim().to_owned()
}

impl DirectArgs {
    fn validate(&self) -> Result<DirectLaneConfig, ConfigError> {
        Ok(DirectLaneConfig {
            pool_size: count("--direct-pool-size", &self.direct_pool_size, 1)?,
            max_sessions: count("--direct-max-sessions", &self.direct_max_sessions, 0)?,
            connect_timeout: duration("--direct-connect-timeout", &self.direct_connect_timeout)?,
            wait_timeout: duration("--direct-wait-timeout", &self.direct_wait_timeout)?,
            hold_timeout: duration("--direct-hold-timeout", &self.direct_hold_timeout)?,
            keepalive_interval: duration(
                "--direct-keepalive-interval",
                &self.direct_keepalive_interval,
            )?,
        })
    }
}

impl ClientArgs {
    fn validate(
        &self,
        listen: SocketAddr,
        pooler: &UpstreamTarget,
    ) -> Result<ClientConfig, ConfigError> {
        Ok(ClientConfig {
            auth: self.auth(listen, pooler)?,
            tls: self.tls()?,
            handshake_timeout: duration("--handshake-timeout", &self.handshake_timeout)?,
            max_message_size: message_size(&self.max_message_size)?,
        })
    }

    fn auth(&self, listen: SocketAddr, pooler: &UpstreamTarget) -> Result<ClientAuth, ConfigError> {
        match self.client_auth {
            // Trust on a routable address would hand the database to anyone who can reach it.
            AuthArg::Trust if !listen.ip().to_canonical().is_loopback() => {
                Err(ConfigError::TrustNotLoopback { listen })
            }
            AuthArg::Trust => Ok(ClientAuth::Trust),
            AuthArg::Scram => {
                let password = non_empty(&self.client_password)
                    .map(str::to_owned)
                    .or_else(|| pooler.password.clone())
                    .ok_or(ConfigError::NoClientPassword)?;
                Ok(ClientAuth::Scram {
                    user: pooler.user.clone(),
                    password,
                })
            }
        }
    }

    fn tls(&self) -> Result<ClientTls, ConfigError> {
        let cert = self.tls_cert.clone().filter(|p| !p.as_os_str().is_empty());
        let key = self.tls_key.clone().filter(|p| !p.as_os_str().is_empty());
        match (self.client_tls, cert, key) {
            (TlsArg::Off, None, None) => Ok(ClientTls::Disabled),
            (TlsArg::Off, _, _) => Err(ConfigError::TlsOff),
            (TlsArg::On, None, None) => Ok(ClientTls::SelfSigned),
            (TlsArg::On, Some(_), None) => Err(ConfigError::TlsPair {
                flag: "--tls-key",
                other: "--tls-cert",
            }),
            (TlsArg::On, None, Some(_)) => Err(ConfigError::TlsPair {
                flag: "--tls-cert",
                other: "--tls-key",
            }),
            (TlsArg::On, Some(cert), Some(key)) => {
                readable_flag("--tls-cert", &cert)?;
                readable_flag("--tls-key", &key)?;
                Ok(ClientTls::Files { cert, key })
            }
        }
    }
}
