//! pgqueuer (janbjorge/pgqueuer v1.3.2-13 @ 12b99d99, asyncpg or psycopg 3):
//! `pgqueuer/adapters/persistence/qb.py`. Tables are `{prefix}pgqueuer…`, optionally
//! `schema.`-qualified; the dequeue has `--` comments after `WITH`, which the rule skips.

use super::Kind::{Claim, Complete, Heartbeat};
use super::Retry::{Safe, Unsafe};
use super::Signal::Text;
use super::{Preset, PresetId, rule};

pub(super) static PRESET: Preset = Preset {
    id: PresetId::Pgqueuer,
    source: "janbjorge/pgqueuer v1.3.2-13 @ 12b99d99",
    rules: &[
        // build_dequeue_query(): `claimed AS (UPDATE …)` sits near byte 3,336, so the rule
        // anchors on the `params` head, which no other statement has.
        rule(
            "build_dequeue_query()",
            Claim,
            Unsafe,
            Text,
            r"(?i-u)^\s*WITH(?:\s|--[^\n]*\n)+params\s+AS\s*\(\s*SELECT\s+UNNEST\s*\(\s*\$2::text\[\]\s*\)\s+AS\s+entrypoint\s*,\s*UNNEST\s*\(\s*\$3::bigint\[\]\s*\)\s+AS\s+concurrency_limit\b",
        ),
        // build_fetch_schedule_query(): the scheduler's claim.
        rule(
            "build_fetch_schedule_query()",
            Claim,
            Unsafe,
            Text,
            r"(?i-u)^\s*WITH(?:\s|--[^\n]*\n)+params\s+AS\s*\(\s*SELECT\s+UNNEST\s*\(\s*\$1::text\[\]\s*\)\s+AS\s+expression\b",
        ),
        // build_update_heartbeat_query() and build_update_schedule_heartbeat(): timestamp bumps.
        rule(
            "build_update_heartbeat_query()",
            Heartbeat,
            Safe,
            Text,
            r"(?i-u)^\s*UPDATE\s+(?:\w+\.)?\w*pgqueuer(?:_schedules)?\s+SET\s+heartbeat\s*=\s*NOW\(\)",
        ),
        // build_log_job_query(): deletes the finished jobs and logs them; a second run would
        // log again.
        rule(
            "build_log_job_query()",
            Complete,
            Unsafe,
            Text,
            r"(?i-u)^\s*WITH\s+job_status\s+AS\s*\(\s*SELECT\s+UNNEST\s*\(\s*\$1::bigint\[\]\s*\)\s+AS\s+id\b",
        ),
    ],
};
