//! Upstream connections: the connector (TLS, SCRAM/md5/cleartext), what each connection still
//! owes ([`inflight`]), and the shared direct lane ([`direct`]).

pub mod connect;
pub mod direct;
pub mod inflight;
pub mod loss;
pub mod names;
pub mod tls;

use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::UpstreamTarget;
use crate::metrics::{self, UpstreamGuard};
use crate::net::Conn;
use crate::protocol::message::{self, is_fatal};
use crate::protocol::{BackendKey, TxStatus};
use crate::route::Lane;

use self::connect::ConnectError;
use self::inflight::{InFlight, Reply};
use self::tls::UpstreamTls;

/// Where one lane connects, and how.
pub struct LaneTarget {
    pub lane: Lane,
    pub target: UpstreamTarget,
    pub tls: UpstreamTls,
    pub connect_timeout: Duration,
    pub max_message_size: usize,
}

impl LaneTarget {
    /// Opens an upstream with the client's forwarded startup parameters. Returns it with the
    /// server's `ParameterStatus` values.
    pub async fn connect(
        &self,
        params: &[(String, String)],
    ) -> Result<(Upstream, Vec<(String, String)>), ConnectError> {
        self.connect_within(params, self.connect_timeout).await
    }

    pub async fn connect_within(
        &self,
        params: &[(String, String)],
        timeout: Duration,
    ) -> Result<(Upstream, Vec<(String, String)>), ConnectError> {
        let result = connect::connect(
            &self.target,
            &self.tls,
            params,
            timeout,
            self.max_message_size,
        )
        .await;
        metrics::upstream_connect(self.lane, result.is_ok());
        let connected = result?;
        let upstream = Upstream {
            lane: self.lane,
            conn: Conn::new(connected.stream, connected.read_buf),
            inflight: InFlight::default(),
            status: TxStatus::Idle,
            key: connected.key,
            unnamed_slot: None,
            last_used: Instant::now(),
            session_dirty: false,
            names: names::PreparedNames::default(),
            _guard: metrics::upstream_opened(self.lane),
        };
        Ok((upstream, connected.parameters))
    }

    /// Sends a CancelRequest for `key` on a new connection.
    pub async fn cancel(&self, key: BackendKey) -> Result<(), ConnectError> {
        connect::send_cancel(&self.target, &self.tls, key, self.connect_timeout).await
    }
}

