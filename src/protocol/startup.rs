//! The startup packet decoder: the one client message with no tag byte, only a big-endian u32
//! length and a request code. Pure, so the handshake in `crate::startup` and the `startup` fuzz
//! target run the same code.
//!
//! <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE>

use bytes::Buf;

use super::BackendKey;
use super::message::cstr;

/// `SSLRequest`'s request code (1234.5679).
pub const SSL_REQUEST: i32 = 80877103;
/// `GSSENCRequest`'s request code (1234.5680).
pub const GSSENC_REQUEST: i32 = 80877104;
/// `CancelRequest`'s request code (1234.5678).
pub const CANCEL_REQUEST: i32 = 80877102;
/// Postgres's own limit for a startup packet (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_PACKET: usize = 10_000;
/// The smallest valid startup packet: the length and a request code.
pub const MIN_STARTUP_PACKET: usize = 8;

/// One decoded startup packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel(BackendKey),
    /// A `StartupMessage` for protocol 3.`minor`, with its parameters in the order sent.
    Startup {
        minor: u16,
        params: Vec<(String, String)>,
    },
    /// Any other request code, including a `CancelRequest` of the wrong size, as the protocol
    /// version it would be.
    Unsupported {
        major: u16,
        minor: u16,
    },
}

/// Why a startup packet was refused. The connection cannot go on after either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupPacketError {
    InvalidLength,
    InvalidLayout,
}

impl StartupPacketError {
    /// Postgres's own wording, sent to the client in a FATAL.
    pub fn as_str(self) -> &'static str {
        match self {
            StartupPacketError::InvalidLength => "invalid length of startup packet",
            StartupPacketError::InvalidLayout => "invalid startup packet layout",
        }
    }
}

impl std::fmt::Display for StartupPacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for StartupPacketError {}

/// The total length (the length field included) of the startup packet at the front of `buf`,
/// once its length field is there. `Ok(None)` means more bytes are needed.
///
/// The length is checked before any body byte is read or buffered, as Postgres does.
pub fn packet_len(buf: &[u8]) -> Result<Option<usize>, StartupPacketError> {
    let Some(header) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*header) as usize;
    if !(MIN_STARTUP_PACKET..=MAX_STARTUP_PACKET).contains(&len) {
        return Err(StartupPacketError::InvalidLength);
    }
    Ok(Some(len))
}

/// Decodes one startup packet, given its body: everything after the length field.
///
/// An `SSLRequest` or `GSSENCRequest` with bytes after its code is accepted as it is, and a
/// `StartupMessage`'s parameters must be NUL-terminated UTF-8 pairs ending in one NUL.
pub fn decode(body: &[u8]) -> Result<StartupPacket, StartupPacketError> {
    let Some((code, rest)) = body.split_first_chunk::<4>() else {
        return Err(StartupPacketError::InvalidLength);
    };
    let code = i32::from_be_bytes(*code);
    let (major, minor) = version(code);
    Ok(match code {
        SSL_REQUEST => StartupPacket::SslRequest,
        GSSENC_REQUEST => StartupPacket::GssEncRequest,
        CANCEL_REQUEST if rest.len() == 8 => {
            let mut key = rest;
            StartupPacket::Cancel(BackendKey {
                pid: key.get_i32(),
                secret: key.get_i32(),
            })
        }
        _ if major == 3 => StartupPacket::Startup {
            minor,
            params: parameters(rest).ok_or(StartupPacketError::InvalidLayout)?,
        },
        _ => StartupPacket::Unsupported { major, minor },
    })
}

/// A request code read as a protocol version: major in the high 16 bits, minor in the low.
pub fn version(code: i32) -> (u16, u16) {
    ((code >> 16) as u16, code as u16)
}

/// The `name\0value\0…\0` list of a `StartupMessage`. `None` when a string is unterminated,
/// is not UTF-8, or bytes follow the final NUL.
pub fn parameters(body: &[u8]) -> Option<Vec<(String, String)>> {
    let mut pos = 0;
    let mut params = Vec::new();
    loop {
        let key = cstr(body, &mut pos)?;
        if key.is_empty() {
            return (pos == body.len()).then_some(params);
        }
        let value = cstr(body, &mut pos)?;
        params.push((
            String::from_utf8(key.to_vec()).ok()?,
            String::from_utf8(value.to_vec()).ok()?,
        ));
    }
}

#[cfg(test)]
mod tests;
