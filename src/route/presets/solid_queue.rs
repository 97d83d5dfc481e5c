//! Solid Queue (rails/solid_queue 1.5.0 @ 29e818d9, ActiveRecord). Texts are rendered from the
//! models (not captured). Tables are `solid_queue_*`, with any Rails `table_name_prefix` in front.
//! The claim and the heartbeat run inside transactions, so they pick the lane only where the
//! transaction's lane is chosen at its first statement.

use super::Kind::{Claim, Complete, Heartbeat};
use super::Retry::{Safe, Unsafe};
use super::Signal::Text;
use super::{Preset, PresetId, rule};

pub(super) static PRESET: Preset = Preset {
    id: PresetId::SolidQueue,
    source: "rails/solid_queue 1.5.0 @ 29e818d9",
    rules: &[
        // ReadyExecution.select_and_lock: `… LIMIT $2 FOR UPDATE SKIP LOCKED`.
        rule(
            "ReadyExecution.select_and_lock",
            Claim,
            Unsafe,
            Text,
            r#"(?i-u)^\s*SELECT\s+"\w*solid_queue_ready_executions"\."id"\s*,\s*"\w*solid_queue_ready_executions"\."job_id"\s+FROM\s+"\w*solid_queue_ready_executions"\s(?s:[^;]*?)\bFOR\s+UPDATE\s+SKIP\s+LOCKED\b"#,
        ),
        // Process#heartbeat: `with_lock { touch(:last_heartbeat_at) }`; the locking SELECT is
        // the transaction's first statement.
        rule(
            "Process#heartbeat",
            Heartbeat,
            Safe,
            Text,
            r#"(?i-u)^\s*SELECT\s+"\w*solid_queue_processes"\.\*\s+FROM\s+"\w*solid_queue_processes"\s+WHERE\s+"\w*solid_queue_processes"\."id"\s*=\s*\$1\s+LIMIT\s+\$2\s+FOR\s+UPDATE\s*(?:$|;|/\*)"#,
        ),
        rule(
            "Process#heartbeat",
            Heartbeat,
            Safe,
            Text,
            r#"(?i-u)^\s*UPDATE\s+"\w*solid_queue_processes"\s+SET\s+"last_heartbeat_at"\s*=\s*\$1\s+WHERE\s+"\w*solid_queue_processes"\."id"\s*=\s*\$2\b"#,
        ),
        // ClaimedExecution#finished: the claimed execution goes; deleting it twice is a no-op.
        rule(
            "ClaimedExecution#finished",
            Complete,
            Safe,
            Text,
            r#"(?i-u)^\s*DELETE\s+FROM\s+"\w*solid_queue_claimed_executions"\s+WHERE\s+"\w*solid_queue_claimed_executions"\."id"\s*=\s*\$1\b"#,
        ),
    ],
};
