//! Tests for `admin`.
use super::*;

#[test]
#[rustfmt::skip] // one case per line reads as a table
fn route_request_line_table() {
    let table: &[(&[u8], Route)] = &[
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*", Route::Metrics),
        (b"GET /healthz HTTP/1.1", Route::Healthz),
        (b"GET /readyz HTTP/1.0\nHost: x", Route::Readyz),
        (b"GET /readyz?verbose=1 HTTP/1.1", Route::Readyz),
        (b"GET / HTTP/1.1", Route::NotFound),
        (b"GET /metrics/ HTTP/1.1", Route::NotFound),
        (b"GET /METRICS HTTP/1.1", Route::NotFound),
        (b"POST /metrics HTTP/1.1", Route::MethodNotAllowed("GET")),
        (b"GET /config HTTP/1.1", Route::Config),
        (b"POST /reload HTTP/1.1", Route::Reload),
        (b"GET /reload HTTP/1.1", Route::MethodNotAllowed("POST")),
        (b"POST /config HTTP/1.1", Route::MethodNotAllowed("GET")),
        (b"HEAD /healthz HTTP/1.1", Route::MethodNotAllowed("GET")),
        (b"get /healthz HTTP/1.1", Route::MethodNotAllowed("GET")),
        (b"", Route::BadRequest),
        (b"GET", Route::BadRequest),
        (b"GET /healthz", Route::BadRequest),
        (b"GET /healthz HTTP/2.0", Route::BadRequest),
        (b"GET  /healthz HTTP/1.1", Route::BadRequest),
        (b"GET /healthz HTTP/1.1 extra", Route::BadRequest),
        (b"GET http://x/healthz HTTP/1.1", Route::BadRequest),
        (b"G\xffT /healthz HTTP/1.1", Route::BadRequest),
        (b"GET /\xff HTTP/1.1", Route::BadRequest),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", Route::BadRequest),
    ];
    for &(head, expected) in table {
        assert_eq!(route(head), expected, "{:?}", String::from_utf8_lossy(head));
    }
}

#[tokio::test]
async fn metrics_route_reports_alive_runtime_tasks() {
    let state = AdminState {
        metrics: crate::metrics::install(),
        draining: Arc::new(AtomicBool::new(false)),
        pooler: PoolerProbe::new("127.0.0.1".to_owned(), 9),
        control: None,
    };
    let alive = |body: &str| -> usize {
        body.lines()
            .find_map(|l| l.strip_prefix("lockroute_runtime_tasks "))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no lockroute_runtime_tasks in:\n{body}"))
    };
    let before = alive(&respond(Route::Metrics, &state).await.body);
    let stop = CancellationToken::new();
    let parked: Vec<_> = (0..5)
        .map(|_| tokio::spawn(stop.clone().cancelled_owned()))
        .collect();
    assert_eq!(
        alive(&respond(Route::Metrics, &state).await.body),
        before + 5
    );
    stop.cancel();
    for task in parked {
        task.await.unwrap();
    }
    assert_eq!(alive(&respond(Route::Metrics, &state).await.body), before);
}

#[test]
#[rustfmt::skip]
fn head_end_finds_first_blank_line() {
    let table: &[(&[u8], Option<usize>)] = &[
        (b"GET / HTTP/1.1\r\n\r\n", Some(14)),
        (b"GET / HTTP/1.1\n\n", Some(14)),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody\r\n\r\n", Some(23)),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", None),
        (b"", None),
    ];
    for &(buf, expected) in table {
        assert_eq!(head_end(buf), expected, "{:?}", String::from_utf8_lossy(buf));
    }
}
