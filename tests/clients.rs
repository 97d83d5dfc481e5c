//! Client matrix, stage "real clients": postgres.js (`js/matrix.mjs`, with `prepare` on and off)
//! and tokio-postgres run through an in-process lockroute against the real stand-in. Every lane
//! is proven by asking the server: `current_user` is `pooler` through PgBouncer and `app` on the
//! direct endpoint.

mod common;

use std::process::Command;
use std::time::Duration;

use common::proxy::Proxy;
use common::{StandIn, current_user, pg_connect, simple_rows};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls, Notification};

const TAG: &str = "/* lockroute:direct */ ";

/// The bound on anything a test waits for; a lost reply fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);

fn js_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Runs `node js/matrix.mjs` against `url`; returns its exit success and JSON summary. The script
/// bounds each scenario itself, so a hang shows up as a named failure.
async fn matrix(url: &str, prepare: &str) -> (bool, String) {
    let mut cmd = Command::new("node");
    cmd.arg(js_dir().join("matrix.mjs"))
        .env("DATABASE_URL", url)
        .env("PREPARE", prepare);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("node runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        eprintln!("matrix stderr: {stderr}");
    }
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn run_matrix(prepare: &str) {
    let proxy = Proxy::start(&[]).await;
    let (success, summary) = matrix(&proxy.url(), prepare).await;
    eprintln!("matrix (prepare={prepare}): {summary}");
    assert!(success, "matrix failed: {summary}");
    assert!(summary.contains("\"ok\":true"), "{summary}");
    for scenario in [
        "tagged_templates_on_the_pooler",
        "unsafe_describe_first_both_lanes",
        "pipelined_mixed_lanes",
        "transactions_stay_on_their_lane",
        "cancel_then_reuse_connection",
        "prepared_statements_across_lane_switches",
        "large_values_both_lanes",
    ] {
        assert!(
            summary.contains(&format!("\"{scenario}\":{{\"ok\":true")),
            "{scenario} did not pass: {summary}"
        );
    }
    proxy.stop().await;
}

#[tokio::test]
async fn postgres_js_matrix_with_prepared_statements_passes_on_both_lanes() {
    run_matrix("true").await;
}

#[tokio::test]
async fn postgres_js_matrix_without_prepared_statements_passes_on_both_lanes() {
    run_matrix("false").await;
}

/// `select $1::int, current_user::text` through `stmt`, as (value, role).
async fn int_and_user(client: &Client, stmt: &tokio_postgres::Statement, n: i32) -> (i32, String) {
    let row = tokio::time::timeout(WAIT, client.query_one(stmt, &[&n]))
        .await
        .expect("reply within the bound")
        .unwrap_or_else(|e| panic!("execute #{n}: {e}"));
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn pooler_prepared_statement_survives_lane_switches() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    let pooled = client
        .prepare("select $1::int, current_user::text")
        .await
        .unwrap();
    for i in 0..20 {
        assert_eq!(
            int_and_user(&client, &pooled, i).await,
            (i, "pooler".to_owned()),
            "pooler statement, round {i}"
        );
        // Alternate the shape of the direct unit: extended (a fresh named statement) and simple.
        let role = if i % 2 == 0 {
            let row = client
                .query_one(&format!("{TAG}select $1::int, current_user::text"), &[&i])
                .await
                .unwrap();
            assert_eq!(row.get::<_, i32>(0), i);
            row.get::<_, String>(1)
        } else {
            let rows = simple_rows(&client, &format!("{TAG}select current_user")).await;
            rows[0].get(0).unwrap_or_default().to_owned()
        };
        assert_eq!(role, "app", "direct statement, round {i}");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn direct_prepared_statement_survives_lane_switches() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    let direct = client
        .prepare(&format!("{TAG}select $1::int, current_user::text"))
        .await
        .unwrap();
    let pooled = client
        .prepare("select $1::int + 1000, current_user::text")
        .await
        .unwrap();
    for i in 0..20 {
        assert_eq!(
            int_and_user(&client, &direct, i).await,
            (i, "app".to_owned()),
            "direct statement, round {i}"
        );
        assert_eq!(
            int_and_user(&client, &pooled, i).await,
            (i + 1000, "pooler".to_owned()),
            "pooler statement, round {i}"
        );
        if i % 5 == 0 {
            assert_eq!(current_user(&client).await, "pooler", "simple, round {i}");
        }
    }
    proxy.stop().await;
}

/// Connects and drives the connection on a task that forwards every NotificationResponse.
async fn connect_listening(url: &str) -> (Client, mpsc::UnboundedReceiver<Notification>) {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", common::redact(url)));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                // The error, if any, reaches the client's next query.
                Err(_) => return,
            }
        }
    });
    (client, rx)
}