/// Why an upstream stopped being usable.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream I/O: {0}")]
    Io(#[from] io::Error),
    #[error("upstream closed the connection")]
    Closed,
    #[error("upstream sent FATAL {0}")]
    Fatal(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the connection's client left in the middle of a batch or a COPY")]
    Abandoned,
}

/// Puts a shared session back to how it started, without dropping the prepared statements
/// lockroute relies on: GUCs, LISTENs, cursors, session advisory locks, temp tables.
const SESSION_RESET: &str =
    "RESET ALL; UNLISTEN *; CLOSE ALL; SELECT pg_advisory_unlock_all(); DISCARD TEMP";

/// Whether a command tag leaves session state as it was. Anything else (`SET`, `LISTEN`,
/// `DECLARE CURSOR`, `PREPARE`, `CREATE TEMP TABLE` ...) marks a shared connection for reset.
pub fn leaves_session_clean(command_tag: &[u8]) -> bool {
    let verb = command_tag
        .split(|&b| b == b' ' || b == 0)
        .next()
        .unwrap_or_default();
    matches!(
        verb,
        b"SELECT"
            | b"INSERT"
            | b"UPDATE"
            | b"DELETE"
            | b"MERGE"
            | b"COPY"
            | b"FETCH"
            | b"MOVE"
            | b"BEGIN"
            | b"COMMIT"
            | b"ROLLBACK"
            | b"START"
            | b"SAVEPOINT"
            | b"RELEASE"
    )
}

/// One connection to a lane, with what it still owes.
pub struct Upstream {
    pub lane: Lane,
    pub conn: Conn,
    pub inflight: InFlight,
    /// The status of the last `ReadyForQuery`.
    pub status: TxStatus,
    pub key: Option<BackendKey>,
    /// The client statement this server's unnamed slot holds, when lockroute knows.
    pub unnamed_slot: Option<u64>,
    /// When the server last answered or was handed back.
    pub last_used: Instant,
    /// A statement may have changed session state (a `SET`, `LISTEN`, a cursor ...): reset it
    /// before another client uses this connection.
    pub session_dirty: bool,
    /// lockroute's own prepared statements on this connection (shared direct lane only).
    pub names: names::PreparedNames,
    _guard: UpstreamGuard,
}

impl Upstream {
    /// Nothing owed and no transaction open: safe to hand to another client or to drop.
    pub fn is_clean(&self) -> bool {
        self.inflight.is_empty() && self.status == TxStatus::Idle
    }

    /// Checks, without blocking, that an idle connection is still alive: a server that was
    /// terminated while idle has sent FATAL and closed, and that is readable now.
    pub fn probe_idle(&mut self) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        match self.conn.poll_fill(&mut cx) {
            Poll::Pending => self.conn.rbuf.is_empty(),
            // EOF, an error, or bytes nobody asked for: the connection is not usable.
            Poll::Ready(_) => false,
        }
    }

    /// Sends one simple query and reads up to its `ReadyForQuery`, discarding the replies.
    /// Used for the keepalive `;` and for rolling back before a connection is reused.
    pub async fn simple_query(
        &mut self,
        sql: &str,
        timeout: Duration,
        limit: usize,
    ) -> Result<TxStatus, UpstreamError> {
        tokio::time::timeout(timeout, self.run_simple(sql, limit))
            .await
            .map_err(|_| UpstreamError::Timeout(timeout))??;
        Ok(self.status)
    }

    /// Sends one simple Query and settles its replies.
    async fn run_simple(&mut self, sql: &str, limit: usize) -> Result<(), UpstreamError> {
        // A simple Query destroys the unnamed statement.
        self.unnamed_slot = None;
        self.conn.wbuf.extend_from_slice(&message::query(sql));
        self.inflight.push_simple(Instant::now());
        self.settle(limit).await
    }

    /// Reads and discards replies until nothing is owed; then rolls back an open transaction
    /// and resets session state a statement may have changed. Afterwards the connection is
    /// clean. A connection whose last batch was never ended, or that is in COPY, is refused
    /// instead: ending the batch with a Sync would commit what its client abandoned.
    pub async fn reset(&mut self, timeout: Duration, limit: usize) -> Result<(), UpstreamError> {
        let unended_batch = !self.inflight.is_empty() && self.inflight.outstanding() == 0;
        if self.inflight.copy_in() || unended_batch {
            return Err(UpstreamError::Abandoned);
        }
        let work = async {
            self.settle(limit).await?;
            if self.status != TxStatus::Idle {
                self.run_simple("ROLLBACK", limit).await?;
            }
            if self.session_dirty {
                self.run_simple(SESSION_RESET, limit).await?;
                self.session_dirty = false;
            }
            Ok::<_, UpstreamError>(())
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| UpstreamError::Timeout(timeout))??;
        self.unnamed_slot = None;
        Ok(())
    }

    /// Writes what is buffered, then reads until nothing is owed.
    async fn settle(&mut self, limit: usize) -> Result<(), UpstreamError> {
        self.conn.drain().await?;
        while !self.inflight.is_empty() {
            let frame = self
                .conn
                .read_frame(limit)
                .await?
                .ok_or(UpstreamError::Closed)?;
            if frame.tag == b'E' && is_fatal(frame.body()) {
                let code = message::sqlstate(frame.body())
                    .unwrap_or("?????")
                    .to_owned();
                return Err(UpstreamError::Fatal(code));
            }
            if let Reply::UnitDone { status, .. } =
                self.inflight.on_backend(frame.tag, frame.body())
            {
                self.status = status;
            }
        }
        self.last_used = Instant::now();
        Ok(())
    }
}
