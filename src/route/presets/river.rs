//! River (riverqueue/river @ fdf6cdf1, after v0.43.0; pgx v5): sqlc queries in
//! `riverdriver/riverpgxv5/internal/dbsqlc/*.sql`. Each one starts with `-- name: <Query> :<kind>`,
//! the most exact signal River sends, so the comment rules come first; the text rules catch the
//! same statements if a driver ever strips the comment. The schema template becomes `""` or
//! `"schema".` (quoted, inner `"` doubled).

use super::Kind::{Claim, Complete, Elect, Heartbeat};
use super::Retry::{Safe, Unsafe};
use super::Signal::{Comment, Text};
use super::{Preset, PresetId, rule};

/// `/* TEMPLATE: schema */` once rendered.
macro_rules! schema {
    () => {
        r#"(?:"(?:[^"]|"")+"\.)?"#
    };
}

pub(super) static PRESET: Preset = Preset {
    id: PresetId::River,
    source: "riverqueue/river @ fdf6cdf1 (after v0.43.0)",
    rules: &[
        rule(
            "JobGetAvailable",
            Claim,
            Unsafe,
            Comment,
            r"(?i-u)^\s*name:\s*JobGetAvailable\s+:",
        ),
        // Elect runs in a transaction after LeaderDeleteExpired; both keep the leader table.
        rule(
            "LeaderAttemptElect",
            Elect,
            Unsafe,
            Comment,
            r"(?i-u)^\s*name:\s*LeaderAttemptElect\s+:",
        ),
        // Fenced by leader_id and elected_at: only the sitting leader extends its own term.
        rule(
            "LeaderAttemptReelect",
            Elect,
            Safe,
            Comment,
            r"(?i-u)^\s*name:\s*LeaderAttemptReelect\s+:",
        ),
        rule(
            "LeaderDeleteExpired",
            Elect,
            Safe,
            Comment,
            r"(?i-u)^\s*name:\s*LeaderDeleteExpired\s+:",
        ),
        rule(
            "QueueCreateOrSetUpdatedAt",
            Heartbeat,
            Safe,
            Comment,
            r"(?i-u)^\s*name:\s*QueueCreateOrSetUpdatedAt\s+:",
        ),
        rule(
            "JobSetStateIfRunningMany",
            Complete,
            Unsafe,
            Comment,
            r"(?i-u)^\s*name:\s*JobSetStateIfRunningMany\s+:",
        ),
        // `WITH locked_jobs` (plural: JobCancel's `locked_job` is not a claim).
        rule(
            "JobGetAvailable",
            Claim,
            Unsafe,
            Text,
            concat!(
                r"(?i-u)^\s*WITH\s+locked_jobs\s+AS\s*\((?s:.*?)\bUPDATE\s+",
                schema!(),
                r"river_job\s+SET\s+state\s*=\s*'running'"
            ),
        ),
        // The column order tells it from the LeaderInsert test helper.
        rule(
            "LeaderAttemptElect",
            Elect,
            Unsafe,
            Text,
            concat!(
                r"(?i-u)^\s*INSERT\s+INTO\s+",
                schema!(),
                r"river_leader\s*\(\s*leader_id\s*,\s*elected_at\s*,\s*expires_at\s*\)"
            ),
        ),
        rule(
            "LeaderAttemptReelect",
            Elect,
            Safe,
            Text,
            concat!(
                r"(?i-u)^\s*UPDATE\s+",
                schema!(),
                r"river_leader\s+SET\s+expires_at\s*="
            ),
        ),
        rule(
            "QueueCreateOrSetUpdatedAt",
            Heartbeat,
            Safe,
            Text,
            concat!(
                r"(?i-u)^\s*INSERT\s+INTO\s+",
                schema!(),
                r"river_queue\s*\((?s:[^)]*)\)\s*VALUES\b(?s:[^;]*?)\bON\s+CONFLICT\s*\(\s*name\s*\)\s*DO\s+UPDATE\s+SET\s+updated_at\s*="
            ),
        ),
    ],
};
