//! Issue 14: the lock path never waits on the pooler. Clients log in while the pooler is down
//! (the login is answered from what lockroute learned before, or from the direct lane), their
//! lock path runs direct, and pooler units wait a bounded `--pooler-connect-wait` before a
//! clean `08001`. Lanes are proven by the server: `app` is the direct lane, `pooler` PgBouncer.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fleet::{self, Audit};
use common::process::free_port;
use common::proxy::{Proxy, ProxyOptions};
use common::{StandIn, current_user, pg_connect};

const TAG: &str = "/* lockroute:direct */ ";

/// gbrain's renewLock, byte for byte (js/worker.mjs `RENEW_SQL`).
const RENEW_SQL: &str = "UPDATE minion_jobs SET lock_until = now() + ($1::double precision * interval '1 millisecond'), updated_at = now()
       WHERE id = $2 AND lock_token = $3 AND status = 'active'
       RETURNING id";

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

/// An active job in its own queue, inserted on the direct lane: (queue, id).
async fn active_job(prefix: &str) -> (String, i64) {
    let queue = common::unique_name(prefix);
    let direct = pg_connect(&StandIn::shared().direct_url).await;
    let id: i64 = direct
        .query_one(
            "insert into minion_jobs (name, queue, status, lock_token, lock_until) \
             values ('j', $1, 'active', 'tok', now() + interval '10 s') returning id",
            &[&queue],
        )
        .await
        .unwrap()
        .get(0);
    (queue, id)
}

