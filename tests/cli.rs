//! The real binary's command line: help, version and configuration failures. Only failures are
//! tested here, because a valid configuration starts the proxy.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs lockroute with `args` and `vars`, after removing every variable it reads, so the
/// developer's or CI's environment cannot change the outcome.
fn run(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockroute"));
    for (name, _) in std::env::vars_os() {
        let name_str = name.to_string_lossy();
        if name_str.starts_with("LOCKROUTE_") || name_str == "GBRAIN_DISABLE_DIRECT_POOL" {
            cmd.env_remove(&name);
        }
    }
    cmd.args(args).envs(vars.iter().copied());
    cmd.output().expect("lockroute runs")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

const CONTRACT: [(&str, &str); 15] = [
    ("--listen", "LOCKROUTE_LISTEN"),
    ("--pooler-url", "LOCKROUTE_POOLER_URL"),
    ("--direct-url", "LOCKROUTE_DIRECT_URL"),
    ("--admin-listen", "LOCKROUTE_ADMIN_LISTEN"),
    ("--mode", "LOCKROUTE_MODE"),
    ("--tag", "LOCKROUTE_TAG"),
    ("--lock-pattern", "LOCKROUTE_LOCK_PATTERNS"),
    ("--direct-pool-size", "LOCKROUTE_DIRECT_POOL_SIZE"),
    ("--direct-max-sessions", "LOCKROUTE_DIRECT_MAX_SESSIONS"),
    ("--client-auth", "LOCKROUTE_CLIENT_AUTH"),
    ("--drain-timeout", "LOCKROUTE_DRAIN_TIMEOUT"),
    ("--log-format", "LOCKROUTE_LOG_FORMAT"),
    ("--preset", "LOCKROUTE_PRESETS"),
    ("--control-file", "LOCKROUTE_CONTROL_FILE"),
    ("--pin", "LOCKROUTE_PIN"),
];

#[test]
fn help_flag_exits_zero_and_documents_every_contract_flag() {
    let out = run(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env) in CONTRACT {
        assert!(help.contains(&format!("{flag} <")), "help lacks {flag}");
        assert!(help.contains(env), "help lacks {env}");
    }
    for needle in [
        "LOCKROUTE_PASSTHROUGH",
        "GBRAIN_DISABLE_DIRECT_POOL",
        "[default: 127.0.0.1:6432]",
        "[default: 127.0.0.1:9465]",
        "[default: split]",
        "[default: lockroute:direct]",
        "[default: 1]",
        "[default: 4]",
        "[default: scram]",
        "[default: 30s]",
        "[default: text]",
        "[default: the pooler URL with its port set to 5432]",
        "[default: the pooler URL's password]",
        "adds to the presets, it does not replace them",
        "[default: every built-in preset]",
        "gbrain, pg-boss, graphile-worker, procrastinate, pgqueuer, river, oban, solid-queue, good-job, que",
        "[default: 64MiB]",
    ] {
        assert!(help.contains(needle), "help lacks {needle}");
    }
}

#[test]
fn help_with_secrets_in_env_does_not_show_them() {
    let secret = "HelpS3cret";
    let url = format!("postgres://u:{secret}@h:6543/d");
    let out = run(
        &["--help"],
        &[
            ("LOCKROUTE_POOLER_URL", &url),
            ("LOCKROUTE_DIRECT_URL", &url),
            ("LOCKROUTE_CLIENT_PASSWORD", secret),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
}

#[test]
fn version_flag_exits_zero() {
    let out = run(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_duration_exits_64_with_one_line_naming_flag() {
    let out = run(
        &[
            "--pooler-url",
            "postgres://u:pw@h:6543/d",
            "--drain-timeout",
            "abc",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(64));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("lockroute: --drain-timeout: invalid duration \"abc\""),
        "{lines:?}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_env_value_exits_64_naming_flag() {
    let out = run(
        &[],
        &[
            ("LOCKROUTE_POOLER_URL", "postgres://u:pw@h:6543/d"),
            ("LOCKROUTE_DIRECT_POOL_SIZE", "0"),
        ],
    );
    assert_eq!(out.status.code(), Some(64));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("lockroute: --direct-pool-size: "),
        "{lines:?}"
    );
}

#[test]
fn missing_pooler_url_exits_64_with_one_line() {
    let out = run(&[], &[]);
    assert_eq!(out.status.code(), Some(64));
    let lines = stderr_lines(&out);
    assert_eq!(
        lines,
        ["lockroute: --pooler-url: required (or set LOCKROUTE_POOLER_URL)"]
    );
}

#[test]
fn unknown_flag_exits_64_with_one_line() {
    let out = run(
        &["--pooler-url", "postgres://u:pw@h/d", "--no-such-flag"],
        &[],
    );
    assert_eq!(out.status.code(), Some(64));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("lockroute: --no-such-flag: "),
        "{lines:?}"
    );
}

#[test]
fn kill_switch_typo_exits_64_naming_variable() {
    let out = run(
        &["--pooler-url", "postgres://u:pw@h/d"],
        &[("GBRAIN_DISABLE_DIRECT_POOL", "yes")],
    );
    assert_eq!(out.status.code(), Some(64));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("lockroute: GBRAIN_DISABLE_DIRECT_POOL: "),
        "{lines:?}"
    );
}

#[test]
fn bad_pooler_url_exits_64_without_echoing_password() {
    let secret = "CliS3cret";
    let url = format!("postgres://u:{secret}@h:notaport/d");
    let out = run(&["--pooler-url", &url], &[]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("lockroute: --pooler-url: "), "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
}

#[test]
fn unknown_preset_exits_64_with_one_line_naming_flag() {
    let url = ("LOCKROUTE_POOLER_URL", "postgres://u:pw@h:6543/d");
    for (args, vars) in [
        (&["--preset", "pgboss"][..], &[url][..]),
        (&[][..], &[url, ("LOCKROUTE_PRESETS", "oban,sidekiq")][..]),
    ] {
        let out = run(args, vars);
        assert_eq!(out.status.code(), Some(64), "{args:?} {vars:?}");
        let lines = stderr_lines(&out);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("lockroute: --preset: unknown preset \""),
            "{lines:?}"
        );
    }
}

/// Runs `lockroute explain` with `stdin` piped in.
fn explain(args: &[&str], vars: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockroute"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LOCKROUTE_") {
            cmd.env_remove(&name);
        }
    }
    cmd.arg("explain").args(args).envs(vars.iter().copied());
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("lockroute explain runs");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    pipe.write_all(stdin.as_bytes()).expect("stdin written");
    drop(pipe);
    child.wait_with_output().expect("lockroute explain exits")
}

#[test]
fn explain_reads_stdin_and_prints_lane_reason_preset_kind_retry_and_pin() {
    let out = explain(
        &[],
        &[],
        "UPDATE pgqueuer SET heartbeat = NOW() WHERE id = ANY($1::bigint[])\n",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "lane: direct\nreason: pattern\npreset: pgqueuer\nkind: heartbeat\nretry: safe\n\
         rule: build_update_heartbeat_query()\nsignal: text\npin: none\n"
    );
}

#[test]
fn explain_json_uses_the_name_and_the_proxy_environment() {
    let out = explain(
        &["--json", "--name", "get_job/graphile_worker", "select 1"],
        &[],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(json["lane"], "direct");
    assert_eq!(json["preset"], "graphile-worker");
    assert_eq!(json["kind"], "claim");
    assert_eq!(json["retry"], "unsafe");
    assert_eq!(json["pin"], serde_json::Value::Null);
    // LOCKROUTE_PRESETS=none, as the proxy would read it: the same statement stays pooled.
    let off = explain(
        &["--json", "--name", "get_job/graphile_worker", "select 1"],
        &[("LOCKROUTE_PRESETS", "none")],
        "",
    );
    let json: serde_json::Value = serde_json::from_slice(&off.stdout).expect("one JSON object");
    assert_eq!(
        (json["lane"].as_str(), json["reason"].as_str()),
        (Some("pooler"), Some("default"))
    );
}

#[test]
fn explain_bad_flag_exits_64_with_one_line() {
    let out = explain(&["--lock-pattern", "(oops", "select 1"], &[], "");
    assert_eq!(out.status.code(), Some(64));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("lockroute explain: --lock-pattern: invalid regex"),
        "{lines:?}"
    );
}

#[test]
fn bad_control_file_at_start_exits_64_naming_the_entry() {
    let dir = std::env::temp_dir().join(format!("lockroute-cli-control-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("control.env");
    std::fs::write(&file, "# ok\nLOCKROUTE_PRESETS=gbrain,sidekiq\n").unwrap();
    let path = file.display().to_string();
    let out = run(
        &["--pooler-url", "postgres://u:pw@h/d"],
        &[("LOCKROUTE_CONTROL_FILE", path.as_str())],
    );
    let missing = run(
        &["--pooler-url", "postgres://u:pw@h/d", "--control-file"],
        &[],
    );
    let absent = dir.join("absent.env").display().to_string();
    let unreadable = run(
        &[
            "--pooler-url",
            "postgres://u:pw@h/d",
            "--control-file",
            &absent,
        ],
        &[],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(64));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "lockroute: --control-file line 2: \"LOCKROUTE_PRESETS\": unknown preset \"sidekiq\""
        ),
        "{lines:?}"
    );
    assert_eq!(missing.status.code(), Some(64));
    assert_eq!(unreadable.status.code(), Some(64));
    let lines = stderr_lines(&unreadable);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("lockroute: --control-file "),
        "{lines:?}"
    );
}

#[test]
fn bad_pooler_connect_wait_env_exits_64_with_one_line_naming_flag() {
    let out = run(
        &[],
        &[
            ("LOCKROUTE_POOLER_URL", "postgres://u:pw@h:6543/d"),
            ("LOCKROUTE_POOLER_CONNECT_WAIT", "a while"),
        ],
    );
    assert_eq!(out.status.code(), Some(64));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("lockroute: --pooler-connect-wait: invalid duration \"a while\""),
        "{lines:?}"
    );
}

#[test]
fn help_documents_pooler_connect_wait_and_its_default() {
    let out = run(&["--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--pooler-connect-wait <DURATION>"), "{help}");
    assert!(help.contains("LOCKROUTE_POOLER_CONNECT_WAIT"), "{help}");
    assert!(help.contains("[default: 6s]"), "{help}");
}
