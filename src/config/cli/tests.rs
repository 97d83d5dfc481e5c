//! Tests for the clap surface: choices, clap's errors as one line, `--help` and `--version`.

use crate::config::test_support::{assert_error, no_env, parse};
use crate::config::{ClientTls, Config, LogFormat, Mode};

#[test]
fn choice_flags_accept_listed_values_only() {
    assert_eq!(parse(&["--mode", "shadow"]).unwrap().mode, Mode::Shadow);
    assert_eq!(
        parse(&["--mode", "PASSTHROUGH"]).unwrap().mode,
        Mode::Passthrough
    );
    assert_eq!(
        parse(&["--log-format", "json"]).unwrap().log_format,
        LogFormat::Json
    );
    assert_eq!(
        parse(&["--client-tls", "off"]).unwrap().client.tls,
        ClientTls::Disabled
    );
    let cases = [
        ("--mode", "splat"),
        ("--log-format", "xml"),
        ("--client-auth", "md5"),
        ("--client-tls", "maybe"),
    ];
    for (flag, value) in cases {
        let line = assert_error(
            parse(&[flag, value]),
            &format!("{flag}: invalid value \"{value}\""),
        );
        assert!(line.contains("expected one of"), "{line}");
    }
}

#[test]
fn clap_errors_are_one_line_exit_64() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["lockroute"],
            "--pooler-url: required (or set LOCKROUTE_POOLER_URL)",
        ),
        (
            &["lockroute", "--pooler-url", "postgres://u:p@h", "--bogus"],
            "--bogus: unknown flag",
        ),
        (
            &["lockroute", "--pooler-url", "postgres://u:p@h", "--mode"],
            "--mode: a value is required",
        ),
        (
            &["lockroute", "--pooler-url", "a", "--pooler-url", "b"],
            "--pooler-url: cannot be used multiple times",
        ),
    ];
    for (args, want) in cases {
        let err = Config::from_args(args, &no_env).expect_err(want);
        assert_eq!((err.to_string().as_str(), err.exit_code()), (want, 64));
    }
}

#[test]
fn help_and_version_exit_zero_with_text() {
    for (flag, needle) in [
        ("--help", "--pooler-url"),
        ("--version", env!("CARGO_PKG_VERSION")),
    ] {
        let err = Config::from_args(["lockroute", flag], &no_env).expect_err(flag);
        assert_eq!(err.exit_code(), 0);
        assert!(err.to_string().contains(needle), "{err}");
    }
}
