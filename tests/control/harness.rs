//! The harness of tests/control.rs: a lockroute binary started with `--control-file`, the
//! three ways of changing that file, its admin port, and the js/renew.mjs fleet.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::process::{Running, free_port, signal};
use crate::common::{StandIn, pg_connect, unique_name};

/// The operator's promise: a change applies within this.
pub const APPLY_WITHIN: Duration = Duration::from_secs(2);

/// How the test changes the control file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Rewrite the file (write a new one, rename it over); the poll finds it.
    Rewrite,
    /// Rewrite it with polling off (`--control-poll-interval 1day`), then SIGHUP.
    Sighup,
    /// A ConfigMap volume: `control.env -> ..data/control.env`, `..data -> ..<version>`, and an
    /// update swaps `..data` atomically.
    ConfigMap,
}

/// The control file and the directory it lives in (removed on drop).
pub struct ControlFile {
    pub dir: PathBuf,
    /// The path lockroute is given.
    pub path: PathBuf,
    pub how: How,
    versions: u32,
}

impl Drop for ControlFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ControlFile {
    pub fn new(how: How, text: &str) -> ControlFile {
        let dir = std::env::temp_dir().join(unique_name("control"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.env");
        let mut file = ControlFile {
            dir,
            path,
            how,
            versions: 0,
        };
        file.write(text);
        file
    }

    /// Puts `text` in the control file the way `how` says, without signalling.
    pub fn write(&mut self, text: &str) {
        self.versions += 1;
        match self.how {
            How::Rewrite | How::Sighup => {
                let tmp = self.dir.join(".control.env.tmp");
                std::fs::write(&tmp, text).unwrap();
                std::fs::rename(&tmp, &self.path).unwrap();
            }
            How::ConfigMap => {
                // What the kubelet does: a new timestamped directory, a new `..data` link
                // renamed over the old one, then the old directory removed.
                let version = format!("..2026_12_02_{}", self.versions);
                std::fs::create_dir(self.dir.join(&version)).unwrap();
                std::fs::write(self.dir.join(&version).join("control.env"), text).unwrap();
                let tmp = self.dir.join("..data_tmp");
                std::os::unix::fs::symlink(&version, &tmp).unwrap();
                std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
                if self.versions == 1 {
                    std::os::unix::fs::symlink("..data/control.env", &self.path).unwrap();
                } else {
                    let old = format!("..2026_12_02_{}", self.versions - 1);
                    std::fs::remove_dir_all(self.dir.join(old)).unwrap();
                }
            }
        }
    }
}

pub struct Harness {
    pub running: Running,
    pub file: ControlFile,
    pub table: String,
}

impl Harness {
    pub async fn start(how: How, text: &str) -> Harness {
        let table = unique_name("renew");
        let direct = pg_connect(&StandIn::shared().direct_url).await;
        direct
            .batch_execute(&format!(
                "create table {table} (id int primary key, lock_until timestamptz);
                 insert into {table} select g, now() from generate_series(1, 8) g"
            ))
            .await
            .unwrap();
        let file = ControlFile::new(how, text);
        let running = spawn_lockroute(&file.path, how, &table)
            .wait_until_ok("/readyz")
            .await;
        Harness {
            running,
            file,
            table,
        }
    }

    /// Changes the control file and, in the SIGHUP case, signals.
    pub fn change(&mut self, text: &str) {
        self.file.write(text);
        if self.file.how == How::Sighup {
            signal(&self.running.child, "HUP");
        }
    }

    pub fn url(&self) -> String {
        format!(
            "postgres://app:app-secret@127.0.0.1:{}/app?sslmode=disable",
            self.running.port
        )
    }

    pub async fn config(&self) -> Value {
        let (status, body) = admin(self.running.admin_port, "GET", "/config").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// Waits until `GET /config` says `mode`, and asserts that it happened within
    /// [`APPLY_WITHIN`] of the change.
    pub async fn wait_mode(&self, mode: &str) -> Value {
        let started = std::time::Instant::now();
        loop {
            let config = self.config().await;
            if config["mode"] == mode {
                return config;
            }
            assert!(
                started.elapsed() < APPLY_WITHIN,
                "mode {mode} not applied within {APPLY_WITHIN:?}: {config}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn metric(&self, series: &str) -> f64 {
        let (_, body) = admin(self.running.admin_port, "GET", "/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{series} not exported"))
    }

    pub fn alive(&mut self) -> bool {
        self.running.child.try_wait().unwrap().is_none()
    }
}

pub fn spawn_lockroute(file: &Path, how: How, table: &str) -> Running {
    let (port, admin_port) = (free_port(), free_port());
    let s = StandIn::shared();
    // With polling off, only SIGHUP can apply a change.
    let poll = if how == How::Sighup { "1day" } else { "500ms" };
    let child = Command::new(env!("CARGO_BIN_EXE_lockroute"))
        .args(["--pooler-url", &s.pooler_url, "--direct-url", &s.direct_url])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .args(["--control-file", &file.display().to_string()])
        .args(["--control-poll-interval", poll])
        .args(["--lock-pattern", &format!("^UPDATE {table} SET lock_until")])
        .env_remove("LOCKROUTE_PASSTHROUGH")
        .env_remove("GBRAIN_DISABLE_DIRECT_POOL")
        .env_remove("LOCKROUTE_MODE")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Running {
        child,
        port,
        admin_port,
    }
}

/// One HTTP/1.1 request to the admin port: the status and the body.
pub async fn admin(port: u16, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
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

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Starts js/renew.mjs; its JSON summary when it ends.
pub fn spawn_fleet(url: &str, table: &str, admin_port: u16) -> tokio::task::JoinHandle<Value> {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js/renew.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(js)
        .env("DATABASE_URL", url)
        .env("TABLE", table)
        .env("ADMIN", format!("127.0.0.1:{admin_port}"))
        .env("SECONDS", "13")
        .env("EVERY_MS", "200")
        .env("WORKERS", "3")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    tokio::task::spawn_blocking(move || {
        let out = cmd.output().expect("node runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("fleet summary: {e}: {stdout}"))
    })
}

/// The roles that ran the renewals started in `[from, to)` (epoch ms).
pub fn roles(summary: &Value, from: u64, to: u64) -> Vec<String> {
    summary["renewals"]
        .as_array()
        .expect("renewals")
        .iter()
        .filter(|r| (from..to).contains(&r[0].as_u64().unwrap()))
        .map(|r| r[1].as_str().unwrap().to_owned())
        .collect()
}

pub fn assert_all(roles: &[String], role: &str, phase: &str) {
    assert!(roles.len() >= 10, "{phase}: too few renewals: {roles:?}");
    assert!(
        roles.iter().all(|r| r == role),
        "{phase}: expected every renewal as {role}: {roles:?}"
    );
}
