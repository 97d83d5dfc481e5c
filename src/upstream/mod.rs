//! Upstream connections: the connector (TLS, SCRAM/md5/cleartext), what each connection still
//! owes ([`inflight`]), and the shared direct lane ([`direct`]).

pub mod connect;
pub mod direct;
pub mod inflight;
pub mod loss;
pub mod names;
pub mod server;
pub mod tls;

use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::UpstreamTarget;
use crate::metrics::{self, UpstreamGuard};
use crate::net::Conn;
use crate::protocol::message;
use crate::protocol::{BackendKey, TxStatus};
use crate::route::Lane;

use self::connect::ConnectError;
use self::server::{ResetPlan, Server, Verdict};
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
            key: connected.key,
            server: Server::new(self.lane == Lane::Pooler),
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

/// Puts a used session back to how it started: GUCs, LISTENs, cursors, session advisory locks,
/// temp tables, SQL prepared statements, and lockroute's own prepared statements with them.
const SESSION_RESET: &str = "DISCARD ALL";

/// One connection to a lane: its socket, and what the server owes and holds ([`Server`]).
pub struct Upstream {
    pub lane: Lane,
    pub conn: Conn,
    /// The server's cancel key, from its `BackendKeyData`.
    pub key: Option<BackendKey>,
    pub server: Server,
    _guard: UpstreamGuard,
}

impl Upstream {
    /// Nothing owed and no transaction open: safe to hand to another client or to drop.
    pub fn is_clean(&self) -> bool {
        self.server.is_clean()
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
    /// Used for the keepalive `;`.
    pub async fn simple_query(
        &mut self,
        sql: &str,
        timeout: Duration,
        limit: usize,
    ) -> Result<TxStatus, UpstreamError> {
        tokio::time::timeout(timeout, self.run_simple(sql, limit))
            .await
            .map_err(|_| UpstreamError::Timeout(timeout))??;
        Ok(self.server.status())
    }

    /// Sends one simple Query and settles its replies.
    async fn run_simple(&mut self, sql: &str, limit: usize) -> Result<(), UpstreamError> {
        self.conn.wbuf.extend_from_slice(&message::query(sql));
        self.server.sent_simple(Instant::now());
        self.settle(limit).await
    }

    /// Reads and discards replies until nothing is owed; then rolls back an open transaction
    /// and discards session state a statement may have left. Afterwards the connection is
    /// clean. A connection whose last batch was never ended, or that is in COPY, is refused
    /// instead ([`ResetPlan::Close`]).
    pub async fn reset(&mut self, timeout: Duration, limit: usize) -> Result<(), UpstreamError> {
        if self.server.reset_plan() == ResetPlan::Close {
            return Err(UpstreamError::Abandoned);
        }
        let work = async {
            self.settle(limit).await?;
            // Settling may have read a reply that dirtied the session: plan again.
            let ResetPlan::Reset { rollback, discard } = self.server.reset_plan() else {
                return Err(UpstreamError::Abandoned);
            };
            if rollback {
                self.run_simple("ROLLBACK", limit).await?;
            }
            if discard {
                self.run_simple(SESSION_RESET, limit).await?;
            }
            self.server.after_reset(discard);
            Ok::<_, UpstreamError>(())
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| UpstreamError::Timeout(timeout))?
    }

    /// Writes what is buffered, then reads until nothing is owed. Every reply goes through
    /// [`Server::on_reply`], as it does when relayed to a client.
    async fn settle(&mut self, limit: usize) -> Result<(), UpstreamError> {
        self.conn.drain().await?;
        while !self.server.inflight().is_empty() {
            let frame = self
                .conn
                .read_frame(limit)
                .await?
                .ok_or(UpstreamError::Closed)?;
            if self
                .server
                .on_reply(frame.tag, frame.body(), Instant::now())
                == Verdict::Lost
            {
                return Err(UpstreamError::Fatal(
                    server::fatal_code(frame.body()).to_owned(),
                ));
            }
        }
        Ok(())
    }
}
