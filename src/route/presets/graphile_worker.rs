//! graphile-worker (graphile/worker main @ abfb4cff, 0.17.3 with 0.18.0 pending; node-postgres).
//! The schema is always double-quoted by `escapeIdentifier`, default `"graphile_worker"`. Every
//! statement is named by default (`get_job/graphile_worker`), the most exact signal it gives.

use super::Kind::{Claim, Complete, Elect};
use super::Retry::{Safe, Unsafe};
use super::Signal::{Name, Text};
use super::{Preset, PresetId, ident, rule};

pub(super) static PRESET: Preset = Preset {
    id: PresetId::GraphileWorker,
    source: "graphile/worker main @ abfb4cff (0.17.3, 0.18.0 pending)",
    rules: &[
        // batchGetJobs(): `get_job${batch}${F}${N}/${schema}`.
        rule("batchGetJobs()", Claim, Unsafe, Name, r"^get_job\d*F?N?/"),
        rule(
            "batchGetJobs()",
            Claim,
            Unsafe,
            Text,
            concat!(
                r"(?i-u)^\s*with\s+j\s+as\s*\(\s*select\s+jobs\.job_queue_id\s*,\s*jobs\.priority\s*,\s*jobs\.run_at\s*,\s*jobs\.id\s+from\s+",
                ident!(),
                r"\._private_jobs\s+as\s+jobs\b"
            ),
        ),
        // scheduleCronJobs(): the upsert into _private_known_crontabs claims a crontab tick.
        rule(
            "scheduleCronJobs()",
            Elect,
            Unsafe,
            Text,
            concat!(
                r"(?i-u)^\s*with\s+specs\s+as\b(?s:.*?)\blocks\s+as\s*\(\s*insert\s+into\s+",
                ident!(),
                r"\._private_known_crontabs\b"
            ),
        ),
        // batchCompleteJobs(): deleting a finished job twice leaves it deleted.
        rule(
            "batchCompleteJobs()",
            Complete,
            Safe,
            Name,
            r"^complete_job\d*/",
        ),
        rule(
            "batchCompleteJobs()",
            Complete,
            Safe,
            Text,
            concat!(
                r"(?i-u)^\s*(?:with\s+j\s+as\s*\(\s*)?delete\s+from\s+",
                ident!(),
                r"\._private_jobs\s+as\s+jobs\s+(?:using\s+unnest\b|where\s+id\s*=\s*\$1::bigint)"
            ),
        ),
    ],
};
