//! Tests for `Config::from_args` as a whole: defaults, the kill switches, upstream targets,
//! routing, client auth and TLS, and that no password leaks.

use super::test_support::{PASSWORD, assert_error, env_of, no_env, parse, parse_with};
use super::*;

type Vars = &'static [(&'static str, &'static str)];
type ModeOutcome = Option<(Mode, ModeSource)>;

#[test]
fn defaults_only_pooler_url_match_contract() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.listen, "127.0.0.1:6432".parse().unwrap());
    assert_eq!(c.admin_listen, "127.0.0.1:9465".parse().unwrap());
    assert_eq!((c.mode, c.mode_source), (Mode::Split, ModeSource::Flag));
    assert_eq!(c.routing.tag, "lockroute:direct");
    assert!(c.routing.lock_patterns.is_empty());
    assert_eq!(c.routing.presets, PresetId::BUILT_IN);
    assert_eq!(
        (c.direct_lane.pool_size, c.direct_lane.max_sessions),
        (1, 4)
    );
    assert_eq!(c.direct_lane.connect_timeout, Duration::from_secs(2));
    assert_eq!(c.direct_lane.wait_timeout, Duration::from_secs(5));
    assert_eq!(c.direct_lane.hold_timeout, Duration::from_secs(5));
    assert_eq!(c.direct_lane.keepalive_interval, Duration::from_secs(30));
    assert_eq!(c.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.pooler_connect_wait, Duration::from_secs(6));
    assert_eq!(c.drain_timeout, Duration::from_secs(30));
    assert_eq!(c.client.handshake_timeout, Duration::from_secs(10));
    assert_eq!(c.client.max_message_size, 64 << 20);
    assert_eq!(c.client.tls, ClientTls::SelfSigned);
    assert_eq!(c.log_format, LogFormat::Text);
    match c.client.auth {
        ClientAuth::Scram { user, password } => {
            assert_eq!((user.as_str(), password.as_str()), ("app", PASSWORD))
        }
        ClientAuth::Trust => panic!("default client auth must be scram"),
    }
}

#[test]
fn direct_url_absent_is_pooler_with_port_5432() {
    let c = parse(&[]).unwrap();
    let want = UpstreamTarget {
        port: 5432,
        ..c.pooler.clone()
    };
    assert_eq!(c.direct, want);
    assert_eq!(c.pooler.port, 6543);
    assert_eq!(c.direct.password.as_deref(), Some(PASSWORD));
    assert_eq!(c.direct.sslmode, SslMode::Require);
    assert_eq!(
        (c.direct.host.as_str(), c.direct.database.as_str()),
        ("db.example.com", "main")
    );
}

#[test]
fn direct_url_given_is_used_as_is() {
    let c = parse(&[
        "--direct-url",
        "postgresql://owner:pw@direct.example.com:6000/other",
    ])
    .unwrap();
    assert_eq!(
        (c.direct.host.as_str(), c.direct.port),
        ("direct.example.com", 6000)
    );
    assert_eq!(
        (c.direct.user.as_str(), c.direct.database.as_str()),
        ("owner", "other")
    );
    assert_eq!(c.direct.sslmode, SslMode::Prefer);
    assert_error(parse(&["--direct-url", "http://x@y/z"]), "--direct-url: ");
}

