//! Upstream handshakes cut in the middle of the auth exchange, or stalled after the TCP
//! accept: the client gets a precise `08xxx` in bounded time, or (direct lane) its unit falls
//! back to the pooler; and lockroute keeps serving.

use tokio::time::Instant;
use tokio_postgres::error::SqlState;

use crate::relay::{Dir, Fault, How, Until};
use crate::wire::{self, assert_lost, scalar};
use crate::{Rig, TAG, routed};

/// Expects a new client's login to fail with `code`, within the bound.
async fn login_fails(rig: &Rig, code: &SqlState, what: &str) -> tokio_postgres::Error {
    let url = rig.proxy.url();
    let err = wire::within(&format!("login error after {what}"), async {
        crate::common::proxy::connect_err(&url).await
    })
    .await;
    assert_eq!(err.code(), Some(code), "{what}: {err}");
    err
}

async fn pooler_user(rig: &Rig) -> String {
    let client = wire::within("a healthy client's login", rig.proxy.connect()).await;
    crate::common::current_user(&client).await
}

#[tokio::test]
async fn pooler_handshake_cut_gives_08001_and_lockroute_keeps_serving() {
    let rig = Rig::start(&[]).await;
    let cases = [
        // Inside AuthenticationSASLContinue (the server's SCRAM challenge).
        Fault::auth(11).at(9),
        // Right before AuthenticationSASLFinal, with a FIN.
        Fault::auth(12).at(0).cut(How::Fin),
        // Inside the header of AuthenticationOk.
        Fault::auth(0).at(3),
        // After authentication: inside a ParameterStatus, inside BackendKeyData, right
        // before the first ReadyForQuery.
        Fault::on(Dir::ToProxy, b'S').at(8),
        Fault::on(Dir::ToProxy, b'K').at(7),
        Fault::on(Dir::ToProxy, b'Z').at(0),
        // lockroute's SASLResponse (the client proof), on its way up.
        Fault::on(Dir::ToServer, b'p').at(10),
    ];
    for fault in cases {
        let what = fault.to_string();
        let armed = rig.pooler.arm(fault);
        let err = login_fails(
            &rig,
            &SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
            &what,
        )
        .await;
        assert_eq!(armed.fired(), 1, "{what}");
        eprintln!("{what}: {err}");
        assert_eq!(pooler_user(&rig).await, "pooler", "{what}: the next client");
    }
    rig.stop().await;
}

