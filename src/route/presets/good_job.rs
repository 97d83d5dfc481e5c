//! good_job (bensheldon/good_job v4.19.2 @ 81db22b7, ActiveRecord).
//!
//! Only the `:skiplocked` claim is a shared-lane rule. The default `:advisory` claim, and the
//! `:hybrid` one, take a session advisory lock that must outlive the statement on the same
//! backend: on a shared connection a second client would "hold" the same re-entrant lock. Those
//! claims need a dedicated session (the session-feature pin), never a preset, and the rule below
//! is written so that it does not match them.

use super::Kind::{Claim, Heartbeat};
use super::Retry::{Safe, Unsafe};
use super::Signal::Text;
use super::{Preset, PresetId, rule};

pub(super) static PRESET: Preset = Preset {
    id: PresetId::GoodJob,
    source: "bensheldon/good_job v4.19.2 @ 81db22b7",
    rules: &[
        // Job::Lockable.with_skip_locked_claim: the `?`s are inlined literals. `FROM candidate`
        // right after the SET list: the hybrid form has `FROM (SELECT id FROM candidate WHERE
        // pg_try_advisory_lock(…))` there.
        rule(
            "with_skip_locked_claim",
            Claim,
            Unsafe,
            Text,
            r#"(?i-u)^\s*WITH\s+candidate\s+AS\s+(?:(?:NOT\s+)?MATERIALIZED\s*)?\((?s:.*?)\)\s*UPDATE\s+"\w*good_jobs"\s+SET\s+locked_by_id\s*=\s*[^,]+,\s*locked_at\s*=\s*[^,]+,\s*lock_type\s*=\s*[^,\s]+\s+FROM\s+candidate\s+WHERE\b"#,
        ),
        // GoodJob::Process#refresh (rendered from ActiveRecord, not captured).
        rule(
            "Process#refresh",
            Heartbeat,
            Safe,
            Text,
            r#"(?i-u)^\s*UPDATE\s+"\w*good_job_processes"\s+SET\s+"state"\s*=\s*\$1\s*,\s*"updated_at"\s*=\s*\$2\s+WHERE\s+"\w*good_job_processes"\."id"\s*=\s*\$3\b"#,
        ),
    ],
};
