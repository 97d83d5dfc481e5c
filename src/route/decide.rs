//! The routing decision: which lane runs a unit, and why. Pure.
//!
//! DESIGN.md, "Routing": a session-tagged client runs every unit on its dedicated direct
//! connection; otherwise a transaction never spans lanes, so a unit that starts inside an open
//! transaction stays on that transaction's lane even when it matches; otherwise a statement tag
//! or pattern sends the unit to the shared direct lane, and everything else to the pooler.
//! The mode can change between units (`--control-file`), so passthrough and shadow also keep an
//! open transaction on its lane: it finishes where it started.

use crate::config::Mode;

use super::{Lane, Reason};

/// What the decision looks at, gathered by the session at the first message of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitContext {
    pub mode: Mode,
    /// The client's `application_name` carries the tag word.
    pub session_tagged: bool,
    /// The client was pinned to a dedicated direct session.
    pub pinned: bool,
    /// The lane of the client's open transaction, if one is open.
    pub open_transaction: Option<Lane>,
    /// What detection found in the unit's statement text.
    pub detected: Option<Reason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub lane: Lane,
    pub reason: Reason,
}

pub fn decide(unit: &UnitContext) -> Decision {
    let (lane, reason) = match unit.mode {
        // A transaction open when the mode changed finishes on its lane.
        Mode::Passthrough => match unit.open_transaction {
            Some(Lane::Direct) => (Lane::Direct, Reason::InTransaction),
            _ => (Lane::Pooler, Reason::Passthrough),
        },
        Mode::Shadow => match (unit.open_transaction, unit.detected, unit.session_tagged) {
            (Some(lane), Some(_), _) => (lane, Reason::InTransaction),
            (Some(Lane::Direct), None, _) => (Lane::Direct, Reason::Default),
            (None, Some(_), _) | (_, _, true) => (Lane::Pooler, Reason::Shadow),
            _ => (Lane::Pooler, Reason::Default),
        },
        Mode::Split if unit.session_tagged => (Lane::Direct, Reason::SessionTag),
        Mode::Split if unit.pinned => (Lane::Direct, Reason::Pinned),
        Mode::Split => match (unit.open_transaction, unit.detected) {
            (Some(lane), Some(_)) => (lane, Reason::InTransaction),
            (Some(lane), None) => (lane, Reason::Default),
            (None, Some(reason)) => (Lane::Direct, reason),
            (None, None) => (Lane::Pooler, Reason::Default),
        },
    };
    Decision { lane, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Lane = Lane::Pooler;
    const D: Lane = Lane::Direct;

    fn unit(mode: Mode, tagged: bool, open: Option<Lane>, detected: Option<Reason>) -> UnitContext {
        UnitContext {
            mode,
            session_tagged: tagged,
            pinned: false,
            open_transaction: open,
            detected,
        }
    }

    #[test]
    fn decide_table() {
        use Mode::{Passthrough, Shadow, Split};
        use Reason::{Default, InTransaction, Pattern, SessionTag, StatementTag};
        let cases = [
            // mode, session tagged, open transaction, detected → lane, reason
            (unit(Split, false, None, None), P, Default),
            (unit(Split, false, None, Some(Pattern)), D, Pattern),
            (
                unit(Split, false, None, Some(StatementTag)),
                D,
                StatementTag,
            ),
            (unit(Split, false, Some(P), Some(Pattern)), P, InTransaction),
            (unit(Split, false, Some(P), None), P, Default),
            (unit(Split, false, Some(D), None), D, Default),
            (unit(Split, false, Some(D), Some(Pattern)), D, InTransaction),
            (unit(Split, true, None, None), D, SessionTag),
            (unit(Split, true, Some(D), Some(Pattern)), D, SessionTag),
            (unit(Shadow, false, None, Some(Pattern)), P, Reason::Shadow),
            (unit(Shadow, false, None, None), P, Default),
            (unit(Shadow, true, None, None), P, Reason::Shadow),
            (
                unit(Shadow, false, Some(P), Some(Pattern)),
                P,
                InTransaction,
            ),
            (
                unit(Passthrough, true, None, Some(Pattern)),
                P,
                Reason::Passthrough,
            ),
            // The mode turned while a transaction was open on the direct lane: it finishes there.
            (unit(Passthrough, false, Some(D), None), D, InTransaction),
            (
                unit(Passthrough, true, Some(D), Some(Pattern)),
                D,
                InTransaction,
            ),
            (
                unit(Shadow, false, Some(D), Some(Pattern)),
                D,
                InTransaction,
            ),
            (unit(Shadow, false, Some(D), None), D, Default),
            (
                unit(Passthrough, false, Some(P), None),
                P,
                Reason::Passthrough,
            ),
        ];
        for (input, lane, reason) in cases {
            assert_eq!(decide(&input), Decision { lane, reason }, "{input:?}");
        }
        let pinned = |mode, open, detected| UnitContext {
            pinned: true,
            ..unit(mode, false, open, detected)
        };
        assert_eq!(decide(&pinned(Split, None, None)).lane, D);
        assert_eq!(
            decide(&pinned(Split, Some(D), Some(Pattern))).reason,
            Reason::Pinned
        );
        assert_eq!(decide(&pinned(Shadow, None, None)).lane, P);
        assert_eq!(decide(&pinned(Passthrough, None, None)).lane, P);
    }
}
