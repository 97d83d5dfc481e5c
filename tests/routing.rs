//! Lock-path routing against the real stand-in. Every lane is proven by asking the server:
//! `current_user` is `pooler` through PgBouncer and `app` on the direct endpoint.

mod common;

use std::collections::HashSet;

use common::proxy::raw::{self, message, read_until, send, startup};
use common::proxy::{Proxy, ProxyOptions};
use common::{StandIn, current_user, pg_connect};

const TAG: &str = "/* lockroute:direct */ ";

#[tokio::test]
async fn untagged_traffic_runs_on_the_pooler() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    assert_eq!(current_user(&client).await, "pooler");
    let row = client
        .query_one("select current_user::text, $1::int", &[&7i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "pooler");
    proxy.stop().await;
}

#[tokio::test]
async fn statement_tagged_statement_runs_direct() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    for sql in [
        format!("{TAG}select current_user::text"),
        "-- lockroute:direct\nselect current_user::text".to_owned(),
        "/* first */ /* lockroute:direct */ select current_user::text".to_owned(),
    ] {
        let simple = client.simple_query(&sql).await.unwrap();
        let user = simple.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        });
        assert_eq!(user.as_deref(), Some("app"), "simple: {sql}");
        let extended: String = client.query_one(&sql, &[]).await.unwrap().get(0);
        assert_eq!(extended, "app", "extended: {sql}");
    }
    // A tag that does not lead the statement is not a tag.
    let later: String = client
        .query_one("select current_user::text /* lockroute:direct */", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(later, "pooler");
    assert!(
        proxy
            .metric("lockroute_routed_total{lane=\"direct\",reason=\"statement_tag\"}")
            .await
            >= 6.0
    );
    proxy.stop().await;
}

