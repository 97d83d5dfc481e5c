//! Configuration: flags and environment variables, parsed and validated into an immutable
//! [`Config`]. No sockets are opened here.
//!
//! OWNER: config helper. The types below are the interface the rest of the crate uses.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
            ClientAuth::Scram { user, .. } => write!(f, "Scram {{ user: {user:?}, password: <redacted> }}"),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}
