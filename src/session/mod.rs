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

mod lifecycle;
pub mod local;
pub mod statements;

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BufMut;
use tokio::time::Instant;

use crate::cancel::{CancelTarget, Registration};
use crate::context::Ctx;
use crate::metrics::{self, Direction, ErrorKind, LossState};
use crate::net::Conn;
use crate::protocol::frame::{FrameError, try_take};
use crate::protocol::message::{self, Severity, is_fatal};
use crate::protocol::{Frame, TxStatus, sqlstate};
use crate::route::decide::{Decision, UnitContext, decide};
use crate::route::{Lane, Reason};
use crate::upstream::Upstream;
use crate::upstream::direct::Lease;
use crate::upstream::inflight::Reply;

use self::local::Local;
use self::statements::{Outbound, Statements};

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
    /// A session-tagged client's own connection, for its whole life.
    Dedicated {
        upstream: Upstream,
        _permit: tokio::sync::OwnedSemaphorePermit,
    },
}

/// Where the client is in its stream of units.
struct Units {
    /// The lane of the current or last unit.
    active: Lane,
    /// Messages of the current unit are still arriving (no `Sync` or `Query` yet).
    open: bool,
    started: Instant,
    /// A unit's first message, held until the other lane has answered everything.
    stalled: Option<Frame>,
    /// lockroute answers the client itself (after an upstream loss).
    local: Option<Local>,
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
    units: Units,
    statements: Statements,
    /// The client's startup parameters, replayed on every reconnect.
    params: Vec<(String, String)>,
    cancel: Registration,
    last_client_frame: Instant,
}

