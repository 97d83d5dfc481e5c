//! gbrain Minions (garrytan/gbrain v0.46.28.0, postgres.js): the three patterns lockroute has
//! always had, `reference/gbrain-lock-path.md` §1. Autocommit, unnamed or named statements.

use super::Kind::{Claim, Elect, Heartbeat};
use super::Retry::{Safe, Unsafe};
use super::Signal::Text;
use super::{Preset, PresetId, rule};
use crate::route::detect::{CLAIM_PATTERN, CYCLE_LOCK_REFRESH_PATTERN, RENEW_LOCK_PATTERN};

pub(super) static PRESET: Preset = Preset {
    id: PresetId::Gbrain,
    source: "garrytan/gbrain v0.46.28.0 @ 01aab110",
    rules: &[
        rule("MinionQueue.claim()", Claim, Unsafe, Text, CLAIM_PATTERN),
        // Fenced by `id = $2 AND lock_token = $3`: a second run extends the same lease again.
        rule(
            "MinionQueue.renewLock()",
            Heartbeat,
            Safe,
            Text,
            RENEW_LOCK_PATTERN,
        ),
        // Fenced by holder_pid and acquired_at: the cycle lock's holder renews its own lease.
        rule(
            "db-lock refresh()",
            Elect,
            Safe,
            Text,
            CYCLE_LOCK_REFRESH_PATTERN,
        ),
    ],
};
