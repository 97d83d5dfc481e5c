//! The per-client loop: groups the client's messages into units, asks [`crate::route`] which
//! lane runs each unit, forwards the original frames, and relays replies in request order.
//!
//! One task owns the client and its upstreams and polls all of them in one place
//! ([`Session::poll_io`]): reads fill buffers, frames are routed, writes drain buffers. No side
//! ever blocks the other, and backpressure is a buffer bound, not a blocked write.
//!
//! The rules from DESIGN.md that shape it:
//! - the lane is chosen at the first message of a unit and forwarded at once (postgres.js
//!   sends `Parse + Describe + Flush` and waits for the reply before `Bind`);
//! - a transaction never spans lanes;
//! - before a lane switch, the client is not read until the units outstanding on the other
//!   lane are answered, so replies come back in request order.

mod analysis;
mod deferred;
mod forward;
pub mod greeting;
mod lifecycle;
pub mod local;
mod pin;
mod pooler;
mod relay;
mod retry;
pub mod statements;
mod unit;

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;

use crate::cancel::Registration;
use crate::context::Ctx;
use crate::metrics::{self, ErrorKind};
use crate::net::Conn;
use crate::protocol::frame::FrameError;
use crate::protocol::message::{self, Severity};
use crate::protocol::{Frame, TxStatus, sqlstate};
use crate::route::Lane;
use crate::route::effects::PinReason;
use crate::upstream::Upstream;
use crate::upstream::direct::Lease;

use self::statements::Statements;

pub use self::lifecycle::{connect_pooler, run};

/// Stop reading one side while more than this is waiting to be written to the other.
const BACKPRESSURE: usize = 256 * 1024;

const LOST_MESSAGE: &str = "lockroute: the upstream connection was lost while it ran this statement; \
                            the statement may or may not have run";

/// The direct-lane connection a session holds, if any.
enum Direct {
    None,
    /// A shared sticky connection, leased for the current unit.
    Shared(Lease),
    /// A session-tagged or pinned client's own connection, for its whole life.
    Dedicated {
        upstream: Upstream,
        _permit: crate::upstream::direct::SessionPermit,
    },
}

/// Where the client is in its stream of units.
struct Units {
    /// The lane of the current or last unit.
    active: Lane,
    /// Where the client is between and inside units ([`unit::Phase`]).
    phase: unit::Phase,
    started: Instant,
    /// A unit's first message, held until the other lane has answered everything.
    stalled: Option<Frame>,
    /// A `BEGIN` lockroute answered, sent on with the transaction's first real statement.
    begun: Option<deferred::Begun>,
    /// The retry-safe lock unit in flight on the shared direct lane, if any.
    retry: Option<retry::Retryable>,
    /// The next unit is a retry: it is not retried again.
    retrying: bool,
    /// The reply prefix of a retried unit that its client already has.
    replay: Option<retry::Replay>,
    /// lockroute answered part of the unit itself (a `Parse` already prepared on the shared
    /// connection), and the server's part is on its way: the two go out in one write.
    answer_held: bool,
}

