//! Bad input gets a clear error or a clean close, nothing panics, and every other client keeps
//! being served. Each case is followed by a normal query that must succeed.

mod common;

use std::time::Duration;

use common::current_user;
use common::proxy::Proxy;
use common::proxy::raw::{self, closed_within, message, read_until, send, sqlstate, startup};

const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// A proxy with trust auth (allowed: it listens on loopback), so raw clients can get past the
/// handshake, and a short handshake timeout.
async fn proxy() -> Proxy {
    Proxy::start(&[
        "--client-auth",
        "trust",
        "--handshake-timeout",
        "500ms",
        "--max-message-size",
        "1MiB",
    ])
    .await
}

async fn still_serves(proxy: &Proxy) {
    assert_eq!(current_user(&proxy.connect().await).await, "pooler");
}

/// Connects and authenticates a raw client; returns it after the first ReadyForQuery.
async fn raw_session(proxy: &Proxy) -> tokio::net::TcpStream {
    let mut s = raw::connect(proxy.addr).await;
    send(&mut s, &startup(&[("user", "app"), ("database", "app")])).await;
    let greeting = read_until(&mut s, b'Z').await;
    assert_eq!(greeting.last().map(|m| m.0), Some(b'Z'), "{greeting:?}");
    s
}

#[tokio::test]
async fn garbage_bytes_get_a_protocol_error_and_a_close() {
    let proxy = proxy().await;
    let mut s = raw::connect(proxy.addr).await;
    send(
        &mut s,
        &[
            0x00, 0x00, 0x00, 0x30, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
            13, 14, 15, 16,
        ],
    )
    .await;
    // Length 48 but only 20 body bytes: the packet never completes, so the handshake times out.
    assert!(
        closed_within(&mut s, CLOSE_WITHIN).await,
        "a stalled handshake must be closed"
    );
    let mut s = raw::connect(proxy.addr).await;
    send(
        &mut s,
        &[
            0x00, 0x00, 0x00, 0x10, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8,
        ],
    )
    .await;
    let reply = read_until(&mut s, b'E').await;
    assert_eq!(
        reply.last().map(|(t, b)| (*t, sqlstate(b))),
        Some((b'E', "0A000".into())),
        "{reply:?}"
    );
    assert!(closed_within(&mut s, CLOSE_WITHIN).await);
    still_serves(&proxy).await;
    proxy.stop().await;
}

#[tokio::test]
async fn absurd_startup_length_is_refused_without_allocating() {
    let proxy = proxy().await;
    let mut s = raw::connect(proxy.addr).await;
    send(&mut s, &[0x7f, 0xff, 0xff, 0xff]).await;
    let reply = read_until(&mut s, b'E').await;
    assert_eq!(
        reply.last().map(|(t, b)| (*t, sqlstate(b))),
        Some((b'E', "08P01".into())),
        "{reply:?}"
    );
    assert!(closed_within(&mut s, CLOSE_WITHIN).await);
    still_serves(&proxy).await;
    proxy.stop().await;
}

#[tokio::test]
async fn truncated_startup_packet_is_closed_at_the_handshake_timeout() {
    let proxy = proxy().await;
    let mut s = raw::connect(proxy.addr).await;
    let packet = startup(&[("user", "app")]);
    send(&mut s, &packet[..packet.len() / 2]).await;
    assert!(closed_within(&mut s, CLOSE_WITHIN).await);
    // A client that closes half-way is not a problem either.
    let mut s = raw::connect(proxy.addr).await;
    send(&mut s, &packet[..3]).await;
    drop(s);
    still_serves(&proxy).await;
    proxy.stop().await;
}

#[tokio::test]
async fn http_request_on_the_postgres_port_gets_an_error_and_a_close() {
    let proxy = proxy().await;
    let mut s = raw::connect(proxy.addr).await;
    send(&mut s, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    let reply = read_until(&mut s, b'E').await;
    assert_eq!(
        reply.last().map(|(t, b)| (*t, sqlstate(b))),
        Some((b'E', "08P01".into())),
        "{reply:?}"
    );
    assert!(closed_within(&mut s, CLOSE_WITHIN).await);
    still_serves(&proxy).await;
    proxy.stop().await;
}

#[tokio::test]
async fn unsupported_protocol_version_gets_0a000() {
    let proxy = proxy().await;
    let mut s = raw::connect(proxy.addr).await;
    let mut packet = startup(&[("user", "app")]);
    packet[4..8].copy_from_slice(&(2i32 << 16).to_be_bytes());
    send(&mut s, &packet).await;
    let reply = read_until(&mut s, b'E').await;
    assert_eq!(
        reply.last().map(|(t, b)| (*t, sqlstate(b))),
        Some((b'E', "0A000".into())),
        "{reply:?}"
    );
    still_serves(&proxy).await;
    proxy.stop().await;
}

#[tokio::test]
async fn frame_length_below_four_after_startup_gets_08p01() {
    let proxy = proxy().await;
    let mut s = raw_session(&proxy).await;
    send(&mut s, &[b'Q', 0, 0, 0, 3]).await;
    let reply = read_until(&mut s, b'E').await;
    assert_eq!(
        reply.last().map(|(t, b)| (*t, sqlstate(b))),
        Some((b'E', "08P01".into())),
        "{reply:?}"
    );
    assert!(closed_within(&mut s, CLOSE_WITHIN).await);
    still_serves(&proxy).await;
    proxy.stop().await;
}

#[tokio::test]
async fn frame_larger_than_the_limit_gets_54000_without_buffering_it() {
    let proxy = proxy().await;
    let mut s = raw_session(&proxy).await;
    send(&mut s, &[b'Q', 0x7f, 0xff, 0xff, 0xff]).await;
    let reply = read_until(&mut s, b'E').await;
    assert_eq!(
        reply.last().map(|(t, b)| (*t, sqlstate(b))),
        Some((b'E', "54000".into())),
        "{reply:?}"
    );
    assert!(closed_within(&mut s, CLOSE_WITHIN).await);
    still_serves(&proxy).await;
    proxy.stop().await;
}

#[tokio::test]
async fn raw_session_simple_query_round_trips() {
    let proxy = proxy().await;
    let mut s = raw_session(&proxy).await;
    send(&mut s, &message(b'Q', b"select current_user\0")).await;
    let reply = read_until(&mut s, b'Z').await;
    let tags: Vec<u8> = reply.iter().map(|m| m.0).collect();
    assert_eq!(tags, b"TDCZ", "{reply:?}");
    assert!(reply[1].1.ends_with(b"pooler"), "{reply:?}");
    send(&mut s, &message(b'X', b"")).await;
    assert!(closed_within(&mut s, CLOSE_WITHIN).await);
    proxy.stop().await;
}