async fn next_notification(rx: &mut mpsc::UnboundedReceiver<Notification>) -> Notification {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a notification within the bound")
        .expect("the connection task is alive")
}

#[tokio::test]
async fn session_tagged_client_receives_notifications_while_idle() {
    let proxy = Proxy::start(&[]).await;
    let (listener, mut notifications) =
        connect_listening(&proxy.url_with("application_name=listener%20lockroute:direct")).await;
    assert_eq!(current_user(&listener).await, "app");
    let channel = common::unique_name("ch");
    listener
        .batch_execute(&format!("listen {channel}"))
        .await
        .unwrap();
    let notifier = pg_connect(&StandIn::shared().direct_url).await;
    notifier
        .batch_execute(&format!("notify {channel}, 'hi'"))
        .await
        .unwrap();
    let first = next_notification(&mut notifications).await;
    assert_eq!((first.channel(), first.payload()), (channel.as_str(), "hi"));
    // The listener keeps working, and a second notification arrives too.
    assert_eq!(current_user(&listener).await, "app");
    notifier
        .query("select pg_notify($1, $2)", &[&channel, &"again"])
        .await
        .unwrap();
    let second = next_notification(&mut notifications).await;
    assert_eq!(second.payload(), "again");
    assert_eq!(second.process_id(), first.process_id());
    proxy.stop().await;
}

/// The number of sessions holding advisory lock `key`, as the server reports it.
async fn advisory_holders(observer: &Client, key: i64) -> i64 {
    observer
        .query_one(
            "select count(*) from pg_locks where locktype = 'advisory' and granted \
             and ((classid::bigint << 32) | objid::bigint) = $1 and objsubid = 1",
            &[&key],
        )
        .await
        .unwrap()
        .get(0)
}

/// Waits (bounded) until no session holds advisory lock `key`.
async fn wait_released(observer: &Client, key: i64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while advisory_holders(observer, key).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "advisory lock {key} still held {WAIT:?} after its client went away"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn client_dropped_mid_direct_transaction_leaks_no_lock() {
    const KEY: i64 = 4242;
    // A hold timeout far beyond the bound, so that only the disconnect can free the connection.
    let proxy = Proxy::start(&["--direct-hold-timeout", "120s"]).await;
    let observer = pg_connect(&StandIn::shared().direct_url).await;
    // Abrupt (the socket closes with no Terminate) and polite (Terminate, then close).
    for abrupt in [true, false] {
        let (client, connection) = tokio_postgres::connect(&proxy.url(), NoTls).await.unwrap();
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        client.batch_execute(&format!("{TAG}begin")).await.unwrap();
        let rows = simple_rows(
            &client,
            &format!("{TAG}select pg_advisory_xact_lock({KEY}), current_user"),
        )
        .await;
        assert_eq!(rows[0].get(1), Some("app"), "the transaction runs direct");
        assert_eq!(advisory_holders(&observer, KEY).await, 1, "abrupt={abrupt}");
        if abrupt {
            driver.abort();
            let _ = driver.await;
            drop(client);
        } else {
            drop(client);
            let _ = driver.await;
        }
        wait_released(&observer, KEY).await;
        // A second client through the same proxy takes the lock on the shared direct connection,
        // and it is not inside a leftover transaction: its xact lock ends with its statement.
        let second = proxy.connect().await;
        let rows = tokio::time::timeout(
            WAIT,
            second.simple_query(&format!(
                "{TAG}select pg_try_advisory_xact_lock({KEY})::text, current_user"
            )),
        )
        .await
        .expect("the shared direct connection is free within the bound")
        .unwrap();
        let row = rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .expect("a row");
        assert_eq!(
            (row.get(0), row.get(1)),
            (Some("true"), Some("app")),
            "abrupt={abrupt}"
        );
        assert_eq!(advisory_holders(&observer, KEY).await, 0, "abrupt={abrupt}");
    }
    proxy.stop().await;
}
