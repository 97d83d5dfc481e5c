//! The SQLSTATE codes lockroute sends itself.
//! <https://www.postgresql.org/docs/current/errcodes-appendix.html>

/// The upstream was lost; the statement may or may not have run.
pub const CONNECTION_FAILURE: &str = "08006";
/// The upstream could not be connected.
pub const CONNECTION_UNABLE: &str = "08001";
/// A malformed message.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// A wrong password.
pub const INVALID_PASSWORD: &str = "28P01";
/// An authorization problem that is not a password (unknown user, refused method).
pub const INVALID_AUTHORIZATION: &str = "28000";
/// Statements in a failed transaction until ROLLBACK.
pub const IN_FAILED_TRANSACTION: &str = "25P02";
/// Held a shared connection idle in a transaction for too long.
pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "25P03";
/// lockroute is shutting down.
pub const ADMIN_SHUTDOWN: &str = "57P01";
/// A connection limit was hit.
pub const TOO_MANY_CONNECTIONS: &str = "53300";
/// The client asked for a protocol feature lockroute does not support.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// The client asked for a database lockroute does not serve.
pub const INVALID_CATALOG_NAME: &str = "3D000";
/// A message larger than the configured limit.
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
