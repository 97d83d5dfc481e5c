//! Admin server: `/metrics`, `/healthz`, `/readyz`, `GET /config` and `POST /reload`, on their
//! own listener, apart from the data plane (the linkerd2-proxy shape, STYLE.md).
//!
//! `POST /reload` does what SIGHUP does: it re-reads `--control-file`. It takes no input, so a
//! caller can only make lockroute apply the file the operator mounted, never choose settings;
//! whoever can reach the admin listener may call it (loopback by default).
//!
//! This is a deliberately small HTTP/1.1 server on tokio rather than hyper: three GET routes,
//! one response per connection (`Connection: close`), no request bodies. Everything a peer sends
//! is bounded: the request head to [`MAX_HEAD`] bytes and [`HEAD_TIMEOUT`], the number of open
//! admin connections to [`MAX_CONNECTIONS`]. Malformed input gets a 400, never a panic.
//!
//! Readiness (`/readyz`) is 503 while draining, and while the pooler cannot be connected: without
//! the pooler no client can start, since each client's pooler upstream opens at startup. The
//! direct lane does not count: when it is down, units fall back to the pooler (DESIGN.md,
//! Routing), so the pod can still serve. The pooler check is a TCP connect, cached, so that a
//! scrape storm cannot hammer the pooler.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

/// The largest request head read. Real probes and scrapers send a few hundred bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a peer may take to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing a response may take; a `/metrics` body is tens of KiB.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// After responding, read and discard what the peer still sends, for at most this long and this
/// many bytes, so that closing a socket with unread data (which makes the kernel send RST) does
/// not destroy the response before the peer reads it (RFC 9112 §9.6).
const LINGER_TIMEOUT: Duration = Duration::from_secs(1);
const LINGER_MAX: usize = 1024 * 1024;
/// Open admin connections at most; more are closed at once. Scrapers and probes use one or two.
pub const MAX_CONNECTIONS: usize = 64;
/// Pause after a failed accept (for example EMFILE), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connect timeout of the pooler probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a probe result is reused.
pub const PROBE_TTL: Duration = Duration::from_secs(2);

/// Why an admin connection ended early. Logged at debug: a scraper that goes away is not news.
#[derive(Debug, thiserror::Error)]
enum AdminError {
    #[error("admin connection i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("admin peer did not send a request head within {HEAD_TIMEOUT:?}")]
    HeadTimeout,
    #[error("admin response not written within {WRITE_TIMEOUT:?}")]
    WriteTimeout,
}

/// What the admin server needs to answer.
#[derive(Debug)]
pub struct AdminState {
    pub metrics: PrometheusHandle,
    /// Set by the app at the first shutdown signal; `/readyz` turns 503 at once.
    pub draining: Arc<AtomicBool>,
    pub pooler: PoolerProbe,
    /// `GET /config` and `POST /reload`; `None` in tests that run the admin server alone.
    pub control: Option<Arc<crate::control::Control>>,
}

/// The answer of `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Draining,
    PoolerUnreachable,
}

impl Readiness {
    /// The response body: one word.
    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::Ready => "ready",
            Readiness::Draining => "draining",
            Readiness::PoolerUnreachable => "pooler_unreachable",
        }
    }
}

impl AdminState {
    /// Draining wins over the pooler check, and skips it.
    pub async fn readiness(&self) -> Readiness {
        if self.draining.load(Ordering::Acquire) {
            Readiness::Draining
        } else if !self.pooler.check().await {
            Readiness::PoolerUnreachable
        } else {
            Readiness::Ready
        }
    }

    /// Starts the drain as far as the admin side goes: `/readyz` and `lockroute_draining`.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
        crate::metrics::set_draining(true);
    }
}

/// A cached TCP connect probe of the pooler. The connection is closed at once; it proves the
/// pooler accepts connections, not that auth works (that would cost a server-side login).
#[derive(Debug)]
pub struct PoolerProbe {
    host: String,
    port: u16,
    timeout: Duration,
    ttl: Duration,
    /// The last result and when it was taken. A tokio mutex, held across the connect, so that
    /// concurrent checks wait for one probe instead of each opening a socket.
    last: Mutex<Option<(Instant, bool)>>,
}

impl PoolerProbe {
    /// A probe with [`PROBE_TIMEOUT`] and [`PROBE_TTL`].
    pub fn new(host: String, port: u16) -> Self {
        Self::with_timing(host, port, PROBE_TIMEOUT, PROBE_TTL)
    }

    pub fn with_timing(host: String, port: u16, timeout: Duration, ttl: Duration) -> Self {
        let last = Mutex::new(None);
        PoolerProbe {
            host,
            port,
            timeout,
            ttl,
            last,
        }
    }

    /// Whether the pooler accepted a TCP connection within the timeout, at most `ttl` ago.
    pub async fn check(&self) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < self.ttl
        {
            return ok;
        }
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let ok = matches!(timeout(self.timeout, connect).await, Ok(Ok(_)));
        *last = Some((Instant::now(), ok));
        ok
    }
}

/// Serves admin connections from `listener` until `shutdown` is cancelled. Each connection runs
/// in its own task. The app cancels `shutdown` only at the very end of a drain, so that `/readyz`
/// keeps answering 503 while clients finish.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    tracing::debug!("admin connection limit reached; closing a new connection");
                    continue;
                };
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    if let Err(e) = handle_connection(stream, &state).await {
                        tracing::debug!(error = %e, "admin connection ended early");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
}

