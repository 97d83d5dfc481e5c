//! Lane choice deferred past BEGIN, against the real stand-in: lockroute answers a bare BEGIN
//! itself and the transaction runs, whole, on the lane of its first real statement. Lanes are
//! proven by `select current_user` (`pooler` through PgBouncer, `app` direct).

mod common;

use common::fleet;
use common::proxy::Proxy;
use common::proxy::raw::{self, message, read_until, send, sqlstate, startup};
use common::simple_rows;

/// gbrain's renewLock, with literals: the default patterns route it to the direct lane.
const RENEW: &str = "UPDATE minion_jobs SET lock_until = now() + (1000::double precision * interval '1 millisecond'), updated_at = now() WHERE id = -1 AND lock_token = 'none' AND status = 'active' RETURNING id";

fn query(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    message(b'Q', &body)
}

async fn one(client: &tokio_postgres::Client, sql: &str) -> String {
    simple_rows(client, sql).await[0]
        .get(0)
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_transaction_that_opens_with_a_lock_statement_runs_direct_whole() {
    fleet::install_audit().await;
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    // Simple protocol.
    simple_rows(&client, "begin").await;
    simple_rows(&client, RENEW).await;
    assert_eq!(one(&client, "select current_user").await, "app");
    simple_rows(&client, "commit").await;
    // Simple, but the first statement is ordinary: the pooler, whole.
    simple_rows(&client, "BEGIN ISOLATION LEVEL READ COMMITTED").await;
    assert_eq!(one(&client, "select current_user").await, "pooler");
    simple_rows(&client, RENEW).await;
    assert_eq!(
        one(&client, "select current_user").await,
        "pooler",
        "a transaction never spans lanes"
    );
    simple_rows(&client, "commit").await;
    // Extended protocol: tokio-postgres prepares every statement (Parse, Describe, Sync; then
    // Bind, Execute, Sync), BEGIN and COMMIT included.
    client.execute("BEGIN", &[]).await.unwrap();
    client.execute(RENEW, &[]).await.unwrap();
    let user: String = client
        .query_one("select current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "app");
    client.execute("COMMIT", &[]).await.unwrap();
    let mut client = client;
    let tx = client.transaction().await.unwrap();
    let user: String = tx
        .query_one("select current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "pooler");
    tx.commit().await.unwrap();
    assert_eq!(one(&client, "select current_user").await, "pooler");
    proxy.stop().await;
}

async fn sent_upstream(proxy: &Proxy, lane: &str) -> f64 {
    proxy
        .metric(&format!(
            "lockroute_bytes_total{{lane=\"{lane}\",direction=\"to_upstream\"}}"
        ))
        .await
}

#[tokio::test]
async fn begin_then_commit_costs_no_upstream_round_trip() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    assert_eq!(one(&client, "select current_user").await, "pooler");
    let before = (
        sent_upstream(&proxy, "pooler").await,
        sent_upstream(&proxy, "direct").await,
    );
    for (begin, end) in [
        ("begin", "commit"),
        ("START TRANSACTION READ ONLY", "rollback"),
    ] {
        simple_rows(&client, begin).await;
        simple_rows(&client, end).await;
    }
    let after = (
        sent_upstream(&proxy, "pooler").await,
        sent_upstream(&proxy, "direct").await,
    );
    assert_eq!(before, after, "BEGIN; COMMIT reached an upstream");
    proxy.stop().await;
}

/// The extended protocol as postgres.js sends an unprepared `sql.unsafe('begin')`: Parse,
/// Bind, Describe, Execute, Sync, unnamed; and describe-first with a named statement. Answered
/// message by message, with nothing sent upstream.
#[tokio::test]
async fn extended_begin_and_commit_are_answered_exactly() {
    let proxy = Proxy::start(&["--client-auth", "trust"]).await;
    let mut s = raw::connect(proxy.addr).await;
    send(&mut s, &startup(&[("user", "app"), ("database", "app")])).await;
    read_until(&mut s, b'Z').await;
    let before = sent_upstream(&proxy, "pooler").await;
    let batch = |sql: &str| {
        let mut parse = b"\0".to_vec();
        parse.extend_from_slice(sql.as_bytes());
        parse.extend_from_slice(&[0, 0, 0]);
        let mut out = message(b'P', &parse);
        out.extend(message(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]));
        out.extend(message(b'D', b"P\0"));
        out.extend(message(b'E', &[0, 0, 0, 0, 0]));
        out.extend(message(b'S', &[]));
        out
    };
    for (sql, tag, status) in [("begin", "BEGIN", b'T'), ("commit", "COMMIT", b'I')] {
        send(&mut s, &batch(sql)).await;
        let reply = read_until(&mut s, b'Z').await;
        let tags: Vec<u8> = reply.iter().map(|m| m.0).collect();
        assert_eq!(tags, b"12nCZ", "{sql}");
        assert_eq!(reply[3].1, format!("{tag}\0").into_bytes());
        assert_eq!(reply[4].1, [status]);
    }
    // Describe-first: Parse, Describe, Flush; then Bind, Execute, Sync.
    let mut first = message(b'P', b"s1\0BEGIN\0\0\0");
    first.extend(message(b'D', b"Ss1\0"));
    first.extend(message(b'H', &[]));
    send(&mut s, &first).await;
    let reply = read_until(&mut s, b'n').await;
    let tags: Vec<u8> = reply.iter().map(|m| m.0).collect();
    assert_eq!(tags, b"1tn");
    let mut second = message(b'B', b"\0s1\0\0\0\0\0\0\0");
    second.extend(message(b'E', &[0, 0, 0, 0, 0]));
    second.extend(message(b'S', &[]));
    send(&mut s, &second).await;
    let reply = read_until(&mut s, b'Z').await;
    let tags: Vec<u8> = reply.iter().map(|m| m.0).collect();
    assert_eq!(tags, b"2CZ");
    assert_eq!(reply[2].1, b"T");
    send(&mut s, &batch("rollback")).await;
    assert_eq!(read_until(&mut s, b'Z').await.last().unwrap().1, b"I");
    assert_eq!(sent_upstream(&proxy, "pooler").await, before);
    proxy.stop().await;
}

/// Pipelined: BEGIN, a tagged statement and COMMIT in one write; every reply in order, with the
/// transaction status a server would give.
#[tokio::test]
async fn pipelined_begin_is_answered_in_order() {
    let proxy = Proxy::start(&["--client-auth", "trust"]).await;
    let mut s = raw::connect(proxy.addr).await;
    send(&mut s, &startup(&[("user", "app"), ("database", "app")])).await;
    read_until(&mut s, b'Z').await;
    let mut batch = query("BEGIN");
    batch.extend(query("/* lockroute:direct */ select current_user"));
    batch.extend(query("select current_user"));
    batch.extend(query("COMMIT"));
    send(&mut s, &batch).await;
    let mut statuses = Vec::new();
    let mut rows = Vec::new();
    let mut tags = Vec::new();
    for _ in 0..4 {
        for (tag, body) in read_until(&mut s, b'Z').await {
            match tag {
                b'Z' => statuses.push(body[0]),
                b'D' => rows.push(String::from_utf8_lossy(&body[6..]).into_owned()),
                b'C' => tags.push(String::from_utf8_lossy(&body[..body.len() - 1]).into_owned()),
                b'E' => panic!("error: {}", sqlstate(&body)),
                _ => {}
            }
        }
    }
    assert_eq!(statuses, b"TTTI");
    assert_eq!(rows, ["app", "app"], "the whole transaction ran direct");
    assert_eq!(tags, ["BEGIN", "SELECT 1", "SELECT 1", "COMMIT"]);
    proxy.stop().await;
}

/// What lockroute cannot answer exactly goes to a server, which answers as Postgres does.
#[tokio::test]
async fn a_begin_lockroute_does_not_understand_gets_the_servers_answer() {
    let proxy = Proxy::start(&["--client-auth", "trust"]).await;
    let mut s = raw::connect(proxy.addr).await;
    send(&mut s, &startup(&[("user", "app"), ("database", "app")])).await;
    read_until(&mut s, b'Z').await;
    send(&mut s, &query("BEGIN ISOLATION LEVEL bogus")).await;
    let reply = read_until(&mut s, b'Z').await;
    let error = reply.iter().find(|m| m.0 == b'E').expect("an error");
    assert_eq!(sqlstate(&error.1), "42601");
    assert_eq!(reply.last().unwrap().1, b"I");
    // BEGIN twice: the second gets Postgres's warning, and the transaction stays open.
    send(&mut s, &query("BEGIN")).await;
    send(&mut s, &query("BEGIN")).await;
    read_until(&mut s, b'Z').await;
    let reply = read_until(&mut s, b'Z').await;
    let notice = reply.iter().find(|m| m.0 == b'N').expect("a warning");
    assert_eq!(sqlstate(&notice.1), "25001");
    assert_eq!(reply.last().unwrap().1, b"T");
    send(&mut s, &query("select current_user")).await;
    let reply = read_until(&mut s, b'Z').await;
    assert_eq!(reply.last().unwrap().1, b"T");
    send(&mut s, &query("ROLLBACK")).await;
    let reply = read_until(&mut s, b'Z').await;
    assert_eq!(reply.last().unwrap().1, b"I");
    proxy.stop().await;
}

/// A deferred transaction that opens with a session feature pins its client first.
#[tokio::test]
async fn a_transaction_that_opens_with_listen_pins_its_client() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    simple_rows(&client, "begin").await;
    simple_rows(&client, "LISTEN deferred_begin_pin").await;
    assert_eq!(one(&client, "select current_user").await, "app");
    simple_rows(&client, "commit").await;
    assert_eq!(
        proxy
            .metric("lockroute_pins_total{reason=\"listen\"}")
            .await,
        1.0
    );
    proxy.stop().await;
}
