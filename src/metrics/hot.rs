//! The metric handles of the per-unit hot path, resolved once when the context is built.

use std::time::Duration;

use metrics::{Counter, Histogram};

use super::{Direction, KEYS, LANES, counter, histogram};
use crate::route::detect::LockMatch;
use crate::route::presets::{Kind, PresetId};
use crate::route::{Lane, Reason};

/// Handles of the series that move on every unit, resolved once.
///
/// Recording through a [`metrics::Key`] costs a hash and a lookup in the recorder's registry, and the
/// Prometheus recorder allocates a fresh handle for each lookup: bench/profile.sh counted 4
/// allocations and about 3,000 instructions per `pgbench -S` transaction there, a fifth of the
/// hop. A handle is an atomic add. Resolved against the current recorder, so a context built
/// under a local recorder records to it.
pub struct Hot {
    routed: [[Counter; Reason::ALL.len()]; LANES],
    bytes: [[Counter; Direction::ALL.len()]; LANES],
    request_duration: [Histogram; LANES],
    lock_path: [[Option<Counter>; Kind::ALL.len()]; PresetId::ALL.len()],
}

impl Hot {
    pub fn register() -> Hot {
        let keys = &*KEYS;
        Hot {
            routed: keys
                .routed
                .each_ref()
                .map(|row| row.each_ref().map(counter)),
            bytes: keys.bytes.each_ref().map(|row| row.each_ref().map(counter)),
            request_duration: keys.request_duration.each_ref().map(histogram),
            lock_path: keys
                .lock_path
                .each_ref()
                .map(|row| row.each_ref().map(|key| key.as_ref().map(counter))),
        }
    }

    pub fn routed(&self, lane: Lane, reason: Reason) {
        self.routed[lane as usize][reason as usize].increment(1);
    }

    /// A unit was routed because the lock rule `lock` matched.
    pub fn lock_path(&self, lock: LockMatch) {
        if let Some(counter) = &self.lock_path[lock.preset as usize][lock.kind as usize] {
            counter.increment(1);
        }
    }

    pub fn bytes(&self, lane: Lane, direction: Direction, n: u64) {
        self.bytes[lane as usize][direction as usize].increment(n);
    }

    pub fn request_duration(&self, lane: Lane, elapsed: Duration) {
        self.request_duration[lane as usize].record(elapsed.as_secs_f64());
    }
}
