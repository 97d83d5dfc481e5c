//! pg-boss (timgit/pg-boss 12.27.0 @ 55ee32f6, and 12.38.0 from npm, node-postgres):
//! `src/plans.ts`, all autocommit. `${schema}` is `pgboss` or a user-quoted name; the table is
//! `job_common` or `j<56 hex>` for partitioned queues, both an [`ident!`](super::ident).
//! 12.27 stamps times with `now()`; 12.38 with `${schema}.job_now()` (a clock tests can move),
//! and claims its maintenance passes with `WITH due AS (…) UPDATE ${schema}.queue` and its cron
//! pass with `WITH prior AS (…), claim AS (UPDATE ${schema}.version …)`.

use super::Kind::{Claim, Complete, Elect, Heartbeat};
use super::Retry::{Safe, Unsafe};
use super::Signal::Text;
use super::{Preset, PresetId, ident, rule};

/// The time a statement stamps: `now()` (12.27) or `${schema}.job_now()` (12.38).
macro_rules! now {
    () => {
        concat!(r"(?:now\(\)|", ident!(), r"\.job_now\(\))")
    };
}

pub(super) static PRESET: Preset = Preset {
    id: PresetId::PgBoss,
    source: "timgit/pg-boss 12.27.0 @ 55ee32f6; pg-boss 12.38.0 (npm)",
    rules: &[
        // fetchNextJob(): optional CTEs, `next AS (… FOR UPDATE OF j SKIP LOCKED)`, then the
        // UPDATE that activates the job.
        rule(
            "fetchNextJob()",
            Claim,
            Unsafe,
            Text,
            concat!(
                r"(?i-u)^\s*WITH\s+(?:active_group_count_map|next)\s+AS\b(?s:.*?)\bUPDATE\s+",
                ident!(),
                r"\.",
                ident!(),
                r"\s+j\s+SET\s+state\s*=\s*'active'\s*,\s*started_on\s*=\s*",
                now!()
            ),
        ),
        // touchJobs(): an idempotent timestamp bump of the caller's active jobs.
        rule(
            "touchJobs()",
            Heartbeat,
            Safe,
            Text,
            concat!(
                r"(?i-u)^\s*WITH\s+results\s+AS\s*\(\s*UPDATE\s+",
                ident!(),
                r"\.",
                ident!(),
                r"\s+SET\s+heartbeat_on\s*=\s*",
                now!()
            ),
        ),
        // trySetTimestamp() / trySetQueueTimestamp(): the instance whose UPDATE returns a row
        // runs the cycle. A second run would find the timestamp fresh and return nothing.
        rule(
            "trySetTimestamp()",
            Elect,
            Unsafe,
            Text,
            concat!(
                r"(?i-u)^\s*(?:UPDATE\s+",
                ident!(),
                r"\.(?:version|queue)\s+SET\s+\w+\s*=\s*",
                now!(),
                r"\s+WHERE\s+(?:name\s*=\s*ANY\s*\(\s*\$1::text\[\]\s*\)\s+AND\s+)?EXTRACT\s*\(\s*EPOCH\s+FROM\b",
                // 12.38: the queues due for a pass, locked, then stamped.
                r"|WITH\s+due\s+AS\s*\(\s*SELECT\s+name\s+FROM\s+",
                ident!(),
                r"\.queue\s+WHERE\s+name\s*=\s*ANY\s*\(\s*\$1::text\[\]\s*\)\s+AND\s+EXTRACT\s*\(\s*EPOCH\s+FROM\b",
                // 12.38: the cron pass, stamped inside a `claim` CTE.
                r"|WITH\s+prior\s+AS\s*\(\s*SELECT\s+cron_on\s*,\s*EXTRACT\s*\(\s*EPOCH\s+FROM\b",
                r")"
            ),
        ),
        // completeJobs(): a second run finds the jobs no longer active and counts 0.
        rule(
            "completeJobs()",
            Complete,
            Unsafe,
            Text,
            concat!(
                r"(?i-u)^\s*WITH\s+results\s+AS\s*\(\s*UPDATE\s+",
                ident!(),
                r"\.",
                ident!(),
                r"\s+SET\s+completed_on\s*=\s*",
                now!(),
                r"\s*,\s*state\s*=\s*'completed'"
            ),
        ),
    ],
};
