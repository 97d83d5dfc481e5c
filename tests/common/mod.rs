//! Test harness, stage "stand-in": the real PostgreSQL (direct lane) and PgBouncer (pooler lane)
//! that every integration test talks to, started by `scripts/standin.sh`.
//!
//! `scripts/test.sh` starts one stand-in for the whole run and exports `LOCKROUTE_STANDIN_DIR`.
//! Without it (a bare `cargo test`), each test process starts its own, owned by the process: the
//! script's watchdog tears it down when the process exits, even after a crash.
// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

pub mod fleet;
pub mod process;
pub mod proxy;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::{Client, NoTls, SimpleQueryMessage, SimpleQueryRow};

/// One running stand-in, as `scripts/standin.sh start` describes it in `DIR/env`.
pub struct StandIn {
    pub dir: PathBuf,
    pub pg_port: u16,
    pub pgb_port: u16,
    /// The test CA that signed both servers' certificate (SAN `localhost`, `127.0.0.1`).
    pub ca: PathBuf,
    /// PostgreSQL as `app`: what lockroute's direct lane uses.
    pub direct_url: String,
    /// PgBouncer as `app`; PgBouncer itself logs in to PostgreSQL as `pooler`.
    pub pooler_url: String,
    /// PgBouncer's admin console (`SHOW`, `KILL`, `RESUME`); simple protocol only.
    pub pgb_admin_url: String,
    /// A PostgreSQL superuser, for `pg_terminate_backend` and `pg_stat_activity`.
    pub super_url: String,
}

/// A PgBouncer of one test's own, so that `KILL` does not hit other tests. Dropping it stops it.
pub struct PrivatePooler {
    pub name: String,
    pub port: u16,
    pub pooler_url: String,
    pub admin_url: String,
    standin_dir: PathBuf,
}

static SHARED: OnceLock<StandIn> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The script, found from the crate root so that tests run from any directory.
pub fn standin_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/standin.sh")
}

impl StandIn {
    /// The stand-in for this process: the one `LOCKROUTE_STANDIN_DIR` names, or else one started
    /// now (at most once per process) and stopped when the process exits.
    pub fn shared() -> &'static StandIn {
        SHARED.get_or_init(|| match std::env::var_os("LOCKROUTE_STANDIN_DIR") {
            Some(dir) => StandIn::read(Path::new(&dir)),
            None => StandIn::start_owned(),
        })
    }

    fn start_owned() -> StandIn {
        let dir = std::env::temp_dir().join(format!(
            "lockroute-standin-{}-{}",
            std::process::id(),
            nanos()
        ));
        let pid = std::process::id().to_string();
        run_script(&["start", path_str(&dir), "--owner-pid", &pid]);
        StandIn::read(&dir)
    }

    /// Reads `DIR/env`.
    pub fn read(dir: &Path) -> StandIn {
        let env = read_env(&dir.join("env"));
        StandIn {
            dir: PathBuf::from(&env["STANDIN_DIR"]),
            pg_port: env["STANDIN_PG_PORT"].parse().expect("STANDIN_PG_PORT"),
            pgb_port: env["STANDIN_PGB_PORT"].parse().expect("STANDIN_PGB_PORT"),
            ca: PathBuf::from(&env["STANDIN_CA"]),
            direct_url: env["STANDIN_DIRECT_URL"].clone(),
            pooler_url: env["STANDIN_POOLER_URL"].clone(),
            pgb_admin_url: env["STANDIN_PGB_ADMIN_URL"].clone(),
            super_url: env["STANDIN_SUPER_URL"].clone(),
        }
    }

    /// Starts a PgBouncer of this test's own against the same PostgreSQL. `name` is a label
    /// (letters, digits, `_`, `-`); the instance name adds the pid and a counter, so that tests
    /// in parallel processes or threads never collide.
    pub fn private_pooler(&self, name: &str) -> PrivatePooler {
        let name = format!(
            "{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let pid = std::process::id().to_string();
        run_script(&["pgbouncer", path_str(&self.dir), &name, "--owner-pid", &pid]);
        let env = read_env(&self.dir.join(format!("{name}.env")));
        PrivatePooler {
            port: env["STANDIN_PGB_PORT"].parse().expect("STANDIN_PGB_PORT"),
            pooler_url: env["STANDIN_POOLER_URL"].clone(),
            admin_url: env["STANDIN_PGB_ADMIN_URL"].clone(),
            name,
            standin_dir: self.dir.clone(),
        }
    }
}

