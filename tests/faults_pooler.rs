//! The promise lockroute exists for, under the pooler's faults: PgBouncer reaping every client
//! socket every 1 to 2 s (`KILL` + `RESUME`), a pooler restart, and an idle-in-transaction
//! timeout. A gbrain-like postgres.js fleet (claim, renew every 150 ms, enrich transactions,
//! complete, and a stall sweeper on a 10 s lease) runs through lockroute and, for comparison,
//! straight at the same PgBouncer. The server's audit trigger says which role ran each step and
//! records every eviction.
//!
//! `LOCKROUTE_REAP_SECONDS` (default 30) sets how long the reaping runs; `scripts/reap.sh` runs
//! them for 5 minutes.

mod common;
#[path = "faults/reaper.rs"]
mod reaper;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fleet::{self, Audit, Run};
use common::proxy::{Proxy, ProxyOptions};
use common::{StandIn, current_user, pgbouncer_admin};
use reaper::{Reaped, reap};
use tokio_postgres::error::SqlState;

fn reap_seconds() -> u64 {
    std::env::var("LOCKROUTE_REAP_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

/// One grep-able line per run, for `scripts/reap.sh` and the README's reliability section.
fn report(path: &str, seconds: u64, reaped: Reaped, run: &Run, audit: &Audit) {
    eprintln!(
        "REAP path={path} seconds={seconds} kills={} pooler_restarts={} crashed={} lock_path_errors={} \
         socket_errors={} evictions={} renewals_lost={} claims={} renewals={} completions={} \
         errors={} max_ms={} max_lease_gap_ms={}",
        reaped.kills,
        reaped.pooler_restarts,
        run.crashed,
        run.lock_path_errors(),
        run.socket_errors(),
        audit.total("evict"),
        run.count("renewals_lost"),
        run.count("claims"),
        run.count("renewals"),
        run.count("completions"),
        run.summary["errors_by_op"],
        run.summary["max_ms"],
        run.summary["max_lease_gap_ms"],
    );
    if run.crashed {
        eprintln!("the worker crashed:\n{}", run.stderr);
    }
}

#[tokio::test]
async fn reaping_pooler_never_reaches_the_lock_path_through_lockroute() {
    fleet::install_audit().await;
    let s = StandIn::shared();
    let private = Arc::new(s.private_pooler("reap_lr"));
    let proxy = Proxy::in_front_of(&private.pooler_url).await;
    let (queue, seconds) = (common::unique_name("reap_lr"), reap_seconds());
    let secs = seconds.to_string();
    // gbrain pointed at localhost keeps postgres.js's default, named prepared statements.
    let env = fleet::fault_env(&queue, &secs, "true");
    let url = proxy.url();
    let (run, reaped) = tokio::join!(
        fleet::run(&url, &env),
        reap(Arc::clone(&private), Duration::from_secs(seconds))
    );
    let audit = Audit::of(&queue).await;
    report("lockroute", seconds, reaped, &run, &audit);

    assert!(
        u64::from(reaped.kills) >= seconds / 4,
        "the reaper ran: {reaped:?}"
    );
    let lost = proxy
        .metric("lockroute_upstream_lost_total{lane=\"pooler\",state=\"idle\"}")
        .await
        + proxy
            .metric("lockroute_upstream_lost_total{lane=\"pooler\",state=\"in_flight\"}")
            .await;
    assert!(lost >= 1.0, "lockroute saw the pooler drop its sockets");
    assert_eq!(run.lock_path_errors(), 0, "{}", run.summary);
    assert_eq!(run.socket_errors(), 0, "no socket error reaches the client");
    assert_eq!(audit.total("evict"), 0, "no live worker's job evicted");
    assert_eq!(run.count("renewals_lost"), 0, "{}", run.summary);
    assert_eq!(run.summary["double_claims"], 0, "{}", run.summary);
    assert!(run.count("completions") > 0, "{}", run.summary);
    assert_eq!(
        audit.count("claim", "pooler") + audit.count("renew", "pooler"),
        0
    );
    assert!(audit.count("renew", "app") > 0, "{audit:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn reaping_pooler_breaks_the_lock_path_straight_at_pgbouncer() {
    fleet::install_audit().await;
    let s = StandIn::shared();
    let private = Arc::new(s.private_pooler("reap_pgb"));
    let (queue, seconds) = (common::unique_name("reap_pgb"), reap_seconds());
    let secs = seconds.to_string();
    // gbrain on port 6543 turns prepared statements off.
    let env = fleet::fault_env(&queue, &secs, "false");
    let (run, reaped) = tokio::join!(
        fleet::run(&private.pooler_url, &env),
        reap(Arc::clone(&private), Duration::from_secs(seconds))
    );
    let audit = Audit::of(&queue).await;
    report("pgbouncer", seconds, reaped, &run, &audit);
    // The control: the same faults reach the same fleet's lock path without lockroute, as
    // socket errors on claims and renewals, as postgres.js crashing on a dead socket, or, when
    // the KILLs happen to catch every query queued rather than on the wire, as renewals held
    // for a second or more while PgBouncer comes back (through lockroute, a few tens of ms).
    let renew_stall_ms = run.summary["max_ms"]["renew"].as_u64().unwrap_or(0);
    assert!(
        run.crashed
            || (run.lock_path_errors() > 0 && run.socket_errors() > 0)
            || renew_stall_ms >= 1000,
        "{}",
        run.summary
    );
}

#[tokio::test]
async fn pooler_restart_spares_the_lock_path_and_fails_pooler_units_cleanly() {
    fleet::install_audit().await;
    let s = StandIn::shared();
    let private = Arc::new(s.private_pooler("restart"));
    // The fleet's proxy waits out the 3 s outage (the default --pooler-connect-wait is longer);
    // the probe's proxy waits 1 s, so the pooler unit it sends during the outage fails, cleanly.
    let proxy = Proxy::in_front_of(&private.pooler_url).await;
    let wait = Duration::from_secs(1);
    let probe = Proxy::start_with(ProxyOptions {
        pooler_url: &private.pooler_url,
        direct_url: &s.direct_url,
        args: &["--pooler-connect-wait", "1s"],
        env: &[],
    })
    .await;
    let client = probe.connect().await;
    assert_eq!(current_user(&client).await, "pooler");
    let queue = common::unique_name("restart");
    let env = fleet::fault_env(&queue, "14", "true");
    let restarter = Arc::clone(&private);
    let outage = async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let restart = tokio::task::spawn_blocking(move || {
            restarter.restart(Duration::from_secs(3));
        });
        // While PgBouncer is down, a pooler unit gets a clean error in bounded time.
        wait_refused(private.port).await;
        // The probe's pooler connection was idle: once the probe proxy has seen it drop, the
        // next unit finds the pooler unreachable before anything is sent.
        let lost_idle = "lockroute_upstream_lost_total{lane=\"pooler\",state=\"idle\"}";
        let noticed = Instant::now();
        while probe.metric(lost_idle).await < 1.0 {
            assert!(
                noticed.elapsed() < Duration::from_secs(5),
                "the probe saw the drop"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let started = Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(15), client.simple_query("select 1"))
            .await
            .expect("bounded")
            .expect_err("the pooler is down");
        let code = err.code().map(|c| c.code().to_owned()).unwrap_or_default();
        eprintln!(
            "during the outage: {code} after {:?}: {err}",
            started.elapsed()
        );
        // 08001: the pooler was unreachable and the statement did not run. 08006: PgBouncer's
        // shutdown (SIGTERM waits for its clients) or a fresh start cut a unit already sent;
        // either way a connection-class error, and the session survives (checked below).
        assert!(
            code == "08001" || code == "08006",
            "a connection-class SQLSTATE: {err}"
        );
        assert!(started.elapsed() < wait + Duration::from_secs(1));
        restart.await.unwrap();
    };
    let url = proxy.url();
    let (run, ()) = tokio::join!(fleet::run(&url, &env), outage);
    let audit = Audit::of(&queue).await;
    let restart = Reaped {
        kills: 0,
        pooler_restarts: 1,
    };
    report("lockroute-restart", 14, restart, &run, &audit);
    assert_eq!(
        current_user(&client).await,
        "pooler",
        "the session is usable"
    );
    assert_eq!(run.lock_path_errors(), 0, "{}", run.summary);
    assert_eq!(run.socket_errors(), 0, "{}", run.summary);
    assert_eq!(audit.total("evict"), 0, "{audit:?}");
    assert!(run.count("completions") > 0, "{}", run.summary);
    proxy.stop().await;
    probe.stop().await;
}

/// Waits until nothing listens on `port` any more.
async fn wait_refused(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("port {port} still accepts connections after 5s");
}

#[tokio::test]
async fn idle_in_transaction_timeout_on_the_pooler_is_handled_as_upstream_loss() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    client
        .batch_execute("begin; set local idle_in_transaction_session_timeout = '200ms'; select 1")
        .await
        .unwrap();
    // The server sends FATAL 25P03 and closes; PgBouncer passes it on.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let err = client
        .simple_query("select 2")
        .await
        .expect_err("the transaction is gone");
    eprintln!("after the timeout: {err}");
    assert_eq!(err.code(), Some(&SqlState::CONNECTION_FAILURE), "{err}");
    let err = client.simple_query("select 3").await.expect_err("failed");
    assert_eq!(
        err.code(),
        Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
        "{err}"
    );
    client.batch_execute("rollback").await.unwrap();
    assert_eq!(
        current_user(&client).await,
        "pooler",
        "the session is usable"
    );
    assert!(
        proxy
            .metric("lockroute_upstream_lost_total{lane=\"pooler\",state=\"in_flight\"}")
            .await
            >= 1.0
    );
    proxy.stop().await;
}

/// Regression: a client that waited to reconnect the pooler kept the shared direct connection
/// it had just used, so every other client's lease renewal waited behind a pooler outage (seen
/// as 3.5 s renewals and evicted jobs under reaping).
#[tokio::test]
async fn a_client_waiting_for_the_pooler_does_not_hold_the_shared_direct_connection() {
    const TAG: &str = "/* lockroute:direct */ ";
    let s = StandIn::shared();
    let private = s.private_pooler("hold");
    let proxy = Proxy::in_front_of(&private.pooler_url).await;
    let (a, b) = (proxy.connect().await, proxy.connect().await);
    assert_eq!(current_user(&a).await, "pooler");
    // A's pooler connection drops; until RESUME, PgBouncer holds every new login.
    pgbouncer_admin(&private.admin_url, "KILL app").await;
    // A pipelines a lock-path unit, then a pooler unit that must wait for the pooler.
    let pipelined = tokio::spawn(async move {
        let tagged = format!("{TAG}select current_user");
        let direct = a.simple_query(&tagged);
        let pooler = a.simple_query("select current_user");
        let (direct, pooler) = tokio::join!(direct, pooler);
        (direct.map(|m| m.len()), pooler.map(|m| m.len()))
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let renewal = tokio::time::timeout(
        Duration::from_secs(3),
        b.query_one(&format!("{TAG}select current_user::text"), &[]),
    )
    .await
    .expect("B's lock-path unit does not wait for A's pooler")
    .unwrap();
    eprintln!("B's direct unit took {:?}", started.elapsed());
    assert_eq!(renewal.get::<_, String>(0), "app");
    pgbouncer_admin(&private.admin_url, "RESUME app").await;
    let (direct, pooler) = tokio::time::timeout(Duration::from_secs(10), pipelined)
        .await
        .expect("A finishes after RESUME")
        .unwrap();
    assert!(direct.is_ok() && pooler.is_ok(), "{direct:?} {pooler:?}");
    proxy.stop().await;
}

/// Regression: when the pooler dropped a transaction while its client sat idle in it, a COMMIT
/// sent next was answered `ROLLBACK` without an error, so postgres.js reported the transaction
/// committed (seen as a job the fleet had completed, evicted later by the sweeper).
#[tokio::test]
async fn commit_after_the_pooler_dropped_the_transaction_fails_and_nothing_commits() {
    let s = StandIn::shared();
    let private = s.private_pooler("commit");
    let proxy = Proxy::in_front_of(&private.pooler_url).await;
    let table = common::unique_name("committed");
    let direct = common::pg_connect(&s.direct_url).await;
    direct
        .batch_execute(&format!("create table {table} (x int)"))
        .await
        .unwrap();
    let client = proxy.connect().await;
    client
        .batch_execute(&format!("begin; insert into {table} values (1)"))
        .await
        .unwrap();
    pgbouncer_admin(&private.admin_url, "KILL app").await;
    pgbouncer_admin(&private.admin_url, "RESUME app").await;
    let err = client
        .batch_execute("commit")
        .await
        .expect_err("the transaction is gone: COMMIT must not succeed");
    assert_eq!(err.code(), Some(&SqlState::CONNECTION_FAILURE), "{err}");
    let rows: i64 = direct
        .query_one(&format!("select count(*) from {table}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "nothing was committed");
    assert_eq!(
        current_user(&client).await,
        "pooler",
        "the session is usable"
    );
    direct
        .batch_execute(&format!("drop table {table}"))
        .await
        .unwrap();
    proxy.stop().await;
}
