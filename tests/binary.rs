//! The real binary: signals, the drain contract, and exit codes.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{Running, free_port, http_status, signal, wait_exit};
use common::{StandIn, pg_connect};

async fn start(extra: &[&str]) -> Running {
    let s = StandIn::shared();
    let (port, admin_port) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_lockroute"))
        .args(["--pooler-url", &s.pooler_url, "--direct-url", &s.direct_url])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
        ])
        .args(extra)
        .env_remove("LOCKROUTE_PASSTHROUGH")
        .env_remove("GBRAIN_DISABLE_DIRECT_POOL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Running {
        child,
        port,
        admin_port,
    }
    .wait_until_ok("/readyz")
    .await
}

fn url(port: u16) -> String {
    format!("postgres://app:app-secret@127.0.0.1:{port}/app?sslmode=disable")
}

#[tokio::test]
async fn sigterm_lets_an_open_transaction_commit_then_exits_zero() {
    let mut running = start(&["--drain-timeout", "20s"]).await;
    let table = common::unique_name("drain");
    let direct = pg_connect(&StandIn::shared().direct_url).await;
    direct
        .batch_execute(&format!("create table {table} (v int)"))
        .await
        .unwrap();

    let client = pg_connect(&url(running.port)).await;
    client.batch_execute("begin").await.unwrap();
    client
        .execute(&format!("insert into {table} values (1)"), &[])
        .await
        .unwrap();

    signal(&running.child, "TERM");
    // Readiness turns 503 at once...
    let mut ready = None;
    for _ in 0..100 {
        ready = http_status(running.admin_port, "/readyz").await;
        if ready == Some(503) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ready, Some(503), "/readyz must turn 503 on SIGTERM");
    // ...while the open transaction still commits.
    client
        .execute(&format!("insert into {table} values (2)"), &[])
        .await
        .unwrap();
    client.batch_execute("commit").await.unwrap();
    let count: i64 = direct
        .query_one(&format!("select count(*) from {table}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
    // New clients are refused during the drain.
    assert!(
        tokio_postgres::connect(&url(running.port), tokio_postgres::NoTls)
            .await
            .is_err()
    );

    drop(client);
    let status = wait_exit(&mut running.child, Duration::from_secs(1))
        .await
        .expect("exits within 1s of the last client");
    assert_eq!(status.code(), Some(0));
    direct
        .batch_execute(&format!("drop table {table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn drain_timeout_closes_idle_sessions_with_57p01_and_exits_zero() {
    let mut running = start(&["--drain-timeout", "300ms"]).await;
    let (client, connection) = tokio_postgres::connect(&url(running.port), tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn_task = tokio::spawn(connection);
    client.query_one("select 1", &[]).await.unwrap();
    signal(&running.child, "TERM");
    let status = wait_exit(&mut running.child, Duration::from_secs(5))
        .await
        .expect("exits after the drain timeout");
    assert_eq!(status.code(), Some(0));
    let err = conn_task
        .await
        .unwrap()
        .expect_err("the session was closed by the server");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::ADMIN_SHUTDOWN),
        "{err}"
    );
}

#[tokio::test]
async fn second_signal_exits_at_once() {
    let mut running = start(&["--drain-timeout", "60s"]).await;
    let client = pg_connect(&url(running.port)).await;
    client.query_one("select 1", &[]).await.unwrap();
    signal(&running.child, "TERM");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "a drain with a client connected keeps running"
    );
    signal(&running.child, "INT");
    let status = wait_exit(&mut running.child, Duration::from_secs(2))
        .await
        .expect("a second signal exits at once");
    assert_eq!(status.code(), Some(1));
}

#[tokio::test]
async fn json_logs_carry_stable_fields_and_never_sql_or_passwords() {
    let s = StandIn::shared();
    let (port, admin_port) = (free_port(), free_port());
    let closed = free_port();
    let log = std::env::temp_dir().join(format!("lockroute-json-{}.log", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockroute"))
        .args(["--pooler-url", &s.pooler_url])
        .args([
            "--direct-url",
            &format!("postgres://app:app-secret@127.0.0.1:{closed}/app"),
        ])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
        ])
        .args(["--log-format", "json", "--drain-timeout", "1s"])
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if http_status(admin_port, "/readyz").await == Some(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let client = pg_connect(&url(port)).await;
    let rows =
        common::simple_rows(&client, "/* lockroute:direct */ select 'secret-sql-text'").await;
    assert_eq!(rows[0].get(0), Some("secret-sql-text"));
    drop(client);
    let wrong = format!("postgres://app:not-the-password@127.0.0.1:{port}/app?sslmode=disable");
    assert!(
        tokio_postgres::connect(&wrong, tokio_postgres::NoTls)
            .await
            .is_err()
    );
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(5))
        .await
        .expect("exits after the drain");
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    assert!(
        text.lines().all(|l| l.starts_with('{') && l.ends_with('}')),
        "one JSON object per line:\n{text}"
    );
    let fallback = text
        .lines()
        .find(|l| l.contains("\"reason\":\"direct_unavailable\""))
        .unwrap_or_else(|| panic!("no fallback line:\n{text}"));
    assert!(fallback.contains("\"lane\":\"direct\""), "{fallback}");
    assert!(
        fallback.contains("\"client.addr\":\"127.0.0.1:"),
        "{fallback}"
    );
    let auth = text
        .lines()
        .find(|l| l.contains("\"sqlstate\":\"28P01\""))
        .unwrap_or_else(|| panic!("no auth failure line:\n{text}"));
    assert!(auth.contains("\"client.addr\":\"127.0.0.1:"), "{auth}");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("direct lane cannot be connected"))
            .count(),
        1,
        "a fallback is logged once, not once per statement:\n{text}"
    );
    for secret in ["secret-sql-text", "app-secret", "not-the-password"] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the logs:\n{text}"
        );
    }
}
