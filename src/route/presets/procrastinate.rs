//! procrastinate (procrastinate-org/procrastinate 3.9.0-11 @ f099a753, psycopg 3):
//! `procrastinate/sql/queries.sql`. The function suffix (`_v1`, `_v2`) changes in migrations;
//! objects resolve through `search_path`, so a schema is optional. Parameters are `$n` (psycopg
//! 3) or inlined literals (psycopg2, Django); no rule depends on which.

use super::Kind::{Claim, Complete, Heartbeat};
use super::Retry::{Safe, Unsafe};
use super::Signal::Text;
use super::{Preset, PresetId, rule};

pub(super) static PRESET: Preset = Preset {
    id: PresetId::Procrastinate,
    source: "procrastinate-org/procrastinate 3.9.0-11 @ f099a753",
    rules: &[
        // fetch_job: a plain column list, so any other SELECT is rejected at its first
        // non-identifier byte.
        rule(
            "fetch_job",
            Claim,
            Unsafe,
            Text,
            r"(?i-u)^\s*SELECT\s+(?:\*|(?:\w+\s*,\s*)*\w+)\s+FROM\s+(?:\w+\.)?procrastinate_fetch_job_v\d+\s*\(",
        ),
        // update_heartbeat: the worker's own row, `SET last_heartbeat = NOW()`.
        rule(
            "update_heartbeat",
            Heartbeat,
            Safe,
            Text,
            r"(?i-u)^\s*SELECT\s+(?:\w+\.)?procrastinate_update_heartbeat_v\d+\s*\(",
        ),
        // finish_job / retry_job: the function refuses a job that is no longer `doing`.
        rule(
            "finish_job",
            Complete,
            Unsafe,
            Text,
            r"(?i-u)^\s*SELECT\s+(?:\w+\.)?procrastinate_(?:finish|retry)_job_v\d+\s*\(",
        ),
    ],
};
