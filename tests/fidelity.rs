//! Protocol corners across the two lanes that the client matrix does not reach: COPY with a
//! 16 MiB row and CopyFail on both lanes, and cancel isolation on a shared direct connection.

mod common;

use std::time::{Duration, Instant};

use common::proxy::{Proxy, wait_for_activity};
use common::{StandIn, simple_rows};
use futures_util::{SinkExt, TryStreamExt};
use tokio_postgres::error::SqlState;

const TAG: &str = "/* lockroute:direct */ ";

/// COPY FROM STDIN with one 16 MiB row, COPY TO STDOUT of it, and a CopyFail, on one lane.
async fn copy_round_trip(client: &tokio_postgres::Client, table: &str, tag: &str, user: &str) {
    let big = "x".repeat(16 * 1024 * 1024);
    let sink = client
        .copy_in(&format!("{tag}copy {table} (id, v) from stdin"))
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::from(format!("1\t{big}\n")))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 1);
    let out: Vec<bytes::Bytes> = client
        .copy_out(&format!(
            "{tag}copy (select id, length(v) from {table}) to stdout"
        ))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(out.concat(), format!("1\t{}\n", big.len()).into_bytes());
    // CopyFail: the client aborts the COPY; the server rolls it back and the session goes on.
    let sink = client
        .copy_in::<_, bytes::Bytes>(&format!("{tag}copy {table} (id, v) from stdin"))
        .await
        .unwrap();
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from_static(b"2\tpartial\n"))
        .await
        .unwrap();
    drop(sink); // dropping an unfinished CopyInSink sends CopyFail
    let count = simple_rows(
        client,
        &format!("{tag}select count(*), current_user from {table}"),
    )
    .await;
    assert_eq!(count[0].get(0), Some("1"), "the failed COPY left no row");
    assert_eq!(count[0].get(1), Some(user));
}

#[tokio::test]
async fn copy_with_a_16_mib_row_and_copy_fail_work_on_both_lanes() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    for (tag, user) in [("", "pooler"), (TAG, "app")] {
        let table = common::unique_name("bigcopy");
        client
            .batch_execute(&format!("create table {table} (id int, v text)"))
            .await
            .unwrap();
        copy_round_trip(&client, &table, tag, user).await;
        client
            .batch_execute(&format!("drop table {table}"))
            .await
            .unwrap();
    }
    proxy.stop().await;
}

#[tokio::test]
async fn cancel_from_one_client_never_cancels_another_on_the_shared_connection() {
    let proxy = Proxy::start(&["--direct-pool-size", "1", "--direct-wait-timeout", "30s"]).await;
    let a = proxy.connect().await;
    let b = proxy.connect().await;
    // A has used the shared connection before, so it knows the lane; now it runs nothing.
    simple_rows(&a, &format!("{TAG}select 1")).await;
    let sleep = format!("{TAG}select pg_sleep(1.5), 'b-finished'");
    let b_task = {
        let sleep = sleep.clone();
        tokio::spawn(async move { simple_rows(&b, &sleep).await })
    };
    wait_for_activity(&StandIn::shared().super_url, &sleep).await;
    // A's cancel arrives while B's unit holds the shared connection: it must not reach B.
    let started = Instant::now();
    a.cancel_token()
        .cancel_query(tokio_postgres::NoTls)
        .await
        .unwrap();
    let rows = b_task.await.unwrap();
    assert_eq!(
        rows[0].get(1),
        Some("b-finished"),
        "B's statement ran to completion"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "B was not cut short"
    );
    // B's own cancel does reach its own statement.
    let b = proxy.connect().await;
    let token = b.cancel_token();
    let long = format!("{TAG}select pg_sleep(30)");
    let running = {
        let long = long.clone();
        tokio::spawn(async move { b.simple_query(&long).await })
    };
    wait_for_activity(&StandIn::shared().super_url, &long).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let err = running
        .await
        .unwrap()
        .expect_err("B's own cancel cancels it");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
    proxy.stop().await;
}
