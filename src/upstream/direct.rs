//! The direct lane: `--direct-pool-size` shared sticky session connections for lock-path
//! units, and the budget of dedicated connections for session-tagged clients.
//!
//! Shared connections are opened lazily and kept for the life of the process. A unit leases
//! one for as long as it runs (up to `ReadyForQuery` `I`); other clients wait in FIFO order
//! (tokio's semaphore is fair) and the wait is measured. A connection that cannot be opened
//! puts the lane into a jittered, capped backoff, during which lock-path units go straight to
//! the pooler instead of waiting: degraded, but the queue keeps running.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::DirectLaneConfig;
use crate::metrics::{self, LossState};
use crate::route::Lane;

use super::{LaneTarget, Upstream};

/// Why a unit cannot have the direct lane right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("the direct lane is in reconnect backoff")]
    Backoff,
    #[error("no shared direct connection became free in time")]
    WaitTimeout,
    #[error("the direct lane could not be connected")]
    Connect,
}

/// Why a client could not have a dedicated direct session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefused {
    #[error("all --direct-max-sessions dedicated direct sessions are in use")]
    Full,
    #[error(transparent)]
    Unavailable(Unavailable),
}

/// One slot of the `--direct-max-sessions` budget, held for as long as a dedicated session
/// lives, and counted in `lockroute_direct_sessions`.
#[derive(Debug)]
pub struct SessionPermit {
    _permit: OwnedSemaphorePermit,
    _gauge: metrics::pins::SessionGuard,
}

/// How long resetting a returned connection (finishing its replies, rolling back) may take.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a keepalive `;` may take before the connection is given up.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// The shared sticky connections and the dedicated-session budget.
pub struct DirectPool {
    target: Arc<LaneTarget>,
    config: DirectLaneConfig,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Upstream>>,
    backoff: Mutex<Backoff>,
    sessions: Arc<Semaphore>,
    /// `lockroute_direct_wait_seconds`, resolved once.
    wait: ::metrics::Histogram,
}

/// A shared direct connection leased by one unit. Dropping it returns the connection: clean
/// ones at once, dirty ones after a reset in the background (still holding the lease, so the
/// next unit never sees another client's leftovers).
pub struct Lease {
    upstream: Option<Upstream>,
    permit: Option<OwnedSemaphorePermit>,
    pool: Arc<DirectPool>,
}

impl Lease {
    pub fn upstream(&mut self) -> &mut Upstream {
        self.upstream
            .as_mut()
            .expect("a lease holds its upstream until dropped")
    }

    pub fn upstream_ref(&self) -> &Upstream {
        self.upstream
            .as_ref()
            .expect("a lease holds its upstream until dropped")
    }

    /// Takes the connection out of the lease: it is broken and must not go back to the pool.
    /// The slot is freed when the lease drops, and the next unit opens a new connection.
    pub fn take(&mut self) -> Upstream {
        self.upstream
            .take()
            .expect("a lease holds its upstream until taken")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (Some(mut upstream), Some(permit)) = (self.upstream.take(), self.permit.take()) else {
            return;
        };
        let pool = self.pool.clone();
        // The next client's statements have other ids; never trust the slot across clients.
        upstream.server.handed_back(Instant::now());
        if upstream.is_clean() && !upstream.server.is_dirty() {
            pool.idle.lock().unwrap().push(upstream);
            drop(permit);
            return;
        }
        let limit = pool.target.max_message_size;
        tokio::spawn(async move {
            match upstream.reset(RESET_TIMEOUT, limit).await {
                Ok(()) => pool.idle.lock().unwrap().push(upstream),
                Err(e) => {
                    tracing::warn!(lane = "direct", error = %e, "dropped a shared direct connection that could not be reset")
                }
            }
            drop(permit);
        });
    }
}

