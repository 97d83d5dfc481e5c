//! Helpers shared by the configuration tests: a command line with a valid pooler URL, a fake
//! environment, and the one-line, exit-64 error check.

use super::{Config, ConfigError};

const POOLER: &str = "postgres://app:s3cr%40t@db.example.com:6543/main?sslmode=require";
pub(super) const PASSWORD: &str = "s3cr@t";

pub(super) fn no_env(_: &str) -> Option<String> {
    None
}

pub(super) fn parse_with(
    extra: &[&str],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut args = vec!["lockroute", "--pooler-url", POOLER];
    args.extend_from_slice(extra);
    Config::from_args(args, env)
}

pub(super) fn parse(extra: &[&str]) -> Result<Config, ConfigError> {
    parse_with(extra, &no_env)
}

pub(super) fn env_of(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    let pairs = pairs.to_vec();
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// Asserts the error is one line, starts with `prefix`, and exits 64.
pub(super) fn assert_error(result: Result<Config, ConfigError>, prefix: &str) -> String {
    let err = result.expect_err(prefix);
    let line = err.to_string();
    assert!(
        line.starts_with(prefix),
        "{line:?} should start with {prefix:?}"
    );
    assert!(!line.contains('\n'), "{line:?} is more than one line");
    assert_eq!(err.exit_code(), 64, "{line}");
    line
}
