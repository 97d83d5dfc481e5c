//! Tests for the value parsers, through the flags that use them.

use super::*;
use crate::config::test_support::{assert_error, parse};

/// Expected (pool_size, max_sessions), or `None` for an error.
type Sizes = Option<(usize, usize)>;

#[test]
fn duration_flags_validate_each_value() {
    let flags = [
        "--drain-timeout",
        "--connect-timeout",
        "--direct-connect-timeout",
        "--direct-wait-timeout",
        "--direct-hold-timeout",
        "--direct-keepalive-interval",
        "--handshake-timeout",
    ];
    let cases: [(&str, Option<Duration>); 7] = [
        ("250ms", Some(Duration::from_millis(250))),
        ("1m 30s", Some(Duration::from_secs(90))),
        ("1day", Some(MAX_DURATION)),
        ("abc", None),
        ("30", None),
        ("0s", None),
        ("25h", None),
    ];
    for flag in flags {
        for (value, want) in &cases {
            let result = parse(&[flag, value]);
            match want {
                None => {
                    let line = assert_error(result, &format!("{flag}: "));
                    assert!(line.contains(&format!("\"{value}\"")), "{line}");
                }
                Some(want) => {
                    let c = result.unwrap();
                    let got = [
                        c.drain_timeout,
                        c.connect_timeout,
                        c.direct_lane.connect_timeout,
                        c.direct_lane.wait_timeout,
                        c.direct_lane.hold_timeout,
                        c.direct_lane.keepalive_interval,
                        c.client.handshake_timeout,
                    ];
                    let idx = flags.iter().position(|f| *f == flag).unwrap();
                    assert_eq!(got[idx], *want, "{flag} {value}");
                }
            }
        }
    }
}

#[test]
fn drain_timeout_bad_value_names_flag_first() {
    let line = assert_error(parse(&["--drain-timeout", "abc"]), "--drain-timeout: ");
    assert!(
        line.starts_with("--drain-timeout: invalid duration \"abc\": "),
        "{line}"
    );
}

#[test]
fn count_flags_enforce_their_minimum() {
    let cases: [(&str, &str, Sizes); 9] = [
        ("--direct-pool-size", "1", Some((1, 4))),
        ("--direct-pool-size", "8", Some((8, 4))),
        ("--direct-pool-size", "0", None),
        ("--direct-pool-size", "-1", None),
        ("--direct-pool-size", "x", None),
        ("--direct-pool-size", "10001", None),
        ("--direct-max-sessions", "0", Some((1, 0))),
        ("--direct-max-sessions", "16", Some((1, 16))),
        ("--direct-max-sessions", "1.5", None),
    ];
    for (flag, value, want) in cases {
        let result = parse(&[flag, value]);
        match want {
            Some(want) => {
                let lane = result.unwrap().direct_lane;
                assert_eq!((lane.pool_size, lane.max_sessions), want, "{flag} {value}");
            }
            None => {
                assert_error(result, &format!("{flag}: "));
            }
        }
    }
}

#[test]
fn max_message_size_accepts_units_within_bounds() {
    let cases: [(&str, Option<usize>); 12] = [
        ("1024", Some(1024)),
        ("64MiB", Some(64 << 20)),
        ("16MB", Some(16_000_000)),
        ("512KiB", Some(512 << 10)),
        ("512 kib", Some(512 << 10)),
        ("1GiB", Some(1 << 30)),
        ("1023", None),
        ("2GiB", None),
        ("1GB", Some(1_000_000_000)),
        ("12XB", None),
        ("MiB", None),
        ("99999999999999999999GiB", None),
    ];
    for (value, want) in cases {
        let result = parse(&["--max-message-size", value]);
        match want {
            Some(want) => assert_eq!(result.unwrap().client.max_message_size, want, "{value}"),
            None => {
                assert_error(result, "--max-message-size: ");
            }
        }
    }
}

#[test]
fn listen_addresses_parse_or_name_the_flag() {
    let cases: [(&str, Option<&str>); 7] = [
        ("127.0.0.1:7000", Some("127.0.0.1:7000")),
        ("0.0.0.0:6432", Some("0.0.0.0:6432")),
        ("[::1]:6432", Some("[::1]:6432")),
        ("localhost:7001", Some("127.0.0.1:7001")),
        ("127.0.0.1", None),
        ("db.example.com:6432", None),
        (":6432", None),
    ];
    for flag in ["--listen", "--admin-listen"] {
        for (value, want) in cases {
            // trust keeps scram's password rules out of the way; 0.0.0.0 needs scram.
            let result = parse(&[flag, value]);
            match want {
                Some(want) => {
                    let c = result.unwrap();
                    let got = if flag == "--listen" {
                        c.listen
                    } else {
                        c.admin_listen
                    };
                    assert_eq!(got, want.parse::<SocketAddr>().unwrap(), "{flag} {value}");
                }
                None => {
                    assert_error(result, &format!("{flag}: invalid address"));
                }
            }
        }
    }
}
