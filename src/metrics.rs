//! Metrics: every metric name as a const, described once, with closed label sets.
//!
//! OWNER: metrics helper. The enums below are the interface the rest of the crate uses.

/// The `kind` label of `lockroute_errors_total`. A closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A malformed frame or startup packet from a client.
    Protocol,
    /// A wrong password or an unknown user.
    ClientAuth,
    /// The client did not finish its handshake in time.
    HandshakeTimeout,
    /// A TLS handshake with a client failed.
    ClientTls,
    /// An upstream could not be connected (TCP, TLS or auth).
    UpstreamConnect,
    /// An upstream dropped while it ran a unit.
    UpstreamLost,
    /// A session-tagged client was refused: `--direct-max-sessions` reached.
    DirectLimit,
    /// A client held a shared direct connection too long without sending anything.
    DirectHoldTimeout,
    /// A frame larger than `--max-message-size`.
    MessageTooLarge,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Protocol,
        ErrorKind::ClientAuth,
        ErrorKind::HandshakeTimeout,
        ErrorKind::ClientTls,
        ErrorKind::UpstreamConnect,
        ErrorKind::UpstreamLost,
        ErrorKind::DirectLimit,
        ErrorKind::DirectHoldTimeout,
        ErrorKind::MessageTooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Protocol => "protocol",
            ErrorKind::ClientAuth => "client_auth",
            ErrorKind::HandshakeTimeout => "handshake_timeout",
            ErrorKind::ClientTls => "client_tls",
            ErrorKind::UpstreamConnect => "upstream_connect",
            ErrorKind::UpstreamLost => "upstream_lost",
            ErrorKind::DirectLimit => "direct_limit",
            ErrorKind::DirectHoldTimeout => "direct_hold_timeout",
            ErrorKind::MessageTooLarge => "message_too_large",
        }
    }
}

/// The `state` label of `lockroute_upstream_lost_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossState {
    Idle,
    InFlight,
}

/// The `direction` label of `lockroute_bytes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    ToUpstream,
    ToClient,
}
