//! The live kill switch on the real binary: `--control-file` flipped by a rewrite, by SIGHUP
//! alone, and by a Kubernetes ConfigMap's atomic symlink swap, under a postgres.js fleet that
//! renews leases every 200 ms (js/renew.mjs). Every renewal returns the `current_user` that ran
//! it: `app` on the direct lane, `pooler` through PgBouncer.

mod common;

#[path = "control/harness.rs"]
mod harness;

use std::time::Duration;

use serde_json::Value;

use common::pg_connect;
use common::process::http_status;
use harness::{APPLY_WITHIN, Harness, How, admin, assert_all, now_ms, roles, spawn_fleet};

const DIRECT_ROLE: &str = "app";
const POOLER_ROLE: &str = "pooler";

/// At 4 s the file turns the kill switch on, at 8 s the line is removed. Renewals run direct,
/// then on the pooler, then direct again; no error, no reconnect, the same process.
async fn flip_and_back(how: How) {
    let mut h = Harness::start(how, "# lockroute control file\n").await;
    let pid = h.running.child.id();
    let started = now_ms();
    let fleet = spawn_fleet(&h.url(), &h.table, h.running.admin_port);

    tokio::time::sleep(Duration::from_secs(4)).await;
    let direct = "lockroute_upstream_connections{lane=\"direct\"}";
    assert_eq!(
        h.metric(direct).await,
        1.0,
        "the renewals hold one shared direct connection"
    );
    let on = now_ms();
    h.change("# incident: spare the direct endpoint\nLOCKROUTE_PASSTHROUGH=1\n");
    let config = h.wait_mode("passthrough").await;
    assert_eq!(config["mode_source"], "LOCKROUTE_PASSTHROUGH", "{config}");
    assert_eq!(
        config["settings"]["mode"]["source"], "control-file",
        "{config}"
    );
    // Passthrough spares the direct endpoint: the idle shared connection is closed.
    let started_closing = std::time::Instant::now();
    while h.metric(direct).await != 0.0 {
        assert!(
            started_closing.elapsed() < APPLY_WITHIN,
            "direct connection still open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    tokio::time::sleep(Duration::from_millis(
        (started + 8000).saturating_sub(now_ms()),
    ))
    .await;
    let off = now_ms();
    h.change("# lockroute control file\n");
    let config = h.wait_mode("split").await;
    assert_eq!(config["settings"]["mode"]["source"], "default", "{config}");

    let summary = fleet.await.unwrap();
    assert_eq!(
        summary["errors"],
        serde_json::json!({}),
        "client errors: {summary}"
    );
    let opened = summary["client_connections_total"].as_f64().unwrap();
    assert!(opened >= 1.0, "{summary}");
    assert_eq!(
        opened,
        summary["client_connections"].as_f64().unwrap(),
        "a client connection closed during the run (a reconnect)"
    );
    // A renewal started just before a change may be decided just after it.
    let margin = 250;
    let apply = APPLY_WITHIN.as_millis() as u64;
    assert_all(&roles(&summary, 0, on - margin), DIRECT_ROLE, "before");
    assert_all(
        &roles(&summary, on + apply, off - margin),
        POOLER_ROLE,
        "passthrough",
    );
    assert_all(
        &roles(&summary, off + apply, u64::MAX),
        DIRECT_ROLE,
        "after",
    );

    assert_eq!(
        h.metric(direct).await,
        1.0,
        "split reopened the shared connection"
    );
    assert!(h.alive(), "lockroute exited");
    assert_eq!(h.running.child.id(), pid);
    assert_eq!(
        h.metric("lockroute_config_reloads_total{result=\"ok\"}")
            .await,
        2.0
    );
    assert_eq!(
        h.metric("lockroute_config_reloads_total{result=\"error\"}")
            .await,
        0.0
    );
    assert_eq!(h.metric("lockroute_mode{mode=\"split\"}").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_file_rewrite_flips_fleet_to_pooler_and_back_without_reconnects() {
    flip_and_back(How::Rewrite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_alone_flips_fleet_to_pooler_and_back_without_reconnects() {
    flip_and_back(How::Sighup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_symlink_swap_flips_fleet_to_pooler_and_back_without_reconnects() {
    flip_and_back(How::ConfigMap).await;
}

/// A file with an unclosed regex is refused as a whole; split keeps routing, the error counter
/// moves, `/readyz` stays 200. `POST /reload` names the bad entry, then applies a good file.
#[tokio::test]
async fn unclosed_regex_is_refused_and_split_keeps_working() {
    let mut h = Harness::start(How::Rewrite, "").await;
    assert_eq!(
        h.metric("lockroute_config_reloads_total{result=\"error\"}")
            .await,
        0.0
    );
    assert!(
        h.metric("lockroute_config_last_reload_success_timestamp_seconds")
            .await
            > 0.0
    );
    let client = pg_connect(&h.url()).await;
    let renew = format!(
        "UPDATE {} SET lock_until = now() WHERE id = 1 RETURNING current_user::text",
        h.table
    );
    let who = |rows: Vec<tokio_postgres::Row>| rows[0].get::<_, String>(0);
    assert_eq!(who(client.query(&renew, &[]).await.unwrap()), DIRECT_ROLE);

    h.change("LOCKROUTE_PASSTHROUGH=1\nLOCKROUTE_LOCK_PATTERNS=^UPDATE (jobs\n");
    let started = std::time::Instant::now();
    while h
        .metric("lockroute_config_reloads_total{result=\"error\"}")
        .await
        < 1.0
    {
        assert!(
            started.elapsed() < APPLY_WITHIN,
            "the refusal was not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The whole file was refused, its good line too.
    assert_eq!(who(client.query(&renew, &[]).await.unwrap()), DIRECT_ROLE);
    assert_eq!(
        http_status(h.running.admin_port, "/readyz").await,
        Some(200)
    );
    let config = h.config().await;
    assert_eq!(config["mode"], "split", "{config}");
    assert_eq!(config["settings"]["lock_patterns"]["count"], 1, "{config}");
    assert_eq!(
        config["settings"]["lock_patterns"]["source"], "flag",
        "{config}"
    );

    let (status, body) = admin(h.running.admin_port, "POST", "/reload").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("line 2: \"LOCKROUTE_LOCK_PATTERNS\"") && body.contains("unclosed group"),
        "{body}"
    );
    assert_eq!(
        h.metric("lockroute_config_reloads_total{result=\"error\"}")
            .await,
        2.0
    );

    h.change("LOCKROUTE_PASSTHROUGH=1\n");
    let (status, body) = admin(h.running.admin_port, "POST", "/reload").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "reloaded: mode=passthrough\n")
    );
    // The same connection now runs its renewals on the pooler.
    assert_eq!(who(client.query(&renew, &[]).await.unwrap()), POOLER_ROLE);
    assert_eq!(h.metric("lockroute_mode{mode=\"passthrough\"}").await, 1.0);
    let config = h.config().await;
    assert_eq!(config["last_reload_error"], Value::Null, "{config}");
    assert_eq!(
        config["settings"]["mode"]["source"], "control-file",
        "{config}"
    );
    let (status, _) = admin(h.running.admin_port, "GET", "/reload").await;
    assert_eq!(status, 405);
    assert!(h.alive());
}

async fn who(client: &tokio_postgres::Client, sql: &str) -> String {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn reload(h: &Harness, text: &str, mode: &str) {
    std::fs::write(h.file.dir.join(".next"), text).unwrap();
    std::fs::rename(h.file.dir.join(".next"), &h.file.path).unwrap();
    let (status, body) = admin(h.running.admin_port, "POST", "/reload").await;
    assert_eq!((status, body), (200, format!("reloaded: mode={mode}\n")));
}

/// A transaction open on the direct lane when passthrough turns on finishes there, on the same
/// connection; the client's next unit runs on the pooler, and back in split it routes again.
/// A session-tagged client keeps its dedicated connection through passthrough and resumes on it.
#[tokio::test]
async fn open_transactions_finish_on_their_lane_when_the_mode_turns() {
    let h = Harness::start(How::Rewrite, "").await;
    let plain = pg_connect(&h.url()).await;
    let tagged = pg_connect(&format!(
        "{}&application_name=worker%20lockroute:direct",
        h.url()
    ))
    .await;
    let renew = format!(
        "UPDATE {} SET lock_until = now() WHERE id = 2 RETURNING current_user::text",
        h.table
    );
    let pid = "select pg_backend_pid()::text || ' ' || current_user::text";
    let dedicated = who(&tagged, pid).await;
    assert!(dedicated.ends_with(DIRECT_ROLE), "{dedicated}");

    // A transaction on the direct lane (the statement tag picks it at its first message).
    plain
        .batch_execute("/* lockroute:direct */ begin")
        .await
        .unwrap();
    assert_eq!(who(&plain, &renew).await, DIRECT_ROLE);
    let in_transaction = who(&plain, pid).await;
    tagged.batch_execute("begin").await.unwrap();
    assert_eq!(who(&tagged, pid).await, dedicated);

    reload(&h, "LOCKROUTE_PASSTHROUGH=1\n", "passthrough").await;
    // Both transactions finish where they started, on the same server sessions.
    assert_eq!(who(&plain, pid).await, in_transaction);
    assert_eq!(who(&tagged, pid).await, dedicated);
    plain.batch_execute("commit").await.unwrap();
    tagged.batch_execute("commit").await.unwrap();
    // Then every unit goes to the pooler, the lock path too.
    assert_eq!(who(&plain, &renew).await, POOLER_ROLE);
    assert_eq!(who(&plain, "select current_user::text").await, POOLER_ROLE);
    assert_eq!(who(&tagged, "select current_user::text").await, POOLER_ROLE);
    // The shared connection the transaction used is closed; the dedicated one stays.
    let direct = "lockroute_upstream_connections{lane=\"direct\"}";
    let started = std::time::Instant::now();
    while h.metric(direct).await != 1.0 {
        assert!(
            started.elapsed() < APPLY_WITHIN,
            "shared direct connection still open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    reload(&h, "", "split").await;
    assert_eq!(who(&plain, &renew).await, DIRECT_ROLE);
    assert_eq!(who(&plain, "select current_user::text").await, POOLER_ROLE);
    // The tagged client is back on its own connection, never closed.
    assert_eq!(who(&tagged, pid).await, dedicated);
}
