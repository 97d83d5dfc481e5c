//! Configuration: flags and environment variables, parsed and validated into an immutable
//! [`Config`]. No sockets are opened here.
//!
//! Every contract flag of DESIGN.md also reads an environment variable; a flag given on the
//! command line wins over its variable. A bad value is a [`ConfigError`] whose `Display` is one
//! line that names the flag first; `main` prints it and exits with [`ConfigError::exit_code`]
//! (64, `EX_USAGE`). Passwords never appear in an error, in `Debug` output or in `--help`.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, ValueEnum};

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
    pub drain_timeout: Duration,
    pub log_format: LogFormat,
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
    /// Lock-path regexes, already checked to compile.
    pub lock_patterns: Vec<String>,
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
/// libpq's default port, used when a URL names none.
const DEFAULT_PG_PORT: u16 = 5432;
/// No timeout may exceed this: larger values are typos, and `Instant + Duration` must not
/// overflow anywhere downstream.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// Sanity bound for connection counts, so a typo cannot ask for millions of upstreams.
const MAX_CONNECTIONS: usize = 10_000;
const MIN_MESSAGE_SIZE: u64 = 1024;
const MAX_MESSAGE_SIZE: u64 = 1024 * 1024 * 1024;

/// The kill-switch variables, in precedence order.
const KILL_SWITCHES: [(&str, ModeSource); 2] = [
    ("LOCKROUTE_PASSTHROUGH", ModeSource::LockroutePassthrough),
    (
        "GBRAIN_DISABLE_DIRECT_POOL",
        ModeSource::GbrainDisableDirectPool,
    ),
];
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
}

impl ConfigError {
    /// 0 for `--help`/`--version`, otherwise 64 (`EX_USAGE` from sysexits.h).
    pub fn exit_code(&self) -> u8 {
        match self {
            ConfigError::Info { .. } => 0,
            _ => 64,
        }
    }

    /// Maps clap's error to one line, flag first. clap's own message is several lines and can
    /// echo a stray argument verbatim, which might be a URL with a password: never echo that.
    fn from_clap(err: clap::Error) -> ConfigError {
        let kind = err.kind();
        if matches!(kind, ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            return ConfigError::Info {
                text: err.render().to_string(),
            };
        }
        let arg = context_str(&err, ContextKind::InvalidArg);
        let flag = arg.filter(|a| a.starts_with('-')).map(flag_name);
        let value = context_str(&err, ContextKind::InvalidValue).unwrap_or_default();
        let line = match (kind, flag) {
            (ErrorKind::InvalidValue, Some(flag)) if value.is_empty() => {
                format!("{flag}: a value is required")
            }
            (ErrorKind::InvalidValue, Some(flag)) if !valid_values(&err).is_empty() => format!(
                "{flag}: invalid value {}: expected one of {}",
                Shown::new(value),
                valid_values(&err).join(", ")
            ),
            (ErrorKind::MissingRequiredArgument, Some(flag)) => match env_of(flag) {
                Some(env) => format!("{flag}: required (or set {env})"),
                None => format!("{flag}: required"),
            },
            (ErrorKind::UnknownArgument, Some(flag)) => match suggested(&err) {
                Some(tip) => format!("{flag}: unknown flag (did you mean {tip}?)"),
                None => format!("{flag}: unknown flag"),
            },
            (ErrorKind::UnknownArgument, None) => {
                "unexpected argument: lockroute takes only flags (see --help)".to_owned()
            }
            (_, Some(flag)) => {
                let line = first_line(&err);
                // "the argument '--x <X>' cannot be used multiple times": the flag is already first.
                let rest = arg
                    .and_then(|a| line.strip_prefix(&format!("the argument '{a}' ")))
                    .unwrap_or(&line);
                format!("{flag}: {rest}")
            }
            (_, None) => first_line(&err),
        };
        ConfigError::Usage { line }
    }
}

fn context_str(err: &clap::Error, kind: ContextKind) -> Option<&str> {
    match err.get(kind)? {
        ContextValue::String(s) => Some(s),
        ContextValue::Strings(v) => v.first().map(String::as_str),
        _ => None,
    }
}

fn valid_values(err: &clap::Error) -> Vec<String> {
    match err.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(v)) => v.clone(),
        _ => Vec::new(),
    }
}

fn suggested(err: &clap::Error) -> Option<&str> {
    context_str(err, ContextKind::SuggestedArg).map(flag_name)
}

/// `--listen <ADDR>` or `--listen=x` to `--listen`.
fn flag_name(arg: &str) -> &str {
    arg.split([' ', '=']).next().unwrap_or(arg)
}

/// The env var clap reads for a long flag, for the "required" message.
fn env_of(flag: &str) -> Option<String> {
    let long = flag.strip_prefix("--")?;
    let cmd = Cli::command();
    let arg = cmd.get_arguments().find(|a| a.get_long() == Some(long))?;
    Some(arg.get_env()?.to_string_lossy().into_owned())
}