async fn handle_connection(mut stream: TcpStream, state: &AdminState) -> Result<(), AdminError> {
    let head = match timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Err(AdminError::HeadTimeout),
    };
    let response = match head {
        // The peer connected and closed without a byte: a TCP probe. Nothing to answer.
        Head::Empty => return Ok(()),
        Head::Complete(head) => respond(route(&head), state).await,
        Head::Malformed => Response::text(400, "bad request"),
    };
    match timeout(WRITE_TIMEOUT, write_response(&mut stream, &response)).await {
        Ok(written) => written?,
        Err(_) => return Err(AdminError::WriteTimeout),
    }
    // Best effort: a peer that never closes costs LINGER_TIMEOUT, then we close anyway.
    let _ = timeout(LINGER_TIMEOUT, linger(&mut stream)).await;
    Ok(())
}

/// What the peer sent before the blank line that ends a request head.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    Empty,
    /// The head, without its terminating blank line.
    Complete(Vec<u8>),
    /// Closed mid-head, or no blank line within [`MAX_HEAD`] bytes.
    Malformed,
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Head> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut filled = 0;
    loop {
        if let Some(end) = head_end(&buf[..filled]) {
            buf.truncate(end);
            return Ok(Head::Complete(buf));
        }
        if filled == MAX_HEAD {
            return Ok(Head::Malformed);
        }
        match stream.read(&mut buf[filled..]).await? {
            0 if filled == 0 => return Ok(Head::Empty),
            0 => return Ok(Head::Malformed),
            n => filled += n,
        }
    }
}

/// Where the head ends: the first blank line. HTTP says CRLF; a bare LF is accepted too, as
/// RFC 9112 §2.2 allows, so that `printf 'GET /healthz\n\n' | nc` works.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The answer a request head asks for. Pure, so it is table-tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metrics,
    Healthz,
    Readyz,
    Config,
    Reload,
    NotFound,
    MethodNotAllowed(&'static str),
    BadRequest,
}

/// Routes on the request line alone (`GET /path HTTP/1.1`); headers are not needed.
fn route(head: &[u8]) -> Route {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = &head[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::BadRequest;
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    let method_ok = !method.is_empty() && method.bytes().all(|b| b.is_ascii_alphabetic());
    if !method_ok || !target.starts_with('/') || !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Route::BadRequest;
    }
    let path = target.split_once('?').map_or(target, |(path, _query)| path);
    let (allowed, found) = match path {
        "/metrics" => ("GET", Route::Metrics),
        "/healthz" => ("GET", Route::Healthz),
        "/readyz" => ("GET", Route::Readyz),
        "/config" => ("GET", Route::Config),
        "/reload" => ("POST", Route::Reload),
        _ => return Route::NotFound,
    };
    if method == allowed {
        found
    } else {
        Route::MethodNotAllowed(allowed)
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
    /// The method a 405 names in `Allow`.
    allow: &'static str,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        let content_type = "text/plain; charset=utf-8";
        Response {
            status,
            content_type,
            body: body.to_owned(),
            allow: "GET",
        }
    }
}

async fn respond(route: Route, state: &AdminState) -> Response {
    match route {
        Route::Metrics => {
            // The runtime's own count, not a gauge kept by hand: a task that outlives its client
            // shows here even if it was spawned by code that knows nothing of metrics.
            let alive = tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks();
            crate::metrics::set_runtime_tasks(alive);
            Response {
                status: 200,
                // The Prometheus text exposition format, version 0.0.4.
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: state.metrics.render(),
                allow: "GET",
            }
        }
        Route::Healthz => Response::text(200, "ok"),
        Route::Readyz => {
            let readiness = state.readiness().await;
            let status = if readiness == Readiness::Ready {
                200
            } else {
                503
            };
            Response::text(status, readiness.as_str())
        }
        Route::Config => match &state.control {
            Some(control) => Response {
                status: 200,
                content_type: "application/json",
                body: control.to_json(),
                allow: "GET",
            },
            None => Response::text(404, "not found"),
        },
        Route::Reload => reload(state).await,
        Route::NotFound => Response::text(404, "not found"),
        Route::MethodNotAllowed(allow) => Response {
            allow,
            ..Response::text(405, "method not allowed")
        },
        Route::BadRequest => Response::text(400, "bad request"),
    }
}

/// `POST /reload`: 200 when the file was applied, 422 with the one-line reason when it was
/// refused (the old settings keep serving), 409 without a control file.
async fn reload(state: &AdminState) -> Response {
    use crate::control::{ReloadError, Trigger};
    let Some(control) = &state.control else {
        return Response::text(404, "not found");
    };
    match control.reload(Trigger::Admin).await {
        Ok(live) => Response::text(200, &format!("reloaded: mode={}\n", live.mode.as_str())),
        Err(e @ ReloadError::NoControlFile) => Response::text(409, &format!("{e}\n")),
        Err(e) => Response::text(422, &format!("refused: {e}\n")),
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        422 => "Unprocessable Content",
        503 => "Service Unavailable",
        _ => "",
    }
}

async fn write_response(stream: &mut TcpStream, response: &Response) -> std::io::Result<()> {
    let allow = if response.status == 405 {
        format!("Allow: {}\r\n", response.allow)
    } else {
        String::new()
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        response.status,
        reason_phrase(response.status),
        response.content_type,
        response.body.len(),
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(response.body.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads and discards until the peer closes, or [`LINGER_MAX`] bytes.
async fn linger(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut sink = [0u8; 4096];
    let mut discarded = 0;
    while discarded < LINGER_MAX {
        match stream.read(&mut sink).await? {
            0 => break,
            n => discarded += n,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