impl DirectPool {
    pub fn new(target: Arc<LaneTarget>, config: DirectLaneConfig) -> Arc<DirectPool> {
        metrics::pins::set_direct_sessions_max(config.max_sessions);
        Arc::new(DirectPool {
            permits: Arc::new(Semaphore::new(config.pool_size)),
            sessions: Arc::new(Semaphore::new(config.max_sessions)),
            idle: Mutex::new(Vec::new()),
            backoff: Mutex::new(Backoff::default()),
            wait: metrics::direct_wait_histogram(),
            target,
            config,
        })
    }

    pub fn target(&self) -> &Arc<LaneTarget> {
        &self.target
    }

    /// Leases a shared direct connection, in FIFO order with every other client.
    pub async fn acquire(self: &Arc<Self>) -> Result<Lease, Unavailable> {
        if self.backoff.lock().unwrap().active(Instant::now()) {
            return Err(Unavailable::Backoff);
        }
        let started = Instant::now();
        let permit = tokio::time::timeout(
            self.config.wait_timeout,
            self.permits.clone().acquire_owned(),
        )
        .await
        .map_err(|_| Unavailable::WaitTimeout)?
        .expect("the semaphore is never closed");
        self.wait.record(started.elapsed().as_secs_f64());
        let mut lease = Lease {
            upstream: None,
            permit: Some(permit),
            pool: self.clone(),
        };
        while let Some(mut upstream) = self.pop_idle() {
            if upstream.probe_idle() {
                lease.upstream = Some(upstream);
                return Ok(lease);
            }
            metrics::upstream_lost(Lane::Direct, LossState::Idle);
            tracing::info!(
                lane = "direct",
                "a shared direct connection died while idle; reconnecting"
            );
        }
        let params = [("application_name".to_owned(), "lockroute-direct".to_owned())];
        match self
            .target
            .connect_within(&params, self.config.connect_timeout)
            .await
        {
            Ok((upstream, _)) => {
                if self.backoff.lock().unwrap().succeed() {
                    tracing::info!(lane = "direct", "the direct lane is reachable again");
                }
                lease.upstream = Some(upstream);
                Ok(lease)
            }
            Err(e) => {
                // A refusal (53300 too many clients, 57P03 cannot connect now, a connect
                // timeout, a closed port) is "direct unavailable" like any other: the unit
                // runs on the pooler, and the lane backs off before it asks again.
                let cause = super::loss::cause(&e);
                let first = self.backoff.lock().unwrap().fail(Instant::now());
                if first {
                    tracing::warn!(lane = "direct", reason = "direct_unavailable", cause, error = %e,
                        "the direct lane cannot be connected; lock-path units fall back to the pooler");
                } else {
                    tracing::debug!(lane = "direct", reason = "direct_unavailable", cause, error = %e,
                        "the direct lane still cannot be connected");
                }
                Err(Unavailable::Connect)
            }
        }
    }

    /// Takes one of the `--direct-max-sessions` dedicated connection slots, if one is free.
    pub fn try_session(&self) -> Option<SessionPermit> {
        let permit = self.sessions.clone().try_acquire_owned().ok()?;
        Some(SessionPermit {
            _permit: permit,
            _gauge: metrics::pins::direct_session_opened(),
        })
    }

    /// Opens a dedicated direct session for a client that is being pinned: a slot of the
    /// `--direct-max-sessions` budget and a new connection with the client's own startup
    /// parameters. Honours the lane's reconnect backoff, like [`DirectPool::acquire`].
    pub async fn open_session(
        &self,
        params: &[(String, String)],
    ) -> Result<(Upstream, SessionPermit), SessionRefused> {
        if self.backoff.lock().unwrap().active(Instant::now()) {
            return Err(SessionRefused::Unavailable(Unavailable::Backoff));
        }
        let permit = self.try_session().ok_or(SessionRefused::Full)?;
        match self
            .target
            .connect_within(params, self.config.connect_timeout)
            .await
        {
            Ok((upstream, _)) => {
                self.backoff.lock().unwrap().succeed();
                Ok((upstream, permit))
            }
            Err(e) => {
                if self.backoff.lock().unwrap().fail(Instant::now()) {
                    tracing::warn!(lane = "direct", reason = "direct_unavailable", error = %e,
                        "the direct lane cannot be connected; lock-path units fall back to the pooler");
                }
                Err(SessionRefused::Unavailable(Unavailable::Connect))
            }
        }
    }

