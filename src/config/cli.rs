//! Configuration, command-line stage: the clap surface (flags, their environment variables,
//! help text and defaults) and the mapping of clap's errors to one line that names the flag.
//! Most values stay strings here and are checked by `super` and `values`; clap's own refusals
//! are mapped by `ConfigError::from_clap`, so every bad value gets the same one-line error.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, ValueEnum};

use super::{ConfigError, LogFormat, Mode, Pin, Shown};

#[cfg(test)]
mod tests;

impl ConfigError {
    /// Maps clap's error to one line, flag first. clap's own message is several lines and can
    /// echo a stray argument verbatim, which might be a URL with a password: never echo that.
    pub(super) fn from_clap(err: clap::Error) -> ConfigError {
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

/// lockroute's command line. Private: the rest of the crate sees only the validated [`Config`](super::Config).
/// No `Debug`: it holds the URLs and the client password as typed.
#[derive(Parser)]
#[command(name = "lockroute", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub(super) general: GeneralArgs,
    #[command(flatten)]
    pub(super) upstream: UpstreamArgs,
    #[command(flatten)]
    pub(super) routing: RoutingArgs,
    #[command(flatten)]
    pub(super) direct: DirectArgs,
    #[command(flatten)]
    pub(super) client: ClientArgs,
    /// Where `--mode` came from: the command line, `LOCKROUTE_MODE` or the default.
    #[arg(skip = super::control::Origin::Default)]
    pub(super) mode_origin: super::control::Origin,
}

impl Cli {
    /// `--help` shows which variables exist, never their values: a value could be a secret,
    /// and help output that depends on the environment confuses. The URL and password flags
    /// also say so themselves, so they stay hidden even if this changes.
    pub(super) fn parse_args<I, T>(args: I) -> Result<Cli, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut matches = Cli::command()
            .mut_args(|arg| arg.hide_env_values(true))
            .try_get_matches_from(args)
            .map_err(ConfigError::from_clap)?;
        use clap::parser::ValueSource;
        let mode_origin = match matches.value_source("mode") {
            Some(ValueSource::CommandLine) => super::control::Origin::Flag,
            Some(ValueSource::EnvVariable) => super::control::Origin::Env,
            _ => super::control::Origin::Default,
        };
        let mut cli = Cli::from_arg_matches_mut(&mut matches).map_err(ConfigError::from_clap)?;
        cli.mode_origin = mode_origin;
        Ok(cli)
    }
}

#[derive(Args)]
pub(super) struct GeneralArgs {
    /// Where clients connect (IP:PORT; localhost:PORT means 127.0.0.1:PORT)
    #[arg(
        long,
        env = "LOCKROUTE_LISTEN",
        default_value = "127.0.0.1:6432",
        value_name = "ADDR"
    )]
    pub(super) listen: String,
    /// HTTP address for /metrics, /healthz and /readyz
    #[arg(
        long,
        env = "LOCKROUTE_ADMIN_LISTEN",
        default_value = "127.0.0.1:9465",
        value_name = "ADDR"
    )]
    pub(super) admin_listen: String,
    /// split; passthrough (the kill switch: a byte pipe to the pooler); shadow (decide and
    /// count, but send everything to the pooler). LOCKROUTE_PASSTHROUGH=1 and
    /// GBRAIN_DISABLE_DIRECT_POOL=1 win over this flag
    #[arg(long, env = "LOCKROUTE_MODE", value_enum, default_value_t = Mode::Split, ignore_case = true)]
    pub(super) mode: Mode,
    /// NAME=value lines with the environment's names (LOCKROUTE_PASSTHROUGH,
    /// GBRAIN_DISABLE_DIRECT_POOL, LOCKROUTE_MODE, LOCKROUTE_PRESETS, LOCKROUTE_LOCK_PATTERNS,
    /// LOCKROUTE_PIN); they win over the environment, and the file is re-read on SIGHUP and
    /// when it changes
    #[arg(long, env = "LOCKROUTE_CONTROL_FILE", value_name = "PATH")]
    pub(super) control_file: Option<String>,
    /// How often --control-file is read to look for a change (SIGHUP and POST /reload apply
    /// it at once; a long interval leaves them as the only triggers)
    #[arg(
        long,
        env = "LOCKROUTE_CONTROL_POLL_INTERVAL",
        default_value = "500ms",
        value_name = "DURATION"
    )]
    pub(super) control_poll_interval: String,
    /// SIGTERM grace period before remaining sessions are closed
    #[arg(
        long,
        env = "LOCKROUTE_DRAIN_TIMEOUT",
        default_value = "30s",
        value_name = "DURATION"
    )]
    pub(super) drain_timeout: String,
    /// Log format on stderr (json is one object per line); the filter comes from RUST_LOG
    /// [default filter: info]
    #[arg(long, env = "LOCKROUTE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, ignore_case = true)]
    pub(super) log_format: LogFormat,
}

