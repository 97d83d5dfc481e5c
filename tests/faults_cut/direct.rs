//! The shared direct connection cut or stalled in the middle of a reply.

use crate::relay::{Dir, Fault, How, Until};
use crate::wire::{self, assert_lost, errors, rows, scalar, status};
use crate::{Rig, TAG, routed};

/// Thirty rows; the fifteenth carries the marker, which the query text does not contain.
fn marked_query() -> String {
    format!(
        "{TAG}select g, case when g = 15 then 'stall' || 'here' else md5(g::text) end \
         from generate_series(1, 30) g"
    )
}

#[tokio::test]
async fn direct_reply_cut_gives_one_08006_per_statement_and_the_next_tagged_one_runs_direct() {
    let rig = Rig::start(&[]).await;
    let mut client = rig.client().await;
    assert_eq!(
        scalar(&client.query(&format!("{TAG}select current_user")).await),
        "app"
    );
    for how in [How::Rst, How::Fin] {
        let armed = rig.direct.arm(
            Fault::on(Dir::ToProxy, b'D')
                .containing("stallhere")
                .at(11)
                .cut(how),
        );
        // Three tagged units pipelined onto the shared connection; the cut hits the first.
        let mut batch = wire::query(&marked_query());
        batch.extend(wire::extended(&format!("{TAG}select 'two'")));
        batch.extend(wire::query(&format!("{TAG}select current_user")));
        client.send(&batch).await;
        let first = wire::within("tagged reply 1", client.reply()).await;
        assert_eq!(armed.fired(), 1, "{how:?}");
        assert_lost(&first, 'I', "the cut unit");
        let got = rows(&first);
        assert!(got.len() <= 14, "{how:?}: {got:?}");
        if how == How::Fin {
            assert_eq!(got.len(), 14, "a FIN loses no row sent before it");
        }
        // Units 2 and 3 were in flight on the same connection (each gets exactly one 08006),
        // or were not sent yet and ran on a new connection.
        for (i, want) in [(2, "two"), (3, "app")] {
            let reply = wire::within(&format!("tagged reply {i}"), client.reply()).await;
            if errors(&reply).is_empty() {
                assert_eq!(scalar(&reply), want, "unit {i}");
                eprintln!("{how:?}: unit {i} ran after the cut");
            } else {
                assert_lost(&reply, 'I', &format!("unit {i}"));
                eprintln!("{how:?}: unit {i} was in flight: 08006");
            }
        }
        let user = client.query(&format!("{TAG}select current_user")).await;
        assert_eq!(
            scalar(&user),
            "app",
            "{how:?}: the next tagged statement runs direct"
        );
        assert_eq!(scalar(&client.query("select current_user").await), "pooler");
    }
    if crate::metrics_are_ours() {
        let series = routed("pooler", "direct_unavailable");
        let fallbacks = rig.proxy.metric(&series).await;
        assert_eq!(fallbacks, 0.0, "a cut is not a fallback");
    }
    rig.stop().await;
}

#[tokio::test]
async fn idle_shared_direct_connection_cut_is_invisible() {
    let rig = Rig::start(&[]).await;
    let mut client = rig.client().await;
    let pid = scalar(&client.query(&format!("{TAG}select pg_backend_pid()")).await);
    rig.direct.cut_all();
    let again = client.query(&format!("{TAG}select pg_backend_pid()")).await;
    assert!(errors(&again).is_empty(), "{again:?}");
    assert_ne!(scalar(&again), pid, "a new direct connection");
    assert_eq!(
        scalar(&client.query(&format!("{TAG}select current_user")).await),
        "app"
    );
    rig.stop().await;
}

