//! The startup packet decoder on arbitrary bytes, packet after packet as the handshake reads
//! them (an SSLRequest answered `N` is followed by another packet on the same buffer).
//!
//! A decoded 3.0 StartupMessage re-encodes to exactly the bytes it came from, and a
//! CancelRequest's key is exactly its last eight bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockroute::protocol::message::startup_message;
use lockroute::protocol::startup::{
    self, CANCEL_REQUEST, MAX_STARTUP_PACKET, MIN_STARTUP_PACKET, StartupPacket, StartupPacketError,
};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        let len = match startup::packet_len(rest) {
            Ok(Some(len)) => len,
            Ok(None) => return assert!(rest.len() < 4),
            Err(StartupPacketError::InvalidLength) => {
                let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                return assert!(!(MIN_STARTUP_PACKET..=MAX_STARTUP_PACKET).contains(&len));
            }
            Err(e) => panic!("packet_len returned {e:?}"),
        };
        assert!((MIN_STARTUP_PACKET..=MAX_STARTUP_PACKET).contains(&len));
        let Some(packet) = rest.get(..len) else {
            return; // the handshake waits for more bytes
        };
        let body = &packet[4..];
        let code = i32::from_be_bytes(body[..4].try_into().unwrap());
        match startup::decode(body) {
            Ok(StartupPacket::Startup { minor, params }) => {
                assert_eq!(startup::version(code), (3, minor));
                for (name, value) in &params {
                    assert!(!name.is_empty() && !name.contains('\0') && !value.contains('\0'));
                }
                if minor == 0 {
                    let pairs: Vec<(&str, &str)> = params
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    assert_eq!(&startup_message(&pairs)[..], packet);
                }
            }
            Ok(StartupPacket::Cancel(key)) => {
                assert_eq!(code, CANCEL_REQUEST);
                assert_eq!(body.len(), 12);
                assert_eq!(key.pid.to_be_bytes(), body[4..8]);
                assert_eq!(key.secret.to_be_bytes(), body[8..12]);
            }
            Ok(StartupPacket::Unsupported { major, minor }) => {
                assert_eq!(startup::version(code), (major, minor));
                assert!(major != 3);
            }
            Ok(StartupPacket::SslRequest | StartupPacket::GssEncRequest) => {}
            Err(StartupPacketError::InvalidLayout) => {
                assert_eq!(startup::version(code).0, 3);
                return; // the handshake sends a FATAL and closes
            }
            Err(e) => panic!("decode returned {e:?} for a packet of valid length"),
        }
        rest = &rest[len..];
    }
});
