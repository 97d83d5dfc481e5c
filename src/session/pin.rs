//! Pinning: a client whose next unit would create session state (a `LISTEN`, a session
//! advisory lock, a session `SET` ...) moves to a dedicated direct session before the unit
//! runs, and stays there for the rest of its life (DESIGN.md, Routing 5). Behind a transaction
//! pooler that state would be lost or handed to another client; on a dedicated session it is
//! the client's own, and it ends with the client.
//!
//! When no dedicated session is free, or the direct lane is down, or the unit runs inside a
//! transaction already open on a lane, the unit runs where it would have run unpinned: never
//! worse than the pooler alone. That is counted, and logged once per client.

use crate::config::{Mode, Pin};
use crate::control::Live;
use crate::metrics::pins;
use crate::protocol::TxStatus;
use crate::route::decide::Decision;
use crate::route::effects::{Effects, PinReason};
use crate::route::{Lane, Reason};
use crate::upstream::direct::SessionRefused;

use super::{Direct, Pinned, Session};

/// Why a unit that needed a session ran unpinned, for the log line.
#[derive(Debug, Clone, Copy)]
enum Refused {
    Session(SessionRefused),
    InTransaction,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Session(e) => e.fmt(f),
            Refused::InTransaction => {
                f.write_str("it runs inside a transaction already open on a lane")
            }
        }
    }
}

impl Session {
    /// Whether a unit that creates session state would pin this client.
    pub(super) fn may_pin(&self, live: &Live) -> bool {
        live.pin == Pin::Auto && live.mode == Mode::Split && !self.tagged && self.pinned.is_none()
    }

    /// The reason to pin the client before a unit with these `effects` runs, if it must be
    /// pinned. Only asked when [`Session::may_pin`].
    pub(super) fn pin_needed(&mut self, effects: Effects, decision: Decision) -> Option<PinReason> {
        let reason = effects.pin()?;
        let in_transaction = self
            .upstream(decision.lane)
            .is_some_and(|up| up.server.status() != TxStatus::Idle);
        if in_transaction {
            self.refuse_pin(reason, Refused::InTransaction);
            return None;
        }
        Some(reason)
    }

    /// Moves the client to a dedicated direct session. Returns the unit's decision: the
    /// dedicated session, or what it would have been unpinned.
    pub(super) async fn pin(&mut self, reason: PinReason, unpinned: Decision) -> Decision {
        let (upstream, permit) = match self.ctx.direct.open_session(&self.params).await {
            Ok(opened) => opened,
            Err(e) => {
                self.refuse_pin(reason, Refused::Session(e));
                return unpinned;
            }
        };
        // A shared direct connection leased for an earlier unit goes back to its pool; the
        // pooler connection is not needed any more.
        self.release_shared_direct();
        if matches!(self.direct, Direct::Shared(_)) {
            self.refuse_pin(reason, Refused::InTransaction);
            return unpinned;
        }
        self.direct = Direct::Dedicated {
            upstream,
            _permit: permit,
        };
        self.pooler = None;
        self.pinned = Some(Pinned {
            reason,
            _gauge: pins::pinned(reason),
        });
        tracing::info!(
            reason = reason.as_str(),
            "pinned a client to a dedicated direct session: its statement creates session state"
        );
        Decision {
            lane: Lane::Direct,
            reason: Reason::Pinned,
        }
    }

    fn refuse_pin(&mut self, reason: PinReason, why: Refused) {
        pins::pin_refused(reason);
        if !std::mem::replace(&mut self.pin_refused_logged, true) {
            tracing::warn!(reason = reason.as_str(), cause = %why,
                "a unit that needs a session runs unpinned, as it would behind the pooler alone");
        }
    }
}
