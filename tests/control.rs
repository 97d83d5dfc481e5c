//! The live kill switch on the real binary: `--control-file` flipped by a rewrite, by SIGHUP
//! alone, and by a Kubernetes ConfigMap's atomic symlink swap, under a postgres.js fleet that
//! renews leases every 200 ms (js/renew.mjs). Every renewal returns the `current_user` that ran
//! it: `app` on the direct lane, `pooler` through PgBouncer.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::process::{Running, free_port, http_status, signal};
use common::{StandIn, pg_connect, unique_name};

const DIRECT_ROLE: &str = "app";
const POOLER_ROLE: &str = "pooler";
/// The operator's promise: a change applies within this.
const APPLY_WITHIN: Duration = Duration::from_secs(2);

/// How the test changes the control file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    /// Rewrite the file (write a new one, rename it over); the poll finds it.
    Rewrite,
    /// Rewrite it with polling off (`--control-poll-interval 1day`), then SIGHUP.
    Sighup,
    /// A ConfigMap volume: `control.env -> ..data/control.env`, `..data -> ..<version>`, and an
    /// update swaps `..data` atomically.
    ConfigMap,
}

/// The control file and the directory it lives in (removed on drop).
struct ControlFile {
    dir: PathBuf,
    /// The path lockroute is given.
    path: PathBuf,
    how: How,
    versions: u32,
}

