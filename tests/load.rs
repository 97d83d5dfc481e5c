//! Load (issue 5): over 500 concurrent clients through the real binary (pgbench on both lanes,
//! the postgres.js worker fleet, and a few clients that connect and leave over and over) with
//! zero errors; and once they have all left, the process is back where it started: file
//! descriptors, tokio tasks, and RSS within a bound.
//!
//! The load runs twice: a short warm-up, then the measured run (60 s by default). Descriptors and
//! tasks must return to the idle baseline after each. RSS rarely shrinks back with glibc malloc,
//! so the check is that the measured run, with several times the warm-up's work and as many
//! clients, does not grow RSS beyond what the warm-up left.
//!
//! Knobs, for longer runs (`bench/load.sh`): `LOCKROUTE_LOAD_SECONDS` (60),
//! `LOCKROUTE_LOAD_WARMUP_SECONDS` (15), `LOCKROUTE_LOAD_PGBENCH_CLIENTS` (480),
//! `LOCKROUTE_LOAD_WORKERS` (32, each with its own connection).
//!
//! This test saturates a small machine, so `.config/nextest.toml` runs it alone.

mod common;

#[path = "load/sample.rs"]
mod sample;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::StandIn;
use common::process::{Running, free_port};
use sample::{Figures, Peak, Sampler};

/// Descriptors that may stay open after the clients left: the shared direct connection
/// (`--direct-pool-size` 1), opened lazily by the first tagged unit, plus one for an admin
/// connection still closing.
const FD_SLACK: usize = 3;
/// Tasks that may stay alive after the clients left: a shared direct connection being reset,
/// and an admin connection still closing.
const TASK_SLACK: usize = 3;
/// How much RSS the measured run may add over what the warm-up left. An idle client costs
/// under 16 KiB (DESIGN.md), so a per-client leak of one idle client's worth over the run's
/// ~500 clients is 8 MiB; a per-unit leak of 100 bytes over the run's hundreds of thousands of
/// units is tens of MiB. Allocator noise between two equal loads stays well under this.
const RSS_GROWTH_LIMIT_KIB: u64 = 12 * 1024;
/// Clients that connect, query once and leave, over and over, beside the steady ones.
const CHURNERS: usize = 4;
/// How long pgbench's clients may take to connect before the rest of the load starts; pgbench
/// runs this much longer than the others, so that they overlap for the whole measured time.
const CONNECT_ALLOWANCE: Duration = Duration::from_secs(20);
/// How long the process may take to settle after the last client left.
const SETTLE: Duration = Duration::from_secs(30);