#[tokio::test]
async fn tagged_statement_inside_a_transaction_stays_on_the_pooler() {
    let proxy = Proxy::start(&[]).await;
    let mut client = proxy.connect().await;
    let tx = client.transaction().await.unwrap();
    // The transaction's first statement picks its lane (lockroute answered the BEGIN).
    let first: String = tx
        .query_one("select current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(first, "pooler");
    let user: String = tx
        .query_one(&format!("{TAG}select current_user::text"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "pooler");
    tx.commit().await.unwrap();
    let after: String = client
        .query_one(&format!("{TAG}select current_user::text"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, "app", "outside the transaction the tag routes again");
    assert!(
        proxy
            .metric("lockroute_routed_total{lane=\"pooler\",reason=\"in_transaction\"}")
            .await
            >= 1.0
    );
    proxy.stop().await;
}

#[tokio::test]
async fn session_tagged_client_runs_on_a_dedicated_direct_connection() {
    let proxy = Proxy::start(&["--direct-max-sessions", "1"]).await;
    let client =
        pg_connect(&proxy.url_with("application_name=gbrain-worker%20lockroute:direct")).await;
    assert_eq!(current_user(&client).await, "app");
    // Session semantics hold: a SET survives to the next statement, on the same backend.
    client
        .batch_execute("set statement_timeout = '4321ms'")
        .await
        .unwrap();
    let timeout: String = client
        .query_one("show statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(timeout, "4321ms");
    // The limit is one dedicated connection: a second tagged client gets 53300.
    let second = tokio_postgres::connect(
        &proxy.url_with("application_name=lockroute:direct"),
        tokio_postgres::NoTls,
    )
    .await;
    let Err(err) = second else {
        panic!("over --direct-max-sessions")
    };
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::TOO_MANY_CONNECTIONS),
        "{err}"
    );
    let message = err
        .as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_default();
    assert!(message.contains("--direct-max-sessions"), "{message}");
    // An untagged client is unaffected.
    assert_eq!(current_user(&proxy.connect().await).await, "pooler");
    proxy.stop().await;
}

#[tokio::test]
async fn custom_lock_pattern_adds_to_the_presets() {
    let proxy = Proxy::start(&["--lock-pattern", r"(?i)^select\s+'lock-path'"]).await;
    let client = proxy.connect().await;
    let user: String = client
        .query_one("select 'lock-path', current_user::text", &[])
        .await
        .unwrap()
        .get(1);
    assert_eq!(user, "app");
    let other: String = client
        .query_one("select 'other', current_user::text", &[])
        .await
        .unwrap()
        .get(1);
    assert_eq!(other, "pooler");
    assert!(
        proxy
            .metric("lockroute_routed_total{lane=\"direct\",reason=\"pattern\"}")
            .await
            >= 1.0
    );
    assert!(
        proxy
            .metric("lockroute_lock_path_total{preset=\"custom\",kind=\"unknown\"}")
            .await
            >= 1.0
    );
    // The presets still apply: a River header sends its statement direct.
    let river: String = client
        .query_one(
            "-- name: JobGetAvailable :many\nselect current_user::text",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(river, "app");
    proxy.stop().await;
}

#[tokio::test]
async fn shadow_mode_decides_and_counts_but_sends_everything_to_the_pooler() {
    let proxy = Proxy::start(&["--mode", "shadow"]).await;
    let client = proxy.connect().await;
    let user: String = client
        .query_one(&format!("{TAG}select current_user::text"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "pooler");
    let tagged = pg_connect(&proxy.url_with("application_name=lockroute:direct")).await;
    assert_eq!(current_user(&tagged).await, "pooler");
    assert!(
        proxy
            .metric("lockroute_routed_total{lane=\"pooler\",reason=\"shadow\"}")
            .await
            >= 2.0
    );
    assert_eq!(
        proxy
            .metric("lockroute_routed_total{lane=\"direct\",reason=\"statement_tag\"}")
            .await,
        0.0
    );
    proxy.stop().await;
}

#[tokio::test]
async fn kill_switch_variables_put_everything_on_the_pooler() {
    let s = StandIn::shared();
    for env in [
        ("LOCKROUTE_PASSTHROUGH", "1"),
        ("GBRAIN_DISABLE_DIRECT_POOL", "1"),
        ("GBRAIN_DISABLE_DIRECT_POOL", "true"),
    ] {
        let proxy = Proxy::start_with(ProxyOptions {
            pooler_url: &s.pooler_url,
            direct_url: &s.direct_url,
            args: &["--mode", "split"],
            env: &[env],
        })
        .await;
        let client = proxy.connect().await;
        // The kill switch is a byte pipe: named prepared statements behave exactly as they do
        // against the transaction pooler itself, so this uses the simple protocol.
        let rows = common::simple_rows(&client, &format!("{TAG}select current_user")).await;
        assert_eq!(rows[0].get(0), Some("pooler"), "{env:?}");
        let tagged = pg_connect(&proxy.url_with("application_name=lockroute:direct")).await;
        assert_eq!(current_user(&tagged).await, "pooler", "{env:?}");
        assert_eq!(
            proxy.metric("lockroute_mode{mode=\"passthrough\"}").await,
            1.0,
            "{env:?}"
        );
        proxy.stop().await;
    }
}

#[tokio::test]
async fn direct_lane_unavailable_falls_back_to_the_pooler() {
    let s = StandIn::shared();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let direct = format!("postgres://app:app-secret@127.0.0.1:{closed}/app?sslmode=disable");
    let proxy = Proxy::start_with(ProxyOptions {
        pooler_url: &s.pooler_url,
        direct_url: &direct,
        args: &[],
        env: &[],
    })
    .await;
    let client = proxy.connect().await;
    for _ in 0..3 {
        let user: String = client
            .query_one(&format!("{TAG}select current_user::text"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(user, "pooler");
    }
    assert!(
        proxy
            .metric("lockroute_routed_total{lane=\"pooler\",reason=\"direct_unavailable\"}")
            .await
            >= 3.0
    );
    proxy.stop().await;
}

/// One simple-protocol unit: `select <n>, current_user`, tagged for the direct lane or not.
fn unit(n: usize, direct: bool) -> Vec<u8> {
    let tag = if direct { TAG } else { "" };
    message(b'Q', format!("{tag}select {n}, current_user\0").as_bytes())
}

/// One extended-protocol unit with the same result.
fn extended_unit(n: usize, direct: bool) -> Vec<u8> {
    let tag = if direct { TAG } else { "" };
    let mut out = message(
        b'P',
        format!("\0{tag}select {n}, current_user\0\0\0").as_bytes(),
    );
    out.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
    out.extend(message(b'E', b"\0\0\0\0\0"));
    out.extend(message(b'S', b""));
    out
}

/// Reads `count` units' replies and returns each DataRow's (n, user).
async fn read_rows(s: &mut tokio::net::TcpStream, count: usize) -> Vec<(usize, String)> {
    let mut rows = Vec::new();
    for _ in 0..count {
        for (tag, body) in read_until(s, b'Z').await {
            assert_ne!(
                tag,
                b'E',
                "unexpected error: {}",
                String::from_utf8_lossy(&body)
            );
            if tag == b'D' {
                let mut fields = Vec::new();
                let mut pos = 2;
                while pos + 4 <= body.len() {
                    let len = i32::from_be_bytes(body[pos..pos + 4].try_into().unwrap()) as usize;
                    fields
                        .push(String::from_utf8_lossy(&body[pos + 4..pos + 4 + len]).into_owned());
                    pos += 4 + len;
                }
                rows.push((fields[0].parse().unwrap(), fields[1].clone()));
            }
        }
    }
    rows
}

#[tokio::test]
async fn pipelined_units_across_a_lane_switch_come_back_in_order() {
    let proxy = Proxy::start(&["--client-auth", "trust"]).await;
    for build in [unit as fn(usize, bool) -> Vec<u8>, extended_unit] {
        let mut s = raw::connect(proxy.addr).await;
        send(&mut s, &startup(&[("user", "app"), ("database", "app")])).await;
        read_until(&mut s, b'Z').await;
        // 50 pooler units, one direct unit, 50 more: all written before any reply is read.
        let mut batch = Vec::new();
        for n in 0..101 {
            batch.extend(build(n, n == 50));
        }
        send(&mut s, &batch).await;
        let rows = read_rows(&mut s, 101).await;
        assert_eq!(rows.len(), 101);
        for (i, (n, user)) in rows.iter().enumerate() {
            assert_eq!(*n, i, "replies must come back in request order");
            let want = if i == 50 { "app" } else { "pooler" };
            assert_eq!(user, want, "unit {i}");
        }
    }
    proxy.stop().await;
}

#[tokio::test]
async fn ten_clients_share_one_direct_connection_and_never_see_each_others_replies() {
    let proxy = Proxy::start(&["--direct-pool-size", "1"]).await;
    let mut tasks = Vec::new();
    for c in 0..10 {
        let client = proxy.connect().await;
        tasks.push(tokio::spawn(async move {
            let mut pids = HashSet::new();
            for i in 0..30 {
                let token = format!("client-{c}-{i}");
                let row = client
                    .query_one(
                        &format!("{TAG}select $1::text, pg_backend_pid(), current_user::text"),
                        &[&token],
                    )
                    .await
                    .unwrap();
                assert_eq!(row.get::<_, String>(0), token, "a reply for another client");
                assert_eq!(row.get::<_, String>(2), "app");
                pids.insert(row.get::<_, i32>(1));
            }
            pids
        }));
    }
    let mut pids = HashSet::new();
    for task in tasks {
        pids.extend(task.await.unwrap());
    }
    assert_eq!(
        pids.len(),
        1,
        "one shared sticky direct connection serves every client: {pids:?}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn idle_in_transaction_on_the_shared_direct_connection_is_cut_off() {
    let proxy = Proxy::start(&["--direct-pool-size", "1", "--direct-hold-timeout", "300ms"]).await;
    let (hog, connection) = tokio_postgres::connect(&proxy.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let hog_conn = tokio::spawn(connection);
    // A statement-tagged BEGIN holds the shared connection until the transaction ends.
    hog.batch_execute(&format!("{TAG}begin")).await.unwrap();
    // Another worker's heartbeat waits at most the hold timeout, then runs on the direct lane.
    let other = proxy.connect().await;
    let rows = common::simple_rows(&other, &format!("{TAG}select current_user")).await;
    assert_eq!(rows[0].get(0), Some("app"));
    let err = hog_conn
        .await
        .unwrap()
        .expect_err("the idle holder is closed");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT),
        "{err}"
    );
    assert!(
        proxy
            .metric("lockroute_errors_total{kind=\"direct_hold_timeout\"}")
            .await
            >= 1.0
    );
    proxy.stop().await;
}

#[tokio::test]
async fn idle_shared_direct_connection_gets_a_keepalive() {
    let proxy = Proxy::start(&["--direct-keepalive-interval", "200ms"]).await;
    let client = proxy.connect().await;
    let rows = common::simple_rows(&client, &format!("{TAG}select pg_backend_pid()::text")).await;
    let pid: i32 = rows[0].get(0).unwrap().parse().unwrap();
    // PostgreSQL's own view of that backend: its last statement becomes the keepalive `;`.
    let observer = pg_connect(&StandIn::shared().super_url).await;
    let mut last = String::new();
    for _ in 0..100 {
        last = observer
            .query_one("select query from pg_stat_activity where pid = $1", &[&pid])
            .await
            .unwrap()
            .get(0);
        if last == ";" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last, ";", "the idle shared connection was never pinged");
    // And it is still the same, healthy connection.
    let again = common::simple_rows(&client, &format!("{TAG}select pg_backend_pid()::text")).await;
    assert_eq!(again[0].get(0).unwrap().parse::<i32>().unwrap(), pid);
    proxy.stop().await;
}

#[tokio::test]
async fn one_prepared_statement_on_the_shared_connection_serves_every_client() {
    let proxy = Proxy::start(&["--direct-pool-size", "1"]).await;
    let marker = common::unique_name("dedup");
    let sql = format!("{TAG}select $1::int as n, current_user::text, '{marker}' as marker");
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(proxy.connect().await);
    }
    for round in 0..5i32 {
        for (c, client) in clients.iter().enumerate() {
            // Each client prepares the statement under its own name and runs it: the shared
            // connection must map them all onto one server-side statement.
            let stmt = client.prepare(&sql).await.unwrap();
            let n = round * 10 + c as i32;
            let row = client.query_one(&stmt, &[&n]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), n);
            assert_eq!(row.get::<_, String>(1), "app");
        }
    }
    // Ask the shared backend itself which statements it holds.
    let rows = common::simple_rows(
        &clients[0],
        &format!("{TAG}select count(*) from pg_prepared_statements where statement like '%{marker}%' and statement not like '%pg_prepared_statements%'"),
    )
    .await;
    assert_eq!(
        rows[0].get(0),
        Some("1"),
        "one server-side statement for every client and use"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn every_routed_unit_is_counted_under_the_lane_the_server_saw() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    let mut seen = std::collections::HashMap::new();
    let mut run = |rows: Vec<tokio_postgres::SimpleQueryRow>| {
        let user = rows[0].get(0).unwrap().to_owned();
        *seen.entry(user).or_insert(0) += 1;
    };
    for _ in 0..7 {
        run(common::simple_rows(&client, &format!("{TAG}select current_user")).await);
    }
    for _ in 0..5 {
        run(common::simple_rows(&client, "select current_user").await);
    }
    client.batch_execute("begin").await.unwrap();
    run(common::simple_rows(&client, "select current_user").await);
    for _ in 0..3 {
        run(common::simple_rows(&client, &format!("{TAG}select current_user")).await);
    }
    client.batch_execute("commit").await.unwrap();
    // The server's view: 7 units ran as `app` (direct), 9 as `pooler`.
    assert_eq!(seen.get("app"), Some(&7), "{seen:?}");
    assert_eq!(seen.get("pooler"), Some(&9), "{seen:?}");
    // lockroute's counters say the same, unit by unit. lockroute answered the BEGIN itself and
    // sent it with the transaction's first statement, one unit; the COMMIT is a unit.
    let routed = |lane: &str, reason: &str| {
        format!("lockroute_routed_total{{lane=\"{lane}\",reason=\"{reason}\"}}")
    };
    assert_eq!(proxy.metric(&routed("direct", "statement_tag")).await, 7.0);
    assert_eq!(proxy.metric(&routed("pooler", "in_transaction")).await, 3.0);
    assert_eq!(proxy.metric(&routed("pooler", "default")).await, 7.0);
    assert_eq!(proxy.metric(&routed("direct", "pattern")).await, 0.0);
    proxy.stop().await;
}
