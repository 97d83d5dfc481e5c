//! Tests for `postgres://` URL parsing.

use super::*;

#[test]
fn upstream_url_parses_fields() {
    let t = |s: &str| UpstreamTarget::from_url(s).unwrap();
    let full = t(
        "postgres://us%65r:p%40ss%3Aw%2Fd@db.local:6543/my%20db?sslmode=verify-full&sslrootcert=/ca+1.pem&application_name=x",
    );
    assert_eq!(
        (full.user.as_str(), full.password.as_deref()),
        ("user", Some("p@ss:w/d"))
    );
    assert_eq!(
        (full.host.as_str(), full.port, full.database.as_str()),
        ("db.local", 6543, "my db")
    );
    assert_eq!(
        (full.sslmode, full.sslrootcert),
        (SslMode::VerifyFull, Some(PathBuf::from("/ca+1.pem")))
    );
    let bare = t("postgresql://worker@10.1.2.3");
    assert_eq!(
        (bare.host.as_str(), bare.port, bare.database.as_str()),
        ("10.1.2.3", 5432, "worker")
    );
    assert_eq!((bare.password, bare.sslmode), (None, SslMode::Prefer));
    let v6 = t("postgres://u:pw@[::1]:7000/d");
    assert_eq!((v6.host.as_str(), v6.port), ("::1", 7000));
    assert!(v6.is_loopback());
    let raw_at = t("postgres://u:p@ss@h/d");
    assert_eq!(raw_at.password.as_deref(), Some("p@ss"));
    for (mode, want) in [
        ("disable", SslMode::Disable),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
    ] {
        assert_eq!(t(&format!("postgres://u@h/d?sslmode={mode}")).sslmode, want);
    }
}

#[test]
fn upstream_url_refuses_bad_input() {
    let cases = [
        ("http://u:pw@h/d", "scheme"),
        ("postgres://h:5432/d", "no user"),
        ("postgres://u:pw@:5432/d", ""),
        ("postgres:///d", "no host"),
        ("postgres://u:pw@h:0/d", "port 0"),
        ("postgres://u:pw@h:99999/d", "not a valid URL"),
        (
            "postgres://u:pw@h/d?sslmode=allow",
            "invalid sslmode \"allow\"",
        ),
        ("postgres://u:pw@h/d?host=other", "host is not supported"),
        ("postgres://u:50%zz@h/d", "password is not valid"),
        ("not a url", "not a valid URL"),
    ];
    for (url, needle) in cases {
        let err = UpstreamTarget::from_url(url).expect_err(url).to_string();
        assert!(err.contains(needle), "{url}: {err}");
    }
}

#[test]
fn upstream_is_loopback_by_host() {
    let cases = [
        ("localhost", true),
        ("127.0.0.1", true),
        ("[::1]", true),
        ("db.example.com", false),
        ("10.0.0.1", false),
    ];
    for (host, want) in cases {
        let target = UpstreamTarget::from_url(&format!("postgres://u@{host}/d")).unwrap();
        assert_eq!(target.is_loopback(), want, "{host}");
    }
}