fn first_line(err: &clap::Error) -> String {
    let text = err.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

const ABOUT: &str = "A Postgres wire-protocol sidecar: lock-path statements go to a sticky session \
connection on the direct endpoint, everything else to the transaction pooler.";

const AFTER_HELP: &str = "Kill switch: LOCKROUTE_PASSTHROUGH=1 (or true) forces --mode passthrough and \
wins over --mode; GBRAIN_DISABLE_DIRECT_POOL=1 (or true) does the same. Any other value than \
1, true, 0 or false is refused. Durations are humantime strings (30s, 250ms). A bad value exits \
with status 64.";

/// lockroute's command line. Private: the rest of the crate sees only the validated [`Config`].
/// No `Debug`: it holds the URLs and the client password as typed.
#[derive(Parser)]
#[command(name = "lockroute", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    general: GeneralArgs,
    #[command(flatten)]
    upstream: UpstreamArgs,
    #[command(flatten)]
    routing: RoutingArgs,
    #[command(flatten)]
    direct: DirectArgs,
    #[command(flatten)]
    client: ClientArgs,
}

impl Cli {
    /// `--help` shows which variables exist, never their values: a value could be a secret,
    /// and help output that depends on the environment confuses. The URL and password flags
    /// also say so themselves, so they stay hidden even if this changes.
    fn parse_args<I, T>(args: I) -> Result<Cli, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut matches = Cli::command()
            .mut_args(|arg| arg.hide_env_values(true))
            .try_get_matches_from(args)
            .map_err(ConfigError::from_clap)?;
        Cli::from_arg_matches_mut(&mut matches).map_err(ConfigError::from_clap)
    }
}

#[derive(Args)]
struct GeneralArgs {
    /// Where clients connect (IP:PORT; localhost:PORT means 127.0.0.1:PORT)
    #[arg(
        long,
        env = "LOCKROUTE_LISTEN",
        default_value = "127.0.0.1:6432",
        value_name = "ADDR"
    )]
    listen: String,
    /// HTTP address for /metrics, /healthz and /readyz
    #[arg(
        long,
        env = "LOCKROUTE_ADMIN_LISTEN",
        default_value = "127.0.0.1:9465",
        value_name = "ADDR"
    )]
    admin_listen: String,
    /// split; passthrough (the kill switch: a byte pipe to the pooler); shadow (decide and
    /// count, but send everything to the pooler). LOCKROUTE_PASSTHROUGH=1 and
    /// GBRAIN_DISABLE_DIRECT_POOL=1 win over this flag
    #[arg(long, env = "LOCKROUTE_MODE", value_enum, default_value_t = Mode::Split, ignore_case = true)]
    mode: Mode,
    /// SIGTERM grace period before remaining sessions are closed
    #[arg(
        long,
        env = "LOCKROUTE_DRAIN_TIMEOUT",
        default_value = "30s",
        value_name = "DURATION"
    )]
    drain_timeout: String,
    /// Log format on stderr (json is one object per line); the filter comes from RUST_LOG
    /// [default filter: info]
    #[arg(long, env = "LOCKROUTE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, ignore_case = true)]
    log_format: LogFormat,
}

#[derive(Args)]
#[command(next_help_heading = "Upstreams")]
struct UpstreamArgs {
    /// Transaction pooler DSN: postgres://user:pw@host:6543/db?sslmode=require
    /// (sslmode: disable, prefer, require, verify-ca, verify-full; also sslrootcert=PATH)
    #[arg(
        long,
        env = "LOCKROUTE_POOLER_URL",
        hide_env_values = true,
        required = true,
        value_name = "URL"
    )]
    pooler_url: Option<String>,
    /// Session DSN for the direct lane [default: the pooler URL with its port set to 5432]
    #[arg(
        long,
        env = "LOCKROUTE_DIRECT_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    direct_url: Option<String>,
    /// Connect timeout for pooler upstreams (TCP, TLS and auth)
    #[arg(
        long,
        env = "LOCKROUTE_CONNECT_TIMEOUT",
        default_value = "5s",
        value_name = "DURATION"
    )]
    connect_timeout: String,
}

#[derive(Args)]
#[command(next_help_heading = "Routing")]
struct RoutingArgs {
    /// The tag word: in a client's application_name it sends the whole session to the direct
    /// lane; in a comment that leads a statement it sends that statement
    #[arg(
        long,
        env = "LOCKROUTE_TAG",
        default_value = "lockroute:direct",
        value_name = "WORD"
    )]
    tag: String,
    /// A statement regex that means "lock path" (repeatable; replaces the defaults)
    /// [env: LOCKROUTE_LOCK_PATTERNS, one regex per line]
    /// [default: gbrain's claim, renewLock and cycle-lock refresh]
    #[arg(
        long = "lock-pattern",
        value_name = "REGEX",
        allow_hyphen_values = true
    )]
    lock_patterns: Vec<String>,
}

