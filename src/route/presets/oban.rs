//! Oban (oban-bg/oban 2.23.0 @ 2939e313, Ecto + Postgrex). Ecto quotes every identifier and
//! qualifies tables with the prefix, `"public"."oban_jobs"` by default. The claim and the peer
//! election run inside `Repo.transaction`, so they pick the lane only where the transaction's
//! lane is chosen at its first statement; completion is autocommit.

use super::Kind::{Claim, Complete, Elect};
use super::Retry::{Safe, Unsafe};
use super::Signal::Text;
use super::{Preset, PresetId, rule};

/// Ecto's `"prefix".`, optional.
macro_rules! prefix {
    () => {
        r#"(?:"[^"]+"\.)?"#
    };
}

pub(super) static PRESET: Preset = Preset {
    id: PresetId::Oban,
    source: "oban-bg/oban 2.23.0 @ 2939e313 (v2.23.1 fetch_jobs/3 identical)",
    rules: &[
        // fetch_jobs/3 since v2.15: the `subset` CTE (rendered from Ecto, not captured).
        rule(
            "fetch_jobs/3",
            Claim,
            Unsafe,
            Text,
            concat!(
                r#"(?i-u)^\s*WITH\s+"subset"\s+AS\s*\(\s*SELECT\s+so0\."id"\s+AS\s+"id"\s+FROM\s+"#,
                prefix!(),
                r#""oban_jobs"\s+AS\s+so0\b"#
            ),
        ),
        // fetch_jobs/3 before v2.15 (captured verbatim in nerves-hub/nerves_hub_web).
        rule(
            "fetch_jobs/3",
            Claim,
            Unsafe,
            Text,
            concat!(
                r#"(?i-u)^\s*UPDATE\s+"#,
                prefix!(),
                r#""oban_jobs"\s+AS\s+o0\s+SET\s+"state"\s*=\s*\$1\s*,\s*"attempted_at"\s*=\s*\$2\s*,\s*"attempted_by"\s*=\s*\$3\b"#
            ),
        ),
        // Oban.Peers.Database: delete_expired_peers, then regular_upsert, in one transaction.
        rule(
            "delete_expired_peers",
            Elect,
            Safe,
            Text,
            concat!(
                r#"(?i-u)^\s*DELETE\s+FROM\s+"#,
                prefix!(),
                r#""oban_peers"\s+AS\s+o0\s+WHERE\b"#
            ),
        ),
        rule(
            "regular_upsert",
            Elect,
            Unsafe,
            Text,
            concat!(
                r#"(?i-u)^\s*INSERT\s+INTO\s+"#,
                prefix!(),
                r#""oban_peers"\s+AS\s+o0\b"#
            ),
        ),
        // complete_job/2 (rendered from Ecto): sets the same state on the same id again.
        rule(
            "complete_job/2",
            Complete,
            Safe,
            Text,
            concat!(
                r#"(?i-u)^\s*UPDATE\s+"#,
                prefix!(),
                r#""oban_jobs"\s+AS\s+o0\s+SET\s+"state"\s*=\s*\$1\s*,\s*"completed_at"\s*=\s*\$2\s+WHERE\s*\(\s*o0\."id"\s*=\s*\$3\s*\)"#
            ),
        ),
    ],
};
