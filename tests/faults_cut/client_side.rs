//! Clients that send half a frame and vanish (a reset or a FIN) while their unit holds the
//! shared direct connection: lockroute releases the lease, and its gauges do not leak.

use std::time::Duration;

use tokio::time::Instant;

use crate::relay::{Dir, Fault, Until};
use crate::wire::{self, Client};
use crate::{Rig, TAG};

/// How the client leaves.
#[derive(Debug, Clone, Copy)]
enum Leave {
    Rst,
    Fin,
}

/// Half a Bind: its header and 3 of its body bytes.
const HALF_FRAME: &[u8] = &[b'B', 0, 0, 0, 20, 0, 0, 0];

async fn vanish(mut client: Client, leave: Leave) {
    client.send(HALF_FRAME).await;
    if let Leave::Rst = leave {
        socket2::SockRef::from(&client.s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    drop(client);
}

/// Polls a gauge until it reads `want` (bounded).
async fn gauge_settles(rig: &Rig, series: &str, want: f64) {
    let mut last = f64::NAN;
    let settled = tokio::time::timeout(wire::BOUND, async {
        loop {
            last = rig.proxy.metric(series).await;
            if last == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(settled.is_ok(), "{series} stays at {last}, not {want}");
}

/// Another client's tagged statement runs on the direct lane: the lease came back. With a
/// long --direct-wait-timeout, a leaked lease would send it to the pooler instead.
async fn direct_lease_is_free(other: &mut Client) -> Duration {
    let started = Instant::now();
    let reply = other.query(&format!("{TAG}select current_user")).await;
    assert_eq!(wire::scalar(&reply), "app", "the lease was not released");
    started.elapsed()
}

#[tokio::test]
async fn client_vanishing_mid_frame_with_an_open_unit_releases_the_shared_direct_lease() {
    let rig = Rig::start(&["--direct-pool-size", "1", "--direct-wait-timeout", "8s"]).await;
    let mut other = rig.client().await;
    for leave in [Leave::Rst, Leave::Fin] {
        let mut client = rig.client().await;
        // Parse, Bind, Describe, Execute and Flush: the server answers, the unit stays open
        // (no Sync) and holds the shared connection.
        let mut open = wire::extended_no_sync(&format!("{TAG}select current_user"));
        open.extend(crate::common::proxy::raw::message(b'H', b""));
        client.send(&open).await;
        let mut tags = Vec::new();
        while tags.last() != Some(&b'C') {
            tags.push(
                wire::within("the open unit's rows", client.message())
                    .await
                    .tag,
            );
        }
        assert_eq!(tags, b"12TDC", "{leave:?}");
        vanish(client, leave).await;
        let took = direct_lease_is_free(&mut other).await;
        eprintln!("timing: {leave:?}: the next tagged statement ran direct after {took:?}");
        if crate::metrics_are_ours() {
            gauge_settles(&rig, "lockroute_client_connections", 1.0).await;
            let direct = "lockroute_upstream_connections{lane=\"direct\"}";
            assert!(rig.proxy.metric(direct).await <= 1.0);
        }
    }
    rig.stop().await;
}

#[tokio::test]
async fn client_vanishing_mid_frame_with_a_reply_in_flight_releases_the_shared_direct_lease() {
    let rig = Rig::start(&["--direct-pool-size", "1", "--direct-wait-timeout", "8s"]).await;
    let mut other = rig.client().await;
    for leave in [Leave::Rst, Leave::Fin] {
        let mut client = rig.client().await;
        // The reply is held back a moment: the client is gone before it arrives.
        let armed = rig.direct.arm(
            Fault::on(Dir::ToProxy, b'T')
                .containing("vanished")
                .stall(Until::Elapsed(Duration::from_millis(500))),
        );
        client
            .send(&wire::query(&format!("{TAG}select 1 as vanished")))
            .await;
        armed.wait_fired(wire::BOUND).await;
        vanish(client, leave).await;
        let took = direct_lease_is_free(&mut other).await;
        eprintln!("timing: {leave:?}: the next tagged statement ran direct after {took:?}");
        if crate::metrics_are_ours() {
            gauge_settles(&rig, "lockroute_client_connections", 1.0).await;
            let direct = "lockroute_upstream_connections{lane=\"direct\"}";
            assert!(rig.proxy.metric(direct).await <= 1.0);
        }
    }
    rig.stop().await;
}

#[tokio::test]
async fn client_vanishing_while_its_reply_stalls_for_ever_frees_the_lease_within_the_reset_timeout()
{
    let rig = Rig::start(&["--direct-pool-size", "1", "--direct-wait-timeout", "9s"]).await;
    let mut other = rig.client().await;
    let mut client = rig.client().await;
    let armed = rig.direct.arm(
        Fault::on(Dir::ToProxy, b'T')
            .containing("never")
            .stall(Until::Forever),
    );
    client
        .send(&wire::query(&format!("{TAG}select 1 as never")))
        .await;
    armed.wait_fired(wire::BOUND).await;
    vanish(client, Leave::Rst).await;
    // lockroute cannot know the shared connection is clean without the reply: it waits for it
    // (up to its 5 s reset timeout), then drops the connection and frees the lease.
    let took = direct_lease_is_free(&mut other).await;
    eprintln!("timing: the next tagged statement ran direct after {took:?}");
    if crate::metrics_are_ours() {
        gauge_settles(&rig, "lockroute_client_connections", 1.0).await;
    }
    rig.stop().await;
}