#[test]
fn kill_switch_values_set_mode_and_source() {
    use Mode::*;
    use ModeSource::*;
    let cases: [(Vars, &[&str], ModeOutcome); 14] = [
        (&[], &[], Some((Split, Flag))),
        (&[], &["--mode", "shadow"], Some((Shadow, Flag))),
        (
            &[("LOCKROUTE_PASSTHROUGH", "1")],
            &["--mode", "shadow"],
            Some((Passthrough, LockroutePassthrough)),
        ),
        (
            &[("LOCKROUTE_PASSTHROUGH", "true")],
            &[],
            Some((Passthrough, LockroutePassthrough)),
        ),
        (
            &[("LOCKROUTE_PASSTHROUGH", "TRUE")],
            &[],
            Some((Passthrough, LockroutePassthrough)),
        ),
        (
            &[("LOCKROUTE_PASSTHROUGH", "0")],
            &["--mode", "shadow"],
            Some((Shadow, Flag)),
        ),
        (
            &[("LOCKROUTE_PASSTHROUGH", "false")],
            &[],
            Some((Split, Flag)),
        ),
        (&[("LOCKROUTE_PASSTHROUGH", "")], &[], Some((Split, Flag))),
        (
            &[("GBRAIN_DISABLE_DIRECT_POOL", "1")],
            &[],
            Some((Passthrough, GbrainDisableDirectPool)),
        ),
        (
            &[("GBRAIN_DISABLE_DIRECT_POOL", "true")],
            &["--mode", "split"],
            Some((Passthrough, GbrainDisableDirectPool)),
        ),
        (
            &[("GBRAIN_DISABLE_DIRECT_POOL", "0")],
            &[],
            Some((Split, Flag)),
        ),
        (
            &[
                ("LOCKROUTE_PASSTHROUGH", "1"),
                ("GBRAIN_DISABLE_DIRECT_POOL", "1"),
            ],
            &[],
            Some((Passthrough, LockroutePassthrough)),
        ),
        (
            &[
                ("LOCKROUTE_PASSTHROUGH", "0"),
                ("GBRAIN_DISABLE_DIRECT_POOL", "true"),
            ],
            &[],
            Some((Passthrough, GbrainDisableDirectPool)),
        ),
        (
            &[
                ("LOCKROUTE_PASSTHROUGH", "1"),
                ("GBRAIN_DISABLE_DIRECT_POOL", "yes"),
            ],
            &[],
            None,
        ),
    ];
    for (vars, flags, want) in cases {
        let env = env_of(vars);
        let result = parse_with(flags, &env);
        match want {
            Some(want) => {
                let c = result.unwrap();
                assert_eq!((c.mode, c.mode_source), want, "{vars:?} {flags:?}");
            }
            None => {
                assert_error(result, "GBRAIN_DISABLE_DIRECT_POOL: invalid value \"yes\"");
            }
        }
    }
}

#[test]
fn kill_switch_garbage_names_the_variable() {
    for var in ["LOCKROUTE_PASSTHROUGH", "GBRAIN_DISABLE_DIRECT_POOL"] {
        for value in ["yes", "on", "2", "ture"] {
            let env = move |k: &str| (k == var).then(|| value.to_owned());
            assert_error(
                parse_with(&[], &env),
                &format!("{var}: invalid value \"{value}\""),
            );
        }
    }
}

#[test]
fn trust_client_auth_only_on_loopback_listen() {
    let cases = [
        ("127.0.0.1:6432", true),
        ("127.0.0.2:6432", true),
        ("[::1]:6432", true),
        ("localhost:6432", true),
        ("[::ffff:127.0.0.1]:6432", true),
        ("0.0.0.0:6432", false),
        ("[::]:6432", false),
        ("10.0.0.5:6432", false),
    ];
    for (listen, allowed) in cases {
        let result = parse(&["--client-auth", "trust", "--listen", listen]);
        if allowed {
            assert!(
                matches!(result.unwrap().client.auth, ClientAuth::Trust),
                "{listen}"
            );
        } else {
            assert_error(result, "--client-auth: trust is refused");
        }
    }
}