#[derive(Args)]
#[command(next_help_heading = "Direct lane")]
struct DirectArgs {
    /// Shared sticky direct connections (at least 1)
    #[arg(
        long,
        allow_negative_numbers = true,
        env = "LOCKROUTE_DIRECT_POOL_SIZE",
        default_value = "1",
        value_name = "N"
    )]
    direct_pool_size: String,
    /// Dedicated direct connections for session-tagged clients (0 refuses them)
    #[arg(
        long,
        allow_negative_numbers = true,
        env = "LOCKROUTE_DIRECT_MAX_SESSIONS",
        default_value = "4",
        value_name = "N"
    )]
    direct_max_sessions: String,
    /// How long a unit may wait to connect the direct lane before it falls back to the pooler
    #[arg(
        long,
        env = "LOCKROUTE_DIRECT_CONNECT_TIMEOUT",
        default_value = "2s",
        value_name = "DURATION"
    )]
    direct_connect_timeout: String,
    /// How long a unit may wait in line for a shared direct connection
    #[arg(
        long,
        env = "LOCKROUTE_DIRECT_WAIT_TIMEOUT",
        default_value = "5s",
        value_name = "DURATION"
    )]
    direct_wait_timeout: String,
    /// How long a client may hold a shared direct connection while sending nothing
    #[arg(
        long,
        env = "LOCKROUTE_DIRECT_HOLD_TIMEOUT",
        default_value = "5s",
        value_name = "DURATION"
    )]
    direct_hold_timeout: String,
    /// Idle time after which a direct connection gets a keepalive ";"
    #[arg(
        long,
        env = "LOCKROUTE_DIRECT_KEEPALIVE_INTERVAL",
        default_value = "30s",
        value_name = "DURATION"
    )]
    direct_keepalive_interval: String,
}

/// `--client-auth` values; `ClientAuth` itself carries the credentials.
#[derive(Clone, Copy, ValueEnum)]
enum AuthArg {
    Scram,
    Trust,
}

/// `--client-tls` values.
#[derive(Clone, Copy, ValueEnum)]
enum TlsArg {
    On,
    Off,
}

#[derive(Args)]
#[command(next_help_heading = "Clients")]
struct ClientArgs {
    /// scram checks the pooler URL's user and password (or --client-password); trust is
    /// refused unless --listen is a loopback address
    #[arg(long, env = "LOCKROUTE_CLIENT_AUTH", value_enum, default_value_t = AuthArg::Scram, ignore_case = true)]
    client_auth: AuthArg,
    /// Password clients must give with scram (the user is the pooler URL's user)
    /// [default: the pooler URL's password]
    #[arg(
        long,
        env = "LOCKROUTE_CLIENT_PASSWORD",
        hide_env_values = true,
        allow_hyphen_values = true,
        value_name = "PASSWORD"
    )]
    client_password: Option<String>,
    /// TLS toward clients: on answers SSLRequest with S; off answers N
    #[arg(long, env = "LOCKROUTE_CLIENT_TLS", value_enum, default_value_t = TlsArg::On, ignore_case = true)]
    client_tls: TlsArg,
    /// Server certificate chain for clients, PEM (with --tls-key)
    /// [default: none, a self-signed certificate is generated at start]
    #[arg(long, env = "LOCKROUTE_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Private key for --tls-cert, PEM
    #[arg(long, env = "LOCKROUTE_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Time a client has for SSLRequest, TLS, StartupMessage and auth
    #[arg(
        long,
        env = "LOCKROUTE_HANDSHAKE_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    handshake_timeout: String,
    /// Largest protocol message accepted, in bytes or with a unit (16MB, 512KiB); 1KiB to 1GiB
    #[arg(
        long,
        env = "LOCKROUTE_MAX_MESSAGE_SIZE",
        default_value = "64MiB",
        value_name = "SIZE"
    )]
    max_message_size: String,
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
        let (mode, mode_source) = effective_mode(general.mode, env)?;
        Ok(Config {
            listen,
            admin_listen,
            mode,
            mode_source,
            routing: cli.routing.validate(env)?,
            direct_lane: cli.direct.validate()?,
            client: cli.client.validate(listen, &pooler)?,
            connect_timeout: duration("--connect-timeout", &cli.upstream.connect_timeout)?,
            drain_timeout: duration("--drain-timeout", &general.drain_timeout)?,
            log_format: general.log_format,
            pooler,
            direct,
        })
    }
}

/// Applies the kill switches. Both variables are always checked, so a typo in either is
/// reported even when the other one is on: a kill switch that is silently ignored is worse
/// than no kill switch.
fn effective_mode(
    flag: Mode,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Mode, ModeSource), ConfigError> {
    let mut chosen = (flag, ModeSource::Flag);
    for (var, source) in KILL_SWITCHES.iter().rev() {
        if kill_switch(var, env)? {
            chosen = (Mode::Passthrough, *source);
        }
    }
    Ok(chosen)
}