    fn pop_idle(&self) -> Option<Upstream> {
        self.idle.lock().unwrap().pop()
    }

    /// Sends a keepalive `;` on every shared connection idle for `--direct-keepalive-interval`,
    /// so that no idle timeout between lockroute and the server reaps it, and drops the ones
    /// that no longer answer.
    pub async fn run_keepalive(self: Arc<Self>, shutdown: CancellationToken) {
        let tick = (self.config.keepalive_interval / 2).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
            self.keepalive_once().await;
        }
    }

    /// Closes the shared connections that are idle now, politely (`Terminate`). The kill
    /// switch turned on live calls this, so that passthrough spares the direct endpoint as a
    /// restart would; a connection leased by a unit still in flight comes back to the idle list
    /// later and is closed by the next call. The next lock-path unit in split opens a new one.
    pub async fn close_idle(&self) -> usize {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap());
        let closed = idle.len();
        for mut upstream in idle {
            upstream
                .conn
                .wbuf
                .extend_from_slice(&crate::protocol::message::terminate());
            let _ = tokio::time::timeout(KEEPALIVE_TIMEOUT, upstream.conn.drain()).await;
        }
        closed
    }

    async fn keepalive_once(self: &Arc<Self>) {
        for _ in 0..self.config.pool_size {
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                return;
            };
            let stale = {
                let mut idle = self.idle.lock().unwrap();
                let at = idle
                    .iter()
                    .position(|u| u.server.last_used().elapsed() >= self.config.keepalive_interval);
                at.map(|i| idle.swap_remove(i))
            };
            let Some(mut upstream) = stale else { return };
            match upstream
                .simple_query(";", KEEPALIVE_TIMEOUT, self.target.max_message_size)
                .await
            {
                Ok(_) => self.idle.lock().unwrap().push(upstream),
                Err(e) => {
                    metrics::upstream_lost(Lane::Direct, LossState::Idle);
                    tracing::info!(lane = "direct", error = %e, "keepalive failed; the connection is dropped and reopened on demand");
                }
            }
            drop(permit);
        }
    }
}

/// Reconnect backoff: doubling from 100 ms to a cap of 5 s, each delay jittered to 50–100 %
/// so that many sidecars do not reconnect in lockstep.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    fn active(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| now < until)
    }

    /// Records a failure. Returns whether it is the first of a run (worth one log line).
    fn fail(&mut self, now: Instant) -> bool {
        let exp = BACKOFF_BASE
            .saturating_mul(1 << self.failures.min(16))
            .min(BACKOFF_CAP);
        let jitter = rand::random_range(0.5..=1.0);
        self.until = Some(now + exp.mul_f64(jitter));
        self.failures += 1;
        self.failures == 1
    }

    /// Records a success. Returns whether the lane was failing before.
    fn succeed(&mut self) -> bool {
        let was_failing = self.failures > 0;
        *self = Backoff::default();
        was_failing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let now = Instant::now();
        let mut b = Backoff::default();
        assert!(!b.active(now));
        assert!(b.fail(now));
        let first = b.until.unwrap() - now;
        assert!(
            first >= BACKOFF_BASE / 2 && first <= BACKOFF_BASE,
            "{first:?}"
        );
        assert!(b.active(now));
        for _ in 0..20 {
            assert!(!b.fail(now));
        }
        let capped = b.until.unwrap() - now;
        assert!(
            capped >= BACKOFF_CAP / 2 && capped <= BACKOFF_CAP,
            "{capped:?}"
        );
        assert!(b.succeed());
        assert!(!b.active(now));
        assert!(!b.succeed());
    }
}