#[tokio::test]
async fn direct_stall_mid_reply_blocks_no_pooler_client_and_resumes_intact() {
    let rig = Rig::start(&["--direct-pool-size", "1", "--direct-wait-timeout", "1s"]).await;
    // The expected rows, computed on the clean pooler lane.
    let mut reference = rig.client().await;
    let want = rows(
        &reference
            .query(&marked_query().replace(TAG, "/* untagged */ "))
            .await,
    );
    assert_eq!(want.len(), 30);
    let mut stalled = rig.client().await;
    let pid = scalar(
        &stalled
            .query(&format!("{TAG}select pg_backend_pid()"))
            .await,
    );
    let armed = rig.direct.arm(
        Fault::on(Dir::ToProxy, b'D')
            .containing("stallhere")
            .at(11)
            .stall(Until::Released),
    );
    stalled.send(&wire::query(&marked_query())).await;
    armed.wait_fired(wire::BOUND).await;
    let reading = tokio::spawn(async move {
        let reply = stalled.reply().await;
        (stalled, reply)
    });
    // Meanwhile another client's pooler-lane queries keep completing.
    let other = rig.proxy.connect().await;
    let started = tokio::time::Instant::now();
    for _ in 0..20 {
        let user = wire::within("pooler query during the direct stall", async {
            crate::common::current_user(&other).await
        })
        .await;
        assert_eq!(user, "pooler");
    }
    eprintln!(
        "timing: 20 pooler queries during the stall: {:?}",
        started.elapsed()
    );
    // A tagged statement cannot have the shared connection now: after --direct-wait-timeout
    // it runs on the pooler instead of waiting behind the stall.
    let tagged = wire::within("tagged statement during the stall", async {
        crate::common::simple_rows(&other, &format!("{TAG}select current_user")).await
    })
    .await;
    assert_eq!(tagged[0].get(0), Some("pooler"));
    assert!(
        rig.proxy
            .metric(&routed("pooler", "direct_unavailable"))
            .await
            >= 1.0
    );
    assert!(
        !reading.is_finished(),
        "the stalled reply cannot be complete"
    );
    rig.direct.release();
    let (mut stalled, reply) = wire::within("the stalled reply after release", reading)
        .await
        .unwrap();
    assert!(errors(&reply).is_empty(), "{reply:?}");
    assert_eq!(rows(&reply), want, "the full, correct reply");
    assert_eq!(status(&reply), 'I');
    let again = stalled
        .query(&format!("{TAG}select pg_backend_pid()"))
        .await;
    assert_eq!(scalar(&again), pid, "the same direct connection, never cut");
    rig.stop().await;
}

#[tokio::test]
async fn direct_cut_inside_a_transaction_gives_08006_then_25p02_and_frees_the_connection() {
    let rig = Rig::start(&["--direct-pool-size", "1", "--direct-wait-timeout", "8s"]).await;
    let mut client = rig.client().await;
    let begin = client.query(&format!("{TAG}begin")).await;
    assert_eq!(status(&begin), 'T');
    // In the transaction every statement stays on the direct lane; this one is cut (FIN) right
    // before its ReadyForQuery, so every row arrives first.
    let armed = rig
        .direct
        .arm(Fault::on(Dir::ToProxy, b'Z').at(0).cut(How::Fin));
    let reply = client.query(&marked_query().replace(TAG, "")).await;
    assert_eq!(armed.fired(), 1);
    assert_lost(&reply, 'E', "the cut statement");
    assert_eq!(rows(&reply).len(), 30);
    let next = client.query("select 1").await;
    assert_eq!(errors(&next), ["25P02"], "{next:?}");
    let rollback = client.query("rollback").await;
    assert!(errors(&rollback).is_empty(), "{rollback:?}");
    assert_eq!(status(&rollback), 'I');
    // The shared connection's lease is free: another client's tagged statement runs direct.
    let mut other = rig.client().await;
    let user = other.query(&format!("{TAG}select current_user")).await;
    assert_eq!(scalar(&user), "app");
    assert_eq!(
        scalar(&client.query(&format!("{TAG}select current_user")).await),
        "app"
    );
    rig.stop().await;
}

#[tokio::test]
async fn dedicated_direct_connection_cut_fails_its_statement_then_closes_the_session() {
    use crate::common::proxy::raw;
    let rig = Rig::start(&[]).await;
    let mut s = raw::connect(rig.proxy.addr).await;
    let params = [
        ("user", "app"),
        ("database", "app"),
        ("application_name", "lockroute:direct"),
    ];
    raw::send(&mut s, &raw::startup(&params)).await;
    let mut client = wire::Client { s };
    wire::within("session-tagged login", client.reply()).await;
    assert_eq!(scalar(&client.query("select current_user").await), "app");
    let armed = rig.direct.arm(
        Fault::on(Dir::ToProxy, b'D')
            .containing("stallhere")
            .at(11)
            .cut(How::Rst),
    );
    let reply = client.query(&marked_query().replace(TAG, "")).await;
    assert_eq!(armed.fired(), 1);
    assert_lost(&reply, 'I', "the dedicated connection's statement");
    // Its session state (SETs, advisory locks, LISTEN) is gone with the connection: a FATAL
    // 08006, then lockroute closes the client.
    let fatal = wire::within("FATAL after the loss", client.message()).await;
    assert_eq!(fatal.tag, b'E');
    assert_eq!(raw::sqlstate(&fatal.body), "08006");
    assert!(raw::closed_within(&mut client.s, wire::BOUND).await);
    // A new session-tagged client gets a new dedicated connection.
    let url = rig.proxy.url_with("application_name=lockroute:direct");
    let again = wire::within(
        "a new session-tagged login",
        crate::common::pg_connect(&url),
    )
    .await;
    assert_eq!(crate::common::current_user(&again).await, "app");
    rig.stop().await;
}
