//! Upstream handshakes cut in the middle of the auth exchange, or stalled after the TCP
//! accept. Logins never wait on the pooler (issue 14): a pooler handshake that fails is retried
//! for up to `--pooler-connect-wait`, then the unit gets `08001` in bounded time; a direct one
//! makes the unit fall back to the pooler; and lockroute keeps serving.

use tokio::time::Instant;

use crate::relay::{Dir, Fault, How, Until};
use crate::wire::{self, assert_not_run, scalar};
use crate::{Rig, TAG, routed};

async fn pooler_user(rig: &Rig) -> String {
    let client = wire::within("a healthy client's login", rig.proxy.connect()).await;
    crate::common::current_user(&client).await
}

#[tokio::test]
async fn pooler_handshake_cut_is_retried_and_lockroute_keeps_serving() {
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
        // The cut attempt (at this login, or at the first pooler unit) is a loss of the
        // pooler, not the client's error: the next attempt runs the statement.
        let user = wire::within(&what, pooler_user(&rig)).await;
        assert_eq!(armed.fired(), 1, "{what}");
        assert_eq!(user, "pooler", "{what}: the statement ran on the pooler");
    }
    rig.stop().await;
}

#[tokio::test]
async fn pooler_reconnect_handshake_cut_is_retried_and_the_statement_runs() {
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
    assert_eq!(
        scalar(&reply),
        "pooler",
        "nothing was sent: the unit waited and ran"
    );
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
    let args = ["--connect-timeout", "1s", "--pooler-connect-wait", "1s"];
    let rig = Rig::start(&args).await;
    // PgBouncer accepts the TCP connection; the StartupMessage never reaches it.
    let armed = rig
        .pooler
        .arm(Fault::startup().stall(Until::Forever).times(usize::MAX));
    // The login does not wait on the pooler (the first one of a process asks it once, within
    // --connect-timeout, then greets from the direct lane).
    let mut client = wire::within("a login while the pooler stalls", rig.client()).await;
    let started = Instant::now();
    let reply = wire::within("the pooler unit", client.query("select current_user")).await;
    let took = started.elapsed();
    assert!(armed.fired() >= 1);
    assert_not_run(&reply, 'I', "a stalled pooler connect");
    assert!(
        took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(2),
        "--pooler-connect-wait, not the stall, ended it: {took:?}"
    );
    armed.disarm();
    assert_eq!(scalar(&client.query("select current_user").await), "pooler");
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
        "--pooler-connect-wait",
        "1s",
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
    let second = wire::within("the reply after the connect wait", client.reply()).await;
    assert_not_run(&second, 'I', "the unit whose pooler could not be reached");
    assert_eq!(scalar(&client.query("select current_user").await), "pooler");
    rig.stop().await;
}