#[test]
fn scram_password_comes_from_flag_then_pooler_url() {
    let with_flag = parse(&["--client-password", "-other"]).unwrap();
    assert!(
        matches!(&with_flag.client.auth, ClientAuth::Scram { user, password } if user == "app" && password == "-other")
    );
    let empty_flag = parse(&["--client-password", ""]).unwrap();
    assert!(
        matches!(&empty_flag.client.auth, ClientAuth::Scram { password, .. } if password == PASSWORD)
    );
    let no_pw = ["lockroute", "--pooler-url", "postgres://app@h:6543/db"];
    let line = assert_error(Config::from_args(no_pw, &no_env), "--client-password: ");
    assert!(line.contains("scram"), "{line}");
    let no_pw_flag = [
        "lockroute",
        "--pooler-url",
        "postgres://app@h/db",
        "--client-password",
        "x",
    ];
    assert!(Config::from_args(no_pw_flag, &no_env).is_ok());
    let trust = [
        "lockroute",
        "--pooler-url",
        "postgres://app@h/db",
        "--client-auth",
        "trust",
    ];
    assert!(Config::from_args(trust, &no_env).is_ok());
}

#[test]
fn tls_files_must_come_in_readable_pairs() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let dir = env!("CARGO_MANIFEST_DIR");
    let missing = "/nonexistent/lockroute/cert.pem";
    let ok = parse(&["--tls-cert", file, "--tls-key", file]).unwrap();
    assert_eq!(
        ok.client.tls,
        ClientTls::Files {
            cert: file.into(),
            key: file.into()
        }
    );
    let cases: [(&[&str], &str); 6] = [
        (
            &["--tls-cert", file],
            "--tls-key: required when --tls-cert is set",
        ),
        (
            &["--tls-key", file],
            "--tls-cert: required when --tls-key is set",
        ),
        (
            &["--tls-cert", missing, "--tls-key", file],
            "--tls-cert: cannot read",
        ),
        (
            &["--tls-cert", file, "--tls-key", missing],
            "--tls-key: cannot read",
        ),
        (
            &["--tls-cert", dir, "--tls-key", file],
            "--tls-cert: cannot read",
        ),
        (
            &["--client-tls", "off", "--tls-cert", file, "--tls-key", file],
            "--client-tls: off conflicts",
        ),
    ];
    for (flags, prefix) in cases {
        assert_error(parse(flags), prefix);
    }
}

#[test]
fn presets_default_to_all_and_take_names_lists_and_none() {
    use PresetId::{GraphileWorker, Oban, PgBoss};
    let presets = |flags: &[&str]| parse(flags).unwrap().routing.presets;
    assert_eq!(presets(&[]), PresetId::BUILT_IN);
    assert_eq!(presets(&["--preset", "oban"]), [Oban]);
    assert_eq!(
        presets(&[
            "--preset",
            "pg-boss",
            "--preset",
            "graphile-worker,oban,pg-boss"
        ]),
        [PgBoss, GraphileWorker, Oban]
    );
    assert_eq!(presets(&["--preset", "none"]), []);
    assert_eq!(presets(&["--preset", "none,none"]), []);
    assert_eq!(presets(&["--preset", " oban , ,"]), [Oban]);
    // Custom patterns add to the presets.
    let both = parse(&["--preset", "oban", "--lock-pattern", "^x"]).unwrap();
    assert_eq!(
        (both.routing.presets, both.routing.lock_patterns),
        (vec![Oban], vec!["^x".to_owned()])
    );
}

#[test]
fn preset_unknown_or_mixed_with_none_is_one_line_naming_flag() {
    let line = assert_error(
        parse(&["--preset", "pgboss"]),
        "--preset: unknown preset \"pgboss\": expected none or any of gbrain, pg-boss,",
    );
    assert!(line.ends_with("good-job, que"), "{line}");
    assert_error(
        parse(&["--preset", "Oban"]),
        "--preset: unknown preset \"Oban\"",
    );
    assert_error(
        parse(&["--preset", "custom"]),
        "--preset: unknown preset \"custom\"",
    );
    assert_error(
        parse(&["--preset", "none,oban"]),
        "--preset: none turns every preset off and cannot be combined with \"oban\"",
    );
}

