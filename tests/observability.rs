//! Observability, stage "dashboard and alerts": grafana/lockroute.json and deploy/prometheus/
//! are checked against what lockroute really exports, and evaluated by a real Prometheus.
//!
//! - promtool accepts the rules, the rule unit tests, the scrape config and a live `/metrics`.
//! - Every `lockroute_*` name the dashboard or the alerts mention is in a live scrape, and the
//!   dashboard hard-codes no data source UID (it must import into any Grafana).
//! - The main test runs a real Prometheus that scrapes two in-process proxies every second while
//!   the gbrain-like postgres.js worker runs, then evaluates every dashboard query and alert
//!   expression through Prometheus's HTTP API: each is valid, each dashboard query returns data,
//!   the healthy-state alerts stay empty, and the fallback alert fires for a proxy whose direct
//!   lane is down.
//!
//! The scanners for the dashboard, the rules and the API answers are in observability/scan.rs.

mod common;
#[path = "observability/scan.rs"]
mod scan;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use common::proxy::{Proxy, ProxyOptions, connect_err};
use common::{StandIn, pg_connect, unique_name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep};

use scan::{
    Answer, dashboard_exprs, dechunk, exposed_names, is_exported, lockroute_names, percent_encode,
    rule_exprs, runnable, uids, variable_queries,
};

const TAG: &str = "/* lockroute:direct */ ";

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read_repo_file(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Processes and HTTP.
// ---------------------------------------------------------------------------------------------

/// Runs promtool; returns whether it succeeded and its combined output.
fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new("promtool");
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("promtool runs (scripts/standin.sh install-deps)");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes())
            .expect("write promtool stdin");
    }
    let out = child.wait_with_output().expect("promtool finishes");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `GET path` over HTTP/1.1 with `Connection: close`: status code and (de-chunked) body.
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8(raw)?;
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status code")?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// A port that was free a moment ago: bound on 127.0.0.1:0, then released for a child process.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A real Prometheus on a free port with its own data directory. Dropping it stops the process
/// by its pid and removes the directory.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` every second as `job="lockroute"`, and waits until
    /// it is ready.
    async fn start(targets: &[SocketAddr]) -> anyhow::Result<Prometheus> {
        let dir = std::env::temp_dir().join(unique_name("lockroute-prom"));
        std::fs::create_dir_all(&dir)?;
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: lockroute\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        std::fs::write(dir.join("prom.yml"), config)?;
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prom.yml").display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start prometheus (scripts/standin.sh install-deps installs it)")?;
        let prometheus = Prometheus { child, addr, dir };
        prometheus.wait_ready().await?;
        Ok(prometheus)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((200, _)) = http_get(self.addr, "/-/ready").await {
                return Ok(());
            }
            sleep(Duration::from_millis(100)).await;
        }
        bail!("prometheus not ready in 20s:\n{}", self.log())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Evaluates one instant query at the current time.
    async fn query(&self, promql: &str) -> anyhow::Result<Answer> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let (_, body) = http_get(self.addr, &path).await?;
        Ok(Answer::parse(body))
    }

    /// Polls `promql` until it returns a series for which `accept` holds, or fails after 20 s.
    async fn wait_for(&self, promql: &str, accept: impl Fn(&Answer) -> bool) -> Answer {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = self.query(promql).await.expect("query prometheus");
            if answer.success && answer.series > 0 && accept(&answer) {
                return answer;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{promql} never matched in 20s: {}\n{}",
                    answer.body,
                    self.log()
                );
            }
            sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Our own child, stopped by its pid; wait so that its data directory can go.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the gbrain-like postgres.js worker against `url` and returns its JSON summary.