fn sqlstate(err: &tokio_postgres::Error) -> String {
    err.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn closed_pooler_port_login_and_lock_path_run_direct_and_pooler_units_get_08001() {
    fleet::install_audit().await;
    let s = StandIn::shared();
    let private = Arc::new(s.private_pooler("login_closed"));
    let restarter = Arc::clone(&private);
    // PgBouncer is down for 8 s: the whole of the checks below happens with its port closed.
    let restart = tokio::task::spawn_blocking(move || restarter.restart(Duration::from_secs(8)));
    wait_refused(private.port).await;
    let wait = Duration::from_secs(1);
    let proxy = Proxy::start_with(ProxyOptions {
        pooler_url: &private.pooler_url,
        direct_url: &s.direct_url,
        args: &["--pooler-connect-wait", "1s"],
        env: &[],
    })
    .await;

    // A brand-new process, a brand-new client: it logs in with the pooler unreachable.
    let client = proxy.connect().await;
    let tagged = client
        .query_one(&format!("{TAG}select current_user::text"), &[])
        .await
        .unwrap();
    assert_eq!(
        tagged.get::<_, String>(0),
        "app",
        "the tagged statement ran direct"
    );
    let (queue, id) = active_job("login_renew").await;
    let renewed = client
        .query(RENEW_SQL, &[&30000f64, &id, &"tok"])
        .await
        .expect("renewLock runs while the pooler is down");
    assert_eq!(renewed.len(), 1);
    assert_eq!(
        Audit::of(&queue).await.count("renew", "app"),
        1,
        "renewLock ran direct"
    );

    // A session-tagged client logs in and runs on its dedicated direct connection.
    let tagged_client = pg_connect(&proxy.url_with("application_name=lockroute:direct")).await;
    assert_eq!(current_user(&tagged_client).await, "app");

    // An untagged statement waits --pooler-connect-wait, then gets 08001: it did not run.
    let started = Instant::now();
    let err = client
        .simple_query("select current_user")
        .await
        .expect_err("the pooler is down");
    let took = started.elapsed();
    eprintln!(
        "untagged statement during the outage: {} after {took:?}: {err}",
        sqlstate(&err)
    );
    assert_eq!(sqlstate(&err), "08001", "{err}");
    assert!(format!("{err:?}").contains("did not run"), "{err:?}");
    assert!(
        took >= wait && took < wait + Duration::from_secs(1),
        "{took:?}"
    );

    // A lock-path unit pipelined behind a waiting pooler unit is held by it: measured here,
    // bounded by --pooler-connect-wait.
    let started = Instant::now();
    let tagged_sql = format!("{TAG}select current_user");
    let (pooler_unit, direct_unit) = tokio::join!(
        client.simple_query("select 1"),
        client.simple_query(&tagged_sql)
    );
    let held = started.elapsed();
    eprintln!("a lock-path unit pipelined behind a waiting pooler unit was held {held:?}");
    assert_eq!(sqlstate(&pooler_unit.expect_err("pooler down")), "08001");
    assert!(direct_unit.is_ok(), "{direct_unit:?}");
    assert!(held < wait + Duration::from_secs(1), "{held:?}");

    // The same client, once the port is open again: its next untagged statement runs on the
    // pooler.
    restart.await.unwrap();
    assert_eq!(current_user(&client).await, "pooler");
    assert_eq!(current_user(&tagged_client).await, "app");
    proxy.stop().await;
}

#[tokio::test]
async fn login_neither_lane_can_serve_fails_with_a_fatal_naming_both() {
    let (pooler_port, direct_port) = (free_port(), free_port());
    let pooler_url =
        format!("postgres://app:app-secret@127.0.0.1:{pooler_port}/app?sslmode=disable");
    let direct_url =
        format!("postgres://app:app-secret@127.0.0.1:{direct_port}/app?sslmode=disable");
    let proxy = Proxy::start_with(ProxyOptions {
        pooler_url: &pooler_url,
        direct_url: &direct_url,
        args: &[],
        env: &[],
    })
    .await;
    let err = common::proxy::connect_err(&proxy.url()).await;
    let text = format!("{err:?}");
    eprintln!("{err:?}");
    assert_eq!(sqlstate(&err), "08001", "{text}");
    assert!(
        text.contains("the pooler") && text.contains("the direct lane"),
        "{text}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn pooler_refusing_the_login_reaches_the_first_client_verbatim() {
    let s = StandIn::shared();
    // PgBouncer serves database `app`; asking it for another is a refusal only it can give.
    let pooler_url = s.pooler_url.replacen("/app?", "/no_such_db?", 1);
    assert_ne!(
        pooler_url, s.pooler_url,
        "the stand-in's pooler URL names /app?"
    );
    let proxy = Proxy::start_with(ProxyOptions {
        pooler_url: &pooler_url,
        direct_url: &s.direct_url,
        args: &[],
        env: &[],
    })
    .await;
    // lockroute serves the pooler URL's database name; the client asks for that one.
    let url = proxy.url().replacen("/app?", "/no_such_db?", 1);
    let err = common::proxy::connect_err(&url).await;
    let text = format!("{err:?}");
    eprintln!("{err:?}");
    assert!(
        text.contains("no such database: no_such_db"),
        "PgBouncer's own words reach the client: {text}"
    );
    proxy.stop().await;
}

/// New connections log in while PgBouncer is down for 4 s, the fleet's postgres.js pool's when
/// its pooler units wait out the outage (the default `--pooler-connect-wait` is longer) and
/// hold their connections, and five of the test's own. Before issue 14 those logins failed;
/// now they log in, their lock path runs direct, and no renewal is lost.
#[tokio::test]
async fn pool_growing_during_a_pooler_outage_loses_no_renewal() {
    fleet::install_audit().await;
    let s = StandIn::shared();
    let private = Arc::new(s.private_pooler("grow"));
    let proxy = Proxy::in_front_of(&private.pooler_url).await;
    let queue = common::unique_name("grow");
    let mut env = fleet::fault_env(&queue, "14", "true");
    for (name, value) in env.iter_mut() {
        if *name == "WORKERS" {
            *value = "8";
        }
    }
    env.push(("POOL_MAX", "30"));
    let logins = "lockroute_client_connections_total";
    let restarter = Arc::clone(&private);
    let outage = async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let before = proxy.metric(logins).await;
        let restart = tokio::task::spawn_blocking(move || {
            restarter.restart(Duration::from_secs(4));
        });
        wait_refused(private.port).await;
        // New clients log in while the pooler is down, as a growing pool's would (the fleet's
        // own pool grows only when all its connections happen to be busy), and run their lock
        // path on the direct lane.
        for _ in 0..5 {
            let newcomer = pg_connect(&proxy.url()).await;
            let user =
                common::simple_rows(&newcomer, "/* lockroute:direct */ select current_user").await;
            assert_eq!(user[0].get(0), Some("app"), "a login during the outage");
        }
        let mut during = proxy.metric(logins).await;
        while !restart.is_finished() {
            during = proxy.metric(logins).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        restart.await.unwrap();
        (before, during)
    };
    let url = proxy.url();
    let (run, (before, during)) = tokio::join!(fleet::run(&url, &env), outage);
    let audit = Audit::of(&queue).await;
    eprintln!(
        "logins before the outage: {before}, by its end: {during}; {}; audit {audit:?}",
        run.summary
    );
    assert!(
        during >= before + 5.0,
        "clients logged in during the outage"
    );
    assert_eq!(run.count("renewals_lost"), 0, "{}", run.summary);
    assert_eq!(run.lock_path_errors(), 0, "{}", run.summary);
    assert_eq!(run.socket_errors(), 0, "{}", run.summary);
    assert_eq!(audit.total("evict"), 0, "{audit:?}");
    assert_eq!(audit.count("renew", "pooler"), 0, "{audit:?}");
    assert!(audit.count("renew", "app") > 0, "{audit:?}");
    proxy.stop().await;
}

/// The pooler was unreachable at the first login (greeted from the direct lane), and when it
/// comes back it refuses lockroute's login: the client's first pooler unit gets the pooler's own
/// FATAL, and the connection closes, as a server's FATAL closes it.
#[tokio::test]
async fn pooler_refusing_after_an_outage_closes_the_client_with_its_fatal() {
    let s = StandIn::shared();
    let private = Arc::new(s.private_pooler("refuse_late"));
    let pooler_url = private.pooler_url.replacen("/app?", "/no_such_db?", 1);
    assert_ne!(pooler_url, private.pooler_url);
    let restarter = Arc::clone(&private);
    let restart = tokio::task::spawn_blocking(move || restarter.restart(Duration::from_secs(2)));
    wait_refused(private.port).await;
    let proxy = Proxy::start_with(ProxyOptions {
        pooler_url: &pooler_url,
        direct_url: &s.direct_url,
        args: &[],
        env: &[],
    })
    .await;
    let url = proxy.url().replacen("/app?", "/no_such_db?", 1);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("the login does not ask the pooler: {e:?}"));
    tokio::spawn(connection);
    let tagged = client
        .query_one(&format!("{TAG}select current_user::text"), &[])
        .await
        .unwrap();
    assert_eq!(tagged.get::<_, String>(0), "app");
    restart.await.unwrap();
    let err = client
        .simple_query("select current_user")
        .await
        .expect_err("the pooler refuses the login");
    let text = format!("{err:?}");
    eprintln!("first pooler unit: {err}");
    assert!(
        text.contains("no such database: no_such_db"),
        "the pooler's own words: {text}"
    );
    assert!(client.is_closed() || client.simple_query("select 1").await.is_err());
    proxy.stop().await;
}
