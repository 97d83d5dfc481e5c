//! An in-process lockroute for tests: real config parsing, listeners bound on ephemeral ports
//! and handed to `app::run`, and a shutdown the test owns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lockroute::app::{self, AppError, Shutdown};
use lockroute::config::Config;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub shutdown: Shutdown,
    task: JoinHandle<Result<(), AppError>>,
}

/// Options for one proxy: the upstream URLs and any extra flags or kill-switch variables.
pub struct ProxyOptions<'a> {
    pub pooler_url: &'a str,
    pub direct_url: &'a str,
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
}

impl Proxy {
    /// A proxy in front of the shared stand-in with extra flags.
    pub async fn start(args: &[&str]) -> Proxy {
        let s = super::StandIn::shared();
        Proxy::start_with(ProxyOptions {
            pooler_url: &s.pooler_url,
            direct_url: &s.direct_url,
            args,
            env: &[],
        })
        .await
    }

    /// A proxy in front of another pooler (a test's private PgBouncer) and the shared
    /// stand-in's PostgreSQL, with no extra flags.
    pub async fn in_front_of(pooler_url: &str) -> Proxy {
        Proxy::start_with(ProxyOptions {
            pooler_url,
            direct_url: &super::StandIn::shared().direct_url,
            args: &[],
            env: &[],
        })
        .await
    }

    pub async fn start_with(options: ProxyOptions<'_>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, admin_addr) = (listener.local_addr().unwrap(), admin.local_addr().unwrap());
        let mut argv = vec![
            "lockroute".to_owned(),
            "--pooler-url".to_owned(),
            options.pooler_url.to_owned(),
            "--direct-url".to_owned(),
            options.direct_url.to_owned(),
            "--listen".to_owned(),
            addr.to_string(),
            "--admin-listen".to_owned(),
            admin_addr.to_string(),
        ];
        argv.extend(options.args.iter().map(|a| a.to_string()));
        let env: Vec<(String, String)> = options
            .env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::from_args(argv, &|key: &str| {
            env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|e| panic!("test config is invalid: {e}"));
        let shutdown = Shutdown::default();
        let task = tokio::spawn(app::run(
            Arc::new(config),
            listener,
            admin,
            shutdown.clone(),
        ));
        Proxy {
            addr,
            admin: admin_addr,
            shutdown,
            task,
        }
    }

    /// A client URL for this proxy, with the stand-in's client credentials.
    pub fn url(&self) -> String {
        format!(
            "postgres://app:app-secret@127.0.0.1:{}/app?sslmode=disable",
            self.addr.port()
        )
    }

    /// The same with extra URL parameters, e.g. `application_name=...`.
    pub fn url_with(&self, query: &str) -> String {
        format!("{}&{query}", self.url())
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        super::pg_connect(&self.url()).await
    }

    /// Stops the proxy: starts the drain, gives in-flight work (a forwarded CancelRequest, a
    /// closing client) half a second to finish, then aborts. Tearing down a cancel that is
    /// still being forwarded crashes PgBouncer 1.18 ("bad client state: 0"); the drain itself
    /// is tested on the real binary.
    pub async fn stop(mut self) {
        self.shutdown.drain.cancel();
        if let Ok(result) = tokio::time::timeout(Duration::from_millis(500), &mut self.task).await {
            return result.expect("app::run panicked").expect("app::run failed");
        }
        self.shutdown.abort.cancel();
        self.task
            .await
            .expect("app::run panicked")
            .expect("app::run failed");
    }

    /// `GET path` on the admin listener: status code and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.admin).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// The value of one series in `/metrics`, e.g. `lockroute_routed_total{lane="direct",reason="pattern"}`.
    /// Label order must match the exporter's (alphabetical as registered).
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.admin_get("/metrics").await;
        body.lines()
            .find_map(|line| {
                line.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("series {series} not in /metrics:\n{body}"))
    }
}

/// Waits (bounded) until some backend is running `query`, as PostgreSQL itself reports it.
pub async fn wait_for_activity(super_url: &str, query: &str) {
    let observer = super::pg_connect(super_url).await;
    for _ in 0..200 {
        let rows = observer
            .query(
                "select 1 from pg_stat_activity where state = 'active' and query = $1",
                &[&query],
            )
            .await
            .unwrap();
        if !rows.is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no backend started running {query:?} within 5s");
}

/// A raw protocol client for the corners real drivers never produce.
pub mod raw {
    use bytes::{BufMut, BytesMut};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub async fn connect(addr: std::net::SocketAddr) -> TcpStream {
        TcpStream::connect(addr).await.unwrap()
    }

    /// A StartupMessage for protocol 3.0.
    pub fn startup(params: &[(&str, &str)]) -> Vec<u8> {
        let mut body = BytesMut::new();
        body.put_i32(196608);
        for (k, v) in params {
            body.put_slice(k.as_bytes());
            body.put_u8(0);
            body.put_slice(v.as_bytes());
            body.put_u8(0);
        }
        body.put_u8(0);
        let mut out = Vec::with_capacity(body.len() + 4);
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// One frontend message.
    pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// Reads backend messages until `stop_tag` (inclusive) or EOF. Returns (tag, body) pairs.
    pub async fn read_until(s: &mut TcpStream, stop_tag: u8) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            let mut header = [0u8; 5];
            if s.read_exact(&mut header).await.is_err() {
                return out;
            }
            let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
            let mut body = vec![0u8; len.saturating_sub(4)];
            if s.read_exact(&mut body).await.is_err() {
                return out;
            }
            out.push((header[0], body));
            if header[0] == stop_tag {
                return out;
            }
        }
    }

    /// The SQLSTATE of an ErrorResponse body.
    pub fn sqlstate(body: &[u8]) -> String {
        let mut fields = body.split(|&b| b == 0);
        fields
            .find_map(|f| f.strip_prefix(b"C"))
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .unwrap_or_default()
    }

    /// Whether the peer closed: a read returns EOF (or a reset) within the timeout.
    pub async fn closed_within(s: &mut TcpStream, timeout: std::time::Duration) -> bool {
        let mut buf = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }

    pub async fn send(s: &mut TcpStream, bytes: &[u8]) {
        s.write_all(bytes).await.unwrap();
    }
}

/// Connects with tokio-postgres and expects the login to fail; returns the error.
pub async fn connect_err(url: &str) -> tokio_postgres::Error {
    match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        Ok(_) => panic!("connecting to {} must fail", super::redact(url)),
        Err(e) => e,
    }
}
