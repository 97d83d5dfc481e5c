//! Built-in job-queue presets against the real stand-in, with default flags: a queue's
//! lock-path statement runs on the direct lane (`current_user` is `app`), everything else on
//! the pooler (`pooler`), and `lockroute_lock_path_total{preset,kind}` counts it. The rules
//! themselves are table-tested over every queue's statements in `src/route/presets/tests`.

mod common;

use common::proxy::Proxy;
use common::proxy::raw::{self, message, read_until, send, startup};

/// The `current_user` of every DataRow in the replies up to the next ReadyForQuery.
async fn users(s: &mut tokio::net::TcpStream) -> Vec<String> {
    let mut users = Vec::new();
    for (tag, body) in read_until(s, b'Z').await {
        assert_ne!(
            tag,
            b'E',
            "unexpected error: {}",
            String::from_utf8_lossy(&body)
        );
        if tag == b'D' {
            // One column: int16 count, int32 length, the text.
            let len = i32::from_be_bytes(body[2..6].try_into().unwrap()) as usize;
            users.push(String::from_utf8_lossy(&body[6..6 + len]).into_owned());
        }
    }
    users
}

/// A pg-boss `trySetTimestamp()` on its own schema, returning who ran it.
async fn pg_boss_elect(proxy: &Proxy) -> (tokio_postgres::Client, String) {
    let client = proxy.connect().await;
    let schema = common::unique_name("pgboss");
    client
        .batch_execute(&format!(
            "create schema {schema}; create table {schema}.version (maintained_on timestamptz);
             insert into {schema}.version values (null)"
        ))
        .await
        .unwrap();
    let elect = format!(
        "UPDATE {schema}.version SET maintained_on = now() \
         WHERE EXTRACT( EPOCH FROM (now() - COALESCE(maintained_on, now() - interval '1 week') ) ) > -1 \
         RETURNING current_user::text"
    );
    (client, elect)
}

#[tokio::test]
async fn preset_statement_runs_direct_with_default_flags_and_is_counted() {
    let proxy = Proxy::start(&[]).await;
    let (client, elect) = pg_boss_elect(&proxy).await;
    let extended: String = client.query_one(&elect, &[]).await.unwrap().get(0);
    assert_eq!(extended, "app", "extended protocol");
    let simple = common::simple_rows(&client, &elect).await;
    assert_eq!(simple[0].get(0), Some("app"), "simple protocol");
    // River's sqlc header is a rule of its own: the comment alone sends the statement.
    let river: String = client
        .query_one(
            "-- name: LeaderAttemptReelect :execrows\nselect current_user::text",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(river, "app");
    assert_eq!(common::current_user(&client).await, "pooler");
    let elects = proxy
        .metric(r#"lockroute_lock_path_total{preset="pg-boss",kind="elect"}"#)
        .await;
    assert!(elects >= 2.0, "{elects}");
    let river = proxy
        .metric(r#"lockroute_lock_path_total{preset="river",kind="elect"}"#)
        .await;
    assert!(river >= 1.0, "{river}");
    proxy.stop().await;
}

#[tokio::test]
async fn preset_none_keeps_preset_statements_on_the_pooler() {
    let proxy = Proxy::start(&["--preset", "none"]).await;
    let (client, elect) = pg_boss_elect(&proxy).await;
    let user: String = client.query_one(&elect, &[]).await.unwrap().get(0);
    assert_eq!(user, "pooler");
    proxy.stop().await;
}

#[tokio::test]
async fn graphile_worker_statement_name_routes_parse_and_later_binds_direct() {
    let proxy = Proxy::start(&["--client-auth", "trust"]).await;
    let mut s = raw::connect(proxy.addr).await;
    send(&mut s, &startup(&[("user", "app"), ("database", "app")])).await;
    read_until(&mut s, b'Z').await;
    let name = "get_job/graphile_worker";
    let bind = [&[0u8][..], name.as_bytes(), b"\0\0\0\0\0\0\0"].concat();
    let execute = || {
        let mut unit = message(b'B', &bind);
        unit.extend(message(b'E', b"\0\0\0\0\0"));
        unit.extend(message(b'S', b""));
        unit
    };
    // node-postgres sends Parse only the first time a named statement runs on a connection;
    // after that only Bind names it, and the text comes from the remembered Parse.
    let mut first = message(
        b'P',
        format!("{name}\0select current_user::text\0\0\0").as_bytes(),
    );
    first.extend(execute());
    send(&mut s, &first).await;
    assert_eq!(users(&mut s).await, ["app"], "Parse + Bind");
    send(&mut s, &execute()).await;
    assert_eq!(users(&mut s).await, ["app"], "Bind only");
    // The same text unnamed is not a graphile-worker statement.
    let mut unnamed = message(b'P', b"\0select current_user::text\0\0\0");
    unnamed.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
    unnamed.extend(message(b'E', b"\0\0\0\0\0"));
    unnamed.extend(message(b'S', b""));
    send(&mut s, &unnamed).await;
    assert_eq!(users(&mut s).await, ["pooler"], "unnamed");
    assert!(
        proxy
            .metric(r#"lockroute_lock_path_total{preset="graphile-worker",kind="claim"}"#)
            .await
            >= 2.0
    );
    proxy.stop().await;
}