impl Drop for ControlFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ControlFile {
    fn new(how: How, text: &str) -> ControlFile {
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
    fn write(&mut self, text: &str) {
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

struct Harness {
    running: Running,
    file: ControlFile,
    table: String,
}

impl Harness {
    async fn start(how: How, text: &str) -> Harness {
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
    fn change(&mut self, text: &str) {
        self.file.write(text);
        if self.file.how == How::Sighup {
            signal(&self.running.child, "HUP");
        }
    }

    fn url(&self) -> String {
        format!(
            "postgres://app:app-secret@127.0.0.1:{}/app?sslmode=disable",
            self.running.port
        )
    }

    async fn config(&self) -> Value {
        let (status, body) = admin(self.running.admin_port, "GET", "/config").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// Waits until `GET /config` says `mode`, and asserts that it happened within
    /// [`APPLY_WITHIN`] of the change.
    async fn wait_mode(&self, mode: &str) -> Value {
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

    async fn metric(&self, series: &str) -> f64 {
        let (_, body) = admin(self.running.admin_port, "GET", "/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{series} not exported"))
    }

    fn alive(&mut self) -> bool {
        self.running.child.try_wait().unwrap().is_none()
    }
}

fn spawn_lockroute(file: &Path, how: How, table: &str) -> Running {
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
async fn admin(port: u16, method: &str, path: &str) -> (u16, String) {
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Starts js/renew.mjs; its JSON summary when it ends.
fn spawn_fleet(url: &str, table: &str, admin_port: u16) -> tokio::task::JoinHandle<Value> {
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
fn roles(summary: &Value, from: u64, to: u64) -> Vec<String> {
    summary["renewals"]
        .as_array()
        .expect("renewals")
        .iter()
        .filter(|r| (from..to).contains(&r[0].as_u64().unwrap()))
        .map(|r| r[1].as_str().unwrap().to_owned())
        .collect()
}

fn assert_all(roles: &[String], role: &str, phase: &str) {
    assert!(roles.len() >= 10, "{phase}: too few renewals: {roles:?}");
    assert!(
        roles.iter().all(|r| r == role),
        "{phase}: expected every renewal as {role}: {roles:?}"
    );
}

/// At 4 s the file turns the kill switch on, at 8 s the line is removed. Renewals run direct,
/// then on the pooler, then direct again; no error, no reconnect, the same process.
async fn flip_and_back(how: How) {
    let mut h = Harness::start(how, "# lockroute control file\n").await;
    let pid = h.running.child.id();
    let started = now_ms();
    let fleet = spawn_fleet(&h.url(), &h.table, h.running.admin_port);

    tokio::time::sleep(Duration::from_secs(4)).await;
    let on = now_ms();
    h.change("# incident: spare the direct endpoint\nLOCKROUTE_PASSTHROUGH=1\n");
    let config = h.wait_mode("passthrough").await;
    assert_eq!(config["mode_source"], "LOCKROUTE_PASSTHROUGH", "{config}");
    assert_eq!(
        config["settings"]["mode"]["source"], "control-file",
        "{config}"
    );

    tokio::time::sleep(Duration::from_millis(
        (started + 8000).saturating_sub(now_ms()),
    ))
    .await;
    let off = now_ms();
    h.change("# lockroute control file\n");
    let config = h.wait_mode("split").await;
    assert_eq!(config["settings"]["mode"]["source"], "default", "{config}");

    let summary = fleet.await.unwrap();
    assert_eq!(
        summary["errors"],
        serde_json::json!({}),
        "client errors: {summary}"
    );
    let opened = summary["client_connections_total"].as_f64().unwrap();
    assert!(opened >= 1.0, "{summary}");
    assert_eq!(
        opened,
        summary["client_connections"].as_f64().unwrap(),
        "a client connection closed during the run (a reconnect)"
    );
    // A renewal started just before a change may be decided just after it.
    let margin = 250;
    let apply = APPLY_WITHIN.as_millis() as u64;
    assert_all(&roles(&summary, 0, on - margin), DIRECT_ROLE, "before");
    assert_all(
        &roles(&summary, on + apply, off - margin),
        POOLER_ROLE,
        "passthrough",
    );
    assert_all(
        &roles(&summary, off + apply, u64::MAX),
        DIRECT_ROLE,
        "after",
    );

    assert!(h.alive(), "lockroute exited");
    assert_eq!(h.running.child.id(), pid);
    assert_eq!(
        h.metric("lockroute_config_reloads_total{result=\"ok\"}")
            .await,
        2.0
    );
    assert_eq!(
        h.metric("lockroute_config_reloads_total{result=\"error\"}")
            .await,
        0.0
    );
    assert_eq!(h.metric("lockroute_mode{mode=\"split\"}").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_file_rewrite_flips_fleet_to_pooler_and_back_without_reconnects() {
    flip_and_back(How::Rewrite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_alone_flips_fleet_to_pooler_and_back_without_reconnects() {
    flip_and_back(How::Sighup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_symlink_swap_flips_fleet_to_pooler_and_back_without_reconnects() {
    flip_and_back(How::ConfigMap).await;
}

/// A file with an unclosed regex is refused as a whole; split keeps routing, the error counter
/// moves, `/readyz` stays 200. `POST /reload` names the bad entry, then applies a good file.
#[tokio::test]
async fn unclosed_regex_is_refused_and_split_keeps_working() {
    let mut h = Harness::start(How::Rewrite, "").await;
    assert_eq!(
        h.metric("lockroute_config_reloads_total{result=\"error\"}")
            .await,
        0.0
    );
    assert!(
        h.metric("lockroute_config_last_reload_success_timestamp_seconds")
            .await
            > 0.0
    );
    let client = pg_connect(&h.url()).await;
    let renew = format!(
        "UPDATE {} SET lock_until = now() WHERE id = 1 RETURNING current_user::text",
        h.table
    );
    let who = |rows: Vec<tokio_postgres::Row>| rows[0].get::<_, String>(0);
    assert_eq!(who(client.query(&renew, &[]).await.unwrap()), DIRECT_ROLE);

    h.change("LOCKROUTE_PASSTHROUGH=1\nLOCKROUTE_LOCK_PATTERNS=^UPDATE (jobs\n");
    let started = std::time::Instant::now();
    while h
        .metric("lockroute_config_reloads_total{result=\"error\"}")
        .await
        < 1.0
    {
        assert!(
            started.elapsed() < APPLY_WITHIN,
            "the refusal was not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The whole file was refused, its good line too.
    assert_eq!(who(client.query(&renew, &[]).await.unwrap()), DIRECT_ROLE);
    assert_eq!(
        http_status(h.running.admin_port, "/readyz").await,
        Some(200)
    );
    let config = h.config().await;
    assert_eq!(config["mode"], "split", "{config}");
    assert_eq!(config["settings"]["lock_patterns"]["count"], 1, "{config}");
    assert_eq!(
        config["settings"]["lock_patterns"]["source"], "flag",
        "{config}"
    );

    let (status, body) = admin(h.running.admin_port, "POST", "/reload").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("line 2: \"LOCKROUTE_LOCK_PATTERNS\"") && body.contains("unclosed group"),
        "{body}"
    );
    assert_eq!(
        h.metric("lockroute_config_reloads_total{result=\"error\"}")
            .await,
        2.0
    );

    h.change("LOCKROUTE_PASSTHROUGH=1\n");
    let (status, body) = admin(h.running.admin_port, "POST", "/reload").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "reloaded: mode=passthrough\n")
    );
    // The same connection now runs its renewals on the pooler.
    assert_eq!(who(client.query(&renew, &[]).await.unwrap()), POOLER_ROLE);
    assert_eq!(h.metric("lockroute_mode{mode=\"passthrough\"}").await, 1.0);
    let (status, _) = admin(h.running.admin_port, "GET", "/reload").await;
    assert_eq!(status, 405);
    assert!(h.alive());
}

async fn who(client: &tokio_postgres::Client, sql: &str) -> String {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn reload(h: &Harness, text: &str, mode: &str) {
    std::fs::write(h.file.dir.join(".next"), text).unwrap();
    std::fs::rename(h.file.dir.join(".next"), &h.file.path).unwrap();
    let (status, body) = admin(h.running.admin_port, "POST", "/reload").await;
    assert_eq!((status, body), (200, format!("reloaded: mode={mode}\n")));
}

/// A transaction open on the direct lane when passthrough turns on finishes there, on the same
/// connection; the client's next unit runs on the pooler, and back in split it routes again.
/// A session-tagged client keeps its dedicated connection through passthrough and resumes on it.
#[tokio::test]
async fn open_transactions_finish_on_their_lane_when_the_mode_turns() {
    let h = Harness::start(How::Rewrite, "").await;
    let plain = pg_connect(&h.url()).await;
    let tagged = pg_connect(&format!(
        "{}&application_name=worker%20lockroute:direct",
        h.url()
    ))
    .await;
    let renew = format!(
        "UPDATE {} SET lock_until = now() WHERE id = 2 RETURNING current_user::text",
        h.table
    );
    let pid = "select pg_backend_pid()::text || ' ' || current_user::text";
    let dedicated = who(&tagged, pid).await;
    assert!(dedicated.ends_with(DIRECT_ROLE), "{dedicated}");

    // A transaction on the direct lane (the statement tag picks it at its first message).
    plain
        .batch_execute("/* lockroute:direct */ begin")
        .await
        .unwrap();
    assert_eq!(who(&plain, &renew).await, DIRECT_ROLE);
    let in_transaction = who(&plain, pid).await;
    tagged.batch_execute("begin").await.unwrap();
    assert_eq!(who(&tagged, pid).await, dedicated);

    reload(&h, "LOCKROUTE_PASSTHROUGH=1\n", "passthrough").await;
    // Both transactions finish where they started, on the same server sessions.
    assert_eq!(who(&plain, pid).await, in_transaction);
    assert_eq!(who(&tagged, pid).await, dedicated);
    plain.batch_execute("commit").await.unwrap();
    tagged.batch_execute("commit").await.unwrap();
    // Then every unit goes to the pooler, the lock path too.
    assert_eq!(who(&plain, &renew).await, POOLER_ROLE);
    assert_eq!(who(&plain, "select current_user::text").await, POOLER_ROLE);
    assert_eq!(who(&tagged, "select current_user::text").await, POOLER_ROLE);

    reload(&h, "", "split").await;
    assert_eq!(who(&plain, &renew).await, DIRECT_ROLE);
    assert_eq!(who(&plain, "select current_user::text").await, POOLER_ROLE);
    // The tagged client is back on its own connection, never closed.
    assert_eq!(who(&tagged, pid).await, dedicated);
}
