//! Where the client is in its stream of units: the session's unit phase, typed. Pure.
//!
//! A unit is one simple `Query` (or `FunctionCall`), or an extended-protocol batch from its
//! first message up to its `Sync` (DESIGN.md, "Words"). Between units the client is `Idle`;
//! while a batch's messages still arrive it is `Open`. lockroute itself answers the client in
//! two phases: `Local`, after an upstream was lost under a unit, and `Batch`, an extended batch
//! of one transaction command it answers up to its `Sync` (a deferred `BEGIN`, or the `COMMIT`
//! that ends one).
//!
//! A frame held back until the other lane has answered (the session's `stalled` slot) is not a
//! phase: it can wait while lockroute answers for a lost upstream, and is answered locally then.

use super::deferred::LocalBatch;
use super::local::Local;

#[derive(Debug, Clone, Default)]
pub(super) enum Phase {
    /// Between units: the next message starts one.
    #[default]
    Idle,
    /// The current unit's messages are still arriving (no `Sync` yet).
    Open,
    /// lockroute answers for an upstream lost under a unit.
    Local(Local),
    /// lockroute answers an extended batch of one transaction command, up to its `Sync`.
    Batch(LocalBatch),
}

/// The frontend messages that start a unit when none is open.
pub(super) fn starts_unit(tag: u8) -> bool {
    matches!(tag, b'Q' | b'P' | b'B' | b'D' | b'C' | b'E' | b'F')
}

impl Phase {
    pub(super) fn is_open(&self) -> bool {
        matches!(self, Phase::Open)
    }

    /// Whether lockroute, not an upstream, answers the client now.
    pub(super) fn is_local(&self) -> bool {
        matches!(self, Phase::Local(_) | Phase::Batch(_))
    }

    /// After a frame with `tag` was forwarded: a `Query`, `FunctionCall` or `Sync` ends the
    /// unit; the extended messages before a `Sync` keep it open; anything else (`Flush`, COPY
    /// data) changes nothing.
    pub(super) fn forwarded(&mut self, tag: u8) {
        if self.is_local() {
            return;
        }
        match tag {
            b'Q' | b'F' | b'S' => *self = Phase::Idle,
            b'P' | b'B' | b'D' | b'C' | b'E' => *self = Phase::Open,
            _ => {}
        }
    }

    /// lockroute answers for a lost upstream from now on, or, with `None`, relaying resumes.
    pub(super) fn answer_locally(local: Option<Local>) -> Phase {
        local.map_or(Phase::Idle, Phase::Local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::TxStatus;

    #[test]
    fn a_unit_opens_at_its_first_extended_message_and_ends_at_sync() {
        let mut phase = Phase::Idle;
        for tag in [b'P', b'D', b'H', b'B', b'E'] {
            phase.forwarded(tag);
            assert!(phase.is_open(), "after {}", tag as char);
        }
        phase.forwarded(b'S');
        assert!(matches!(phase, Phase::Idle));
        phase.forwarded(b'Q');
        assert!(matches!(phase, Phase::Idle));
        phase.forwarded(b'd');
        assert!(matches!(phase, Phase::Idle), "COPY data changes nothing");
    }

    #[test]
    fn forwarding_never_leaves_a_local_phase() {
        let local = Local::DiscardToSync {
            then: TxStatus::Idle,
        };
        let mut phase = Phase::answer_locally(Some(local));
        phase.forwarded(b'S');
        assert!(phase.is_local());
        assert!(matches!(Phase::answer_locally(None), Phase::Idle));
    }

    #[test]
    fn the_unit_starting_messages() {
        for tag in *b"QPBDCEF" {
            assert!(starts_unit(tag), "{}", tag as char);
        }
        for tag in *b"SHdcfX" {
            assert!(!starts_unit(tag), "{}", tag as char);
        }
    }
}
