//! The gbrain-like worker fleet (`js/worker.mjs`, postgres.js 3.4.9) as tests run it, and the
//! server's own record of what it did (`js/audit.sql`: one row per claim, renewal, completion and
//! stall eviction, with the `current_user` that ran it).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{StandIn, pg_connect};

const AUDIT_SQL: &str = include_str!("../../js/audit.sql");

fn js_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// One finished fleet run: its exit status and its JSON summary line.
pub struct Run {
    pub ok: bool,
    pub crashed: bool,
    pub summary: Value,
    pub stderr: String,
}

impl Run {
    /// A counter from the summary (0 when absent).
    pub fn count(&self, key: &str) -> u64 {
        self.summary[key].as_u64().unwrap_or(0)
    }

    /// Errors of one operation (`claim`, `renew`, `complete`, `enrich`, `promote`, `sweep`).
    pub fn errors_of(&self, op: &str) -> u64 {
        self.summary["errors_by_op"][op]
            .as_object()
            .map(|codes| codes.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    }

    /// Errors with one code (a SQLSTATE, or postgres.js's `CONNECTION_CLOSED` and friends).
    pub fn errors_with(&self, code: &str) -> u64 {
        self.summary["errors"][code].as_u64().unwrap_or(0)
    }

    /// Every error code the fleet saw, with its count.
    pub fn error_codes(&self) -> Vec<(&str, u64)> {
        self.summary["errors"]
            .as_object()
            .map(|codes| {
                codes
                    .iter()
                    .map(|(code, n)| (code.as_str(), n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn total_errors(&self) -> u64 {
        self.error_codes().iter().map(|(_, n)| n).sum()
    }

    /// Errors whose code is not a SQLSTATE: the socket itself failed under the client
    /// (`CONNECTION_CLOSED`, `ECONNRESET`, `EPIPE`, ...).
    pub fn socket_errors(&self) -> u64 {
        self.error_codes()
            .iter()
            .filter(|(code, _)| !is_sqlstate(code))
            .map(|(_, n)| n)
            .sum()
    }

    /// Errors on the lock path: claims and lease renewals.
    pub fn lock_path_errors(&self) -> u64 {
        self.errors_of("claim") + self.errors_of("renew")
    }
}

fn is_sqlstate(code: &str) -> bool {
    code.len() == 5
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// The fleet the fault tests run: 4 workers, each job 600 ms of work with `enrich`
/// transactions, a 10 s lease renewed every 150 ms (gbrain: 30 s and 15 s), and a stall sweeper
/// every 250 ms. `prepare` is postgres.js's option: gbrain keeps it on pointed at localhost and
/// turns it off on port 6543.
pub fn fault_env<'a>(
    queue: &'a str,
    seconds: &'a str,
    prepare: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("WORKERS", "4"),
        ("SECONDS", seconds),
        ("JOB_MS", "600"),
        ("RENEW_MS", "150"),
        ("LOCK_MS", "10000"),
        ("SWEEP_MS", "250"),
        ("ENRICH", "1"),
        ("QUEUE", queue),
        ("PREPARE", prepare),
    ]
}

/// Runs `node js/worker.mjs` against `url` with the given environment and waits for it: at most
/// its `SECONDS` plus two minutes, after which it is killed (by pid) and reported as crashed.
pub async fn run(url: &str, env: &[(&str, &str)]) -> Run {
    let seconds: u64 = env
        .iter()
        .find(|(k, _)| *k == "SECONDS")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(20);
    let mut cmd = Command::new("node");
    cmd.arg(js_dir().join("worker.mjs"))
        .env("DATABASE_URL", url)
        .envs(env.iter().copied());
    let limit = Duration::from_secs(seconds + 120);
    let super::process::Finished {
        status,
        stdout,
        mut stderr,
    } = super::process::run_bounded(cmd, limit, "fleet-out").await;
    if status.is_none() {
        stderr.push_str(&format!("\n(killed after {limit:?})"));
    }
    // A worker that crashed (postgres.js itself can throw when a socket dies mid-write) prints
    // its summary with `crashed: true`, or none at all when it was killed.
    let line = stdout.lines().last().unwrap_or_default();
    let summary: Option<Value> = serde_json::from_str(line).ok();
    Run {
        ok: status.is_some_and(|s| s.success()) && summary.is_some(),
        crashed: summary
            .as_ref()
            .is_none_or(|s| s["crashed"].as_bool() == Some(true)),
        summary: summary.unwrap_or(Value::Null),
        stderr,
    }
}

/// Runs the fleet and panics unless it reports success; returns its summary.
pub async fn run_ok(url: &str, env: &[(&str, &str)]) -> Run {
    let run = run(url, env).await;
    assert!(run.ok, "worker failed: {}\n{}", run.summary, run.stderr);
    run
}

/// Creates the queue schema and the audit trigger (idempotent, safe across parallel tests).
pub async fn install_audit() {
    let s = StandIn::shared();
    run_ok(&s.direct_url, &[("SETUP_ONLY", "1")]).await;
    let direct = pg_connect(&s.direct_url).await;
    direct
        .batch_execute("SELECT pg_advisory_lock(hashtext('lockroute-audit'))")
        .await
        .unwrap();
    direct.batch_execute(AUDIT_SQL).await.unwrap();
    direct
        .batch_execute("SELECT pg_advisory_unlock(hashtext('lockroute-audit'))")
        .await
        .unwrap();
}

/// The server's record for one queue: (op, role) → count.
pub struct Audit(Vec<(String, String, i64)>);

impl Audit {
    pub async fn of(queue: &str) -> Audit {
        let direct = pg_connect(&StandIn::shared().direct_url).await;
        let rows = direct
            .query(
                "select op, role, count(*) from lockroute_audit where queue = $1 group by 1, 2 order by 1, 2",
                &[&queue],
            )
            .await
            .unwrap();
        Audit(
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
        )
    }

    /// How many `op`s (`claim`, `renew`, `complete`, `evict`) ran as `role`.
    pub fn count(&self, op: &str, role: &str) -> i64 {
        self.0
            .iter()
            .filter(|(o, r, _)| o == op && r == role)
            .map(|(_, _, n)| n)
            .sum()
    }

    /// How many `op`s ran, whatever the role.
    pub fn total(&self, op: &str) -> i64 {
        self.0
            .iter()
            .filter(|(o, _, _)| o == op)
            .map(|(_, _, n)| n)
            .sum()
    }
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
