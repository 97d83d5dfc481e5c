//! The admin server over real loopback sockets: routes, readiness, and hostile input.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use lockroute::admin::{self, AdminState, PoolerProbe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Bounds a test that would otherwise hang on a bug; never used to wait for progress.
const GUARD: Duration = Duration::from_secs(20);

struct Admin {
    addr: SocketAddr,
    state: Arc<AdminState>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// An admin server whose pooler probe points at `pooler_port`, with every metric registered on
/// a recorder of its own.
async fn start(pooler_port: u16) -> Admin {
    let recorder = lockroute::metrics::recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, lockroute::metrics::register_all);
    let state = Arc::new(AdminState {
        metrics: handle,
        draining: Arc::new(AtomicBool::new(false)),
        pooler: PoolerProbe::new("127.0.0.1".to_owned(), pooler_port),
        control: None,
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(admin::serve(listener, Arc::clone(&state), shutdown.clone()));
    Admin {
        addr,
        state,
        shutdown,
        task,
    }
}

/// A port that was free a moment ago and has nothing listening on it now.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Sends `request` as is, half-closes, and reads the whole response (the server closes after
/// one).
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let run = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8(response).unwrap()
    };
    tokio::time::timeout(GUARD, run)
        .await
        .expect("admin server hung")
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    exchange(addr, request.as_bytes()).await
}

fn status(response: &str) -> u16 {
    let code = response.split(' ').nth(1).unwrap_or_default();
    code.parse()
        .unwrap_or_else(|_| panic!("no status in {response:?}"))
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

#[tokio::test]
async fn healthz_returns_200_ok() {
    let admin = start(closed_port().await).await;
    let response = get(admin.addr, "/healthz").await;
    assert_eq!(status(&response), 200);
    assert_eq!(body(&response), "ok");
    assert!(response.contains("Connection: close\r\n"), "{response}");
}

#[tokio::test]
async fn readyz_live_pooler_returns_200_ready() {
    let pooler = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = start(pooler.local_addr().unwrap().port()).await;
    let response = get(admin.addr, "/readyz").await;
    assert_eq!((status(&response), body(&response)), (200, "ready"));
}

#[tokio::test]
async fn readyz_closed_pooler_returns_503_pooler_unreachable() {
    let admin = start(closed_port().await).await;
    let response = get(admin.addr, "/readyz").await;
    assert_eq!(
        (status(&response), body(&response)),
        (503, "pooler_unreachable")
    );
}

#[tokio::test]
async fn readyz_draining_returns_503_draining() {
    let pooler = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = start(pooler.local_addr().unwrap().port()).await;
    admin.state.begin_drain();
    let response = get(admin.addr, "/readyz").await;
    assert_eq!((status(&response), body(&response)), (503, "draining"));
    // Liveness is not readiness: the process is still healthy while it drains.
    assert_eq!(status(&get(admin.addr, "/healthz").await), 200);
}

#[tokio::test]
async fn metrics_returns_rendered_exposition_text() {
    let admin = start(closed_port().await).await;
    let response = get(admin.addr, "/metrics?format=text").await;
    assert_eq!(status(&response), 200);
    assert!(
        response.contains("Content-Type: text/plain; version=0.0.4"),
        "{response}"
    );
    for name in lockroute::metrics::ALL_NAMES {
        assert!(body(&response).contains(name), "{name} missing");
    }
    let length = format!("Content-Length: {}\r\n", body(&response).len());
    assert!(response.contains(&length), "{response}");
}

#[tokio::test]
async fn bad_requests_get_their_status_codes() {
    let admin = start(closed_port().await).await;
    let table: &[(&[u8], u16)] = &[
        (b"GET /nope HTTP/1.1\r\n\r\n", 404),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"DELETE /readyz HTTP/1.1\r\n\r\n", 405),
        (b"GET /healthz\r\n\r\n", 400),
        (b"\x00\xff\xfe garbage\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x", 400), // closed before the blank line
    ];
    for &(request, expected) in table {
        let response = exchange(admin.addr, request).await;
        assert_eq!(
            status(&response),
            expected,
            "{:?}",
            String::from_utf8_lossy(request)
        );
    }
    let response = exchange(admin.addr, b"PUT /healthz HTTP/1.1\r\n\r\n").await;
    assert!(response.contains("Allow: GET\r\n"), "{response}");
}

#[tokio::test]
async fn oversized_garbage_gets_400_and_server_survives() {
    let admin = start(closed_port().await).await;
    let mut stream = TcpStream::connect(admin.addr).await.unwrap();
    let (mut read, mut write) = stream.split();
    let garbage = vec![b'x'; 100 * 1024];
    let send = async {
        // The server may stop reading once it has answered; a reset here is not a failure.
        let _ = write.write_all(&garbage).await;
        let _ = write.shutdown().await;
    };
    let mut response = Vec::new();
    let receive = read.read_to_end(&mut response);
    let ((), received) = tokio::time::timeout(GUARD, async { tokio::join!(send, receive) })
        .await
        .expect("admin server hung on oversized input");
    assert!(received.is_ok(), "{received:?}");
    assert!(
        response.starts_with(b"HTTP/1.1 400 "),
        "{:?}",
        String::from_utf8_lossy(&response)
    );
    assert_eq!(status(&get(admin.addr, "/healthz").await), 200);
}

#[tokio::test]
async fn silent_connection_closed_then_server_still_answers() {
    let admin = start(closed_port().await).await;
    let silent = TcpStream::connect(admin.addr).await.unwrap();
    drop(silent);
    assert_eq!(status(&get(admin.addr, "/healthz").await), 200);
}

#[tokio::test]
async fn shutdown_cancelled_stops_accepting() {
    let admin = start(closed_port().await).await;
    assert_eq!(status(&get(admin.addr, "/healthz").await), 200);
    admin.shutdown.cancel();
    let joined = tokio::time::timeout(GUARD, admin.task)
        .await
        .expect("serve kept running");
    assert!(joined.is_ok());
    // serve has returned and dropped its listener: nothing accepts on that port now.
    assert!(TcpStream::connect(admin.addr).await.is_err());
}

#[tokio::test]
async fn pooler_probe_result_cached_for_ttl() {
    let pooler = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = pooler.local_addr().unwrap().port();
    let long = Duration::from_secs(3600);
    let cached = PoolerProbe::with_timing("127.0.0.1".into(), port, admin::PROBE_TIMEOUT, long);
    let fresh = PoolerProbe::with_timing(
        "127.0.0.1".into(),
        port,
        admin::PROBE_TIMEOUT,
        Duration::ZERO,
    );
    assert!(cached.check().await);
    assert!(fresh.check().await);
    drop(pooler);
    assert!(
        cached.check().await,
        "a cached probe must not connect again within its ttl"
    );
    assert!(
        !fresh.check().await,
        "a probe past its ttl must connect again"
    );
}