/// Why a client was pinned, counted in `lockroute_pinned_clients` while it lives.
struct Pinned {
    reason: PinReason,
    _gauge: crate::metrics::pins::PinGuard,
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    /// The client closed or sent Terminate.
    ClientGone,
    /// The client broke the protocol; it has been told.
    Protocol(FrameError),
    /// lockroute closed it (hold timeout, drain, lost dedicated connection); it has been told.
    Closed(&'static str),
}

/// What the I/O poll found ready.
#[derive(Default)]
struct Ready {
    client: Option<io::Result<usize>>,
    pooler: Option<io::Result<usize>>,
    direct: Option<io::Result<usize>>,
}

struct Session {
    ctx: Arc<Ctx>,
    client: Conn,
    pooler: Option<Upstream>,
    direct: Direct,
    /// Session-tagged at startup (its dedicated connection may have failed to open).
    tagged: bool,
    /// Moved to a dedicated direct session because a statement would create session state.
    pinned: Option<Pinned>,
    /// A refused pin has been logged for this client (once is enough).
    pin_refused_logged: bool,
    units: Units,
    statements: Statements,
    /// The last unit's statement and what detection, the classifier and the transaction
    /// check said about it.
    last_statement: analysis::LastStatement,
    /// The client's startup parameters, replayed on every reconnect.
    params: Vec<(String, String)>,
    cancel: Registration,
    last_client_frame: Instant,
    /// Why the last attempt to open the pooler lane failed, for the unit's answer.
    pooler_failure: Option<pooler::PoolerFailure>,
}

impl Session {
    async fn run_loop(&mut self) -> End {
        let terminate = self.ctx.terminate.clone();
        // One waiter for the whole session: creating it per iteration would register with the
        // token shared by every session, on every round trip.
        let terminated = terminate.cancelled();
        tokio::pin!(terminated);
        // Set once `terminated` fires. Asking the token instead takes its lock, and polling the
        // waiter on every wake-up took the waiter list's lock: together about 700 instructions
        // per round trip (bench/profile.sh). Only an idle session acts on the drain deadline, so
        // only an idle one polls the waiter; a busy one reaches an idle moment and polls it then.
        let mut terminating = false;
        loop {
            if let Err(end) = self.route_client_frames().await {
                return end;
            }
            self.release_shared_direct();
            let idle = self.is_idle();
            if terminating && idle {
                return self.close(
                    sqlstate::ADMIN_SHUTDOWN,
                    "terminating connection: lockroute is shutting down",
                );
            }
            if idle {
                self.client.shrink_idle();
                for lane in Lane::ALL {
                    if let Some(up) = self.upstream_mut(lane) {
                        up.conn.shrink_idle();
                    }
                }
            }
            let hold_deadline = self.hold_deadline();
            let ready = tokio::select! {
                // Sockets first; no random start (it costs a thread-local RNG per wake-up).
                biased;
                ready = std::future::poll_fn(|cx| self.poll_io(cx)) => ready,
                _ = sleep_until(hold_deadline) => {
                    metrics::error(ErrorKind::DirectHoldTimeout);
                    let msg = format!(
                        "lockroute: closed after holding a shared direct connection for {:?} without sending \
                         anything (--direct-hold-timeout); its transaction was rolled back",
                        self.ctx.config.direct_lane.hold_timeout
                    );
                    return self.close_with(sqlstate::IDLE_IN_TRANSACTION_TIMEOUT, &msg, "direct hold timeout");
                }
                _ = &mut terminated, if idle && !terminating => {
                    terminating = true;
                    continue;
                }
            };
            if let Err(end) = self.on_ready(ready) {
                return end;
            }
        }
    }

    /// Polls every socket once: drains what is buffered for each, and reads from each side
    /// that is allowed to read.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Ready> {
        let mut ready = Ready::default();
        let mut any = false;
        if !self.client.wbuf.is_empty()
            && !self.holds_answer()
            && let Poll::Ready(Err(e)) = self.client.poll_drain(cx)
        {
            ready.client = Some(Err(e));
            return Poll::Ready(ready);
        }
        for lane in Lane::ALL {
            if let Some(up) = self.upstream_mut(lane)
                && !up.conn.wbuf.is_empty()
                && let Poll::Ready(Err(e)) = up.conn.poll_drain(cx)
            {
                *ready.slot(lane) = Some(Err(e));
                any = true;
            }
        }
        if self.client_readable()
            && let Poll::Ready(r) = self.client.poll_fill(cx)
        {
            ready.client = Some(r);
            any = true;
        }
        if self.client.wbuf.len() < BACKPRESSURE {
            for lane in Lane::ALL {
                if ready.slot(lane).is_some() {
                    continue;
                }
                if let Some(up) = self.upstream_mut(lane)
                    && let Poll::Ready(r) = up.conn.poll_fill(cx)
                {
                    *ready.slot(lane) = Some(r);
                    any = true;
                }
            }
        }
        if any {
            Poll::Ready(ready)
        } else {
            Poll::Pending
        }
    }

    /// Whether what lockroute answered itself waits for the server's reply to the same unit,
    /// so that the client gets both in one write and wakes once: a `ParseComplete` sent on its
    /// own cost a write, and a wake-up of the client, per lock-path unit (bench/profile.sh).
    fn holds_answer(&self) -> bool {
        self.units.answer_held
            && self.client.wbuf.len() < BACKPRESSURE
            && self
                .upstream(self.units.active)
                .is_some_and(|up| !up.server.inflight().is_empty())
    }

    fn client_readable(&self) -> bool {
        self.units.stalled.is_none()
            && Lane::ALL.iter().all(|&lane| {
                self.upstream(lane)
                    .is_none_or(|up| up.conn.wbuf.len() < BACKPRESSURE)
            })
    }

    fn on_ready(&mut self, ready: Ready) -> Result<(), End> {
        for lane in Lane::ALL {
            match ready.get(lane) {
                None => {}
                Some(Ok(0)) | Some(Err(_)) => self.on_upstream_lost(lane)?,
                Some(Ok(_)) => self.relay_upstream_frames(lane)?,
            }
        }
        match ready.client {
            Some(Ok(0)) | Some(Err(_)) => Err(End::ClientGone),
            _ => Ok(()),
        }
    }

    // -----------------------------------------------------------------------------------------
    // State

    fn upstream(&self, lane: Lane) -> Option<&Upstream> {
        match (lane, &self.direct) {
            (Lane::Pooler, _) => self.pooler.as_ref(),
            (Lane::Direct, Direct::Shared(lease)) => Some(lease.upstream_ref()),
            (Lane::Direct, Direct::Dedicated { upstream, .. }) => Some(upstream),
            (Lane::Direct, Direct::None) => None,
        }
    }

