//! A gbrain-like worker fleet on postgres.js (npm `postgres` 3.4.9, the client gbrain uses)
//! runs through lockroute. The server's own record, written by a trigger that stores
//! `current_user` for every claim, renewal and completion, shows which lane ran each one.

mod common;

use std::process::Command;

use common::proxy::Proxy;
use common::{StandIn, pg_connect};

/// Records, for every state change of a job, which role ran it: `app` is the direct lane,
/// `pooler` is PgBouncer. The demo installs the same trigger.
const AUDIT_SQL: &str = include_str!("../js/audit.sql");

fn js_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Runs `node js/worker.mjs` with the given environment; returns its JSON summary.
async fn worker(url: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("node");
    cmd.arg(js_dir().join("worker.mjs"))
        .env("DATABASE_URL", url)
        .envs(env.iter().copied());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "worker failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn install_audit() {
    let s = StandIn::shared();
    worker(&s.direct_url, &[("SETUP_ONLY", "1")]).await;
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

/// (op, role) → count for one queue, from the server's own record.
async fn audit(queue: &str) -> Vec<(String, String, i64)> {
    let direct = pg_connect(&StandIn::shared().direct_url).await;
    direct
        .query(
            "select op, role, count(*) from lockroute_audit where queue = $1 group by 1, 2 order by 1, 2",
            &[&queue],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn count(rows: &[(String, String, i64)], op: &str, role: &str) -> i64 {
    rows.iter()
        .filter(|(o, r, _)| o == op && r == role)
        .map(|(_, _, n)| n)
        .sum()
}

async fn run_fleet(prepare: &str) {
    install_audit().await;
    let proxy = Proxy::start(&[]).await;
    let queue = common::unique_name("q");
    let summary = worker(
        &proxy.url(),
        &[
            ("WORKERS", "4"),
            ("SECONDS", "20"),
            ("JOB_MS", "600"),
            ("RENEW_MS", "150"),
            ("QUEUE", &queue),
            ("PREPARE", prepare),
        ],
    )
    .await;
    eprintln!("worker (prepare={prepare}): {summary}");
    assert!(summary.contains("\"ok\":true"), "{summary}");
    let rows = audit(&queue).await;
    eprintln!("server audit: {rows:?}");
    let (claims, renewals, completions) = (
        count(&rows, "claim", "app"),
        count(&rows, "renew", "app"),
        count(&rows, "complete", "pooler"),
    );
    assert!(claims > 0 && renewals > 0 && completions > 0, "{rows:?}");
    assert_eq!(
        count(&rows, "claim", "pooler"),
        0,
        "every claim runs on the direct lane: {rows:?}"
    );
    assert_eq!(
        count(&rows, "renew", "pooler"),
        0,
        "every renewal runs on the direct lane: {rows:?}"
    );
    assert_eq!(
        count(&rows, "complete", "app"),
        0,
        "every completion runs on the pooler: {rows:?}"
    );
    let direct_units = proxy
        .metric("lockroute_routed_total{lane=\"direct\",reason=\"pattern\"}")
        .await;
    assert!(
        direct_units >= (claims + renewals) as f64,
        "{direct_units} < {claims} + {renewals}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn postgres_js_fleet_claims_and_renews_direct_and_completes_on_the_pooler() {
    run_fleet("true").await;
}

#[tokio::test]
async fn postgres_js_fleet_without_prepared_statements_routes_the_same() {
    run_fleet("false").await;
}