#[derive(Args)]
#[command(next_help_heading = "Upstreams")]
pub(super) struct UpstreamArgs {
    /// Transaction pooler DSN: postgres://user:pw@host:6543/db?sslmode=require
    /// (sslmode: disable, prefer, require, verify-ca, verify-full; also sslrootcert=PATH)
    #[arg(
        long,
        env = "LOCKROUTE_POOLER_URL",
        hide_env_values = true,
        required = true,
        value_name = "URL"
    )]
    pub(super) pooler_url: Option<String>,
    /// Session DSN for the direct lane [default: the pooler URL with its port set to 5432]
    #[arg(
        long,
        env = "LOCKROUTE_DIRECT_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub(super) direct_url: Option<String>,
    /// Connect timeout for pooler upstreams (TCP, TLS and auth)
    #[arg(
        long,
        env = "LOCKROUTE_CONNECT_TIMEOUT",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub(super) connect_timeout: String,
    /// How long a pooler unit waits, reconnecting with backoff, for an unreachable pooler
    /// before it gets 08001 (the statement did not run). Longer than a PgBouncer restart and
    /// than Supavisor's 5 s pool drain, short enough that a worker's own timeouts still rule
    #[arg(
        long,
        env = "LOCKROUTE_POOLER_CONNECT_WAIT",
        default_value = "6s",
        value_name = "DURATION"
    )]
    pub(super) pooler_connect_wait: String,
}

#[derive(Args)]
#[command(next_help_heading = "Routing")]
pub(super) struct RoutingArgs {
    /// The tag word: in a client's application_name it sends the whole session to the direct
    /// lane; in a comment that leads a statement it sends that statement
    #[arg(
        long,
        env = "LOCKROUTE_TAG",
        default_value = "lockroute:direct",
        value_name = "WORD"
    )]
    pub(super) tag: String,
    /// A statement regex that means "lock path" (repeatable; adds to the presets, it does not
    /// replace them) [env: LOCKROUTE_LOCK_PATTERNS, one regex per line] [default: none; the
    /// presets hold gbrain's claim, renewLock and cycle-lock refresh]
    #[arg(
        long = "lock-pattern",
        value_name = "REGEX",
        allow_hyphen_values = true
    )]
    pub(super) lock_patterns: Vec<String>,
    /// auto: a client whose statement would create session state (LISTEN, a session advisory
    /// lock, a session SET, a temp table, SQL PREPARE, a WITH HOLD cursor) moves to a dedicated
    /// direct session before it runs, for the rest of its life; off: never
    /// [env: LOCKROUTE_PIN] [default: auto]
    #[arg(long, value_enum, ignore_case = true, value_name = "auto|off")]
    pub(super) pin: Option<Pin>,
    /// A built-in job-queue preset (repeatable, or a comma list): gbrain, pg-boss,
    /// graphile-worker, procrastinate, pgqueuer, river, oban, solid-queue, good-job, que;
    /// none turns them all off [env: LOCKROUTE_PRESETS, a comma list] [default: every
    /// built-in preset]
    #[arg(long = "preset", value_delimiter = ',', value_name = "NAME")]
    pub(super) presets: Vec<String>,
}

