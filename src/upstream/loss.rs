//! Upstream stage, connect failures read: was the lane *unreachable* for now (worth waiting
//! out, or falling back from), or did it *refuse* this login for good (a client must hear it)?
//!
//! A pooler restarting, draining or full answers a login with a FATAL of its own; those are
//! losses of the pooler, not the client's fault, and a unit waits them out
//! (`--pooler-connect-wait`). A wrong password, an unknown database or tenant is a refusal: it
//! will not change by waiting, so the client is told at once.

use super::connect::ConnectError;

/// What a failed connect means for the unit that needed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Down, restarting, draining or full: try again shortly.
    Unreachable,
    /// Will not accept this login however long one waits.
    Refused,
}

/// PgBouncer reports nearly everything as `08P01`; these texts (from its `src/*.c`
/// `disconnect_client` and `pool_*` calls) are a pooler or its server going away or filling
/// up, not a wrong login.
const PGBOUNCER_LOSSES: &[&str] = &[
    "database removed",
    "pgbouncer is shutting down",
    "pgbouncer cannot connect to server",
    "no more connections allowed",
    "query_wait_timeout",
    "server login has been failing",
    "client_login_timeout",
    "server conn crashed",
    "database does not allow connections",
];

/// Supavisor reports its own errors as `XX000` with the code in parentheses first
/// (`lib/supavisor/errors/*.ex`, `use Supavisor.Error, code: ...`). These are a pool that is
/// full, draining (a tenant update terminates pools), or whose handler died.
const SUPAVISOR_LOSSES: &[&str] = &[
    "(EMAXCLIENTCONN)",
    "(EMAXCLIENTSESSION)",
    "(EMAXCONN",
    "(ECHECKOUTTIMEOUT)",
    "(EPOOLTERMINATING)",
    "(EDBHANDLEREXITED)",
    "(ECLIENTSOCKETCLOSED)",
    "ClientHandler",
    "DbHandler",
    "max client connections reached",
];

/// SQLSTATEs that mean "not now" whoever sends them: shutdown (`57P01`, `57P02`), starting up
/// or in recovery (`57P03`), too many connections (`53300`), connection failures (`08xxx`
/// other than the protocol-violation catch-all), out of resources (`53xxx`).
fn transient_sqlstate(code: &str) -> bool {
    matches!(
        code,
        "57P01" | "57P02" | "57P03" | "08000" | "08001" | "08003" | "08004" | "08006"
    ) || code.starts_with("53")
}

/// Reads a failed connect.
pub fn classify(e: &ConnectError) -> Failure {
    match e {
        // A protocol failure during startup is also what a handshake cut in the middle looks
        // like, so it is waited out like a closed port; a lasting one ends in 08001 naming it.
        // (A TLS handshake cut is an I/O error; `Tls` is rustls refusing, e.g. a certificate.)
        ConnectError::Io(_) | ConnectError::Timeout | ConnectError::Protocol(_) => {
            Failure::Unreachable
        }
        ConnectError::Server {
            sqlstate, message, ..
        } => classify_server(sqlstate, message),
        // Configuration: TLS refused or not verified, an auth method lockroute lacks, a
        // missing password. Waiting changes none of them.
        ConnectError::TlsRefused
        | ConnectError::Tls(_)
        | ConnectError::UnsupportedAuth(_)
        | ConnectError::MissingPassword => Failure::Refused,
    }
}

/// Reads an ErrorResponse a server or pooler sent during startup.
pub fn classify_server(sqlstate: &str, message: &str) -> Failure {
    let lost = transient_sqlstate(sqlstate)
        || (sqlstate == "08P01" && PGBOUNCER_LOSSES.iter().any(|t| message.contains(t)))
        || (sqlstate == "XX000" && SUPAVISOR_LOSSES.iter().any(|t| message.contains(t)));
    if lost {
        Failure::Unreachable
    } else {
        Failure::Refused
    }
}

/// A short, closed name for why a lane could not be connected, for log lines.
pub fn cause(e: &ConnectError) -> &'static str {
    match e {
        ConnectError::Timeout => "connect_timeout",
        ConnectError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection_refused"
        }
        ConnectError::Io(_) => "io",
        ConnectError::Server { sqlstate, .. } => match sqlstate.as_str() {
            "53300" => "too_many_clients",
            "57P03" => "cannot_connect_now",
            "57P01" | "57P02" => "shutting_down",
            "28P01" | "28000" => "auth_refused",
            "3D000" => "unknown_database",
            _ => "server_error",
        },
        other => other.kind(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_classify_as_loss_or_refusal() {
        use Failure::*;
        let cases = [
            (
                "57P01",
                "terminating connection due to administrator command",
                Unreachable,
            ),
            ("57P03", "the database system is starting up", Unreachable),
            ("53300", "sorry, too many clients already", Unreachable),
            ("53300", "too many connections for role \"lr\"", Unreachable),
            ("08P01", "database removed", Unreachable),
            ("08P01", "pgbouncer cannot connect to server", Unreachable),
            (
                "08P01",
                "no more connections allowed (max_client_conn)",
                Unreachable,
            ),
            ("08P01", "no such database: nope", Refused),
            ("08P01", "password authentication failed", Refused),
            (
                "XX000",
                "(EMAXCLIENTCONN) max client connections reached, limit: 200",
                Unreachable,
            ),
            (
                "XX000",
                "(EPOOLTERMINATING) pool terminating: shutting down",
                Unreachable,
            ),
            (
                "XX000",
                "(EDBHANDLEREXITED) connection to database closed. Check logs",
                Unreachable,
            ),
            (
                "XX000",
                "(ECHECKOUTTIMEOUT) Pool checkout timeout.",
                Unreachable,
            ),
            ("XX000", "Tenant or user not found", Refused),
            (
                "28P01",
                "password authentication failed for user \"x\"",
                Refused,
            ),
            ("3D000", "database \"nope\" does not exist", Refused),
        ];
        for (code, msg, want) in cases {
            assert_eq!(classify_server(code, msg), want, "{code} {msg}");
        }
    }

    #[test]
    fn io_and_timeout_are_losses_and_tls_is_a_refusal() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = ConnectError::Io(refused);
        assert_eq!(classify(&e), Failure::Unreachable);
        assert_eq!(cause(&e), "connection_refused");
        assert_eq!(classify(&ConnectError::Timeout), Failure::Unreachable);
        assert_eq!(cause(&ConnectError::Timeout), "connect_timeout");
        assert_eq!(classify(&ConnectError::TlsRefused), Failure::Refused);
    }
}