async fn worker(url: String, queue: String) -> String {
    let mut cmd = Command::new("node");
    cmd.arg(repo_file("js/worker.mjs"))
        .env("DATABASE_URL", url)
        .env("WORKERS", "3")
        .env("SECONDS", "12")
        .env("JOB_MS", "400")
        .env("RENEW_MS", "100")
        .env("QUEUE", queue);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("worker task")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "worker failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A proxy whose direct lane points at a closed port: every lock-path unit falls back.
async fn proxy_without_direct_lane() -> Proxy {
    let closed = free_port();
    let direct = format!("postgres://app:app-secret@127.0.0.1:{closed}/app?sslmode=disable");
    Proxy::start_with(ProxyOptions {
        pooler_url: &StandIn::shared().pooler_url,
        direct_url: &direct,
        args: &[],
        env: &[],
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// promtool and lint checks.
// ---------------------------------------------------------------------------------------------

#[test]
fn alerts_pass_promtool_check_rules() {
    let (ok, out) = promtool(&["check", "rules", "deploy/prometheus/alerts.yml"], None);
    assert!(ok, "{out}");
}

#[test]
fn alerts_fire_and_stay_quiet_in_promtool_unit_tests() {
    let (ok, out) = promtool(
        &["test", "rules", "deploy/prometheus/alerts_test.yml"],
        None,
    );
    assert!(ok, "{out}");
}

#[test]
fn scrape_config_passes_promtool_check_config() {
    let (ok, out) = promtool(&["check", "config", "deploy/prometheus/scrape.yml"], None);
    assert!(ok, "{out}");
}

#[test]
fn rule_exprs_cover_every_alert() {
    let yaml = read_repo_file("deploy/prometheus/alerts.yml");
    let alerts = yaml
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    assert!(alerts >= 4, "alerts.yml has {alerts} alerts");
    assert_eq!(
        rule_exprs(&yaml).len(),
        alerts,
        "one single-line expr per alert"
    );
}

#[test]
fn dashboard_hard_codes_no_datasource_uid() {
    let json = read_repo_file("grafana/lockroute.json");
    let uids = uids(&json);
    let (datasource, other): (Vec<_>, Vec<_>) =
        uids.iter().partition(|u| u.as_str() == "${datasource}");
    assert!(
        !datasource.is_empty(),
        "panels must use the datasource variable"
    );
    // The only other uid is the dashboard's own.
    assert_eq!(
        other,
        [&"lockroute".to_owned()],
        "hard-coded uids: {other:?}"
    );
    assert!(
        json.contains("\"type\": \"datasource\""),
        "a datasource template variable"
    );
    assert!(
        !json.contains("__inputs"),
        "no import-time data source inputs"
    );
    assert!(json.contains("\"schemaVersion\": 39"));
    // Every panel and target names the datasource variable, so none falls back to a default.
    let targets = dashboard_exprs(&json).len();
    assert!(
        datasource.len() > targets,
        "{} datasource refs, {targets} targets",
        datasource.len()
    );
}

#[tokio::test]
async fn live_metrics_pass_promtool_check_metrics() {
    let proxy = Proxy::start(&[]).await;
    let (status, body) = proxy.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let (ok, out) = promtool(&["check", "metrics"], Some(&body));
    assert!(ok, "promtool check metrics: {out}\n{body}");
    proxy.stop().await;
}

#[tokio::test]
async fn dashboard_and_alerts_name_only_exported_metrics() {
    let proxy = Proxy::start(&[]).await;
    let (_, body) = proxy.admin_get("/metrics").await;
    let exposed = exposed_names(&body);
    for file in ["grafana/lockroute.json", "deploy/prometheus/alerts.yml"] {
        let names = lockroute_names(&read_repo_file(file));
        assert!(!names.is_empty(), "{file} names no lockroute metric");
        let missing: Vec<_> = names.iter().filter(|n| !is_exported(n, &exposed)).collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics lockroute does not export: {missing:?}\nexported: {exposed:?}"
        );
    }
    proxy.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The main test: a real Prometheus evaluates the dashboard and the alerts.
// ---------------------------------------------------------------------------------------------

/// Traffic that moves every series the dashboard needs: the worker fleet (pattern units, pooler
/// units, direct waits, bytes), a statement-tagged query and a wrong password.
async fn drive_traffic(proxy: &Proxy) {
    let fleet = tokio::spawn(worker(proxy.url(), unique_name("obs")));
    let client = pg_connect(&proxy.url()).await;
    let user = common::current_user(&client).await;
    assert_eq!(user, "pooler");
    let tagged = common::simple_rows(&client, &format!("{TAG}select current_user")).await;
    assert_eq!(
        tagged[0].get(0),
        Some("app"),
        "a tagged statement runs direct"
    );
    let wrong = proxy.url().replace("app-secret", "wrong-secret");
    let error = connect_err(&wrong).await;
    assert_eq!(
        error.as_db_error().map(|e| e.code().code()),
        Some("28P01"),
        "{error}"
    );
    let summary = fleet.await.expect("worker task");
    assert!(summary.contains("\"ok\":true"), "{summary}");
}

/// Evaluates every dashboard query: valid, at least one series; the panels that the traffic
/// moved show a value above zero.
async fn check_dashboard(prom: &Prometheus) {
    let json = read_repo_file("grafana/lockroute.json");
    let exprs = dashboard_exprs(&json);
    assert!(exprs.len() >= 10, "only {} dashboard queries", exprs.len());
    // Queries whose value must be above zero after the traffic above.
    let must_move = [
        "lockroute_routed_total{job",
        "lockroute_request_duration_seconds_bucket",
        "lockroute_errors_total",
        "lockroute_bytes_total",
        "lockroute_build_info",
        "lockroute_mode{job",
    ];
    let variables = variable_queries(&json);
    assert_eq!(
        variables.len(),
        2,
        "job and instance variables: {variables:?}"
    );
    for query in &variables {
        let answer = prom
            .query(&runnable(query))
            .await
            .expect("query prometheus");
        assert!(
            answer.success && answer.series > 0,
            "variable {query}: {}",
            answer.body
        );
    }
    for expr in &exprs {
        let promql = runnable(expr);
        assert!(!promql.contains('$'), "unknown variable in {expr}");
        let answer = prom.query(&promql).await.expect("query prometheus");
        assert!(
            answer.success,
            "invalid dashboard query {promql}: {}",
            answer.body
        );
        assert!(answer.series > 0, "no data for {promql}: {}", answer.body);
        if must_move.iter().any(|m| promql.contains(m)) && !promql.contains("direct_unavailable") {
            assert!(
                answer.has_positive_value(),
                "all zero: {promql}: {}",
                answer.body
            );
        }
    }
}

/// Evaluates every alert expression: valid; in split mode with a healthy direct lane the
/// fallback, kill-switch, drain and scrape-down alerts return nothing.
async fn check_alerts_quiet(prom: &Prometheus) -> Vec<String> {
    let exprs = rule_exprs(&read_repo_file("deploy/prometheus/alerts.yml"));
    for expr in &exprs {
        let answer = prom.query(expr).await.expect("query prometheus");
        assert!(answer.success, "invalid alert expr {expr}: {}", answer.body);
        let quiet = [
            "direct_unavailable",
            "mode=\"passthrough\"",
            "lockroute_draining",
            "up{",
            "result=\"error\"",
        ];
        if quiet.iter().any(|q| expr.contains(q)) {
            assert_eq!(
                answer.series, 0,
                "{expr} fires on a healthy proxy: {}",
                answer.body
            );
        }
    }
    exprs
}

#[tokio::test]
async fn dashboard_and_alert_queries_return_data_in_a_real_prometheus() {
    let healthy = Proxy::start(&[]).await;
    let degraded = proxy_without_direct_lane().await;
    let prom = Prometheus::start(&[healthy.admin, degraded.admin])
        .await
        .expect("prometheus starts");
    prom.wait_for("up{job=\"lockroute\"} == 1", |a| a.series == 2)
        .await;

    drive_traffic(&healthy).await;
    // Synchronise on Prometheus having scraped the traffic's end state, not on a sleep.
    for series in [
        "lockroute_routed_total{lane=\"direct\",reason=\"pattern\"}",
        "lockroute_routed_total{lane=\"direct\",reason=\"statement_tag\"}",
        "lockroute_errors_total{kind=\"client_auth\"}",
    ] {
        prom.wait_for(&format!("{series} > 0"), |_| true).await;
    }
    prom.wait_for("count_over_time(up[1m])", |a| {
        a.values.iter().all(|v| *v >= 3.0)
    })
    .await;

    check_dashboard(&prom).await;
    let alert_exprs = check_alerts_quiet(&prom).await;

    // The direct lane of the second proxy is down: a tagged statement falls back to the pooler
    // and the fallback alert's expression fires for that proxy's instance.
    let client = pg_connect(&degraded.url()).await;
    let fell_back = common::simple_rows(&client, &format!("{TAG}select current_user")).await;
    assert_eq!(
        fell_back[0].get(0),
        Some("pooler"),
        "the fallback runs on the pooler"
    );
    let fallback = alert_exprs
        .iter()
        .find(|e| e.contains("direct_unavailable"))
        .expect("alerts.yml has a fallback alert");
    let instance = format!("\"instance\":\"{}\"", degraded.admin);
    let fired = prom
        .wait_for(fallback, |a| a.body.contains(&instance))
        .await;
    assert!(fired.has_positive_value(), "{}", fired.body);

    drop(client);
    drop(prom);
    healthy.stop().await;
    degraded.stop().await;
}