impl Session {
    async fn run_loop(&mut self) -> End {
        let terminate = self.ctx.terminate.clone();
        loop {
            if let Err(end) = self.route_client_frames().await {
                return end;
            }
            self.release_shared_direct();
            if terminate.is_cancelled() && self.is_idle() {
                return self.close(
                    sqlstate::ADMIN_SHUTDOWN,
                    "terminating connection: lockroute is shutting down",
                );
            }
            if self.is_idle() {
                self.client.shrink_idle();
            }
            let hold_deadline = self.hold_deadline();
            let ready = tokio::select! {
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
                _ = terminate.cancelled(), if !terminate.is_cancelled() => continue,
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
    // Client → upstream

    /// Routes every complete frame the client has sent, unless a lane switch must wait.
    async fn route_client_frames(&mut self) -> Result<(), End> {
        let limit = self.ctx.config.client.max_message_size;
        loop {
            let frame = match self.units.stalled.take() {
                Some(frame) if self.lane_quiescent(self.units.active) => frame,
                Some(frame) => {
                    self.units.stalled = Some(frame);
                    return Ok(());
                }
                None => match try_take(&mut self.client.rbuf, limit) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(self.protocol_error(e)),
                },
            };
            self.last_client_frame = Instant::now();
            if let Some(local) = self.units.local {
                if frame.tag == b'X' {
                    return Err(End::ClientGone);
                }
                self.units.local =
                    local.on_client(&frame, &mut self.statements, &mut self.client.wbuf);
                continue;
            }
            if frame.tag == b'X' {
                return Err(End::ClientGone);
            }
            self.route_frame(frame).await?;
        }
    }

    async fn route_frame(&mut self, frame: Frame) -> Result<(), End> {
        let starts_unit =
            !self.units.open && matches!(frame.tag, b'Q' | b'P' | b'B' | b'D' | b'C' | b'E' | b'F');
        let lane = if starts_unit {
            let decision = self.decide(&frame);
            if decision.lane != self.units.active && !self.lane_quiescent(self.units.active) {
                self.units.stalled = Some(frame);
                return Ok(());
            }
            let Some((lane, reason)) = self.open_lane(decision).await else {
                self.fail_unit_locally(&frame);
                return Ok(());
            };
            metrics::routed(lane, reason);
            self.units.active = lane;
            self.units.started = Instant::now();
            let key = self.upstream(lane).and_then(|up| up.key);
            self.cancel.set(key.map(|key| CancelTarget { lane, key }));
            lane
        } else if self.upstream(self.units.active).is_some() {
            self.units.active
        } else {
            // Nothing is connected on the active lane (its shared connection went back to the
            // pool, or the pooler was lost while idle): a lone Sync or Flush goes to the pooler.
            if self.open_lane(Decision { lane: Lane::Pooler, reason: Reason::Default }).await.is_none() {
                self.fail_unit_locally(&frame);
                return Ok(());
            }
            self.units.active = Lane::Pooler;
            Lane::Pooler
        };
        self.units.open = match frame.tag {
            b'Q' | b'F' | b'S' => false,
            b'P' | b'B' | b'D' | b'C' | b'E' => true,
            _ => self.units.open,
        };
        let virtualize = !matches!(self.direct, Direct::Dedicated { .. }) || lane == Lane::Pooler;
        let started = self.units.started;
        let Some(up) = upstream_of(&mut self.pooler, &mut self.direct, lane) else {
            unreachable!("open_lane connected the lane")
        };
        let before = up.conn.wbuf.len();
        self.statements.forward(
            &frame,
            Outbound {
                wbuf: &mut up.conn.wbuf,
                inflight: &mut up.inflight,
                unnamed_slot: &mut up.unnamed_slot,
                virtualize,
                started,
            },
        );
        metrics::bytes(
            lane,
            Direction::ToUpstream,
            (up.conn.wbuf.len() - before) as u64,
        );
        Ok(())
    }

    fn decide(&self, frame: &Frame) -> Decision {
        let detected = self
            .statements
            .sql_of(frame)
            .and_then(|sql| self.ctx.detector.statement(sql));
        let open_transaction = self
            .upstream(self.units.active)
            .filter(|up| up.status != TxStatus::Idle)
            .map(|_| self.units.active);
        decide(&UnitContext {
            mode: self.ctx.config.mode,
            session_tagged: self.tagged,
            open_transaction,
            detected,
        })
    }

    /// Makes sure the decided lane has a connection. Falls back to the pooler when the direct
    /// lane is unavailable. `None` when not even the pooler can be connected.
    async fn open_lane(&mut self, decision: Decision) -> Option<(Lane, Reason)> {
        if decision.lane == Lane::Direct {
            match &self.direct {
                Direct::Shared(_) | Direct::Dedicated { .. } => {
                    return Some((Lane::Direct, decision.reason));
                }
                Direct::None if self.tagged => {}
                Direct::None => match self.ctx.direct.acquire().await {
                    Ok(lease) => {
                        self.direct = Direct::Shared(lease);
                        return Some((Lane::Direct, decision.reason));
                    }
                    Err(e) => {
                        tracing::debug!(lane = "direct", error = %e, "lock-path unit falls back to the pooler")
                    }
                },
            }
            self.open_pooler().await?;
            return Some((Lane::Pooler, Reason::DirectUnavailable));
        }
        self.open_pooler().await?;
        Some((Lane::Pooler, decision.reason))
    }

    /// Reconnects the pooler lane after it was lost while idle, replaying the client's startup
    /// parameters. The client never sees the drop.
    async fn open_pooler(&mut self) -> Option<()> {
        if self.pooler.is_some() {
            return Some(());
        }
        match self.ctx.pooler.connect(&self.params).await {
            Ok((upstream, _)) => {
                tracing::info!(lane = "pooler", "reconnected the pooler lane");
                self.pooler = Some(upstream);
                Some(())
            }
            Err(e) => {
                metrics::error(ErrorKind::UpstreamConnect);
                tracing::warn!(lane = "pooler", error = %e, sqlstate = e.sqlstate(), "could not reconnect the pooler lane");
                None
            }
        }
    }

    /// Answers a unit that could not be sent anywhere: an error, then the client's messages up
    /// to `Sync` are discarded.
    fn fail_unit_locally(&mut self, frame: &Frame) {
        let msg = "lockroute: could not connect to the pooler; the statement did not run";
        message::error_response(
            &mut self.client.wbuf,
            Severity::Error,
            sqlstate::CONNECTION_FAILURE,
            msg,
        );
        if matches!(frame.tag, b'Q' | b'F' | b'S') {
            message::ready_for_query(&mut self.client.wbuf, TxStatus::Idle);
        } else {
            self.units.local = Some(Local::DiscardToSync {
                then: TxStatus::Idle,
            });
        }
        self.units.open = false;
    }

    // -----------------------------------------------------------------------------------------
    // Upstream → client

    fn relay_upstream_frames(&mut self, lane: Lane) -> Result<(), End> {
        let limit = self.ctx.config.client.max_message_size;
        let before = self.client.wbuf.len();
        loop {
            let Some(up) = upstream_of(&mut self.pooler, &mut self.direct, lane) else {
                return Ok(());
            };
            let frame = match try_take(&mut up.conn.rbuf, limit) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(lane = lane.as_str(), error = %e, "upstream sent a malformed frame");
                    return self.on_upstream_lost(lane);
                }
            };
            if frame.tag == b'E' && is_fatal(frame.body()) {
                // The server closes after FATAL (57P01 admin shutdown, 25P03 idle timeout, ...):
                // an upstream loss, not a client error.
                let code = message::sqlstate(frame.body()).unwrap_or("");
                tracing::info!(lane = lane.as_str(), sqlstate = code, "upstream sent FATAL");
                return self.on_upstream_lost(lane);
            }
            match up.inflight.on_backend(frame.tag, frame.body()) {
                Reply::Swallow => continue,
                Reply::Forward => {}
                Reply::UnitDone { status, started } => {
                    up.status = status;
                    up.last_used = Instant::now();
                    if let Some(started) = started {
                        metrics::request_duration(lane, started.elapsed());
                    }
                    // A transaction pooler may give the next transaction another server.
                    if lane == Lane::Pooler && status == TxStatus::Idle {
                        up.unnamed_slot = None;
                    }
                }
            }
            if frame.tag == b'E' {
                up.unnamed_slot = None;
            }
            self.client.wbuf.put_slice(&frame.bytes);
        }
        metrics::bytes(
            lane,
            Direction::ToClient,
            (self.client.wbuf.len() - before) as u64,
        );
        if self.units.active == lane && self.lane_quiescent(lane) {
            self.cancel.set(None);
        }
        Ok(())
    }

