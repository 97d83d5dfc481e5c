//! Tests for `connect`.
use super::*;
use crate::config::SslMode;
use crate::protocol::message::Severity;

fn target() -> UpstreamTarget {
    UpstreamTarget {
        host: "127.0.0.1".into(),
        port: 5432,
        user: "app".into(),
        password: Some("s3cret-pw".into()),
        database: "appdb".into(),
        sslmode: SslMode::Disable,
        sslrootcert: None,
    }
}

fn auth_body(code: i32, rest: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(rest);
    body
}

#[test]
fn parse_auth_each_request_decodes() {
    let table: Vec<(Vec<u8>, AuthRequest<'static>)> = vec![
        (auth_body(0, b""), AuthRequest::Ok),
        (auth_body(3, b""), AuthRequest::Cleartext),
        (auth_body(5, b"abcd"), AuthRequest::Md5(*b"abcd")),
        (
            auth_body(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"),
            AuthRequest::Sasl(vec![b"SCRAM-SHA-256-PLUS", b"SCRAM-SHA-256"]),
        ),
        (auth_body(11, b"r=abc"), AuthRequest::SaslContinue(b"r=abc")),
        (auth_body(12, b"v=xyz"), AuthRequest::SaslFinal(b"v=xyz")),
        (auth_body(7, b""), AuthRequest::Other(7)),
    ];
    for (body, want) in table {
        assert_eq!(parse_auth(&body).unwrap(), want);
    }
}

#[test]
fn parse_auth_malformed_is_protocol_error() {
    for body in [
        vec![0, 0, 0],
        auth_body(5, b"abc"),
        auth_body(10, b"SCRAM-SHA-256"),
        auth_body(10, b""),
    ] {
        assert!(
            matches!(parse_auth(&body), Err(ConnectError::Protocol(_))),
            "{body:?}"
        );
    }
}

#[test]
fn md5_password_matches_server_formula() {
    // u=$(echo -n s3cret-pwapp | md5sum | cut -c1-32); echo "md5$(echo -n "${u}abcd" | md5sum)"
    assert_eq!(
        md5_password("app", "s3cret-pw", *b"abcd"),
        "md54ab4c0274ea5752cb1ebf2a8a4c1683d"
    );
}

#[test]
fn startup_message_target_user_wins_and_protocol_options_dropped() {
    let params = [
        ("user".to_owned(), "evil".to_owned()),
        ("database".to_owned(), "other".to_owned()),
        ("application_name".to_owned(), "worker".to_owned()),
        ("_pq_.compression".to_owned(), "on".to_owned()),
        ("statement_timeout".to_owned(), "9s".to_owned()),
    ];
    let msg = startup_message(&target(), &params);
    assert_eq!(
        &msg[8..],
        b"user\0app\0database\0appdb\0application_name\0worker\0statement_timeout\x009s\0\0"
    );
    assert_eq!(
        u32::from_be_bytes(msg[0..4].try_into().unwrap()) as usize,
        msg.len()
    );
}

#[test]
fn cancel_request_layout_is_code_pid_secret() {
    let bytes = cancel_request(BackendKey {
        pid: 0x01020304,
        secret: -1,
    });
    assert_eq!(
        bytes,
        [
            0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff
        ]
    );
}

#[test]
fn backend_key_wrong_length_is_protocol_error() {
    assert_eq!(
        backend_key(&[0, 0, 0, 7, 0, 0, 0, 9]).unwrap(),
        BackendKey { pid: 7, secret: 9 }
    );
    assert!(matches!(
        backend_key(&[0; 12]),
        Err(ConnectError::Protocol(_))
    ));
}

#[tokio::test]
async fn scram_step_only_plus_offered_is_unsupported() {
    let mut state = Scram::NotStarted;
    let err = scram_step(
        &mut state,
        AuthRequest::Sasl(vec![b"SCRAM-SHA-256-PLUS"]),
        &target(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ConnectError::UnsupportedAuth(ref m) if m.contains("SCRAM-SHA-256-PLUS")),
        "{err}"
    );
}

#[tokio::test]
async fn scram_step_out_of_order_is_protocol_error() {
    let mut state = Scram::NotStarted;
    let err = scram_step(&mut state, AuthRequest::SaslFinal(b"v=x"), &target())
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Protocol(_)));
}

#[tokio::test]
async fn scram_step_without_password_is_missing_password() {
    let mut t = target();
    t.password = None;
    let err = scram_step(
        &mut Scram::NotStarted,
        AuthRequest::Sasl(vec![b"SCRAM-SHA-256"]),
        &t,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectError::MissingPassword));
}

#[test]
fn server_error_keeps_frame_and_code() {
    let mut buf = BytesMut::new();
    message::error_response(
        &mut buf,
        Severity::Fatal,
        "28P01",
        "password authentication failed",
    );
    let frame = frame::try_take(&mut buf, 1024).unwrap().unwrap();
    let err = server_error(&frame);
    assert_eq!(err.sqlstate(), "28P01");
    assert_eq!(err.kind(), "server");
    assert!(matches!(err, ConnectError::Server { frame: ref f, .. } if f == &frame.bytes));
}

#[test]
fn kind_and_sqlstate_non_server_errors_are_08001() {
    let errors = [
        (ConnectError::Timeout, "timeout"),
        (ConnectError::TlsRefused, "tls_refused"),
        (ConnectError::Tls("x".into()), "tls"),
        (
            ConnectError::UnsupportedAuth("x".into()),
            "unsupported_auth",
        ),
        (ConnectError::MissingPassword, "missing_password"),
        (ConnectError::Protocol("x".into()), "protocol"),
        (
            ConnectError::Io(io::ErrorKind::ConnectionRefused.into()),
            "io",
        ),
    ];
    for (err, kind) in errors {
        assert_eq!((err.kind(), err.sqlstate()), (kind, "08001"));
    }
}
