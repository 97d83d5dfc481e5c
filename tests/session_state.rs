//! Session state against the real stand-in: nothing a client leaves on a server connection
//! reaches another client, and a client that uses a session feature is pinned to a dedicated
//! direct session before the statement runs. Lanes are proven by `select current_user`
//! (`pooler` through PgBouncer, `app` on the direct endpoint).

mod common;

use std::time::Duration;

use common::proxy::Proxy;
use common::proxy::raw::{self, message, read_until, send, startup};
use common::{StandIn, current_user, pg_connect, simple_rows};

const TAG: &str = "/* lockroute:direct */ ";

/// A simple Query message for `sql`.
fn query(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    message(b'Q', &body)
}

/// A raw client logged in with trust auth, its greeting read.
async fn raw_client(proxy: &Proxy) -> tokio::net::TcpStream {
    let mut s = raw::connect(proxy.addr).await;
    send(&mut s, &startup(&[("user", "app"), ("database", "app")])).await;
    let greeting = read_until(&mut s, b'Z').await;
    assert_eq!(greeting.last().map(|m| m.0), Some(b'Z'), "{greeting:?}");
    s
}

/// One value from a simple query through the proxy.
async fn value(client: &tokio_postgres::Client, sql: &str) -> String {
    simple_rows(client, sql)
        .await
        .first()
        .and_then(|row| row.get(0))
        .unwrap_or_else(|| panic!("{sql:?} returned no value"))
        .to_owned()
}

/// Sends `sql` and closes the socket without reading the reply.
async fn send_and_leave(proxy: &Proxy, sql: &str) {
    let mut s = raw_client(proxy).await;
    send(&mut s, &query(sql)).await;
    drop(s);
}

/// The shared direct connection's `setting` as the next client sees it, asked through the
/// proxy on the shared lane (pool size 1, so it is the same server connection).
async fn next_client_sees(proxy: &Proxy, setting: &str) -> String {
    let client = proxy.connect().await;
    assert_eq!(
        value(&client, &format!("{TAG}select current_user")).await,
        "app"
    );
    value(&client, &format!("{TAG}show {setting}")).await
}