    /// An upstream closed, failed, or sent FATAL.
    fn on_upstream_lost(&mut self, lane: Lane) -> Result<(), End> {
        let Some(up) = self.take_upstream(lane) else {
            return Ok(());
        };
        let unit_open = self.units.active == lane && self.units.open;
        let busy = !up.inflight.is_empty() || unit_open || up.status != TxStatus::Idle;
        let dedicated = lane == Lane::Direct && self.tagged;
        if !busy {
            metrics::upstream_lost(lane, LossState::Idle);
            tracing::info!(
                lane = lane.as_str(),
                "upstream lost while idle; reconnecting at the next unit"
            );
            if dedicated {
                let msg = "lockroute: this session's direct connection was lost; its session state is gone";
                return Err(self.close_with(
                    sqlstate::CONNECTION_FAILURE,
                    msg,
                    "dedicated connection lost",
                ));
            }
            return Ok(());
        }
        metrics::upstream_lost(lane, LossState::InFlight);
        metrics::error(ErrorKind::UpstreamLost);
        tracing::warn!(
            lane = lane.as_str(),
            "upstream lost in the middle of a unit"
        );
        let status = if up.status == TxStatus::Idle {
            TxStatus::Idle
        } else {
            TxStatus::Failed
        };
        let mut inflight = up.inflight;
        for _ in 0..inflight.clear() {
            message::error_response(
                &mut self.client.wbuf,
                Severity::Error,
                sqlstate::CONNECTION_FAILURE,
                LOST_MESSAGE,
            );
            message::ready_for_query(&mut self.client.wbuf, status);
        }
        if unit_open {
            message::error_response(
                &mut self.client.wbuf,
                Severity::Error,
                sqlstate::CONNECTION_FAILURE,
                LOST_MESSAGE,
            );
        }
        self.cancel.set(None);
        if dedicated {
            return Err(self.close_with(
                sqlstate::CONNECTION_FAILURE,
                "lockroute: this session's direct connection was lost",
                "dedicated connection lost",
            ));
        }
        self.units.local = Local::after_loss(unit_open, status);
        self.units.open = false;
        Ok(())
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
        let unit_open = self.units.active == lane && self.units.open;
        !unit_open && self.upstream(lane).is_none_or(|up| up.inflight.is_empty())
    }

    fn is_idle(&self) -> bool {
        self.units.stalled.is_none()
            && self.units.local.is_none()
            && self.client.rbuf.is_empty()
            && Lane::ALL.iter().all(|&lane| {
                self.lane_quiescent(lane)
                    && self
                        .upstream(lane)
                        .is_none_or(|up| up.status == TxStatus::Idle)
            })
    }

    /// Returns a shared direct connection once its unit is done and no transaction is open.
    fn release_shared_direct(&mut self) {
        if let Direct::Shared(lease) = &self.direct
            && self.lane_quiescent(Lane::Direct)
            && lease.upstream_ref().status == TxStatus::Idle
        {
            self.direct = Direct::None;
        }
    }

    /// While a client holds a shared direct connection and the server is waiting on the
    /// client, it must send something before this deadline.
    fn hold_deadline(&self) -> Option<Instant> {
        match &self.direct {
            Direct::Shared(lease) if lease.upstream_ref().inflight.is_empty() => {
                Some(self.last_client_frame + self.ctx.config.direct_lane.hold_timeout)
            }
            _ => None,
        }
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