#[test]
fn lock_patterns_flags_then_env_then_none() {
    let env = env_of(&[("LOCKROUTE_LOCK_PATTERNS", "  ^UPDATE a\r\n\n^UPDATE b  \n")]);
    let from_env = parse_with(&[], &env).unwrap().routing.lock_patterns;
    assert_eq!(from_env, ["^UPDATE a", "^UPDATE b"]);
    let flags = parse_with(&["--lock-pattern", "^x", "--lock-pattern", "-y"], &env).unwrap();
    assert_eq!(flags.routing.lock_patterns, ["^x", "-y"]);
    let blank_env = env_of(&[("LOCKROUTE_LOCK_PATTERNS", " \n")]);
    assert!(
        parse_with(&[], &blank_env)
            .unwrap()
            .routing
            .lock_patterns
            .is_empty()
    );
}

#[test]
fn lock_pattern_bad_regex_is_one_line_naming_pattern() {
    let line = assert_error(
        parse(&["--lock-pattern", "(UPDATE"]),
        "--lock-pattern: invalid regex \"(UPDATE\": ",
    );
    assert!(line.contains("unclosed group"), "{line}");
    let env = env_of(&[("LOCKROUTE_LOCK_PATTERNS", "^ok\n[z-a]")]);
    assert_error(
        parse_with(&[], &env),
        "--lock-pattern: invalid regex \"[z-a]\"",
    );
    assert_error(
        parse(&["--lock-pattern", ""]),
        "--lock-pattern: an empty pattern",
    );
    assert_error(
        parse(&["--lock-pattern", "a\nb("]),
        "--lock-pattern: invalid regex \"a\\nb(\"",
    );
}

#[test]
fn tag_must_be_a_single_word() {
    assert_eq!(
        parse(&["--tag", "route:direct"]).unwrap().routing.tag,
        "route:direct"
    );
    for bad in ["", "two words", "tab\there"] {
        assert_error(parse(&["--tag", bad]), "--tag: ");
    }
}

#[test]
fn password_never_appears_in_errors_or_debug() {
    let secret = "Sup3rS3cret";
    let urls = [
        format!("postgres://u:{secret}@h:notaport/d"),
        format!("mysql://u:{secret}@h/d"),
        format!("postgres://u:{secret}@/d"),
        format!("postgres://:{secret}@h/d"),
        format!("postgres://u:{secret}%zz@h/d"),
        format!("postgres://u:{secret}@h/d?sslmode=bogus"),
        format!("{secret}:{secret}@h"),
    ];
    for url in &urls {
        for flag in ["--pooler-url", "--direct-url"] {
            let mut args = vec!["lockroute", "--pooler-url", "postgres://u:x@h/d"];
            args.extend([flag, url.as_str()]);
            let err = Config::from_args(args, &no_env).expect_err(url);
            assert!(!err.to_string().contains(secret), "{err}");
            assert!(!format!("{err:?}").contains(secret), "{err:?}");
        }
    }
    let stray = Config::from_args(["lockroute", &urls[0]], &no_env).expect_err("positional");
    assert!(!stray.to_string().contains(secret), "{stray}");
    let good = format!("postgres://u:{secret}@h/d");
    let config = Config::from_args(
        [
            "lockroute",
            "--pooler-url",
            &good,
            "--client-password",
            secret,
        ],
        &no_env,
    )
    .unwrap();
    assert!(!format!("{config:?}").contains(secret));
}

#[test]
fn pooler_connect_wait_takes_humantime_and_names_its_flag_when_bad() {
    let c = parse(&["--pooler-connect-wait", "250ms"]).unwrap();
    assert_eq!(c.pooler_connect_wait, Duration::from_millis(250));
    assert_error(
        parse(&["--pooler-connect-wait", "soon"]),
        "--pooler-connect-wait: invalid duration",
    );
    assert_error(
        parse(&["--pooler-connect-wait", "0s"]),
        "--pooler-connect-wait: ",
    );
}
