//! The real binary's command line: help, version and configuration failures. Only failures are
//! tested here, because a valid configuration starts the proxy.

use std::process::{Command, Output};

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

const CONTRACT: [(&str, &str); 12] = [
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
        "[default: gbrain's claim, renewLock and cycle-lock refresh]",
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
