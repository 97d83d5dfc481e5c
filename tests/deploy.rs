//! Deploy artefacts, stage "deploy": the Kubernetes manifests, the systemd unit, the Dockerfile,
//! and the sidecar contract they rely on, checked against the real binary.
//!
//! Every `LOCKROUTE_*` name and every `--flag` the artefacts use is compared with what
//! `lockroute --help` prints, so renaming a flag breaks this suite instead of a deployment.
//! The manifests are rendered with `kubectl kustomize` and read back with kubectl's own JSONPath
//! (`kubectl label --local`, which needs no cluster), so no YAML parser is needed here.
//! Without kubectl (or systemd-analyze) those tests say so on stderr and check what they can,
//! unless `LOCKROUTE_DEPLOY_TOOLS=required`, which turns a missing tool into a failure.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::process::{Running, free_port, http_status, signal, wait_exit};
use common::{StandIn, pg_connect};
use regex::Regex;

const SIDECAR: &str = "lockroute";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// `lockroute --help`, once per process.
fn help() -> &'static str {
    static HELP: OnceLock<String> = OnceLock::new();
    HELP.get_or_init(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_lockroute"))
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "lockroute --help failed");
        String::from_utf8(out.stdout).unwrap()
    })
}

fn env_names(text: &str) -> BTreeSet<String> {
    let re = Regex::new(r"LOCKROUTE_[A-Z0-9_]*[A-Z0-9]").unwrap();
    re.find_iter(text).map(|m| m.as_str().to_owned()).collect()
}

/// `--flag` words: a double dash that starts a word (so not `---` or `a--b`).
fn flag_names(text: &str) -> BTreeSet<String> {
    let re = Regex::new(r#"(?:^|[\s"'\[=(`])(--[a-z][a-z0-9-]*[a-z0-9])"#).unwrap();
    re.captures_iter(text).map(|c| c[1].to_owned()).collect()
}

/// Fails naming every `LOCKROUTE_*` variable and `--flag` in `text` that `--help` does not list.
fn assert_known_names(what: &str, text: &str, check_flags: bool) {
    let (known_env, known_flags) = (env_names(help()), flag_names(help()));
    // Guard against a help format change that would make the comparison vacuous.
    assert!(known_env.contains("LOCKROUTE_POOLER_URL") && known_flags.contains("--pooler-url"));
    let unknown_env: Vec<_> = env_names(text).difference(&known_env).cloned().collect();
    assert!(
        unknown_env.is_empty(),
        "{what}: unknown env vars {unknown_env:?}"
    );
    if check_flags {
        let unknown: Vec<_> = flag_names(text).difference(&known_flags).cloned().collect();
        assert!(unknown.is_empty(), "{what}: unknown flags {unknown:?}");
    }
}

fn tool_available(tool: &str, probe: &[&str]) -> bool {
    let found = Command::new(tool)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let required = std::env::var("LOCKROUTE_DEPLOY_TOOLS").is_ok_and(|v| v == "required");
        assert!(
            !required,
            "{tool} is required (LOCKROUTE_DEPLOY_TOOLS=required)"
        );
        eprintln!("deploy: {tool} not found, skipping the checks that need it");
    }
    found
}

fn kubectl_available() -> bool {
    tool_available("kubectl", &["version", "--client"])
}