fn kill_switch(
    var: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<bool, ConfigError> {
    let Some(raw) = env(var) else {
        return Ok(false);
    };
    let value = raw.trim();
    if value.is_empty() || value == "0" || value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else if value == "1" || value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else {
        Err(ConfigError::KillSwitch {
            var,
            value: Shown::new(&raw),
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
        })
    }
}

/// Flags win over `LOCKROUTE_LOCK_PATTERNS`, which wins over the defaults. The variable holds
/// one regex per line; blank lines and surrounding whitespace are dropped, so a YAML block
/// scalar works as written.
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
    } else if !from_env.is_empty() {
        from_env
    } else {
        crate::route::detect::DEFAULT_LOCK_PATTERNS
            .iter()
            .map(|p| (*p).to_owned())
            .collect()
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
fn regex_reason(err: &regex::Error) -> String {
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

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// Opens the file to prove it is readable now, so a bad mount fails at start, not at the
/// first client.
fn readable(path: &Path) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.is_file() {
        Ok(())
    } else {
        Err(std::io::Error::other("not a regular file"))
    }
}

fn readable_flag(flag: &'static str, path: &Path) -> Result<(), ConfigError> {
    readable(path).map_err(|source| ConfigError::Unreadable {
        flag,
        path: path.to_owned(),
        source,
    })
}

/// `IP:PORT`, `[v6]:PORT`, or `localhost:PORT`. No name resolution happens here: config
/// opens no sockets, and a listen address should not depend on DNS.
fn socket_addr(flag: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    let trimmed = value.trim();
    if let Ok(addr) = trimmed.parse::<SocketAddr>() {
        return Ok(addr);
    }
    trimmed
        .strip_prefix("localhost:")
        .and_then(|port| port.parse::<u16>().ok())
        .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        .ok_or(ConfigError::Address {
            flag,
            value: Shown::new(value),
        })
}

fn duration(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let parsed =
        humantime::parse_duration(value.trim()).map_err(|source| ConfigError::Duration {
            flag,
            value: Shown::new(value),
            source,
        })?;
    if parsed.is_zero() || parsed > MAX_DURATION {
        return Err(ConfigError::DurationRange {
            flag,
            value: Shown::new(value),
        });
    }
    Ok(parsed)
}

fn count(flag: &'static str, value: &str, min: usize) -> Result<usize, ConfigError> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (min..=MAX_CONNECTIONS).contains(n))
        .ok_or(ConfigError::Count {
            flag,
            value: Shown::new(value),
            min,
            max: MAX_CONNECTIONS,
        })
}

/// Plain bytes, or a number with a unit: KB/MB/GB are powers of 1000 and KiB/MiB/GiB powers of
/// 1024, as their names say. Units are case-insensitive.
fn message_size(value: &str) -> Result<usize, ConfigError> {
    let trimmed = value.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => u64::MAX,
    };
    let number: u64 = number
        .parse()
        .ok()
        .filter(|_| multiplier != u64::MAX)
        .ok_or(ConfigError::Size {
            value: Shown::new(value),
        })?;
    let bytes = number.saturating_mul(multiplier);
    if !(MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE).contains(&bytes) {
        return Err(ConfigError::SizeRange {
            value: Shown::new(value),
        });
    }
    usize::try_from(bytes).map_err(|_| ConfigError::SizeRange {
        value: Shown::new(value),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    const POOLER: &str = "postgres://app:s3cr%40t@db.example.com:6543/main?sslmode=require";
    const PASSWORD: &str = "s3cr@t";

    /// Expected (pool_size, max_sessions), or `None` for an error.
    type Sizes = Option<(usize, usize)>;
    type Vars = &'static [(&'static str, &'static str)];
    type ModeOutcome = Option<(Mode, ModeSource)>;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse_with(
        extra: &[&str],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut args = vec!["lockroute", "--pooler-url", POOLER];
        args.extend_from_slice(extra);
        Config::from_args(args, env)
    }

    fn parse(extra: &[&str]) -> Result<Config, ConfigError> {
        parse_with(extra, &no_env)
    }

    fn env_of(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let pairs = pairs.to_vec();
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    /// Asserts the error is one line, starts with `prefix`, and exits 64.
    fn assert_error(result: Result<Config, ConfigError>, prefix: &str) -> String {
        let err = result.expect_err(prefix);
        let line = err.to_string();
        assert!(
            line.starts_with(prefix),
            "{line:?} should start with {prefix:?}"
        );
        assert!(!line.contains('\n'), "{line:?} is more than one line");
        assert_eq!(err.exit_code(), 64, "{line}");
        line
    }

    #[test]
    fn defaults_only_pooler_url_match_contract() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:6432".parse().unwrap());
        assert_eq!(c.admin_listen, "127.0.0.1:9465".parse().unwrap());
        assert_eq!((c.mode, c.mode_source), (Mode::Split, ModeSource::Flag));
        assert_eq!(c.routing.tag, "lockroute:direct");
        assert_eq!(c.routing.lock_patterns, crate::route::detect::DEFAULT_LOCK_PATTERNS);
        assert_eq!(
            (c.direct_lane.pool_size, c.direct_lane.max_sessions),
            (1, 4)
        );
        assert_eq!(c.direct_lane.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.direct_lane.wait_timeout, Duration::from_secs(5));
        assert_eq!(c.direct_lane.hold_timeout, Duration::from_secs(5));
        assert_eq!(c.direct_lane.keepalive_interval, Duration::from_secs(30));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.drain_timeout, Duration::from_secs(30));
        assert_eq!(c.client.handshake_timeout, Duration::from_secs(10));
        assert_eq!(c.client.max_message_size, 64 << 20);
        assert_eq!(c.client.tls, ClientTls::SelfSigned);
        assert_eq!(c.log_format, LogFormat::Text);
        match c.client.auth {
            ClientAuth::Scram { user, password } => {
                assert_eq!((user.as_str(), password.as_str()), ("app", PASSWORD))
            }
            ClientAuth::Trust => panic!("default client auth must be scram"),
        }
    }

    #[test]
    fn duration_flags_validate_each_value() {
        let flags = [
            "--drain-timeout",
            "--connect-timeout",
            "--direct-connect-timeout",
            "--direct-wait-timeout",
            "--direct-hold-timeout",
            "--direct-keepalive-interval",
            "--handshake-timeout",
        ];
        let cases: [(&str, Option<Duration>); 7] = [
            ("250ms", Some(Duration::from_millis(250))),
            ("1m 30s", Some(Duration::from_secs(90))),
            ("1day", Some(MAX_DURATION)),
            ("abc", None),
            ("30", None),
            ("0s", None),
            ("25h", None),
        ];
        for flag in flags {
            for (value, want) in &cases {
                let result = parse(&[flag, value]);
                match want {
                    None => {
                        let line = assert_error(result, &format!("{flag}: "));
                        assert!(line.contains(&format!("\"{value}\"")), "{line}");
                    }
                    Some(want) => {
                        let c = result.unwrap();
                        let got = [
                            c.drain_timeout,
                            c.connect_timeout,
                            c.direct_lane.connect_timeout,
                            c.direct_lane.wait_timeout,
                            c.direct_lane.hold_timeout,
                            c.direct_lane.keepalive_interval,
                            c.client.handshake_timeout,
                        ];
                        let idx = flags.iter().position(|f| *f == flag).unwrap();
                        assert_eq!(got[idx], *want, "{flag} {value}");
                    }
                }
            }
        }
    }

    #[test]
    fn drain_timeout_bad_value_names_flag_first() {
        let line = assert_error(parse(&["--drain-timeout", "abc"]), "--drain-timeout: ");
        assert!(
            line.starts_with("--drain-timeout: invalid duration \"abc\": "),
            "{line}"
        );
    }

    #[test]
    fn count_flags_enforce_their_minimum() {
        let cases: [(&str, &str, Sizes); 9] = [
            ("--direct-pool-size", "1", Some((1, 4))),
            ("--direct-pool-size", "8", Some((8, 4))),
            ("--direct-pool-size", "0", None),
            ("--direct-pool-size", "-1", None),
            ("--direct-pool-size", "x", None),
            ("--direct-pool-size", "10001", None),
            ("--direct-max-sessions", "0", Some((1, 0))),
            ("--direct-max-sessions", "16", Some((1, 16))),
            ("--direct-max-sessions", "1.5", None),
        ];
        for (flag, value, want) in cases {
            let result = parse(&[flag, value]);
            match want {
                Some(want) => {
                    let lane = result.unwrap().direct_lane;
                    assert_eq!((lane.pool_size, lane.max_sessions), want, "{flag} {value}");
                }
                None => {
                    assert_error(result, &format!("{flag}: "));
                }
            }
        }
    }

    #[test]
    fn max_message_size_accepts_units_within_bounds() {
        let cases: [(&str, Option<usize>); 12] = [
            ("1024", Some(1024)),
            ("64MiB", Some(64 << 20)),
            ("16MB", Some(16_000_000)),
            ("512KiB", Some(512 << 10)),
            ("512 kib", Some(512 << 10)),
            ("1GiB", Some(1 << 30)),
            ("1023", None),
            ("2GiB", None),
            ("1GB", Some(1_000_000_000)),
            ("12XB", None),
            ("MiB", None),
            ("99999999999999999999GiB", None),
        ];
        for (value, want) in cases {
            let result = parse(&["--max-message-size", value]);
            match want {
                Some(want) => assert_eq!(result.unwrap().client.max_message_size, want, "{value}"),
                None => {
                    assert_error(result, "--max-message-size: ");
                }
            }
        }
    }

    #[test]
    fn listen_addresses_parse_or_name_the_flag() {
        let cases: [(&str, Option<&str>); 7] = [
            ("127.0.0.1:7000", Some("127.0.0.1:7000")),
            ("0.0.0.0:6432", Some("0.0.0.0:6432")),
            ("[::1]:6432", Some("[::1]:6432")),
            ("localhost:7001", Some("127.0.0.1:7001")),
            ("127.0.0.1", None),
            ("db.example.com:6432", None),
            (":6432", None),
        ];
        for flag in ["--listen", "--admin-listen"] {
            for (value, want) in cases {
                // trust keeps scram's password rules out of the way; 0.0.0.0 needs scram.
                let result = parse(&[flag, value]);
                match want {
                    Some(want) => {
                        let c = result.unwrap();
                        let got = if flag == "--listen" {
                            c.listen
                        } else {
                            c.admin_listen
                        };
                        assert_eq!(got, want.parse::<SocketAddr>().unwrap(), "{flag} {value}");
                    }
                    None => {
                        assert_error(result, &format!("{flag}: invalid address"));
                    }
                }
            }
        }
    }

    #[test]
    fn choice_flags_accept_listed_values_only() {
        assert_eq!(parse(&["--mode", "shadow"]).unwrap().mode, Mode::Shadow);
        assert_eq!(
            parse(&["--mode", "PASSTHROUGH"]).unwrap().mode,
            Mode::Passthrough
        );
        assert_eq!(
            parse(&["--log-format", "json"]).unwrap().log_format,
            LogFormat::Json
        );
        assert_eq!(
            parse(&["--client-tls", "off"]).unwrap().client.tls,
            ClientTls::Disabled
        );
        let cases = [
            ("--mode", "splat"),
            ("--log-format", "xml"),
            ("--client-auth", "md5"),
            ("--client-tls", "maybe"),
        ];
        for (flag, value) in cases {
            let line = assert_error(
                parse(&[flag, value]),
                &format!("{flag}: invalid value \"{value}\""),
            );
            assert!(line.contains("expected one of"), "{line}");
        }
    }

    #[test]
    fn direct_url_absent_is_pooler_with_port_5432() {
        let c = parse(&[]).unwrap();
        let want = UpstreamTarget {
            port: 5432,
            ..c.pooler.clone()
        };
        assert_eq!(c.direct, want);
        assert_eq!(c.pooler.port, 6543);
        assert_eq!(c.direct.password.as_deref(), Some(PASSWORD));
        assert_eq!(c.direct.sslmode, SslMode::Require);
        assert_eq!(
            (c.direct.host.as_str(), c.direct.database.as_str()),
            ("db.example.com", "main")
        );
    }

    #[test]
    fn direct_url_given_is_used_as_is() {
        let c = parse(&[
            "--direct-url",
            "postgresql://owner:pw@direct.example.com:6000/other",
        ])
        .unwrap();
        assert_eq!(
            (c.direct.host.as_str(), c.direct.port),
            ("direct.example.com", 6000)
        );
        assert_eq!(
            (c.direct.user.as_str(), c.direct.database.as_str()),
            ("owner", "other")
        );
        assert_eq!(c.direct.sslmode, SslMode::Prefer);
        assert_error(parse(&["--direct-url", "http://x@y/z"]), "--direct-url: ");
    }

    #[test]
    fn kill_switch_values_set_mode_and_source() {
        use Mode::*;
        use ModeSource::*;
        let cases: [(Vars, &[&str], ModeOutcome); 14] = [
            (&[], &[], Some((Split, Flag))),
            (&[], &["--mode", "shadow"], Some((Shadow, Flag))),
            (
                &[("LOCKROUTE_PASSTHROUGH", "1")],
                &["--mode", "shadow"],
                Some((Passthrough, LockroutePassthrough)),
            ),
            (
                &[("LOCKROUTE_PASSTHROUGH", "true")],
                &[],
                Some((Passthrough, LockroutePassthrough)),
            ),
            (
                &[("LOCKROUTE_PASSTHROUGH", "TRUE")],
                &[],
                Some((Passthrough, LockroutePassthrough)),
            ),
            (
                &[("LOCKROUTE_PASSTHROUGH", "0")],
                &["--mode", "shadow"],
                Some((Shadow, Flag)),
            ),
            (
                &[("LOCKROUTE_PASSTHROUGH", "false")],
                &[],
                Some((Split, Flag)),
            ),
            (&[("LOCKROUTE_PASSTHROUGH", "")], &[], Some((Split, Flag))),
            (
                &[("GBRAIN_DISABLE_DIRECT_POOL", "1")],
                &[],
                Some((Passthrough, GbrainDisableDirectPool)),
            ),
            (
                &[("GBRAIN_DISABLE_DIRECT_POOL", "true")],
                &["--mode", "split"],
                Some((Passthrough, GbrainDisableDirectPool)),
            ),
            (
                &[("GBRAIN_DISABLE_DIRECT_POOL", "0")],
                &[],
                Some((Split, Flag)),
            ),
            (
                &[
                    ("LOCKROUTE_PASSTHROUGH", "1"),
                    ("GBRAIN_DISABLE_DIRECT_POOL", "1"),
                ],
                &[],
                Some((Passthrough, LockroutePassthrough)),
            ),
            (
                &[
                    ("LOCKROUTE_PASSTHROUGH", "0"),
                    ("GBRAIN_DISABLE_DIRECT_POOL", "true"),
                ],
                &[],
                Some((Passthrough, GbrainDisableDirectPool)),
            ),
            (
                &[
                    ("LOCKROUTE_PASSTHROUGH", "1"),
                    ("GBRAIN_DISABLE_DIRECT_POOL", "yes"),
                ],
                &[],
                None,
            ),
        ];
        for (vars, flags, want) in cases {
            let env = env_of(vars);
            let result = parse_with(flags, &env);
            match want {
                Some(want) => {
                    let c = result.unwrap();
                    assert_eq!((c.mode, c.mode_source), want, "{vars:?} {flags:?}");
                }
                None => {
                    assert_error(result, "GBRAIN_DISABLE_DIRECT_POOL: invalid value \"yes\"");
                }
            }
        }
    }

    #[test]
    fn kill_switch_garbage_names_the_variable() {
        for var in ["LOCKROUTE_PASSTHROUGH", "GBRAIN_DISABLE_DIRECT_POOL"] {
            for value in ["yes", "on", "2", "ture"] {
                let env = move |k: &str| (k == var).then(|| value.to_owned());
                assert_error(
                    parse_with(&[], &env),
                    &format!("{var}: invalid value \"{value}\""),
                );
            }
        }
    }

    #[test]
    fn trust_client_auth_only_on_loopback_listen() {
        let cases = [
            ("127.0.0.1:6432", true),
            ("127.0.0.2:6432", true),
            ("[::1]:6432", true),
            ("localhost:6432", true),
            ("[::ffff:127.0.0.1]:6432", true),
            ("0.0.0.0:6432", false),
            ("[::]:6432", false),
            ("10.0.0.5:6432", false),
        ];
        for (listen, allowed) in cases {
            let result = parse(&["--client-auth", "trust", "--listen", listen]);
            if allowed {
                assert!(
                    matches!(result.unwrap().client.auth, ClientAuth::Trust),
                    "{listen}"
                );
            } else {
                assert_error(result, "--client-auth: trust is refused");
            }
        }
    }

    #[test]
    fn scram_password_comes_from_flag_then_pooler_url() {
        let with_flag = parse(&["--client-password", "-other"]).unwrap();
        assert!(
            matches!(&with_flag.client.auth, ClientAuth::Scram { user, password } if user == "app" && password == "-other")
        );
        let empty_flag = parse(&["--client-password", ""]).unwrap();
        assert!(
            matches!(&empty_flag.client.auth, ClientAuth::Scram { password, .. } if password == PASSWORD)
        );
        let no_pw = ["lockroute", "--pooler-url", "postgres://app@h:6543/db"];
        let line = assert_error(Config::from_args(no_pw, &no_env), "--client-password: ");
        assert!(line.contains("scram"), "{line}");
        let no_pw_flag = [
            "lockroute",
            "--pooler-url",
            "postgres://app@h/db",
            "--client-password",
            "x",
        ];
        assert!(Config::from_args(no_pw_flag, &no_env).is_ok());
        let trust = [
            "lockroute",
            "--pooler-url",
            "postgres://app@h/db",
            "--client-auth",
            "trust",
        ];
        assert!(Config::from_args(trust, &no_env).is_ok());
    }

    #[test]
    fn tls_files_must_come_in_readable_pairs() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let dir = env!("CARGO_MANIFEST_DIR");
        let missing = "/nonexistent/lockroute/cert.pem";
        let ok = parse(&["--tls-cert", file, "--tls-key", file]).unwrap();
        assert_eq!(
            ok.client.tls,
            ClientTls::Files {
                cert: file.into(),
                key: file.into()
            }
        );
        let cases: [(&[&str], &str); 6] = [
            (
                &["--tls-cert", file],
                "--tls-key: required when --tls-cert is set",
            ),
            (
                &["--tls-key", file],
                "--tls-cert: required when --tls-key is set",
            ),
            (
                &["--tls-cert", missing, "--tls-key", file],
                "--tls-cert: cannot read",
            ),
            (
                &["--tls-cert", file, "--tls-key", missing],
                "--tls-key: cannot read",
            ),
            (
                &["--tls-cert", dir, "--tls-key", file],
                "--tls-cert: cannot read",
            ),
            (
                &["--client-tls", "off", "--tls-cert", file, "--tls-key", file],
                "--client-tls: off conflicts",
            ),
        ];
        for (flags, prefix) in cases {
            assert_error(parse(flags), prefix);
        }
    }

    #[test]
    fn lock_patterns_flags_then_env_then_defaults() {
        let env = env_of(&[("LOCKROUTE_LOCK_PATTERNS", "  ^UPDATE a\r\n\n^UPDATE b  \n")]);
        let from_env = parse_with(&[], &env).unwrap().routing.lock_patterns;
        assert_eq!(from_env, ["^UPDATE a", "^UPDATE b"]);
        let flags = parse_with(&["--lock-pattern", "^x", "--lock-pattern", "-y"], &env).unwrap();
        assert_eq!(flags.routing.lock_patterns, ["^x", "-y"]);
        let blank_env = env_of(&[("LOCKROUTE_LOCK_PATTERNS", " \n")]);
        assert_eq!(
            parse_with(&[], &blank_env).unwrap().routing.lock_patterns,
            crate::route::detect::DEFAULT_LOCK_PATTERNS
        );
    }

    #[test]
    fn lock_pattern_bad_regex_is_one_line_naming_pattern() {
        let line = assert_error(
            parse(&["--lock-pattern", "(UPDATE"]),
            "--lock-pattern: invalid regex \"(UPDATE\": ",
        );
        assert!(line.contains("unclosed group"), "{line}");
        let env = env_of(&[("LOCKROUTE_LOCK_PATTERNS", "^ok\n[z-a]")]);
        assert_error(
            parse_with(&[], &env),
            "--lock-pattern: invalid regex \"[z-a]\"",
        );
        assert_error(
            parse(&["--lock-pattern", ""]),
            "--lock-pattern: an empty pattern",
        );
        assert_error(
            parse(&["--lock-pattern", "a\nb("]),
            "--lock-pattern: invalid regex \"a\\nb(\"",
        );
    }

    #[test]
    fn tag_must_be_a_single_word() {
        assert_eq!(
            parse(&["--tag", "route:direct"]).unwrap().routing.tag,
            "route:direct"
        );
        for bad in ["", "two words", "tab\there"] {
            assert_error(parse(&["--tag", bad]), "--tag: ");
        }
    }

    #[test]
    fn upstream_url_parses_fields() {
        let t = |s: &str| UpstreamTarget::from_url(s).unwrap();
        let full = t(
            "postgres://us%65r:p%40ss%3Aw%2Fd@db.local:6543/my%20db?sslmode=verify-full&sslrootcert=/ca+1.pem&application_name=x",
        );
        assert_eq!(
            (full.user.as_str(), full.password.as_deref()),
            ("user", Some("p@ss:w/d"))
        );
        assert_eq!(
            (full.host.as_str(), full.port, full.database.as_str()),
            ("db.local", 6543, "my db")
        );
        assert_eq!(
            (full.sslmode, full.sslrootcert),
            (SslMode::VerifyFull, Some(PathBuf::from("/ca+1.pem")))
        );
        let bare = t("postgresql://worker@10.1.2.3");
        assert_eq!(
            (bare.host.as_str(), bare.port, bare.database.as_str()),
            ("10.1.2.3", 5432, "worker")
        );
        assert_eq!((bare.password, bare.sslmode), (None, SslMode::Prefer));
        let v6 = t("postgres://u:pw@[::1]:7000/d");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 7000));
        assert!(v6.is_loopback());
        let raw_at = t("postgres://u:p@ss@h/d");
        assert_eq!(raw_at.password.as_deref(), Some("p@ss"));
        for (mode, want) in [
            ("disable", SslMode::Disable),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
        ] {
            assert_eq!(t(&format!("postgres://u@h/d?sslmode={mode}")).sslmode, want);
        }
    }

    #[test]
    fn upstream_url_refuses_bad_input() {
        let cases = [
            ("http://u:pw@h/d", "scheme"),
            ("postgres://h:5432/d", "no user"),
            ("postgres://u:pw@:5432/d", ""),
            ("postgres:///d", "no host"),
            ("postgres://u:pw@h:0/d", "port 0"),
            ("postgres://u:pw@h:99999/d", "not a valid URL"),
            (
                "postgres://u:pw@h/d?sslmode=allow",
                "invalid sslmode \"allow\"",
            ),
            ("postgres://u:pw@h/d?host=other", "host is not supported"),
            ("postgres://u:50%zz@h/d", "password is not valid"),
            ("not a url", "not a valid URL"),
        ];
        for (url, needle) in cases {
            let err = UpstreamTarget::from_url(url).expect_err(url).to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn upstream_is_loopback_by_host() {
        let cases = [
            ("localhost", true),
            ("127.0.0.1", true),
            ("[::1]", true),
            ("db.example.com", false),
            ("10.0.0.1", false),
        ];
        for (host, want) in cases {
            let target = UpstreamTarget::from_url(&format!("postgres://u@{host}/d")).unwrap();
            assert_eq!(target.is_loopback(), want, "{host}");
        }
    }

    #[test]
    fn password_never_appears_in_errors_or_debug() {
        let secret = "Sup3rS3cret";
        let urls = [
            format!("postgres://u:{secret}@h:notaport/d"),
            format!("mysql://u:{secret}@h/d"),
            format!("postgres://u:{secret}@/d"),
            format!("postgres://:{secret}@h/d"),
            format!("postgres://u:{secret}%zz@h/d"),
            format!("postgres://u:{secret}@h/d?sslmode=bogus"),
            format!("{secret}:{secret}@h"),
        ];
        for url in &urls {
            for flag in ["--pooler-url", "--direct-url"] {
                let mut args = vec!["lockroute", "--pooler-url", "postgres://u:x@h/d"];
                args.extend([flag, url.as_str()]);
                let err = Config::from_args(args, &no_env).expect_err(url);
                assert!(!err.to_string().contains(secret), "{err}");
                assert!(!format!("{err:?}").contains(secret), "{err:?}");
            }
        }
        let stray = Config::from_args(["lockroute", &urls[0]], &no_env).expect_err("positional");
        assert!(!stray.to_string().contains(secret), "{stray}");
        let good = format!("postgres://u:{secret}@h/d");
        let config = Config::from_args(
            [
                "lockroute",
                "--pooler-url",
                &good,
                "--client-password",
                secret,
            ],
            &no_env,
        )
        .unwrap();
        assert!(!format!("{config:?}").contains(secret));
    }

    #[test]
    fn clap_errors_are_one_line_exit_64() {
        let cases: [(&[&str], &str); 4] = [
            (
                &["lockroute"],
                "--pooler-url: required (or set LOCKROUTE_POOLER_URL)",
            ),
            (
                &["lockroute", "--pooler-url", "postgres://u:p@h", "--bogus"],
                "--bogus: unknown flag",
            ),
            (
                &["lockroute", "--pooler-url", "postgres://u:p@h", "--mode"],
                "--mode: a value is required",
            ),
            (
                &["lockroute", "--pooler-url", "a", "--pooler-url", "b"],
                "--pooler-url: cannot be used multiple times",
            ),
        ];
        for (args, want) in cases {
            let err = Config::from_args(args, &no_env).expect_err(want);
            assert_eq!((err.to_string().as_str(), err.exit_code()), (want, 64));
        }
    }

    #[test]
    fn help_and_version_exit_zero_with_text() {
        for (flag, needle) in [
            ("--help", "--pooler-url"),
            ("--version", env!("CARGO_PKG_VERSION")),
        ] {
            let err = Config::from_args(["lockroute", flag], &no_env).expect_err(flag);
            assert_eq!(err.exit_code(), 0);
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
