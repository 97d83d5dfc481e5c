//! The frame codec on arbitrary bytes: every frame it takes is the input's next bytes, exactly
//! as long as its header says and within the size limit, and feeding the input in chunks gives
//! the same frames and the same error as feeding it whole.
//!
//! Input: one byte of chunk size (0 = whole), two bytes of size limit, then the stream.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use lockroute::protocol::frame::{self, Frame, FrameError, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Some(([chunk, limit @ ..], input)) = data.split_first_chunk::<3>() else {
        return;
    };
    let limit = usize::from(u16::from_be_bytes(*limit));
    let whole = take_whole(input, limit);
    let chunk = if *chunk == 0 {
        input.len().max(1)
    } else {
        usize::from(*chunk)
    };
    assert_eq!(
        take_chunked(input, limit, chunk),
        whole,
        "chunk size {chunk}"
    );
});

/// Decodes `input` in one buffer, checking each step against the input itself.
fn take_whole(input: &[u8], limit: usize) -> (Vec<Frame>, Option<FrameError>) {
    let mut buf = BytesMut::from(input);
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        let rest = &input[at..];
        let result = frame::try_take(&mut buf, limit);
        // Whatever happened, the buffer holds exactly the input not yet taken.
        if let Ok(Some(frame)) = &result {
            let declared = declared_len(&frame.bytes).expect("a frame has a header");
            assert!((4..=limit).contains(&declared));
            assert_eq!(frame.bytes.len(), declared + 1);
            assert_eq!(&frame.bytes[..], &rest[..declared + 1]);
            assert_eq!(frame.tag, rest[0]);
            assert_eq!(frame.body(), &rest[HEADER_LEN..declared + 1]);
            at += frame.bytes.len();
            assert_eq!(&buf[..], &input[at..]);
            frames.push(frame.clone());
            continue;
        }
        assert_eq!(&buf[..], rest);
        // Reserving for a partial frame is bounded by the limit, never by the header's claim.
        assert!(buf.capacity() <= 4 * (limit + 1 + input.len()));
        return match result {
            Ok(_) => {
                // More bytes needed: no header yet, or a valid header for a longer frame.
                if let Some(declared) = declared_len(rest) {
                    assert!((4..=limit).contains(&declared) && declared + 1 > rest.len());
                }
                (frames, None)
            }
            Err(e) => {
                let declared = declared_len(rest).expect("an error needs a header");
                match e {
                    FrameError::TooShort { len, .. } => {
                        assert!(len < 4 && len as usize == declared)
                    }
                    FrameError::TooLarge { len, .. } => {
                        assert!(declared >= 4 && declared > limit && len as usize == declared)
                    }
                }
                (frames, Some(e))
            }
        };
    }
}

/// Decodes `input` as it would arrive in reads of `chunk` bytes.
fn take_chunked(input: &[u8], limit: usize, chunk: usize) -> (Vec<Frame>, Option<FrameError>) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match frame::try_take(&mut buf, limit) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

/// The length field of the header at the front of `bytes`, if a whole header is there.
fn declared_len(bytes: &[u8]) -> Option<usize> {
    let header = bytes.get(1..HEADER_LEN)?;
    Some(u32::from_be_bytes(header.try_into().ok()?) as usize)
}
