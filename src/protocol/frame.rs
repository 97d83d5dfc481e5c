//! The frame codec: a tag byte and a big-endian u32 length that counts itself, checked before
//! any body byte is trusted.
//!
//! <https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS>

use bytes::{Buf, Bytes, BytesMut};

/// One complete message: its tag and the whole original frame (tag, length and body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub tag: u8,
    /// The original bytes, tag included. This is what gets forwarded.
    pub bytes: Bytes,
}

impl Frame {
    /// The body: everything after the 5-byte header.
    pub fn body(&self) -> &[u8] {
        &self.bytes[5..]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("invalid message length {len} for message type {tag:?} (minimum is 4)")]
    TooShort { tag: char, len: u32 },
    #[error("message of type {tag:?} is {len} bytes, larger than the limit of {limit} bytes")]
    TooLarge { tag: char, len: u32, limit: usize },
}

/// The size of a frame header: tag byte plus u32 length.
pub const HEADER_LEN: usize = 5;

/// Takes one complete frame off the front of `buf`, if one is there.
///
/// Returns `Ok(None)` when more bytes are needed. On error the buffer is left as it was; the
/// connection cannot be resynchronised and must be closed.
pub fn try_take(buf: &mut BytesMut, limit: usize) -> Result<Option<Frame>, FrameError> {
    let Some(total) = peek_len(buf, limit)? else {
        return Ok(None);
    };
    if buf.len() < total {
        // Reserve for the rest of this frame so the next read fills it in one go.
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let tag = buf[0];
    Ok(Some(Frame {
        tag,
        bytes: buf.split_to(total).freeze(),
    }))
}

/// The total length (header included) of the frame at the front of `buf`, once its header is
/// there.
pub fn peek_len(buf: &[u8], limit: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let tag = buf[0];
    let len = (&buf[1..5]).get_u32();
    if len < 4 {
        return Err(FrameError::TooShort {
            tag: tag as char,
            len,
        });
    }
    if len as usize > limit {
        return Err(FrameError::TooLarge {
            tag: tag as char,
            len,
            limit,
        });
    }
    Ok(Some(len as usize + 1))
}

#[cfg(test)]
mod tests;
