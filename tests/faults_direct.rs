//! The direct lane's faults: its sticky connection terminated while idle and mid-statement
//! (PostgreSQL sends FATAL `57P01` and closes), terminated again and again under a postgres.js
//! fleet, and the direct endpoint going away (the server stops: `57P01`, then the port is closed)
//! and coming back. Lock-path units fall back to the pooler (`direct_unavailable`) and return to
//! the direct lane by themselves. Lanes are proven by the server: `app` is the direct lane,
//! `pooler` is PgBouncer.

mod common;
#[path = "faults/forward.rs"]
mod forward;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::fleet::{self, Audit};
use common::proxy::{Proxy, ProxyOptions};
use common::{StandIn, pg_connect};
use forward::Forward;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

const TAG: &str = "/* lockroute:direct */ ";

/// The backend pid and role behind a tagged (direct-lane) statement.
async fn direct_backend(client: &Client) -> Result<(i32, String), tokio_postgres::Error> {
    let row = client
        .query_one(
            &format!("{TAG}select pg_backend_pid(), current_user::text"),
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Terminates backends as a superuser and waits until the server no longer lists them.
async fn terminate(pids: &[i32]) {
    let su = pg_connect(&StandIn::shared().super_url).await;
    su.execute(
        "select pg_terminate_backend(pid) from pg_stat_activity where pid = any($1)",
        &[&pids],
    )
    .await
    .unwrap();
    for _ in 0..200 {
        let left: i64 = su
            .query_one(
                "select count(*) from pg_stat_activity where pid = any($1)",
                &[&pids],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("backends {pids:?} still listed 5s after pg_terminate_backend");
}

/// The pid of the backend running a statement that contains `marker`, within 5 s.
async fn backend_running(su: &Client, marker: &str) -> Option<i32> {
    for _ in 0..200 {
        let rows = su
            .query(
                "select pid from pg_stat_activity where state = 'active' \
                 and query like '%' || $1 || '%' and pid <> pg_backend_pid()",
                &[&marker],
            )
            .await
            .unwrap();
        if let Some(row) = rows.first() {
            return Some(row.get(0));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// gbrain's renewLock, made to last 1.5 s by the subquery its id is read from; the default
/// patterns see a renewal.
fn slow_renewal(marker: &str) -> String {
    format!(
        "UPDATE minion_jobs SET lock_until = now() + interval '1 second', updated_at = now() \
         WHERE id = (select -1::bigint from pg_sleep(1.5)) AND lock_token = '{marker}' RETURNING id"
    )
}

/// Terminates every backend behind `forward` after each of `gaps`; returns how many it ended.
async fn terminate_repeatedly(forward: &Forward, gaps: impl IntoIterator<Item = Duration>) -> u64 {
    let mut terminations = 0;
    for gap in gaps {
        tokio::time::sleep(gap).await;
        let pids = pids_behind(forward).await;
        if !pids.is_empty() {
            terminate(&pids).await;
            terminations += pids.len() as u64;
        }
    }
    terminations
}

/// The server's pids for the connections a forwarder carries (by their `client_port`).
async fn pids_behind(forward: &Forward) -> Vec<i32> {
    let su = pg_connect(&StandIn::shared().super_url).await;
    su.query(
        "select pid from pg_stat_activity where client_port = any($1)",
        &[&forward.upstream_ports()],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn pg_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], StandIn::shared().pg_port))
}

/// A proxy whose direct lane goes through `forward`.
async fn proxy_via(forward: &Forward) -> Proxy {
    let s = StandIn::shared();
    let direct = format!(
        "postgres://app:app-secret@127.0.0.1:{}/app?sslmode=disable",
        forward.port
    );
    Proxy::start_with(ProxyOptions {
        pooler_url: &s.pooler_url,
        direct_url: &direct,
        args: &[],
        env: &[],
    })
    .await
}

#[tokio::test]
async fn direct_connection_terminated_while_idle_is_invisible() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    let (before, user) = direct_backend(&client).await.unwrap();
    assert_eq!(user, "app");
    terminate(&[before]).await;
    for _ in 0..3 {
        let (after, user) = direct_backend(&client)
            .await
            .expect("the loss is invisible while idle");
        assert_eq!(user, "app", "still the direct lane");
        assert_ne!(after, before, "a new direct connection");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn direct_connection_terminated_mid_statement_costs_exactly_one_error() {
    let proxy = Proxy::start(&[]).await;
    let (heartbeat, sleeper) = (proxy.connect().await, proxy.connect().await);
    let sql = format!("{TAG}select pg_sleep(20.0417)");
    let running = tokio::spawn(async move { sleeper.simple_query(&sql).await.map(|_| ()) });
    let s = StandIn::shared();
    common::proxy::wait_for_activity(&s.super_url, &format!("{TAG}select pg_sleep(20.0417)")).await;
    let su = pg_connect(&s.super_url).await;
    let pid: i32 = su
        .query_one(
            "select pid from pg_stat_activity where query = $1",
            &[&format!("{TAG}select pg_sleep(20.0417)")],
        )
        .await
        .unwrap()
        .get(0);
    let started = Instant::now();
    terminate(&[pid]).await;
    let err = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the error arrives in bounded time")
        .unwrap()
        .expect_err("the statement fails");
    eprintln!("mid-statement loss: {err:?} after {:?}", started.elapsed());
    assert_eq!(err.code(), Some(&SqlState::CONNECTION_FAILURE), "{err}");
    // The next heartbeat from anyone, including another client that waited, runs direct.
    let (_, user) = direct_backend(&heartbeat)
        .await
        .expect("the next heartbeat");
    assert_eq!(user, "app");
    assert!(
        proxy
            .metric("lockroute_upstream_lost_total{lane=\"direct\",state=\"in_flight\"}")
            .await
            >= 1.0
    );
    proxy.stop().await;
}

#[tokio::test]
async fn fleet_survives_repeated_terminations_of_the_direct_connection() {
    fleet::install_audit().await;
    let forward = Forward::start(pg_addr()).await;
    let proxy = proxy_via(&forward).await;
    let queue = common::unique_name("dterm");
    let env = fleet::fault_env(&queue, "20", "true");
    let url = proxy.url();
    let gaps = (0..8).map(|_| Duration::from_millis(rand::random_range(1500..=2500)));
    let terminator = terminate_repeatedly(&forward, gaps);
    let (run, terminations) = tokio::join!(fleet::run(&url, &env), terminator);
    let audit = Audit::of(&queue).await;
    eprintln!(
        "direct terminations={terminations} errors={} max_ms={} audit={audit:?}",
        run.summary["errors_by_op"], run.summary["max_ms"]
    );
    assert!(terminations >= 4, "the faults happened: {terminations}");
    // Each termination costs at most the one unit in flight on it, as a clean 08006.
    assert!(run.lock_path_errors() <= terminations, "{}", run.summary);
    for (code, _) in run.error_codes() {
        assert_eq!(code, "08006", "only clean loss errors: {}", run.summary);
    }
    assert_eq!(audit.total("evict"), 0, "{audit:?}");
    assert_eq!(run.count("renewals_lost"), 0, "{}", run.summary);
    assert!(run.count("completions") > 0, "{}", run.summary);
    assert!(audit.count("renew", "app") > 0, "{audit:?}");
    proxy.stop().await;
}

/// A renewal (gbrain's renewLock shape, made slow) whose direct connection is terminated while
/// it runs is run again on a fresh connection: the client gets its one normal reply, in the
/// simple and the extended protocol, and the retry is counted.
#[tokio::test]
async fn a_renewal_cut_mid_flight_is_run_again_and_succeeds() {
    fleet::install_audit().await;
    let proxy = Proxy::start(&[]).await;
    let s = StandIn::shared();
    let su = pg_connect(&s.super_url).await;
    for (n, extended) in [(1, false), (2, true)] {
        let client = proxy.connect().await;
        let marker = format!("retry-{}-{n}", std::process::id());
        let sql = slow_renewal(&marker);
        let running = {
            let sql = sql.clone();
            tokio::spawn(async move {
                if extended {
                    client.query(&sql, &[]).await.map(|rows| rows.len())
                } else {
                    client.simple_query(&sql).await.map(|m| m.len())
                }
            })
        };
        let Some(pid) = backend_running(&su, &marker).await else {
            panic!("the renewal never ran on a backend: {:?}", running.await);
        };
        terminate(&[pid]).await;
        let result = tokio::time::timeout(Duration::from_secs(15), running)
            .await
            .expect("the renewal answers in bounded time")
            .unwrap();
        assert!(result.is_ok(), "extended={extended}: {result:?}");
    }
    assert_eq!(
        proxy
            .metric("lockroute_lock_path_retries_total{preset=\"gbrain\",kind=\"heartbeat\"}")
            .await,
        2.0
    );
    proxy.stop().await;
}

/// A renewal that opens a transaction is not repeated alone: its loss fails the transaction.
#[tokio::test]
async fn a_renewal_that_opens_a_transaction_is_not_retried() {
    fleet::install_audit().await;
    let proxy = Proxy::start(&[]).await;
    let su = pg_connect(&StandIn::shared().super_url).await;
    let client = proxy.connect().await;
    let marker = format!("noretry-{}", std::process::id());
    client.simple_query("begin").await.unwrap();
    let running = {
        let sql = slow_renewal(&marker);
        tokio::spawn(async move {
            let result = client.simple_query(&sql).await.map(|_| ());
            (client, result)
        })
    };
    let Some(pid) = backend_running(&su, &marker).await else {
        panic!(
            "the renewal never ran on a backend: {:?}",
            running.await.map(|r| r.1)
        );
    };
    terminate(&[pid]).await;
    let (client, result) = running.await.unwrap();
    let err = result.expect_err("the renewal inside the transaction fails");
    assert_eq!(err.code(), Some(&SqlState::CONNECTION_FAILURE), "{err}");
    let after = client.simple_query("select 1").await.expect_err("aborted");
    assert_eq!(
        after.code(),
        Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
        "{after}"
    );
    client.simple_query("rollback").await.unwrap();
    assert_eq!(
        proxy
            .metric("lockroute_lock_path_retries_total{preset=\"gbrain\",kind=\"heartbeat\"}")
            .await,
        0.0
    );
    proxy.stop().await;
}

/// Renewals are retry-safe (fenced by the lock token): when the sticky direct connection is
/// terminated under one, lockroute runs it again on a fresh connection instead of failing it.
/// Claims are not retried, and none runs twice.
#[tokio::test]
async fn renewals_survive_the_direct_connection_terminated_every_700ms() {
    fleet::install_audit().await;
    let forward = Forward::start(pg_addr()).await;
    let proxy = proxy_via(&forward).await;
    let queue = common::unique_name("dretry");
    let mut env = fleet::fault_env(&queue, "12", "true");
    env.retain(|(k, _)| *k != "RENEW_MS");
    env.push(("RENEW_MS", "200"));
    let url = proxy.url();
    // Every 0.7 s for the fleet's 12 s.
    let gaps = (0..17).map(|_| Duration::from_millis(700));
    let terminator = terminate_repeatedly(&forward, gaps);
    let (run, terminations) = tokio::join!(fleet::run(&url, &env), terminator);
    let audit = Audit::of(&queue).await;
    let retries = proxy
        .metric("lockroute_lock_path_retries_total{preset=\"gbrain\",kind=\"heartbeat\"}")
        .await;
    eprintln!(
        "direct terminations={terminations} retries={retries} errors={} audit={audit:?}",
        run.summary["errors_by_op"]
    );
    assert!(terminations >= 10, "the faults happened: {terminations}");
    assert_eq!(
        run.errors_of("renew"),
        0,
        "no renewal fails: {}",
        run.summary
    );
    assert_eq!(run.count("renewals_lost"), 0, "{}", run.summary);
    assert_eq!(audit.total("evict"), 0, "no eviction: {audit:?}");
    assert_eq!(run.summary["double_claims"], 0, "{}", run.summary);
    // A claim lost in flight is reported, never repeated.
    for (code, _) in run.error_codes() {
        assert_eq!(code, "08006", "only clean loss errors: {}", run.summary);
    }
    assert!(audit.count("renew", "app") > 0, "{audit:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn direct_endpoint_down_falls_back_to_the_pooler_then_returns_by_itself() {
    fleet::install_audit().await;
    let forward = Forward::start(pg_addr()).await;
    let proxy = proxy_via(&forward).await;
    let queue = common::unique_name("ddown");
    let env = fleet::fault_env(&queue, "20", "true");
    let url = proxy.url();
    let fallback = "lockroute_routed_total{lane=\"pooler\",reason=\"direct_unavailable\"}";
    let direct = "lockroute_routed_total{lane=\"direct\",reason=\"pattern\"}";
    let outage = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        // The server stops: its backends get FATAL 57P01, then the port is closed.
        terminate(&pids_behind(&forward).await).await;
        forward.down();
        tokio::time::sleep(Duration::from_secs(6)).await;
        let fell_back = proxy.metric(fallback).await;
        forward.up().await;
        let (at_return, started) = (proxy.metric(direct).await, Instant::now());
        while proxy.metric(direct).await < at_return + 10.0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "lock-path units returned to the direct lane within 10s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "fell back {fell_back} units; back on the direct lane after {:?}",
            started.elapsed()
        );
        fell_back
    };
    let (run, fell_back) = tokio::join!(fleet::run(&url, &env), outage);
    let audit = Audit::of(&queue).await;
    eprintln!(
        "errors={} max_ms={} audit={audit:?}",
        run.summary["errors_by_op"], run.summary["max_ms"]
    );
    assert!(
        fell_back >= 10.0,
        "lock-path units ran on the pooler: {fell_back}"
    );
    assert!(audit.count("renew", "pooler") > 0, "{audit:?}");
    assert!(audit.count("renew", "app") > 0, "{audit:?}");
    // The unit in flight when the server stopped gets a clean 08006; nothing else fails.
    assert!(run.lock_path_errors() <= 1, "{}", run.summary);
    for (code, _) in run.error_codes() {
        assert_eq!(code, "08006", "only clean loss errors: {}", run.summary);
    }
    assert_eq!(audit.total("evict"), 0, "{audit:?}");
    assert_eq!(run.count("renewals_lost"), 0, "{}", run.summary);
    assert!(run.count("completions") > 0, "{}", run.summary);
    proxy.stop().await;
}
