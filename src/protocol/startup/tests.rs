//! Tests for the startup packet decoder.
use super::*;
use crate::protocol::message::startup_message;
use proptest::prelude::*;

/// A whole packet from a request code and the bytes after it.
fn packet(code: i32, rest: &[u8]) -> Vec<u8> {
    let len = (8 + rest.len()) as u32;
    [&len.to_be_bytes()[..], &code.to_be_bytes(), rest].concat()
}

#[test]
fn parameters_accepts_pairs_and_rejects_malformed() {
    assert_eq!(
        parameters(b"user\0app\0database\0db\0\0"),
        Some(vec![
            ("user".into(), "app".into()),
            ("database".into(), "db".into())
        ])
    );
    assert_eq!(parameters(b"\0"), Some(vec![]));
    assert_eq!(parameters(b"user\0app\0"), None, "missing terminator");
    assert_eq!(parameters(b"user\0app"), None, "value without NUL");
    assert_eq!(
        parameters(b"user\0app\0\0extra"),
        None,
        "bytes after terminator"
    );
    assert_eq!(parameters(b"user\0\xff\0\0"), None, "invalid UTF-8");
}

#[test]
fn decode_request_codes_table() {
    let key = [&7i32.to_be_bytes()[..], &(-9i32).to_be_bytes()].concat();
    let cases: &[(&str, Vec<u8>, Result<StartupPacket, StartupPacketError>)] = &[
        (
            "SSLRequest",
            packet(SSL_REQUEST, b""),
            Ok(StartupPacket::SslRequest),
        ),
        (
            "SSLRequest with trailing bytes",
            packet(SSL_REQUEST, b"xy"),
            Ok(StartupPacket::SslRequest),
        ),
        (
            "GSSENCRequest",
            packet(GSSENC_REQUEST, b""),
            Ok(StartupPacket::GssEncRequest),
        ),
        (
            "CancelRequest",
            packet(CANCEL_REQUEST, &key),
            Ok(StartupPacket::Cancel(BackendKey { pid: 7, secret: -9 })),
        ),
        (
            "CancelRequest, 3.2 long key",
            packet(CANCEL_REQUEST, &[key.clone(), key.clone()].concat()),
            Ok(StartupPacket::Unsupported {
                major: 1234,
                minor: 5678,
            }),
        ),
        (
            "CancelRequest, short",
            packet(CANCEL_REQUEST, &key[..4]),
            Ok(StartupPacket::Unsupported {
                major: 1234,
                minor: 5678,
            }),
        ),
        (
            "3.0, no parameters",
            packet(0x0003_0000, b"\0"),
            Ok(StartupPacket::Startup {
                minor: 0,
                params: vec![],
            }),
        ),
        (
            "3.2",
            packet(0x0003_0002, b"user\0u\0\0"),
            Ok(StartupPacket::Startup {
                minor: 2,
                params: vec![("user".into(), "u".into())],
            }),
        ),
        (
            "3.0, no terminator",
            packet(0x0003_0000, b""),
            Err(StartupPacketError::InvalidLayout),
        ),
        (
            "2.0",
            packet(0x0002_0000, b"user\0u\0\0"),
            Ok(StartupPacket::Unsupported { major: 2, minor: 0 }),
        ),
        (
            "negative code",
            packet(-1, b""),
            Ok(StartupPacket::Unsupported {
                major: 0xffff,
                minor: 0xffff,
            }),
        ),
    ];
    for (name, bytes, want) in cases {
        let len = packet_len(bytes).unwrap().unwrap();
        assert_eq!(len, bytes.len(), "case {name:?}");
        assert_eq!(&decode(&bytes[4..]), want, "case {name:?}");
    }
}

#[test]
fn decode_real_startup_message_keeps_parameter_order() {
    let bytes = startup_message(&[
        ("user", "postgres"),
        ("database", "postgres"),
        ("application_name", "gbrain lockroute:direct"),
        ("options", "-c statement_timeout=0"),
    ]);
    let len = packet_len(&bytes).unwrap().unwrap();
    let StartupPacket::Startup { minor: 0, params } = decode(&bytes[4..len]).unwrap() else {
        panic!("not a 3.0 StartupMessage");
    };
    let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["user", "database", "application_name", "options"]);
}

#[test]
fn packet_len_bounds() {
    assert_eq!(packet_len(b""), Ok(None));
    assert_eq!(packet_len(b"\0\0\0"), Ok(None));
    assert_eq!(packet_len(b"\0\0\0\x08"), Ok(Some(8)));
    assert_eq!(
        packet_len(b"\0\0\0\x07"),
        Err(StartupPacketError::InvalidLength)
    );
    assert_eq!(packet_len(b"\0\0\x27\x10"), Ok(Some(MAX_STARTUP_PACKET)));
    assert_eq!(
        packet_len(b"\0\0\x27\x11"),
        Err(StartupPacketError::InvalidLength)
    );
    assert_eq!(
        packet_len(b"\xff\xff\xff\xff"),
        Err(StartupPacketError::InvalidLength)
    );
    assert_eq!(decode(b"\0\x03\0"), Err(StartupPacketError::InvalidLength));
}

proptest! {
    #[test]
    fn decode_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = packet_len(&bytes);
        let _ = decode(&bytes);
    }

    #[test]
    fn startup_message_round_trips(
        params in prop::collection::vec(("[a-z_.]{1,12}", "[^\0]{0,16}"), 0..6),
    ) {
        let pairs: Vec<(&str, &str)> =
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let bytes = startup_message(&pairs);
        prop_assert_eq!(packet_len(&bytes), Ok(Some(bytes.len())));
        prop_assert_eq!(
            decode(&bytes[4..]),
            Ok(StartupPacket::Startup { minor: 0, params })
        );
    }
}
