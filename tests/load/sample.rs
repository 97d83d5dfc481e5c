//! Samples one running lockroute from outside: RSS (`/proc/PID/status`), open descriptors
//! (`/proc/PID/fd`), and its own gauges from `/metrics` (clients, tokio tasks).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// How often the sampler looks during a round.
const EVERY: Duration = Duration::from_millis(200);

/// One look at the process. As a peak, each field is the largest value seen.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    pub rss_kib: u64,
    pub fds: usize,
    pub tasks: usize,
    pub clients: f64,
}

pub type Peak = Figures;

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rss {:.1} MiB, fds {}, tasks {}, clients {}",
            self.rss_kib as f64 / 1024.0,
            self.fds,
            self.tasks,
            self.clients
        )
    }
}

impl Figures {
    pub async fn take(pid: u32, admin_port: u16) -> Figures {
        let body = metrics_body(admin_port).await;
        Figures {
            rss_kib: rss_kib(pid),
            fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .count(),
            tasks: gauge(&body, "lockroute_runtime_tasks") as usize,
            clients: gauge(&body, "lockroute_client_connections"),
        }
    }

    fn max(self, other: Figures) -> Figures {
        Figures {
            rss_kib: self.rss_kib.max(other.rss_kib),
            fds: self.fds.max(other.fds),
            tasks: self.tasks.max(other.tasks),
            clients: self.clients.max(other.clients),
        }
    }
}

/// Samples every [`EVERY`] until stopped; keeps the peak of each figure.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Peak>,
}

impl Sampler {
    pub fn start(pid: u32, admin_port: u16) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = Figures::default();
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(Figures::take(pid, admin_port).await);
                tokio::time::sleep(EVERY).await;
            }
            peak
        });
        Sampler { stop, task }
    }

    pub async fn stop(self) -> Peak {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// Polls (bounded by `within`) until no client is left and descriptors and tasks are back
/// within the given slack of `idle`; returns the last look, settled or not, for the caller's
/// assertions to judge.
pub async fn settle(
    pid: u32,
    admin_port: u16,
    idle: &Figures,
    (fd_slack, task_slack): (usize, usize),
    within: Duration,
) -> Figures {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = Figures::take(pid, admin_port).await;
        let settled = now.clients == 0.0
            && now.fds <= idle.fds + fd_slack
            && now.tasks <= idle.tasks + task_slack;
        if settled || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Waits until at least `clients` are connected, or `within` has passed (pgbench's own report
/// then says what went wrong).
pub async fn wait_for_clients(admin_port: u16, clients: u32, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if metric(admin_port, "lockroute_client_connections").await >= f64::from(clients) {
            return;
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// The value of one series in lockroute's `/metrics`.
pub async fn metric(admin_port: u16, series: &str) -> f64 {
    gauge(&metrics_body(admin_port).await, series)
}

fn gauge(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or_else(|| panic!("{series} not in /metrics"))
}

async fn metrics_body(admin_port: u16) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", admin_port))
        .await
        .expect("admin port answers");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}