fn kustomize(dir: &str) -> String {
    let out = Command::new("kubectl")
        .args(["kustomize", &repo(dir).to_string_lossy()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl kustomize {dir}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// The rendered document whose top-level `kind` is `kind`.
fn document<'a>(rendered: &'a str, kind: &str) -> &'a str {
    let line = format!("\nkind: {kind}\n");
    rendered
        .split("\n---\n")
        .find(|doc| format!("\n{doc}\n").contains(&line))
        .unwrap_or_else(|| panic!("no {kind} in the rendered manifests"))
}

/// Evaluates a kubectl JSONPath template over one manifest, offline.
fn jsonpath(doc: &str, template: &str) -> String {
    let mut child = Command::new("kubectl")
        .args(["label", "--local", "-f", "-", "deploy-test=1", "-o"])
        .arg(format!("jsonpath={template}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "jsonpath {template}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// JSONPath to a field of the named container in `list` (`initContainers` or `containers`).
fn container(list: &str, name: &str, field: &str) -> String {
    format!("{{.spec.template.spec.{list}[?(@.name==\"{name}\")].{field}}}")
}

fn env_value(doc: &str, list: &str, name: &str, var: &str) -> String {
    jsonpath(
        doc,
        &container(list, name, &format!("env[?(@.name==\"{var}\")].value")),
    )
}

fn duration(value: &str) -> Duration {
    humantime::parse_duration(value).unwrap_or_else(|e| panic!("duration {value:?}: {e}"))
}

/// Checks the lockroute container wherever it sits: env, secrets, ports and probes.
fn assert_sidecar_contract(deployment: &str, list: &str) {
    let env = |var: &str| env_value(deployment, list, SIDECAR, var);
    assert_eq!(env("LOCKROUTE_LISTEN"), "127.0.0.1:6432");
    assert_eq!(env("LOCKROUTE_ADMIN_LISTEN"), "0.0.0.0:9465");
    assert!(
        ["0", "1", "true", "false"].contains(&env("LOCKROUTE_PASSTHROUGH").as_str()),
        "LOCKROUTE_PASSTHROUGH must be a value the binary accepts"
    );
    let secret = read("deploy/kubernetes/base/secret.example.yaml");
    for var in ["LOCKROUTE_POOLER_URL", "LOCKROUTE_DIRECT_URL"] {
        let field = format!("env[?(@.name==\"{var}\")].valueFrom.secretKeyRef.key");
        let key = jsonpath(deployment, &container(list, SIDECAR, &field));
        assert!(!key.is_empty(), "{var} must come from a Secret");
        assert!(
            secret.contains(&format!("\n  {key}: ")),
            "secret.example.yaml lacks key {key}"
        );
    }
    let admin_port = jsonpath(
        deployment,
        &container(
            list,
            SIDECAR,
            "ports[?(@.name==\"lockroute-admin\")].containerPort",
        ),
    );
    assert_eq!(
        admin_port, "9465",
        "the named admin port is the admin listener"
    );
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let got = jsonpath(
            deployment,
            &container(list, SIDECAR, &format!("{probe}.httpGet.path")),
        );
        assert_eq!(got, path, "{probe}");
        let port = jsonpath(
            deployment,
            &container(list, SIDECAR, &format!("{probe}.httpGet.port")),
        );
        assert_eq!(port, "lockroute-admin", "{probe} must hit the admin port");
    }
    for field in ["resources.requests.memory", "resources.limits.memory"] {
        assert!(!jsonpath(deployment, &container(list, SIDECAR, field)).is_empty());
    }
    let grace: u64 = jsonpath(
        deployment,
        "{.spec.template.spec.terminationGracePeriodSeconds}",
    )
    .parse()
    .expect("terminationGracePeriodSeconds is set");
    let drain = duration(&env("LOCKROUTE_DRAIN_TIMEOUT"));
    assert!(
        Duration::from_secs(grace) > drain,
        "grace period {grace}s must exceed the drain timeout {drain:?}"
    );
    let dsn = env_value(deployment, "containers", "worker", "DATABASE_URL");
    assert!(
        dsn.starts_with("postgres://") && dsn.contains("@127.0.0.1:6432/"),
        "the worker's DSN must point at the sidecar: {dsn}"
    );
}

#[test]
fn kustomize_base_runs_lockroute_as_a_native_sidecar() {
    if !kubectl_available() {
        return;
    }
    let rendered = kustomize("deploy/kubernetes");
    let deployment = document(&rendered, "Deployment");
    let restart = jsonpath(
        deployment,
        &container("initContainers", SIDECAR, "restartPolicy"),
    );
    assert_eq!(
        restart, "Always",
        "a native sidecar is an init container with restartPolicy Always"
    );
    assert_eq!(
        jsonpath(deployment, "{.spec.template.spec.containers[*].name}"),
        "worker"
    );
    let startup = jsonpath(
        deployment,
        &container("initContainers", SIDECAR, "startupProbe.httpGet.path"),
    );
    assert_eq!(
        startup, "/healthz",
        "the worker starts only once lockroute listens"
    );
    assert_sidecar_contract(deployment, "initContainers");

    let monitor = document(&rendered, "PodMonitor");
    assert_eq!(
        jsonpath(monitor, "{.apiVersion}"),
        "monitoring.coreos.com/v1"
    );
    assert_eq!(
        jsonpath(
            monitor,
            "{.spec.podMetricsEndpoints[0].port} {.spec.podMetricsEndpoints[0].path}"
        ),
        "lockroute-admin /metrics"
    );
}

/// The kill switch flips through a ConfigMap mounted as lockroute's control file: the whole
/// directory (a subPath never sees updates), a plain ConfigMap (a generated one's hashed name
/// would roll the pods), and a starting content lockroute accepts.
#[test]
fn kustomize_base_mounts_the_control_file_from_a_configmap() {
    if !kubectl_available() {
        return;
    }
    let rendered = kustomize("deploy/kubernetes");
    let deployment = document(&rendered, "Deployment");
    let path = env_value(
        deployment,
        "initContainers",
        SIDECAR,
        "LOCKROUTE_CONTROL_FILE",
    );
    let mount = |field: &str| {
        jsonpath(
            deployment,
            &container(
                "initContainers",
                SIDECAR,
                &format!("volumeMounts[?(@.name==\"lockroute-control\")].{field}"),
            ),
        )
    };
    assert_eq!(format!("{}/control.env", mount("mountPath")), path);
    assert_eq!(
        mount("subPath"),
        "",
        "a subPath mount never sees ConfigMap updates"
    );
    assert_eq!(mount("readOnly"), "true");
    assert_eq!(
        jsonpath(
            deployment,
            "{.spec.template.spec.volumes[?(@.name==\"lockroute-control\")].configMap.name}"
        ),
        "lockroute-control"
    );
    let config_map = document(&rendered, "ConfigMap");
    assert_eq!(
        jsonpath(config_map, "{.metadata.name}"),
        "lockroute-control"
    );
    let text = jsonpath(config_map, "{.data.control\\.env}");
    lockroute::config::control::parse(&text)
        .unwrap_or_else(|e| panic!("the shipped control file is refused: {e}"));
    let systemd = read("deploy/systemd/control.env");
    lockroute::config::control::parse(&systemd)
        .unwrap_or_else(|e| panic!("deploy/systemd/control.env is refused: {e}"));
}

#[test]
fn kustomize_classic_overlay_runs_lockroute_as_the_first_regular_container() {
    if !kubectl_available() {
        return;
    }
    let rendered = kustomize("deploy/kubernetes/overlays/classic-sidecar");
    let deployment = document(&rendered, "Deployment");
    assert_eq!(
        jsonpath(deployment, "{.spec.template.spec.initContainers}"),
        ""
    );
    assert_eq!(
        jsonpath(deployment, "{.spec.template.spec.containers[*].name}"),
        "lockroute worker",
        "lockroute starts first"
    );
    assert_eq!(
        jsonpath(
            deployment,
            &container("containers", SIDECAR, "restartPolicy")
        ),
        ""
    );
    let hooks = jsonpath(
        deployment,
        &container("containers", SIDECAR, "lifecycle.postStart.exec.command[*]"),
    );
    assert!(
        hooks.contains("/healthz"),
        "postStart holds the worker until lockroute listens"
    );
    let pre_stop = jsonpath(
        deployment,
        &container("containers", SIDECAR, "lifecycle.preStop.exec.command[*]"),
    );
    assert!(
        pre_stop.starts_with("sleep "),
        "preStop lets the worker stop first: {pre_stop}"
    );
    assert_sidecar_contract(deployment, "containers");
}

#[test]
fn deploy_artefacts_use_only_env_vars_and_flags_the_binary_accepts() {
    if kubectl_available() {
        for dir in [
            "deploy/kubernetes",
            "deploy/kubernetes/overlays/classic-sidecar",
        ] {
            let rendered = kustomize(dir);
            assert!(env_names(&rendered).contains("LOCKROUTE_POOLER_URL"));
            assert_known_names(dir, &rendered, true);
        }
    }
    // The sources too, comments included: a comment telling an operator to flip a renamed
    // variable is as broken as the manifest.
    for file in [
        "deploy/kubernetes/base/deployment.yaml",
        "deploy/kubernetes/overlays/classic-sidecar/kustomization.yaml",
        "deploy/systemd/lockroute.env",
    ] {
        assert_known_names(file, &read(file), true);
    }
    // These mention other tools' flags (docker, apt-get, systemctl, kubectl), so only the
    // variable names are checked.
    for file in [
        "deploy/systemd/lockroute.service",
        "deploy/kubernetes/base/control.yaml",
        "deploy/systemd/control.env",
        "deploy/docker/Dockerfile",
        "docs/gbrain.md",
        "docs/other-workers.md",
        "docs/kill-switch.md",
        "docs/direct-budget.md",
        "deploy/docker/README.md",
    ] {
        assert_known_names(file, &read(file), false);
    }
}

/// `Key=value` settings of a unit or env file, in order, comments and blanks skipped.
fn settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('#') && !l.starts_with('[') && !l.starts_with(';')
        })
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn setting<'a>(all: &'a [(String, String)], key: &str) -> Option<&'a str> {
    all.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn systemd_unit_is_sandboxed_and_outlasts_the_drain() {
    let unit = settings(&read("deploy/systemd/lockroute.service"));
    let env = settings(&read("deploy/systemd/lockroute.env"));
    for (key, want) in [
        ("Type", "exec"),
        ("ExecStart", "/usr/local/bin/lockroute"),
        ("EnvironmentFile", "/etc/lockroute/lockroute.env"),
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("Restart", "on-failure"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ] {
        assert_eq!(setting(&unit, key), Some(want), "{key}");
    }
    // SIGTERM is what drains; a different KillSignal would skip the drain.
    assert!(matches!(
        setting(&unit, "KillSignal"),
        None | Some("SIGTERM")
    ));
    let stop = duration(setting(&unit, "TimeoutStopSec").expect("TimeoutStopSec is set"));
    let drain = duration(setting(&env, "LOCKROUTE_DRAIN_TIMEOUT").unwrap_or("30s"));
    assert!(
        stop > drain,
        "TimeoutStopSec {stop:?} must exceed the drain timeout {drain:?}"
    );
    assert!(setting(&env, "LOCKROUTE_POOLER_URL").is_some());
    let names: String = env.iter().map(|(k, _)| format!("{k}\n")).collect();
    assert!(
        env_names(&names).len() == env.len(),
        "lockroute.env sets only LOCKROUTE_* names"
    );
    assert_known_names("lockroute.env keys", &names, false);
}

/// `systemd-analyze verify` needs ExecStart to exist, so it checks a copy whose ExecStart is
/// the binary under test; every other line is the shipped unit. It exits 0 even for settings
/// it ignores (`Type=bogus`), so any output at all fails the test.
#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    if !tool_available("systemd-analyze", &["--version"]) {
        return;
    }
    let unit = read("deploy/systemd/lockroute.service").replace(
        "\nExecStart=/usr/local/bin/lockroute\n",
        &format!("\nExecStart={}\n", env!("CARGO_BIN_EXE_lockroute")),
    );
    assert!(unit.contains(env!("CARGO_BIN_EXE_lockroute")));
    let dir = std::env::temp_dir().join(common::unique_name("deploy-unit"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lockroute.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn dockerfile_builds_like_the_project_and_runs_unprivileged() {
    let docker = read("deploy/docker/Dockerfile");
    let lines: Vec<&str> = docker
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(repo("Cargo.lock").is_file(), "--locked needs Cargo.lock");
    assert!(
        lines.contains(&"RUN cargo build --release --locked"),
        "the build stage runs exactly `cargo build --release --locked`"
    );
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "two stages");
    assert!(froms[0].starts_with("FROM rust:1-slim-bookworm AS "));
    assert!(
        [
            "FROM debian:bookworm-slim",
            "FROM gcr.io/distroless/cc-debian12"
        ]
        .iter()
        .any(|f| froms[1].starts_with(f))
    );
    // USER in the final stage, and not root.
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let user = lines[last_from..]
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(!["root", "0"].contains(&uid), "USER {user} is root");
    let health = lines
        .iter()
        .position(|l| l.starts_with("HEALTHCHECK"))
        .expect("HEALTHCHECK");
    let health_cmd = lines[health..]
        .iter()
        .take(3)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        health_cmd.contains("/healthz") && health_cmd.contains("curl"),
        "{health_cmd}"
    );
    assert!(
        docker.contains("apt-get install") && docker.contains(" curl "),
        "curl is installed"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("STOPSIGNAL")),
        "SIGTERM drains"
    );
    assert!(lines.contains(&"EXPOSE 6432 9465"));
    assert!(lines.contains(&r#"ENTRYPOINT ["/usr/local/bin/lockroute"]"#));
}

// ---- The sidecar contract on the real binary. Helpers follow tests/binary.rs. ----

/// Starts the binary configured the way the manifests configure it: by environment only, with
/// the manifests' drain timeout, JSON logs and the kill switch explicitly off.
async fn start_like_the_manifests() -> Running {
    let s = StandIn::shared();
    let (port, admin_port) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_lockroute"))
        .env("LOCKROUTE_POOLER_URL", &s.pooler_url)
        .env("LOCKROUTE_DIRECT_URL", &s.direct_url)
        .env("LOCKROUTE_LISTEN", format!("127.0.0.1:{port}"))
        .env("LOCKROUTE_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
        .env("LOCKROUTE_DRAIN_TIMEOUT", "30s")
        .env("LOCKROUTE_LOG_FORMAT", "json")
        .env("LOCKROUTE_PASSTHROUGH", "0")
        .env_remove("GBRAIN_DISABLE_DIRECT_POOL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // What the startupProbe waits for.
    Running {
        child,
        port,
        admin_port,
    }
    .wait_until_ok("/healthz")
    .await
}

/// The native-sidecar shutdown, from lockroute's side: SIGTERM arrives while the worker is
/// still in a transaction; the transaction commits; liveness stays 200 throughout (a kubelet
/// must not kill a draining sidecar), readiness turns 503; once the worker disconnects, the
/// process exits 0 within a second, long before the drain timeout.
#[tokio::test]
async fn sidecar_sigterm_mid_transaction_commits_then_exits_zero_within_a_second() {
    let mut running = start_like_the_manifests().await;
    let table = common::unique_name("deploy_drain");
    let direct = pg_connect(&StandIn::shared().direct_url).await;
    direct
        .batch_execute(&format!("create table {table} (v int)"))
        .await
        .unwrap();
    let url = format!(
        "postgres://app:app-secret@127.0.0.1:{}/app?sslmode=disable",
        running.port
    );
    let client = pg_connect(&url).await;
    client.batch_execute("begin").await.unwrap();
    client
        .execute(&format!("insert into {table} values (1)"), &[])
        .await
        .unwrap();

    signal(&running.child, "TERM");
    let mut ready = None;
    for _ in 0..100 {
        ready = http_status(running.admin_port, "/readyz").await;
        if ready == Some(503) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ready, Some(503), "/readyz turns 503 on SIGTERM");
    assert_eq!(
        http_status(running.admin_port, "/healthz").await,
        Some(200),
        "/healthz (the livenessProbe) stays 200 during a drain"
    );

    client
        .execute(&format!("insert into {table} values (2)"), &[])
        .await
        .unwrap();
    client.batch_execute("commit").await.unwrap();
    let count: i64 = direct
        .query_one(&format!("select count(*) from {table}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2, "the transaction opened before SIGTERM committed");
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "lockroute stays up while its client is connected"
    );

    drop(client);
    let disconnected = Instant::now();
    let status = wait_exit(&mut running.child, Duration::from_secs(1))
        .await
        .expect("exits within 1s of the last client's disconnect");
    assert_eq!(status.code(), Some(0), "a drained exit is status 0");
    assert!(disconnected.elapsed() < Duration::from_secs(1));
    direct
        .batch_execute(&format!("drop table {table}"))
        .await
        .unwrap();
}