struct Load {
    seconds: u64,
    pgbench_clients: u32,
    workers: u32,
}

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// The real binary, started the way systemd or a shell would start it: with a soft descriptor
/// limit of 1024, which lockroute must raise to the hard limit to hold 500 clients.
async fn start(dir: &Path) -> Running {
    let s = StandIn::shared();
    let (port, admin_port) = (free_port(), free_port());
    let log = std::fs::File::create(dir.join("lockroute.log")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockroute"));
    cmd.args(["--pooler-url", &s.pooler_url, "--direct-url", &s.direct_url])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .args(["--tag", TAG])
        .env_remove("LOCKROUTE_PASSTHROUGH")
        .env_remove("GBRAIN_DISABLE_DIRECT_POOL")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: getrlimit/setrlimit are async-signal-safe and touch only the child's own limit.
    unsafe {
        cmd.pre_exec(|| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur = lim.rlim_cur.min(1024);
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    Running {
        child,
        port,
        admin_port,
    }
    .wait_until_ok("/readyz")
    .await
}

/// The soft and hard `Max open files` of a process, from `/proc/PID/limits`.
fn fd_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next().unwrap().to_owned();
    let hard = fields.next().unwrap().to_owned();
    (soft, hard)
}

/// The statement tag for this test. pgbench turns every `:word` in a script into a parameter
/// under `-M extended`, comments included, so `/* lockroute:direct */` would reach the server as
/// `/* lockroute$1 */` (and fail: "could not determine data type of parameter $1"). A tag
/// without a colon is sent as written; the worker's lock path routes by pattern either way.
const TAG: &str = "lockroute-direct";

/// pgbench's two scripts: a plain select for the pooler lane (weight 9), and the same select
/// tagged for the shared direct connection (weight 1). `:id` becomes a `$1` parameter under
/// `-M extended`, so every unit is Parse/Bind/Describe/Execute/Sync with a value.
fn write_scripts(dir: &Path) -> [String; 2] {
    let pooler = dir.join("pooler.sql");
    let direct = dir.join("direct.sql");
    std::fs::write(
        &pooler,
        "\\set id random(1, 1000000)\nselect :id::int as id;\n",
    )
    .unwrap();
    std::fs::write(
        &direct,
        format!("\\set id random(1, 1000000)\n/* {TAG} */ select :id::int as id;\n"),
    )
    .unwrap();
    [
        format!("{}@9", pooler.display()),
        format!("{}@1", direct.display()),
    ]
}

/// Runs pgbench for `seconds`; returns its report. Panics unless it ran with zero failures.
fn pgbench(url: &str, scripts: &[String; 2], clients: u32, seconds: u64) -> String {
    let out = Command::new("pgbench")
        .args(["-n", "-M", "extended", "-j", "2"])
        .args(["-c", &clients.to_string(), "-T", &seconds.to_string()])
        .args(["-f", &scripts[0], "-f", &scripts[1]])
        .arg(url)
        .output()
        .expect("pgbench runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A client that gets an error aborts, and pgbench may still exit 0: look for it.
    assert!(
        out.status.success() && !stderr.contains("aborted"),
        "pgbench failed: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("number of failed transactions: 0 "),
        "pgbench reported failures: {stdout}\n{stderr}"
    );
    let tps = report_value(&stdout, "tps = ").unwrap_or(0.0);
    assert!(tps > 0.0, "pgbench reported no throughput: {stdout}");
    stdout
}

/// The number after `prefix` on the first line that starts with it.
fn report_value(report: &str, prefix: &str) -> Option<f64> {
    report
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Runs the worker fleet for `seconds`, one postgres.js connection per worker; returns its JSON
/// summary. It exits non-zero on any error, lost lease or double claim.
fn worker(url: &str, workers: u32, seconds: u64) -> String {
    let n = workers.to_string();
    let out = Command::new("node")
        .arg(js_dir().join("worker.mjs"))
        .env("DATABASE_URL", url)
        .envs([("WORKERS", n.as_str()), ("POOL_MAX", n.as_str())])
        .envs([("SECONDS", seconds.to_string().as_str())])
        .envs([("JOB_MS", "600"), ("RENEW_MS", "150")])
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("\"ok\":true"),
        "worker failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.trim().to_owned()
}

/// A client that connects, runs one query and leaves, over and over until `seconds` are up, so
/// that clients keep coming and going while the others stay: a per-client leak then shows in
/// RSS too, not only in descriptors and tasks. Returns how many clients it ran; panics on error.
async fn churn(url: String, seconds: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut clients = 0;
    while tokio::time::Instant::now() < deadline {
        let client = common::pg_connect(&url).await;
        let lane = common::current_user(&client).await;
        assert_eq!(lane, "pooler", "an untagged query runs on the pooler");
        clients += 1;
    }
    clients
}

/// One round's results.
struct Round {
    peak: Peak,
    pgbench: String,
    worker: String,
    churned: u64,
}

/// One round: pgbench, the worker fleet and the churning client at once, sampled throughout.
async fn round(running: &Running, dir: &Path, load: &Load) -> Round {
    let url = format!(
        "postgres://app:app-secret@127.0.0.1:{}/app?sslmode=disable",
        running.port
    );
    let scripts = write_scripts(dir);
    let sampler = Sampler::start(running.child.id(), running.admin_port);
    let (pg_url, w_url) = (url.clone(), url.clone());
    let (clients, workers, seconds) = (load.pgbench_clients, load.workers, load.seconds);
    // pgbench's -T counts its connection phase, which takes seconds for 480 SCRAM logins on a
    // busy machine: it gets an allowance, and the others start once its clients are in.
    let bench_seconds = seconds + CONNECT_ALLOWANCE.as_secs();
    let bench =
        tokio::task::spawn_blocking(move || pgbench(&pg_url, &scripts, clients, bench_seconds));
    sample::wait_for_clients(running.admin_port, clients, CONNECT_ALLOWANCE).await;
    let fleet = tokio::task::spawn_blocking(move || worker(&w_url, workers, seconds));
    let churners: Vec<_> = (0..CHURNERS)
        .map(|_| tokio::spawn(churn(url.clone(), seconds)))
        .collect();
    let (bench, fleet) = tokio::join!(bench, fleet);
    let mut churned = 0;
    for churner in churners {
        churned += churner.await.unwrap();
    }
    Round {
        peak: sampler.stop().await,
        pgbench: bench.unwrap(),
        worker: fleet.unwrap(),
        churned,
    }
}

/// Descriptors and tasks are back at the idle baseline, within the slack, and no client is left.
fn assert_settled(after_what: &str, idle: &Figures, after: &Figures) {
    assert!(
        after.clients == 0.0
            && after.fds <= idle.fds + FD_SLACK
            && after.tasks <= idle.tasks + TASK_SLACK,
        "after {after_what}, lockroute did not return to its baseline within {SETTLE:?}: \
         {idle} -> {after}"
    );
}

fn print_run(load: &Load, run: &Round) {
    let line = |prefix: &str| {
        let found = run.pgbench.lines().find(|l| l.starts_with(prefix));
        found.unwrap_or("").to_owned()
    };
    eprintln!(
        "load: {} s, {} pgbench clients (-M extended, 9:1 pooler:direct) + {} workers \
         + {CHURNERS} churning clients ({} connects)",
        load.seconds, load.pgbench_clients, load.workers, run.churned
    );
    eprintln!(
        "load: pgbench {}; {}; {}; {}",
        line("number of transactions actually processed"),
        line("latency average"),
        line("initial connection time"),
        line("tps = ")
    );
    eprintln!("load: worker {}", run.worker);
}

/// Prints the tail of lockroute's log if the test fails.
struct LogOnPanic(PathBuf);

impl Drop for LogOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- lockroute log (last 40 lines, newest first) ---");
            tail.iter().for_each(|l| eprintln!("{l}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_run_error_free_and_leave_nothing_behind() {
    let load = Load {
        seconds: env_or("LOCKROUTE_LOAD_SECONDS", 60),
        pgbench_clients: env_or("LOCKROUTE_LOAD_PGBENCH_CLIENTS", 480) as u32,
        workers: env_or("LOCKROUTE_LOAD_WORKERS", 32) as u32,
    };
    let warmup = Load {
        seconds: env_or("LOCKROUTE_LOAD_WARMUP_SECONDS", 15),
        ..load
    };
    let target = (load.pgbench_clients + load.workers) as f64;
    let dir = std::env::temp_dir().join(common::unique_name("lockroute-load"));
    std::fs::create_dir_all(&dir).unwrap();
    let _log = LogOnPanic(dir.join("lockroute.log"));
    let running = start(&dir).await;
    let pid = running.child.id();

    let (soft, hard) = fd_limits(pid);
    assert_eq!(
        soft, hard,
        "lockroute raises its soft fd limit to the hard one"
    );
    let idle = Figures::take(pid, running.admin_port).await;
    eprintln!("load: idle baseline {idle}; fd limit {soft}");

    let settle = || {
        let bounds = (FD_SLACK, TASK_SLACK);
        sample::settle(pid, running.admin_port, &idle, bounds, SETTLE)
    };
    let warm = round(&running, &dir, &warmup).await;
    let after_warmup = settle().await;
    eprintln!("load: warm-up ({} s) peak {}", warmup.seconds, warm.peak);
    eprintln!("load: after warm-up {after_warmup}");
    assert_settled("the warm-up", &idle, &after_warmup);

    let run = round(&running, &dir, &load).await;
    let after = settle().await;
    print_run(&load, &run);
    let peak = run.peak;
    eprintln!("load: baseline {idle}");
    eprintln!("load: peak     {peak}");
    eprintln!("load: after    {after}");

    let required = target.min(500.0);
    assert!(
        peak.clients >= required,
        "the client gauge peaked at {}, below {required} ({target} clients ran)",
        peak.clients
    );
    let direct_tagged = sample::metric(
        running.admin_port,
        r#"lockroute_routed_total{lane="direct",reason="statement_tag"}"#,
    )
    .await;
    assert!(
        direct_tagged > 0.0,
        "no tagged unit reached the direct lane"
    );
    assert_settled("the measured run", &idle, &after);
    assert!(
        after.rss_kib <= after_warmup.rss_kib + RSS_GROWTH_LIMIT_KIB,
        "RSS grew by {} KiB over the measured run (limit {RSS_GROWTH_LIMIT_KIB} KiB): \
         after warm-up {after_warmup}, after {after}",
        after.rss_kib.saturating_sub(after_warmup.rss_kib)
    );
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}
