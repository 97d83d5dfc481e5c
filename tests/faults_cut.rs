//! Byte-exact cuts: a TCP relay between lockroute and the real upstreams (PgBouncer for the
//! pooler lane, PostgreSQL for the direct lane) cuts a connection at an exact byte of a chosen
//! frame, stalls one direction, or fragments every frame into 1-byte writes. Whatever it does,
//! the client gets a clean error (an ErrorResponse with its SQLSTATE, then ReadyForQuery, on a
//! socket that stays open) or its exact reply, and nothing hangs past [`wire::BOUND`].
//!
//! Lanes are proven by the server: `current_user` is `pooler` through PgBouncer and `app` on
//! the direct endpoint.

mod common;
#[path = "faults_cut/relay.rs"]
mod relay;
#[path = "faults_cut/wire.rs"]
mod wire;

#[path = "faults_cut/client_side.rs"]
mod client_side;
#[path = "faults_cut/connect.rs"]
mod connect;
#[path = "faults_cut/copy.rs"]
mod copy;
#[path = "faults_cut/direct.rs"]
mod direct;
#[path = "faults_cut/fragment.rs"]
mod fragment;
#[path = "faults_cut/pooler.rs"]
mod pooler;

use common::StandIn;
use common::proxy::{Proxy, ProxyOptions};
use relay::{Fragment, Relay};

/// A statement tagged for the shared direct connection.
const TAG: &str = "/* lockroute:direct */ ";

/// lockroute with a relay in front of each upstream.
pub struct Rig {
    pub proxy: Proxy,
    pub pooler: Relay,
    pub direct: Relay,
}

impl Rig {
    pub async fn start(args: &[&str]) -> Rig {
        Rig::start_with(args, None).await
    }

    pub async fn start_with(args: &[&str], fragment: Option<Fragment>) -> Rig {
        let s = StandIn::shared();
        let pooler = Relay::start_with(&s.pooler_url, fragment).await;
        let direct = Relay::start_with(&s.direct_url, fragment).await;
        let mut all = vec!["--client-auth", "trust"];
        all.extend_from_slice(args);
        let proxy = Proxy::start_with(ProxyOptions {
            pooler_url: &pooler.url(&s.pooler_url),
            direct_url: &direct.url(&s.direct_url),
            args: &all,
            env: &[],
        })
        .await;
        Rig {
            proxy,
            pooler,
            direct,
        }
    }

    pub async fn client(&self) -> wire::Client {
        wire::within("client connect", wire::Client::connect(self.proxy.addr)).await
    }

    pub async fn stop(self) {
        let Rig {
            proxy,
            pooler,
            direct,
        } = self;
        // Stalled upstreams go first, so that no session waits on them while the proxy drains.
        drop((pooler, direct));
        wire::within("proxy stop", proxy.stop()).await;
    }
}

/// A `lockroute_*` series: `lockroute_routed_total{lane="pooler",reason="direct_unavailable"}`.
pub fn routed(lane: &str, reason: &str) -> String {
    format!("lockroute_routed_total{{lane=\"{lane}\",reason=\"{reason}\"}}")
}

/// lockroute's metrics are per process: exact values and deltas are this test's own only when
/// no other test shares the process (nextest runs each test in its own).
pub fn metrics_are_ours() -> bool {
    let ours = std::env::var("NEXTEST_EXECUTION_MODE").as_deref() == Ok("process-per-test");
    if !ours {
        eprintln!("metrics shared with other tests in this process: exact values not checked");
    }
    ours
}