impl PrivatePooler {
    /// The last lines of this PgBouncer's log, for a failure message.
    /// Also every FATAL line and PgBouncer's own stdout and stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        let dir = self.standin_dir.join(&self.name);
        let text = std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let fatal: Vec<&str> = all
            .iter()
            .copied()
            .filter(|l| l.contains("FATAL"))
            .collect();
        let out = std::fs::read_to_string(dir.join("pgbouncer.out")).unwrap_or_default();
        format!(
            "FATAL lines: {fatal:#?}\npgbouncer.out: {out}\nlast lines:\n{}",
            all[all.len().saturating_sub(lines)..].join("\n")
        )
    }

    /// Restarts this PgBouncer on the same port: stopped by pid (every client is closed), down
    /// for `down`, then started again. Blocks; call it from `spawn_blocking`.
    pub fn restart(&self, down: std::time::Duration) {
        let secs = format!("{:.3}", down.as_secs_f64());
        run_script(&[
            "restart-pgbouncer",
            path_str(&self.standin_dir),
            &self.name,
            &secs,
        ]);
    }
}

impl Drop for PrivatePooler {
    fn drop(&mut self) {
        // Waits until PgBouncer has exited, so the port is closed when drop returns.
        let status = Command::new("bash")
            .arg(standin_script())
            .args(["stop-pgbouncer", path_str(&self.standin_dir), &self.name])
            .status();
        if !matches!(status, Ok(s) if s.success()) && !std::thread::panicking() {
            panic!("stopping private pooler {} failed: {status:?}", self.name);
        }
    }
}

fn run_script(args: &[&str]) {
    let out = Command::new("bash")
        .arg(standin_script())
        .args(args)
        .output()
        .expect("run scripts/standin.sh");
    assert!(
        out.status.success(),
        "scripts/standin.sh {} failed ({}):\n{}",
        args[0],
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_env(path: &Path) -> HashMap<String, String> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("stand-in paths are UTF-8")
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// `url` with its password replaced, for panic messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparsable url>".to_owned(),
    }
}

/// Connects without TLS (`sslmode=disable` URLs) and drives the connection on a task.
pub async fn pg_connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", redact(url)));
    tokio::spawn(async move {
        // The error, if any, reaches the client's next query; nothing to do with it here.
        let _ = connection.await;
    });
    client
}

/// The server role that ran the statement: `app` on the direct lane, `pooler` via PgBouncer.
/// Uses the simple protocol: tokio-postgres names its prepared statements `s0`, `s1`, ..., and
/// straight through a transaction-mode PgBouncer those names collide between clients.
pub async fn current_user(client: &Client) -> String {
    let rows = simple_rows(client, "select current_user").await;
    rows.first()
        .and_then(|row| row.get(0))
        .expect("select current_user returns a row")
        .to_owned()
}

/// The rows of a simple-protocol query; panics on error.
pub async fn simple_rows(client: &Client, sql: &str) -> Vec<SimpleQueryRow> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql:?}: {e}"));
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .collect()
}

/// Runs one command on a PgBouncer admin console, e.g. `SHOW POOLS` or `KILL app`, and returns
/// its rows. The console speaks only the simple query protocol.
pub async fn pgbouncer_admin(admin_url: &str, cmd: &str) -> Vec<SimpleQueryRow> {
    let console = pg_connect(admin_url).await;
    simple_rows(&console, cmd).await
}

/// A table or object name no other test (thread or process) uses: `prefix_pid_counter_time`.
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}_{}_{n}_{}",
        std::process::id(),
        nanos() % 1_000_000_000
    )
}