#[derive(Args)]
#[command(next_help_heading = "Direct lane")]
pub(super) struct DirectArgs {
    /// Shared sticky direct connections (at least 1)
    #[arg(
        long,
        allow_negative_numbers = true,
        env = "LOCKROUTE_DIRECT_POOL_SIZE",
        default_value = "1",
        value_name = "N"
    )]
    pub(super) direct_pool_size: String,
    /// Dedicated direct connections for session-tagged clients (0 refuses them)
    #[arg(
        long,
        allow_negative_numbers = true,
        env = "LOCKROUTE_DIRECT_MAX_SESSIONS",
        default_value = "4",
        value_name = "N"
    )]
    pub(super) direct_max_sessions: String,
    /// How long a unit may wait to connect the direct lane before it falls back to the pooler
    #[arg(
        long,
        env = "LOCKROUTE_DIRECT_CONNECT_TIMEOUT",
        default_value = "2s",
        value_name = "DURATION"
    )]
    pub(super) direct_connect_timeout: String,
    /// How long a unit may wait in line for a shared direct connection
    #[arg(
        long,
        env = "LOCKROUTE_DIRECT_WAIT_TIMEOUT",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub(super) direct_wait_timeout: String,
    /// How long a client may hold a shared direct connection while sending nothing
    #[arg(
        long,
        env = "LOCKROUTE_DIRECT_HOLD_TIMEOUT",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub(super) direct_hold_timeout: String,
    /// Idle time after which a direct connection gets a keepalive ";"
    #[arg(
        long,
        env = "LOCKROUTE_DIRECT_KEEPALIVE_INTERVAL",
        default_value = "30s",
        value_name = "DURATION"
    )]
    pub(super) direct_keepalive_interval: String,
}

/// `--client-auth` values; `ClientAuth` itself carries the credentials.
#[derive(Clone, Copy, ValueEnum)]
pub(super) enum AuthArg {
    Scram,
    Trust,
}

/// `--client-tls` values.
#[derive(Clone, Copy, ValueEnum)]
pub(super) enum TlsArg {
    On,
    Off,
}

#[derive(Args)]
#[command(next_help_heading = "Clients")]
pub(super) struct ClientArgs {
    /// scram checks the pooler URL's user and password (or --client-password); trust is
    /// refused unless --listen is a loopback address
    #[arg(long, env = "LOCKROUTE_CLIENT_AUTH", value_enum, default_value_t = AuthArg::Scram, ignore_case = true)]
    pub(super) client_auth: AuthArg,
    /// Password clients must give with scram (the user is the pooler URL's user)
    /// [default: the pooler URL's password]
    #[arg(
        long,
        env = "LOCKROUTE_CLIENT_PASSWORD",
        hide_env_values = true,
        allow_hyphen_values = true,
        value_name = "PASSWORD"
    )]
    pub(super) client_password: Option<String>,
    /// TLS toward clients: on answers SSLRequest with S; off answers N
    #[arg(long, env = "LOCKROUTE_CLIENT_TLS", value_enum, default_value_t = TlsArg::On, ignore_case = true)]
    pub(super) client_tls: TlsArg,
    /// Server certificate chain for clients, PEM (with --tls-key)
    /// [default: none, a self-signed certificate is generated at start]
    #[arg(long, env = "LOCKROUTE_TLS_CERT", value_name = "FILE")]
    pub(super) tls_cert: Option<PathBuf>,
    /// Private key for --tls-cert, PEM
    #[arg(long, env = "LOCKROUTE_TLS_KEY", value_name = "FILE")]
    pub(super) tls_key: Option<PathBuf>,
    /// Time a client has for SSLRequest, TLS, StartupMessage and auth
    #[arg(
        long,
        env = "LOCKROUTE_HANDSHAKE_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub(super) handshake_timeout: String,
    /// Largest protocol message accepted, in bytes or with a unit (16MB, 512KiB); 1KiB to 1GiB
    #[arg(
        long,
        env = "LOCKROUTE_MAX_MESSAGE_SIZE",
        default_value = "64MiB",
        value_name = "SIZE"
    )]
    pub(super) max_message_size: String,
}
