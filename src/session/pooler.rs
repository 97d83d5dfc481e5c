//! The client's pooler upstream, opened at its first pooler unit and reopened after a loss.
//!
//! A pooler unit that finds the pooler unreachable before anything was sent waits for it, with
//! jittered backoff, up to `--pooler-connect-wait`; past that it gets `08001` and the statement
//! did not run. A pooler FATAL at login that means "restarting, draining, full"
//! ([`crate::upstream::loss`]) is waited out the same way. One that refuses the login for good
//! (a wrong password, an unknown database or tenant) is passed to the client verbatim and the
//! client is closed, as a server would have done at login.
//!
//! Lock-path units that fall back to the pooler (`direct_unavailable`) make one attempt and
//! never wait: the lock path never waits on the pooler.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::metrics::{self, ErrorKind};
use crate::upstream::connect::ConnectError;
use crate::upstream::loss::{self, Failure};

use super::Session;

/// First delay between reconnect attempts; it doubles up to [`BACKOFF_CAP`].
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(1);

/// Why the pooler lane could not be opened for a unit.
#[derive(Debug)]
pub(super) enum PoolerFailure {
    /// Unreachable for the whole wait; `lock_path`: a lock-path unit whose direct lane was
    /// unavailable, which made one attempt and did not wait.
    Unreachable {
        waited: Duration,
        error: String,
        lock_path: bool,
    },
    /// The pooler refused the login; its ErrorResponse, verbatim.
    Refused { frame: Bytes },
}

/// How long a unit may wait for the pooler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// One attempt (lock-path units that fell back to the pooler).
    Once,
    /// Up to `--pooler-connect-wait`.
    UpToConfigured,
}

impl Session {
    /// Connects the pooler lane if it is not connected. On failure the reason is left in
    /// `self.pooler_failure` for [`Session::fail_unit_locally`].
    pub(super) async fn connect_pooler_lane(&mut self, wait: Wait) -> Option<()> {
        if self.pooler.is_some() {
            return Some(());
        }
        let started = Instant::now();
        let connect_timeout = self.ctx.pooler.connect_timeout;
        let deadline = match wait {
            Wait::Once => started + connect_timeout,
            Wait::UpToConfigured => started + self.ctx.config.pooler_connect_wait,
        };
        let mut backoff = BACKOFF_START;
        let mut attempts = 0u32;
        let mut flushed = false;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let error = match self
                .ctx
                .pooler
                .connect_within(&self.params, connect_timeout.min(left))
                .await
            {
                Ok((upstream, server_params)) => {
                    self.ctx.last_login.record_pooler(&server_params);
                    if attempts > 1 {
                        tracing::info!(
                            lane = "pooler",
                            attempts,
                            waited_ms = started.elapsed().as_millis() as u64,
                            "the pooler is reachable again"
                        );
                    } else {
                        tracing::debug!(lane = "pooler", "connected the pooler lane");
                    }
                    self.pooler = Some(upstream);
                    self.pooler_failure = None;
                    return Some(());
                }
                Err(e) => e,
            };
            if loss::classify(&error) == Failure::Refused {
                return self.pooler_refused(error);
            }
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            // The unit gives up only once the whole wait has passed: one that gave up with a
            // few milliseconds left (as it did, below 20 ms) told its client it had waited
            // --pooler-connect-wait when it had not. A refused connect returns at once, so the
            // last attempts cost nothing; a blackholed one is cut at the deadline.
            if wait == Wait::Once || left.is_zero() {
                metrics::error(ErrorKind::UpstreamConnect);
                tracing::warn!(lane = "pooler", cause = loss::cause(&error), error = %error, attempts,
                    waited_ms = started.elapsed().as_millis() as u64,
                    "the pooler stayed unreachable; the unit did not run");
                self.pooler_failure = Some(PoolerFailure::Unreachable {
                    waited: started.elapsed(),
                    error: error.to_string(),
                    lock_path: wait == Wait::Once,
                });
                return None;
            }
            if attempts == 1 {
                tracing::info!(lane = "pooler", cause = loss::cause(&error), error = %error,
                    "the pooler is unreachable; the unit waits for it (--pooler-connect-wait)");
            }
            // Whatever the client is owed already (a lock-path reply) must not wait with us.
            if !flushed {
                flushed = true;
                let _ = tokio::time::timeout(left, self.client.drain()).await;
            }
            let pause = backoff.mul_f64(rand::random_range(0.5..=1.0));
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
    }

    fn pooler_refused(&mut self, error: ConnectError) -> Option<()> {
        metrics::error(ErrorKind::UpstreamConnect);
        tracing::warn!(lane = "pooler", cause = loss::cause(&error), error = %error, sqlstate = error.sqlstate(),
            "the pooler refused the login; the client is told and closed");
        let frame = match error {
            ConnectError::Server { frame, .. } => frame,
            other => {
                let mut buf = bytes::BytesMut::new();
                crate::protocol::message::error_response(
                    &mut buf,
                    crate::protocol::message::Severity::Fatal,
                    crate::protocol::sqlstate::CONNECTION_UNABLE,
                    &format!("lockroute: the pooler refused the connection: {other}"),
                );
                buf.freeze()
            }
        };
        self.pooler_failure = Some(PoolerFailure::Refused { frame });
        None
    }
}
