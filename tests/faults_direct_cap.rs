//! Issue 14, item 4: the direct endpoint refuses lockroute with `53300` (too many connections,
//! common on small Supabase plans). lockroute's direct lane logs in as a private role whose
//! `CONNECTION LIMIT` is already taken, which PostgreSQL refuses with `53300` exactly as it does
//! at `max_connections`, without touching the shared server's settings. Lock-path units run on
//! the pooler as `direct_unavailable` with no client error, and go back to the direct lane on
//! their own once a slot is free.

mod common;

use std::time::{Duration, Instant};

use common::proxy::{Proxy, ProxyOptions};
use common::{StandIn, pg_connect};

const TAG: &str = "/* lockroute:direct */ ";

async fn tagged_user(client: &tokio_postgres::Client) -> String {
    client
        .query_one(&format!("{TAG}select current_user::text"), &[])
        .await
        .expect("a lock-path unit never fails because the direct lane is full")
        .get(0)
}

#[tokio::test]
async fn direct_endpoint_full_lock_path_runs_on_pooler_then_returns_direct() {
    let s = StandIn::shared();
    let role = common::unique_name("lr_cap");
    let admin = pg_connect(&s.super_url).await;
    admin
        .batch_execute(&format!(
            "create role {role} login password 'cap-secret' connection limit 1"
        ))
        .await
        .unwrap();
    let capped_url = format!(
        "postgres://{role}:cap-secret@127.0.0.1:{}/app?sslmode=disable",
        s.pg_port
    );
    // The role's one slot is taken: every further login as it gets 53300.
    let holder = pg_connect(&capped_url).await;
    let refused = tokio_postgres::connect(&capped_url, tokio_postgres::NoTls)
        .await
        .err()
        .expect("the role is at its connection limit");
    assert_eq!(refused.code().map(|c| c.code()), Some("53300"), "{refused}");

    let proxy = Proxy::start_with(ProxyOptions {
        pooler_url: &s.pooler_url,
        direct_url: &capped_url,
        args: &[],
        env: &[],
    })
    .await;
    let client = proxy.connect().await;
    let fallback = "lockroute_routed_total{lane=\"pooler\",reason=\"direct_unavailable\"}";
    for _ in 0..5 {
        assert_eq!(
            tagged_user(&client).await,
            "pooler",
            "direct_unavailable: the pooler ran it"
        );
    }
    assert!(proxy.metric(fallback).await >= 5.0);
    assert_eq!(
        proxy
            .metric("lockroute_errors_total{kind=\"upstream_connect\"}")
            .await,
        0.0,
        "a full direct endpoint is not a client error"
    );

    // A slot frees up: within the lane's backoff cap (5 s) lock-path units are direct again.
    drop(holder);
    let started = Instant::now();
    loop {
        let user = tagged_user(&client).await;
        if user == role {
            break;
        }
        assert_eq!(user, "pooler");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the direct lane did not come back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "back on the direct lane {:?} after the slot freed",
        started.elapsed()
    );
    proxy.stop().await;
    // lockroute's own connection is gone with the proxy; the role can go.
    let _ = admin.batch_execute(&format!("drop role {role}")).await;
}
