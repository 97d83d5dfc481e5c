//! Session pinning: clients moved to a dedicated direct session because a statement would
//! create session state, the moves refused, and how full the dedicated-session budget is.

use std::sync::LazyLock;

use metrics::{Gauge, Key, Unit, describe_counter, describe_gauge};

use crate::route::effects::PinReason;

use super::keys::by;
use super::{counter, gauge};

pub const PINS_TOTAL: &str = "lockroute_pins_total";
pub const PINNED_CLIENTS: &str = "lockroute_pinned_clients";
pub const PIN_REFUSED_TOTAL: &str = "lockroute_pin_refused_total";
/// Gauge: dedicated direct sessions open now (session-tagged and pinned clients together).
pub const DIRECT_SESSIONS: &str = "lockroute_direct_sessions";
/// Gauge: `--direct-max-sessions`, so that saturation is `sessions / sessions_max`.
pub const DIRECT_SESSIONS_MAX: &str = "lockroute_direct_sessions_max";

pub const NAMES: [&str; 5] = [
    PINS_TOTAL,
    PINNED_CLIENTS,
    PIN_REFUSED_TOTAL,
    DIRECT_SESSIONS,
    DIRECT_SESSIONS_MAX,
];

const REASONS: usize = PinReason::ALL.len();

struct PinKeys {
    pins: [Key; REASONS],
    pinned: [Key; REASONS],
    refused: [Key; REASONS],
}

static KEYS: LazyLock<PinKeys> = LazyLock::new(|| {
    let reasons = PinReason::ALL.map(PinReason::as_str);
    PinKeys {
        pins: by(PINS_TOTAL, "reason", reasons),
        pinned: by(PINNED_CLIENTS, "reason", reasons),
        refused: by(PIN_REFUSED_TOTAL, "reason", reasons),
    }
});
static DIRECT_SESSIONS_KEY: Key = Key::from_static_name(DIRECT_SESSIONS);
static DIRECT_SESSIONS_MAX_KEY: Key = Key::from_static_name(DIRECT_SESSIONS_MAX);

pub(super) fn describe() {
    describe_counter!(
        PINS_TOTAL,
        Unit::Count,
        "Clients moved to a dedicated direct session because a statement would create session state, by reason."
    );
    describe_gauge!(
        PINNED_CLIENTS,
        Unit::Count,
        "Clients on a dedicated direct session now because they were pinned, by reason."
    );
    describe_counter!(
        PIN_REFUSED_TOTAL,
        Unit::Count,
        "Units that needed a session but ran where they would have run unpinned (no free dedicated session, or the direct lane down), by reason."
    );
    describe_gauge!(
        DIRECT_SESSIONS,
        Unit::Count,
        "Dedicated direct sessions open now, session-tagged and pinned clients together."
    );
    describe_gauge!(
        DIRECT_SESSIONS_MAX,
        Unit::Count,
        "The dedicated direct session budget (--direct-max-sessions)."
    );
}

pub(super) fn register() {
    let keys = &*KEYS;
    for key in keys.pins.iter().chain(&keys.refused) {
        drop(counter(key));
    }
    for key in keys
        .pinned
        .iter()
        .chain([&DIRECT_SESSIONS_KEY, &DIRECT_SESSIONS_MAX_KEY])
    {
        drop(gauge(key));
    }
}

/// Counts a pinned client in `lockroute_pinned_clients{reason}` while it lives.
#[must_use = "the pinned gauge is decremented when the guard drops"]
#[derive(Debug)]
pub struct PinGuard {
    gauge: Gauge,
}

/// A client was pinned because of `reason`.
pub fn pinned(reason: PinReason) -> PinGuard {
    counter(&KEYS.pins[reason.index()]).increment(1);
    let gauge = gauge(&KEYS.pinned[reason.index()]);
    gauge.increment(1.0);
    PinGuard { gauge }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

/// A unit that needed a session ran unpinned.
pub fn pin_refused(reason: PinReason) {
    counter(&KEYS.refused[reason.index()]).increment(1);
}

/// Counts one dedicated direct session in `lockroute_direct_sessions` while it lives.
#[must_use = "the session gauge is decremented when the guard drops"]
#[derive(Debug)]
pub struct SessionGuard {
    gauge: Gauge,
}

pub fn direct_session_opened() -> SessionGuard {
    let gauge = gauge(&DIRECT_SESSIONS_KEY);
    gauge.increment(1.0);
    SessionGuard { gauge }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

pub fn set_direct_sessions_max(max: usize) {
    gauge(&DIRECT_SESSIONS_MAX_KEY).set(max as f64);
}
