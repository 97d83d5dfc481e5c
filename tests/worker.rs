//! A gbrain-like worker fleet on postgres.js (npm `postgres` 3.4.9, the client gbrain uses)
//! runs through lockroute. The server's own record, written by a trigger that stores
//! `current_user` for every claim, renewal and completion, shows which lane ran each one.

mod common;

use common::fleet::{self, Audit};
use common::proxy::Proxy;

async fn run_fleet(prepare: &str) {
    fleet::install_audit().await;
    let proxy = Proxy::start(&[]).await;
    let queue = common::unique_name("q");
    let run = fleet::run_ok(
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
    eprintln!("worker (prepare={prepare}): {}", run.summary);
    let rows = Audit::of(&queue).await;
    eprintln!("server audit: {rows:?}");
    let (claims, renewals, completions) = (
        rows.count("claim", "app"),
        rows.count("renew", "app"),
        rows.count("complete", "pooler"),
    );
    assert!(claims > 0 && renewals > 0 && completions > 0, "{rows:?}");
    assert_eq!(
        rows.count("claim", "pooler"),
        0,
        "every claim runs on the direct lane: {rows:?}"
    );
    assert_eq!(
        rows.count("renew", "pooler"),
        0,
        "every renewal runs on the direct lane: {rows:?}"
    );
    assert_eq!(
        rows.count("complete", "app"),
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
