//! Que (que-rb/que v2.4.1 @ 17fb2c3b, pg gem).
//!
//! Que's locker is session state from end to end: `set_config(…, false)`, `pg_temp` functions,
//! LISTEN on a pid-named channel and session advisory locks held for the whole job. Its claim
//! (`que_poll_jobs`) must therefore never run on a shared connection: the locker client needs a
//! dedicated session from its first statement (the session-feature pin). What is safe to route
//! is the worker's autocommit completion on its pool connection.

use super::Kind::Complete;
use super::Retry::Safe;
use super::Signal::Text;
use super::{Preset, PresetId, rule};

pub(super) static PRESET: Preset = Preset {
    id: PresetId::Que,
    source: "que-rb/que v2.4.1 @ 17fb2c3b",
    rules: &[
        // JobMethods#finish! / #destroy: the same row, the same end state.
        rule(
            "finish_job",
            Complete,
            Safe,
            Text,
            r"(?i-u)^\s*UPDATE\s+(?:\w+\.)?que_jobs\s+SET\s+finished_at\s*=\s*now\(\)\s+WHERE\s+id\s*=\s*\$1::bigint\b",
        ),
        rule(
            "destroy_job",
            Complete,
            Safe,
            Text,
            r"(?i-u)^\s*DELETE\s+FROM\s+(?:\w+\.)?que_jobs\s+WHERE\s+id\s*=\s*\$1::bigint\b",
        ),
    ],
};