#[tokio::test]
async fn pooler_reconnect_handshake_cut_fails_one_statement_and_the_session_survives() {
    let rig = Rig::start(&[]).await;
    let mut client = rig.client().await;
    assert_eq!(scalar(&client.query("select current_user").await), "pooler");
    // The pooler drops the idle client's server socket; lockroute notices and reconnects at
    // the next unit, and that reconnect is cut inside the SCRAM exchange.
    // Other tests in this process (under `cargo test`) may move the counter too.
    let lost_idle = "lockroute_upstream_lost_total{lane=\"pooler\",state=\"idle\"}";
    let before = rig.proxy.metric(lost_idle).await;
    rig.pooler.cut_all();
    wire::within("lockroute notices the idle loss", async {
        while rig.proxy.metric(lost_idle).await <= before {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let armed = rig.pooler.arm(Fault::auth(11).at(9));
    let reply = client.query("select current_user").await;
    assert_eq!(armed.fired(), 1);
    assert_lost(&reply, 'I', "the unit that could not be sent");
    assert_eq!(scalar(&client.query("select current_user").await), "pooler");
    rig.stop().await;
}

#[tokio::test]
async fn direct_handshake_cut_falls_back_to_the_pooler_then_returns() {
    let rig = Rig::start(&[]).await;
    let mut client = rig.client().await;
    let armed = rig.direct.arm(Fault::auth(11).at(9));
    let first = client.query(&format!("{TAG}select current_user")).await;
    assert_eq!(armed.fired(), 1);
    assert_eq!(
        scalar(&first),
        "pooler",
        "direct_unavailable: the pooler ran it"
    );
    assert!(
        rig.proxy
            .metric(&routed("pooler", "direct_unavailable"))
            .await
            >= 1.0
    );
    let back = back_on_the_direct_lane(&mut client).await;
    eprintln!("timing: back on the direct lane after {back:?}");
    rig.stop().await;
}

/// Repeats a tagged statement until the direct lane runs it again (after the backoff).
async fn back_on_the_direct_lane(client: &mut wire::Client) -> std::time::Duration {
    let started = Instant::now();
    wire::within("the direct lane comes back", async {
        loop {
            let user = scalar(&client.query(&format!("{TAG}select current_user")).await);
            if user == "app" {
                return started.elapsed();
            }
            assert_eq!(user, "pooler");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
}

#[tokio::test]
async fn pooler_connect_stall_times_out_with_08001_in_bounded_time() {
    let rig = Rig::start(&["--connect-timeout", "1s"]).await;
    // PgBouncer accepts the TCP connection; the StartupMessage never reaches it.
    let armed = rig.pooler.arm(Fault::startup().stall(Until::Forever));
    let started = Instant::now();
    let err = login_fails(
        &rig,
        &SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        "a stalled pooler connect",
    )
    .await;
    let took = started.elapsed();
    assert_eq!(armed.fired(), 1);
    let message = err.as_db_error().map(|e| e.message()).unwrap_or_default();
    assert!(message.contains("timed out"), "{message}");
    assert!(
        took >= std::time::Duration::from_millis(900),
        "the timeout, not the stall, ended it: {took:?}"
    );
    assert_eq!(pooler_user(&rig).await, "pooler");
    rig.stop().await;
}

#[tokio::test]
async fn direct_connect_stall_falls_back_to_the_pooler_then_returns() {
    let rig = Rig::start(&["--direct-connect-timeout", "500ms"]).await;
    let armed = rig
        .direct
        .arm(Fault::startup().stall(Until::Forever).times(usize::MAX));
    let mut client = rig.client().await;
    let first = client.query(&format!("{TAG}select current_user")).await;
    assert!(armed.fired() >= 1);
    assert_eq!(
        scalar(&first),
        "pooler",
        "direct_unavailable: the pooler ran it"
    );
    // A session-tagged client whose dedicated connection stalls runs on the pooler too.
    let tagged_url = rig.proxy.url_with("application_name=lockroute:direct");
    let tagged = wire::within(
        "session-tagged login",
        crate::common::pg_connect(&tagged_url),
    )
    .await;
    assert_eq!(crate::common::current_user(&tagged).await, "pooler");
    assert!(
        rig.proxy
            .metric(&routed("pooler", "direct_unavailable"))
            .await
            >= 2.0
    );
    armed.disarm();
    let back = back_on_the_direct_lane(&mut client).await;
    eprintln!("timing: back on the direct lane after {back:?}");
    rig.stop().await;
}

#[tokio::test]
async fn stalled_pooler_reconnect_does_not_hold_the_shared_direct_connection() {
    let args = [
        "--connect-timeout",
        "2s",
        "--direct-pool-size",
        "1",
        "--direct-wait-timeout",
        "1s",
    ];
    let rig = Rig::start(&args).await;
    let mut client = rig.client().await;
    assert_eq!(scalar(&client.query("select current_user").await), "pooler");
    // The pooler lane is lost while idle, and its reconnect will stall.
    let lost_idle = "lockroute_upstream_lost_total{lane=\"pooler\",state=\"idle\"}";
    let before = rig.proxy.metric(lost_idle).await;
    rig.pooler.cut_all();
    wire::within("lockroute notices the idle loss", async {
        while rig.proxy.metric(lost_idle).await <= before {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let armed = rig.pooler.arm(Fault::startup().stall(Until::Forever));
    // A tagged unit, then an untagged one, pipelined: the second waits for the first, then
    // needs the pooler lane reconnected.
    let mut batch = wire::query(&format!("{TAG}select current_user"));
    batch.extend(wire::query("select current_user"));
    client.send(&batch).await;
    armed.wait_fired(wire::BOUND).await;
    // While that reconnect stalls, the shared direct connection is free for another client.
    let mut other = rig.client().await;
    let user = other.query(&format!("{TAG}select current_user")).await;
    assert_eq!(
        scalar(&user),
        "app",
        "the client waiting for the pooler still held the shared direct connection"
    );
    let first = wire::within("the tagged reply", client.reply()).await;
    assert_eq!(scalar(&first), "app");
    let second = wire::within("the reply after the connect timeout", client.reply()).await;
    assert_lost(&second, 'I', "the unit whose pooler could not be reached");
    assert_eq!(scalar(&client.query("select current_user").await), "pooler");
    rig.stop().await;
}