/// Waits until the proxy's clients have all gone (their shared connection is back and reset).
async fn settled(proxy: &Proxy) {
    for _ in 0..100 {
        if proxy.metric("lockroute_client_connections").await == 0.0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("clients did not leave");
}

/// Every leak of the shared direct connection, with pinning on and off: the next client on the
/// same shared connection sees none of it.
#[tokio::test]
async fn nothing_crosses_clients_on_the_shared_direct_connection() {
    for pin in ["auto", "off"] {
        let proxy = Proxy::start(&["--client-auth", "trust", "--pin", pin]).await;
        // A SET whose client leaves before reading the reply.
        send_and_leave(&proxy, &format!("{TAG}SET statement_timeout = '4321ms'")).await;
        settled(&proxy).await;
        assert_ne!(
            next_client_sees(&proxy, "statement_timeout").await,
            "4321ms",
            "--pin {pin}"
        );
        // The same, with the client gone while the statement still runs.
        send_and_leave(
            &proxy,
            &format!("{TAG}SET search_path = 'leaked'; select pg_sleep(0.3)"),
        )
        .await;
        settled(&proxy).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_ne!(
            next_client_sees(&proxy, "search_path").await,
            "leaked",
            "--pin {pin}"
        );
        // set_config(…, false) answers with the command tag SELECT, and the client reads it.
        {
            let client = proxy.connect().await;
            let set = value(
                &client,
                &format!("{TAG}select set_config('search_path', 'leaked2', false)"),
            )
            .await;
            assert_eq!(set, "leaked2");
        }
        settled(&proxy).await;
        assert_ne!(
            next_client_sees(&proxy, "search_path").await,
            "leaked2",
            "--pin {pin}"
        );
        proxy.stop().await;
    }
}

/// The session advisory lock a client took never outlives it.
#[tokio::test]
async fn an_advisory_lock_ends_with_the_client_that_took_it() {
    let key: i64 = 4242_0000 + i64::from(std::process::id() % 10_000);
    let admin = pg_connect(&StandIn::shared().super_url).await;
    for pin in ["auto", "off"] {
        let proxy = Proxy::start(&["--client-auth", "trust", "--pin", pin]).await;
        send_and_leave(&proxy, &format!("{TAG}select pg_advisory_lock({key})")).await;
        settled(&proxy).await;
        let mut held = true;
        for _ in 0..40 {
            let rows = simple_rows(
                &admin,
                &format!(
                    "select count(*) from pg_locks where locktype = 'advisory' \
                     and objid = {key} and granted"
                ),
            )
            .await;
            held = rows[0].get(0) != Some("0");
            if !held {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!held, "--pin {pin}: the lock outlived its client");
        proxy.stop().await;
    }
}

/// Two clients race for one advisory lock: exactly one wins; after the holder unlocks, and
/// after the holder disconnects, the other wins.
#[tokio::test]
async fn exactly_one_client_holds_a_session_advisory_lock() {
    let key: i64 = 777_0000 + i64::from(std::process::id() % 10_000);
    let proxy = Proxy::start(&[]).await;
    let a = proxy.connect().await;
    let b = proxy.connect().await;
    let try_lock = format!("select pg_try_advisory_lock({key})::text");
    assert_eq!(value(&a, &try_lock).await, "true");
    assert_eq!(
        value(&b, &try_lock).await,
        "false",
        "two clients own one lock"
    );
    // Both were pinned, so each runs on its own direct session.
    assert_eq!(current_user(&a).await, "app");
    assert_eq!(current_user(&b).await, "app");
    assert_eq!(
        value(&a, &format!("select pg_advisory_unlock({key})::text")).await,
        "true",
        "the unlock runs where the lock is"
    );
    assert_eq!(value(&b, &try_lock).await, "true");
    assert_eq!(value(&a, &try_lock).await, "false");
    drop(b);
    let mut won = false;
    for _ in 0..40 {
        if value(&a, &try_lock).await == "true" {
            won = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(won, "the lock of a client that left was never released");
    assert!(
        proxy
            .metric("lockroute_pins_total{reason=\"advisory_lock\"}")
            .await
            >= 2.0
    );
    assert_eq!(
        proxy
            .metric("lockroute_pinned_clients{reason=\"advisory_lock\"}")
            .await,
        1.0
    );
    proxy.stop().await;
}

/// LISTEN from an untagged client pins it, and every NOTIFY arrives.
#[tokio::test]
async fn listen_from_an_untagged_client_gets_every_notify() {
    let channel = common::unique_name("chan");
    let proxy = Proxy::start(&["--client-auth", "trust"]).await;
    let mut s = raw_client(&proxy).await;
    send(&mut s, &query(&format!("LISTEN {channel}"))).await;
    let reply = read_until(&mut s, b'Z').await;
    assert!(reply.iter().any(|m| m.0 == b'C'), "{reply:?}");
    let notifier = pg_connect(&StandIn::shared().super_url).await;
    for i in 0..10 {
        simple_rows(&notifier, &format!("NOTIFY {channel}, '{i}'")).await;
    }
    let mut got = 0;
    while got < 10 {
        let messages = tokio::time::timeout(Duration::from_secs(5), read_until(&mut s, b'A'))
            .await
            .expect("every NOTIFY arrives within 5 s");
        assert_eq!(messages.last().map(|m| m.0), Some(b'A'), "{messages:?}");
        got += 1;
    }
    send(&mut s, &query("select current_user")).await;
    let rows = read_until(&mut s, b'Z').await;
    let row = rows.iter().find(|m| m.0 == b'D').expect("a row");
    assert!(
        row.1.ends_with(b"app"),
        "a pinned client runs on the direct role"
    );
    assert_eq!(
        proxy
            .metric("lockroute_pins_total{reason=\"listen\"}")
            .await,
        1.0
    );
    proxy.stop().await;
}

/// Connect-time settings of frameworks do not pin, and ordinary traffic stays on the pooler.
#[tokio::test]
async fn harmless_settings_do_not_pin() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    for sql in [
        "SET client_min_messages TO 'warning'",
        "SET standard_conforming_strings = on",
        "SET intervalstyle = iso_8601",
        "SET SESSION timezone TO 'UTC'",
    ] {
        simple_rows(&client, sql).await;
    }
    assert_eq!(current_user(&client).await, "pooler");
    let pins: f64 = {
        let mut sum = 0.0;
        for reason in [
            "listen",
            "advisory_lock",
            "set",
            "temp",
            "prepare",
            "cursor",
            "other",
        ] {
            sum += proxy
                .metric(&format!("lockroute_pins_total{{reason=\"{reason}\"}}"))
                .await;
        }
        sum
    };
    assert_eq!(pins, 0.0);
    proxy.stop().await;
}

/// A session SET pins the client, which then keeps its setting, and another client never sees
/// it; with `--pin off` it behaves as behind the pooler.
#[tokio::test]
async fn a_session_set_pins_and_stays_with_its_client() {
    let proxy = Proxy::start(&[]).await;
    let a = proxy.connect().await;
    let b = proxy.connect().await;
    simple_rows(&a, "SET search_path = 'pinned_a', public").await;
    assert_eq!(current_user(&a).await, "app");
    assert_eq!(value(&a, "show search_path").await, "pinned_a, public");
    assert_ne!(value(&b, "show search_path").await, "pinned_a, public");
    assert_eq!(current_user(&b).await, "pooler");
    assert_eq!(
        proxy.metric("lockroute_pins_total{reason=\"set\"}").await,
        1.0
    );
    assert_eq!(proxy.metric("lockroute_direct_sessions").await, 1.0);
    proxy.stop().await;

    let off = Proxy::start(&["--pin", "off"]).await;
    let c = off.connect().await;
    simple_rows(&c, "SET search_path = 'unpinned', public").await;
    assert_eq!(current_user(&c).await, "pooler");
    off.stop().await;
}

/// With no dedicated session free, the unit runs where it would have run, counted as refused.
#[tokio::test]
async fn a_pin_with_no_free_session_runs_unpinned_and_is_counted() {
    let proxy = Proxy::start(&["--direct-max-sessions", "1"]).await;
    let a = proxy.connect().await;
    let b = proxy.connect().await;
    simple_rows(&a, "LISTEN pin_refused_a").await;
    simple_rows(&b, "LISTEN pin_refused_b").await;
    assert_eq!(current_user(&a).await, "app");
    assert_eq!(current_user(&b).await, "pooler");
    assert_eq!(
        proxy
            .metric("lockroute_pin_refused_total{reason=\"listen\"}")
            .await,
        1.0
    );
    proxy.stop().await;
}

/// A pinned client whose dedicated session dies is told, never silently reconnected: its
/// LISTENs and locks are gone.
#[tokio::test]
async fn a_pinned_client_is_told_when_its_session_is_lost() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    let channel = common::unique_name("lost");
    simple_rows(&client, &format!("LISTEN {channel}")).await;
    let pid = value(&client, "select pg_backend_pid()::text").await;
    let admin = pg_connect(&StandIn::shared().super_url).await;
    simple_rows(&admin, &format!("select pg_terminate_backend({pid})")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = client
        .simple_query("select 1")
        .await
        .expect_err("the client must learn that its session is gone");
    let code = err.code().map(|c| c.code().to_owned());
    assert!(
        code.as_deref() == Some("08006") || err.is_closed(),
        "{err:?}"
    );
    proxy.stop().await;
}
