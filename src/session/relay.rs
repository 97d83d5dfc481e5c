//! Upstream → client: relays replies in order, swallows what the client never asked for, and
//! turns an upstream lost in the middle of a unit into `08006` for each unit it owed.

use bytes::{Buf, BufMut};
use tokio::time::Instant;

use crate::metrics::{self, Direction, ErrorKind, LossState};
use crate::protocol::frame::{HEADER_LEN, peek_len};
use crate::protocol::message::{self, Severity};
use crate::protocol::sqlstate;
use crate::route::Lane;
use crate::upstream::server::{Verdict, fatal_code};

use super::local::Local;
use super::unit::Phase;
use super::{End, LOST_MESSAGE, Session, upstream_of};

impl Session {
    pub(super) fn relay_upstream_frames(&mut self, lane: Lane) -> Result<(), End> {
        let limit = self.ctx.config.client.max_message_size;
        let before = self.client.wbuf.len();
        // One clock reading for everything that one read brought (it was three per unit).
        let now = Instant::now();
        loop {
            let Some(up) = upstream_of(&mut self.pooler, &mut self.direct, lane) else {
                return Ok(());
            };
            // Each reply is read where it lies in the read buffer and copied once, to the
            // client's write buffer: splitting it off as a `Frame` cost a shared-buffer
            // promotion and two reference counts per message.
            let total = match peek_len(&up.conn.rbuf, limit) {
                Ok(Some(total)) if total <= up.conn.rbuf.len() => total,
                Ok(Some(total)) => {
                    // Room for the rest of this reply, so the next read fills it in one go.
                    let missing = total - up.conn.rbuf.len();
                    up.conn.rbuf.reserve(missing);
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(lane = lane.as_str(), error = %e, "upstream sent a malformed frame");
                    return self.on_upstream_lost(lane);
                }
            };
            let frame = &up.conn.rbuf[..total];
            let (tag, body) = (frame[0], &frame[HEADER_LEN..]);
            let verdict = up.server.on_reply(tag, body, now);
            // A retried unit's reply: the prefix its client already has is not sent twice, on
            // whichever lane the retry ran.
            if verdict == Verdict::Forward
                && let Some(replay) = self.units.replay.as_mut()
                && replay.swallows(tag)
            {
                if replay.is_done() {
                    self.units.replay = None;
                }
                up.conn.rbuf.advance(total);
                continue;
            }
            if lane == Lane::Direct {
                match verdict {
                    Verdict::Forward => {
                        if let Some(retry) = self.units.retry.as_mut() {
                            retry.relayed(tag);
                        }
                    }
                    Verdict::UnitDone { .. } => self.units.retry = None,
                    Verdict::Swallow | Verdict::Lost => {}
                }
            }
            if matches!(verdict, Verdict::UnitDone { .. }) {
                self.units.replay = None;
            }
            match verdict {
                Verdict::Swallow => {
                    up.conn.rbuf.advance(total);
                    continue;
                }
                Verdict::Forward => {}
                Verdict::UnitDone { started } => {
                    if let Some(started) = started {
                        let elapsed = now.saturating_duration_since(started);
                        self.ctx.metrics.request_duration(lane, elapsed);
                    }
                }
                Verdict::Lost => {
                    // The server closes after FATAL (57P01 admin shutdown, 25P03 idle
                    // timeout, ...): an upstream loss, not a client error.
                    let code = fatal_code(body);
                    tracing::debug!(lane = lane.as_str(), sqlstate = code, "upstream sent FATAL");
                    return self.on_upstream_lost(lane);
                }
            }
            self.client.wbuf.put_slice(frame);
            up.conn.rbuf.advance(total);
            self.units.answer_held = false;
        }
        if let Some(up) = upstream_of(&mut self.pooler, &mut self.direct, lane) {
            up.server.touched(now);
        }
        self.ctx.metrics.bytes(
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
    pub(super) fn on_upstream_lost(&mut self, lane: Lane) -> Result<(), End> {
        let Some(up) = self.take_upstream(lane) else {
            return Ok(());
        };
        let unit_open = self.units.active == lane && self.units.phase.is_open();
        let busy = !up.is_clean() || unit_open;
        // A dedicated session's LISTENs, locks and settings died with it: the client must know.
        let dedicated = lane == Lane::Direct && (self.tagged || self.pinned.is_some());
        if dedicated && let Some(pinned) = &self.pinned {
            tracing::info!(
                reason = pinned.reason.as_str(),
                "a pinned client's dedicated session was lost; the client is told and closed"
            );
        }
        if !busy {
            metrics::upstream_lost(lane, LossState::Idle);
            // Routine behind a transaction pooler: counted, not logged above debug.
            tracing::debug!(
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
        let mut up = up;
        let (owed, status) = up.server.lost();
        if lane == Lane::Direct && !dedicated && self.retry_after_loss(owed) {
            self.units.phase = Phase::Idle;
            self.cancel.set(None);
            return Ok(());
        }
        for _ in 0..owed {
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
        self.units.phase = Phase::answer_locally(Local::after_loss(unit_open, owed > 0, status));
        Ok(())
    }
}
