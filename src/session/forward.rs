//! Client → upstream: takes the client's frames off its buffer, decides the lane at the first
//! message of each unit, opens or leases that lane's connection, and forwards the frames.

use std::sync::Arc;

use tokio::time::Instant;

use crate::cancel::CancelTarget;
use crate::control::Live;
use crate::metrics::Direction;
use crate::protocol::frame::try_take;
use crate::protocol::message::{self, Severity};
use crate::protocol::{Frame, TxStatus, sqlstate};
use crate::route::decide::{Decision, UnitContext, decide};
use crate::route::detect::LockMatch;
use crate::route::{Lane, Reason};

use super::analysis::Text;
use super::deferred::Answered;
use super::local::Local;
use super::pooler::{PoolerFailure, Wait};
use super::retry::Retryable;
use super::statements::{Outbound, Shared};
use super::unit::{self, Phase};
use super::{Direct, End, Session, upstream_of};

impl Session {
    /// Routes every complete frame the client has sent, unless a lane switch must wait.
    pub(super) async fn route_client_frames(&mut self) -> Result<(), End> {
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
            if let Phase::Local(local) = self.units.phase {
                if frame.tag == b'X' {
                    return Err(End::ClientGone);
                }
                self.units.phase = Phase::answer_locally(local.on_client(
                    &frame,
                    &mut self.statements,
                    &mut self.client.wbuf,
                ));
                continue;
            }
            if frame.tag == b'X' {
                return Err(End::ClientGone);
            }
            match self.answer_tx_command(&frame) {
                Answered::Yes => continue,
                Answered::Stall => {
                    self.units.stalled = Some(frame);
                    return Ok(());
                }
                Answered::No => {}
            }
            // Routing may wait (a pooler reconnect, up to --pooler-connect-wait; the direct lease):
            // never while holding a shared direct connection that owes this client nothing, or
            // every other client's lock path would wait behind this one.
            self.release_shared_direct();
            self.route_frame(frame).await?;
        }
    }

    pub(super) async fn route_frame(&mut self, frame: Frame) -> Result<(), End> {
        let starts_unit = !self.units.phase.is_open() && unit::starts_unit(frame.tag);
        // The first statement's effects, classified once per unit: for the pin, and for the
        // reset a shared direct connection owes after it.
        let mut unit_effects = None;
        let lane = if starts_unit {
            if self.must_wait_for_active_lane() {
                self.units.stalled = Some(frame);
                return Ok(());
            }
            // The live settings, read once per unit: a reload takes effect at the next unit.
            let live = self.ctx.live.load();
            let (mut decision, lock) = self.decide(&frame, &live);
            if decision.lane != self.units.active && !self.lane_quiescent(self.units.active) {
                self.units.stalled = Some(frame);
                return Ok(());
            }
            let may_pin = self.may_pin(&live);
            if (may_pin || decision.lane == Lane::Direct)
                && let Some(text) = Text::of(&self.statements, &frame)
            {
                unit_effects = Some(self.last_statement.effects(&live, text));
            }
            let pin = unit_effects
                .filter(|_| may_pin)
                .and_then(|effects| self.pin_needed(effects, decision));
            if let Some(reason) = pin {
                // The client moves to a new connection: everything owed on the old one is
                // answered first, so replies stay in order.
                if !self.lane_quiescent(self.units.active) {
                    self.units.stalled = Some(frame);
                    return Ok(());
                }
                decision = self.pin(reason, decision).await;
            }
            let Some((lane, reason)) = self.open_lane(decision).await else {
                return self.fail_unit_locally(&frame);
            };
            self.ctx.metrics.routed(lane, reason);
            // A deferred BEGIN goes ahead: this unit opens a transaction, so it is no
            // autocommit statement a retry could repeat alone.
            let autocommit = self.units.begun.is_none();
            self.send_deferred_begin(lane);
            // Counted when the match chose the unit's lane (or would have, in shadow mode, or
            // did but the direct lane was down); not inside a transaction or a tagged session.
            if let Some(lock) = lock.filter(|_| {
                matches!(
                    reason,
                    Reason::Pattern | Reason::Shadow | Reason::DirectUnavailable
                )
            }) {
                self.ctx.metrics.lock_path(lock);
            }
            let shared = lane == Lane::Direct && matches!(self.direct, Direct::Shared(_));
            self.units.retry =
                if shared && autocommit && reason == Reason::Pattern && !self.units.retrying {
                    Retryable::arm(&frame, lock)
                } else {
                    None
                };
            self.units.retrying = false;
            self.units.answer_held = false;
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
            if self
                .open_lane(Decision {
                    lane: Lane::Pooler,
                    reason: Reason::Default,
                })
                .await
                .is_none()
            {
                return self.fail_unit_locally(&frame);
            }
            self.units.active = Lane::Pooler;
            Lane::Pooler
        };
        self.units.phase.forwarded(frame.tag);
        // A session-tagged client owns its connection from the start, so its statement names
        // pass through. A pinned client's names were virtualised before it moved, and stay so.
        let own_names = self.tagged && matches!(self.direct, Direct::Dedicated { .. });
        let virtualize = !own_names || lane == Lane::Pooler;
        let shared_direct = lane == Lane::Direct && matches!(self.direct, Direct::Shared(_));
        // What a statement leaves on a shared connection must be reset before another client
        // uses it; marked before the reply arrives, in case this client leaves first.
        let shared_effects = match (shared_direct, starts_unit) {
            (false, _) => None,
            (true, true) => unit_effects,
            // A Bind or Describe of the statement just parsed: remembered.
            (true, false) => Text::of(&self.statements, &frame)
                .map(|text| self.last_statement.effects(&self.ctx.live.load(), text)),
        };
        let started = self.units.started;
        let Some(up) = upstream_of(&mut self.pooler, &mut self.direct, lane) else {
            unreachable!("open_lane connected the lane")
        };
        if let Some(effects) = shared_effects {
            up.server.note_effects(effects);
        }
        let answered_before = self.client.wbuf.len();
        let before = up.conn.wbuf.len();
        self.statements.forward(
            &frame,
            Outbound {
                wbuf: &mut up.conn.wbuf,
                server: &mut up.server,
                virtualize,
                started,
                shared: shared_direct.then_some(Shared {
                    reply: &mut self.client.wbuf,
                    unit_start: starts_unit,
                }),
            },
        );
        self.ctx.metrics.bytes(
            lane,
            Direction::ToUpstream,
            (up.conn.wbuf.len() - before) as u64,
        );
        // lockroute answered a Parse itself (already prepared on this connection).
        let answered_here = self.client.wbuf.len() != answered_before;
        self.units.answer_held |= answered_here;
        if answered_here && let Some(replay) = self.units.replay.as_mut() {
            // A replay: the client has that ParseComplete already.
            if replay.swallows(b'1') {
                self.client.wbuf.truncate(answered_before);
            }
        }
        if let Some(retry) = self.units.retry.as_mut().filter(|_| lane == Lane::Direct) {
            if !starts_unit {
                retry.add(&frame);
            }
            if answered_here {
                retry.relayed(b'1');
            }
        }
        Ok(())
    }

    /// Whether a new unit must wait until the active lane has answered everything, before it
    /// is even decided:
    ///
    /// - toward the pooler, always: a transaction pooler releases its server at the
    ///   `ReadyForQuery` `I` of one unit and drops the replies to anything pipelined behind it
    ///   (PgBouncer: "got packet from server when not linked"), so units go one at a time;
    /// - on any lane inside a transaction: the decision depends on whether the transaction is
    ///   still open, and a `COMMIT` still in flight would make a stale status route the next
    ///   unit onto the transaction's lane.
    pub(super) fn must_wait_for_active_lane(&self) -> bool {
        let active = self.units.active;
        if self.lane_quiescent(active) {
            return false;
        }
        active == Lane::Pooler
            || self
                .upstream(active)
                .is_some_and(|up| up.server.status() != TxStatus::Idle)
    }

    /// The unit's lane and reason, and the lock rule that matched its statement, if any.
    pub(super) fn decide(
        &mut self,
        frame: &Frame,
        live: &Arc<Live>,
    ) -> (Decision, Option<LockMatch>) {
        let detection = match Text::of(&self.statements, frame) {
            Some(text) if live.mode != crate::config::Mode::Passthrough => {
                self.last_statement.detection(live, text)
            }
            _ => None,
        };
        let open_transaction = self
            .upstream(self.units.active)
            .filter(|up| up.server.status() != TxStatus::Idle)
            .map(|_| self.units.active);
        let decision = decide(&UnitContext {
            mode: live.mode,
            session_tagged: self.tagged,
            pinned: self.pinned.is_some(),
            open_transaction,
            detected: detection.map(|d| d.reason),
        });
        (decision, detection.and_then(|d| d.lock))
    }

    /// Makes sure the decided lane has a connection. Falls back to the pooler when the direct
    /// lane is unavailable. `None` when not even the pooler can be connected.
    pub(super) async fn open_lane(&mut self, decision: Decision) -> Option<(Lane, Reason)> {
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
            // The lock path never waits on the pooler: one attempt.
            self.connect_pooler_lane(Wait::Once).await?;
            return Some((Lane::Pooler, Reason::DirectUnavailable));
        }
        self.open_pooler().await?;
        Some((Lane::Pooler, decision.reason))
    }

    /// Connects the pooler lane at the client's first pooler unit, or again after it was lost
    /// while idle, replaying the client's startup parameters. The client never sees the drop;
    /// an unreachable pooler is waited for up to `--pooler-connect-wait` (see [`super::pooler`]).
    pub(super) async fn open_pooler(&mut self) -> Option<()> {
        self.connect_pooler_lane(Wait::UpToConfigured).await
    }

    /// Answers a unit that could not be sent anywhere: `08001` (the statement did not run), then
    /// the client's messages up to `Sync` are discarded. A pooler that refused the login for
    /// good (wrong password, unknown database) is the client's last word: its FATAL, then close.
    pub(super) fn fail_unit_locally(&mut self, frame: &Frame) -> Result<(), End> {
        let msg = match self.pooler_failure.take() {
            Some(PoolerFailure::Refused { frame }) => {
                self.client.wbuf.extend_from_slice(&frame);
                return Err(End::Closed("the pooler refused the login"));
            }
            Some(PoolerFailure::Unreachable {
                error,
                lock_path: true,
                ..
            }) => format!(
                "lockroute: the direct lane is unavailable and the pooler is unreachable: {error}; \
                 the statement did not run"
            ),
            Some(PoolerFailure::Unreachable { waited, error, .. }) => format!(
                "lockroute: the pooler stayed unreachable for {} ms (--pooler-connect-wait): {error}; \
                 the statement did not run",
                waited.as_millis()
            ),
            None => {
                "lockroute: could not connect to the pooler; the statement did not run".to_owned()
            }
        };
        message::error_response(
            &mut self.client.wbuf,
            Severity::Error,
            sqlstate::CONNECTION_UNABLE,
            &msg,
        );
        // Inside a BEGIN lockroute answered, the client's transaction is now a failed one.
        let then = if self.units.begun.take().is_some() {
            TxStatus::Failed
        } else {
            TxStatus::Idle
        };
        self.units.phase = if matches!(frame.tag, b'Q' | b'F' | b'S') {
            message::ready_for_query(&mut self.client.wbuf, then);
            Phase::answer_locally((then == TxStatus::Failed).then(Local::failed_transaction))
        } else {
            Phase::Local(Local::DiscardToSync { then })
        };
        Ok(())
    }
}
