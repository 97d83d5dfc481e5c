//! Tests for the frame codec: examples, then properties over arbitrary bytes.
use super::*;

#[test]
fn try_take_complete_frame_returns_original_bytes() {
    let mut buf = BytesMut::from(&b"Q\0\0\0\x0bselect\0Z"[..]);
    let frame = try_take(&mut buf, 1024).unwrap().unwrap();
    assert_eq!(frame.tag, b'Q');
    assert_eq!(&frame.bytes[..], b"Q\0\0\0\x0bselect\0");
    assert_eq!(frame.body(), b"select\0");
    assert_eq!(&buf[..], b"Z");
}

#[test]
fn try_take_partial_frame_waits_for_more() {
    for cut in 0..11 {
        let mut buf = BytesMut::from(&b"Q\0\0\0\x0bselect\0"[..cut]);
        assert_eq!(try_take(&mut buf, 1024).unwrap(), None, "cut at {cut}");
        assert_eq!(buf.len(), cut);
    }
}

#[test]
fn try_take_length_below_four_is_an_error() {
    let mut buf = BytesMut::from(&b"Q\0\0\0\x03"[..]);
    assert_eq!(
        try_take(&mut buf, 1024),
        Err(FrameError::TooShort { tag: 'Q', len: 3 })
    );
}

#[test]
fn try_take_absurd_length_is_an_error_before_allocating() {
    let mut buf = BytesMut::from(&b"Q\x7f\xff\xff\xff"[..]);
    assert!(matches!(
        try_take(&mut buf, 1 << 20),
        Err(FrameError::TooLarge { .. })
    ));
    assert!(buf.capacity() < 1 << 20);
}

#[test]
fn try_take_empty_body_is_a_frame() {
    let mut buf = BytesMut::from(&b"S\0\0\0\x04"[..]);
    let frame = try_take(&mut buf, 1024).unwrap().unwrap();
    assert_eq!(frame.tag, b'S');
    assert!(frame.body().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Properties

use proptest::prelude::*;

use bytes::Bytes;

use crate::protocol::message::write_frame;

const LIMIT: usize = 256;

/// Takes frames off `buf` until it needs more bytes or fails.
fn take_all(buf: &mut BytesMut, limit: usize) -> (Vec<Frame>, Option<FrameError>) {
    let mut frames = Vec::new();
    loop {
        match try_take(buf, limit) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

/// Well-formed frames within [`LIMIT`], concatenated, with each frame's length.
fn frames() -> impl Strategy<Value = (Bytes, Vec<usize>)> {
    let one = (
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..(LIMIT - 4)),
    );
    prop::collection::vec(one, 0..6).prop_map(|frames| {
        let mut buf = BytesMut::new();
        let mut lens = Vec::new();
        for (tag, body) in frames {
            let start = buf.len();
            write_frame(&mut buf, tag, |b| b.extend_from_slice(&body));
            lens.push(buf.len() - start);
        }
        (buf.freeze(), lens)
    })
}

proptest! {
    #[test]
    fn try_take_arbitrary_bytes_never_panics_and_frames_match_headers(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        limit in 0usize..600,
    ) {
        let mut buf = BytesMut::from(&bytes[..]);
        let (frames, error) = take_all(&mut buf, limit);
        let mut at = 0;
        for frame in &frames {
            // Each frame is the input's next bytes, exactly as long as its header says.
            let declared = u32::from_be_bytes(frame.bytes[1..5].try_into().unwrap()) as usize;
            prop_assert!(declared >= 4 && declared <= limit);
            prop_assert_eq!(frame.bytes.len(), declared + 1);
            prop_assert_eq!(&frame.bytes[..], &bytes[at..at + declared + 1]);
            prop_assert_eq!(frame.tag, bytes[at]);
            at += frame.bytes.len();
        }
        // What is left is the untouched rest of the input, even after an error.
        prop_assert_eq!(&buf[..], &bytes[at..]);
        if error.is_some() {
            prop_assert!(buf.len() >= HEADER_LEN);
        }
    }

    #[test]
    fn try_take_never_consumes_bytes_past_declared_length(
        (bytes, lens) in frames(),
        trailing in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        // Whatever follows the frames, even garbage or a bad header, stays unread in the buffer.
        let mut buf = BytesMut::from(&[&bytes[..], &trailing].concat()[..]);
        let mut at = 0;
        for len in lens {
            let frame = try_take(&mut buf, LIMIT);
            prop_assert_eq!(frame.map(|f| f.map(|f| f.bytes)), Ok(Some(bytes.slice(at..at + len))));
            at += len;
        }
        prop_assert_eq!(&buf[..], &trailing[..]);
    }

    #[test]
    fn try_take_split_at_every_boundary_decodes_identically((bytes, _) in frames()) {
        let (whole, _) = take_all(&mut BytesMut::from(&bytes[..]), LIMIT);
        for cut in 0..=bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            let (mut split, error) = take_all(&mut buf, LIMIT);
            prop_assert_eq!(error, None);
            buf.extend_from_slice(&bytes[cut..]);
            let (rest, error) = take_all(&mut buf, LIMIT);
            prop_assert_eq!(error, None);
            split.extend(rest);
            prop_assert_eq!(&split, &whole, "cut at {}", cut);
            prop_assert!(buf.is_empty());
        }
    }

    #[test]
    fn try_take_bad_length_is_an_error_and_leaves_buffer(
        tag in any::<u8>(),
        len in prop_oneof![0u32..4, (LIMIT as u32 + 1)..=u32::MAX],
        body in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let bytes = [&[tag][..], &len.to_be_bytes(), &body].concat();
        let mut buf = BytesMut::from(&bytes[..]);
        let error = try_take(&mut buf, LIMIT).unwrap_err();
        let want = if len < 4 {
            FrameError::TooShort { tag: tag as char, len }
        } else {
            FrameError::TooLarge { tag: tag as char, len, limit: LIMIT }
        };
        prop_assert_eq!(error, want);
        prop_assert_eq!(&buf[..], &bytes[..]);
        // Nothing was reserved for a frame that will never be read.
        prop_assert!(buf.capacity() < 2 * bytes.len() + 64);
    }
}