    fn upstream_mut(&mut self, lane: Lane) -> Option<&mut Upstream> {
        upstream_of(&mut self.pooler, &mut self.direct, lane)
    }

    fn take_upstream(&mut self, lane: Lane) -> Option<Upstream> {
        match lane {
            Lane::Pooler => self.pooler.take(),
            Lane::Direct => match std::mem::replace(&mut self.direct, Direct::None) {
                Direct::None => None,
                // The broken connection must not go back to the pool.
                Direct::Shared(mut lease) => Some(lease.take()),
                Direct::Dedicated { upstream, .. } => Some(upstream),
            },
        }
    }

    /// The lane owes nothing and no unit is being sent to it.
    fn lane_quiescent(&self, lane: Lane) -> bool {
        let unit_open = self.units.active == lane && self.units.phase.is_open();
        !unit_open
            && self
                .upstream(lane)
                .is_none_or(|up| up.server.inflight().is_empty())
    }

    fn is_idle(&self) -> bool {
        self.units.stalled.is_none()
            && !self.units.phase.is_local()
            && self.units.begun.is_none()
            && self.client.rbuf.is_empty()
            && Lane::ALL.iter().all(|&lane| {
                self.lane_quiescent(lane)
                    && self
                        .upstream(lane)
                        .is_none_or(|up| up.server.status() == TxStatus::Idle)
            })
    }

    /// Returns a shared direct connection once its unit is done and no transaction is open.
    fn release_shared_direct(&mut self) {
        if let Direct::Shared(lease) = &self.direct
            && self.lane_quiescent(Lane::Direct)
            && lease.upstream_ref().server.status() == TxStatus::Idle
        {
            self.direct = Direct::None;
        }
    }

    /// While a client holds a shared direct connection and the server is waiting on the
    /// client, it must send something before this deadline.
    ///
    /// The server waits on the client when it owes nothing, when it is in COPY FROM STDIN (or
    /// waits for the Sync after it), or when the client does not read its replies. The clock starts at the later of the
    /// client's last message and the server's last answer, so a slow statement never counts
    /// against its client.
    fn hold_deadline(&self) -> Option<Instant> {
        let Direct::Shared(lease) = &self.direct else {
            return None;
        };
        let up = lease.upstream_ref();
        let inflight = up.server.inflight();
        let waiting_on_client = inflight.is_empty()
            || inflight.copy_in()
            || inflight.awaiting_sync()
            || self.client.wbuf.len() >= BACKPRESSURE;
        waiting_on_client.then(|| {
            self.last_client_frame.max(up.server.last_used())
                + self.ctx.config.direct_lane.hold_timeout
        })
    }

    fn protocol_error(&mut self, e: FrameError) -> End {
        let (code, kind) = match e {
            FrameError::TooLarge { .. } => {
                (sqlstate::PROGRAM_LIMIT_EXCEEDED, ErrorKind::MessageTooLarge)
            }
            FrameError::TooShort { .. } => (sqlstate::PROTOCOL_VIOLATION, ErrorKind::Protocol),
        };
        metrics::error(kind);
        message::error_response(
            &mut self.client.wbuf,
            Severity::Fatal,
            code,
            &format!("lockroute: {e}"),
        );
        End::Protocol(e)
    }

    fn close(&mut self, code: &str, msg: &str) -> End {
        self.close_with(code, msg, "closed by lockroute")
    }

    fn close_with(&mut self, code: &str, msg: &str, why: &'static str) -> End {
        message::error_response(&mut self.client.wbuf, Severity::Fatal, code, msg);
        End::Closed(why)
    }
}

impl Ready {
    fn slot(&mut self, lane: Lane) -> &mut Option<io::Result<usize>> {
        match lane {
            Lane::Pooler => &mut self.pooler,
            Lane::Direct => &mut self.direct,
        }
    }

    fn get(&self, lane: Lane) -> Option<&io::Result<usize>> {
        match lane {
            Lane::Pooler => self.pooler.as_ref(),
            Lane::Direct => self.direct.as_ref(),
        }
    }
}

/// The upstream of a lane, borrowed from the session's fields so that other fields stay free.
fn upstream_of<'a>(
    pooler: &'a mut Option<Upstream>,
    direct: &'a mut Direct,
    lane: Lane,
) -> Option<&'a mut Upstream> {
    match (lane, direct) {
        (Lane::Pooler, _) => pooler.as_mut(),
        (Lane::Direct, Direct::Shared(lease)) => Some(lease.upstream()),
        (Lane::Direct, Direct::Dedicated { upstream, .. }) => Some(upstream),
        (Lane::Direct, Direct::None) => None,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
