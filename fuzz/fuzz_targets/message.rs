//! The frontend message readers on arbitrary frames: the input is a stream of frames, and each
//! frame's body goes to the reader for its tag, as the session does (Query, Parse, Bind,
//! Describe, Close), plus the ErrorResponse and ReadyForQuery readers.
//!
//! Readers return slices of the body without NULs, and the rename rewriters keep everything
//! but the name, with a header that matches their length.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use lockroute::protocol::frame;
use lockroute::protocol::message::{
    bind_names, bind_renamed, error_field, is_fatal, parse_message, parse_renamed, query_text,
    ready_status, sqlstate, target, target_frame,
};

const NEW_NAME: &[u8] = b"lockroute_1";

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = frame::try_take(&mut buf, 1 << 16) {
        read(frame.tag, frame.body());
    }
    // The readers must also survive bodies that no frame header vouches for.
    if let Some((&tag, body)) = data.split_first() {
        read(tag, body);
    }
});

fn read(tag: u8, body: &[u8]) {
    match tag {
        b'Q' => {
            if let Some(sql) = query_text(body) {
                assert_eq!(sql, &body[..sql.len()]);
                assert_no_nul(sql);
            }
        }
        b'P' => {
            let parsed = parse_message(body);
            if let Some((name, sql)) = parsed {
                assert_in(body, name);
                assert_in(body, sql);
            }
            let renamed = parse_renamed(body, NEW_NAME);
            assert_eq!(renamed.is_some(), cstr_count(body) >= 1);
            if let Some(renamed) = renamed {
                let new_body = checked_body(b'P', &renamed);
                let old_rest = &body[parsed_name_len(body)..];
                assert_eq!(&new_body[NEW_NAME.len() + 1..], old_rest);
                if let Some((_, sql)) = parsed {
                    assert_eq!(parse_message(new_body), Some((NEW_NAME, sql)));
                }
            }
        }
        b'B' => {
            let names = bind_names(body);
            if let Some((portal, statement)) = names {
                assert_in(body, portal);
                assert_in(body, statement);
                let renamed = bind_renamed(body, NEW_NAME).expect("both names are there");
                let new_body = checked_body(b'B', &renamed);
                assert_eq!(bind_names(new_body), Some((portal, NEW_NAME)));
                let tail = portal.len() + statement.len() + 2;
                assert_eq!(
                    &new_body[portal.len() + NEW_NAME.len() + 2..],
                    &body[tail..]
                );
            } else {
                assert!(bind_renamed(body, NEW_NAME).is_none());
            }
        }
        b'D' | b'C' => {
            if let Some((kind, name)) = target(body) {
                assert_eq!(kind, body[0]);
                assert_in(body, name);
                let rebuilt = target_frame(tag, kind, name);
                assert_eq!(checked_body(tag, &rebuilt), &body[..name.len() + 2]);
            }
        }
        b'E' | b'N' => {
            for code in [b'S', b'V', b'C', b'M', b'D', b'H', 0] {
                if let Some(value) = error_field(body, code) {
                    assert_in(body, value);
                }
            }
            let _ = sqlstate(body);
            let _ = is_fatal(body);
        }
        b'Z' => assert_eq!(
            ready_status(body).is_some(),
            matches!(body, [b'I' | b'T' | b'E'])
        ),
        _ => {}
    }
}

/// The body of a frame lockroute built, after checking its tag and length field.
fn checked_body(tag: u8, frame: &[u8]) -> &[u8] {
    assert_eq!(frame[0], tag);
    let len = u32::from_be_bytes(frame[1..5].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 1);
    &frame[5..]
}

/// `part` is a NUL-free slice of `body`'s own memory.
fn assert_in(body: &[u8], part: &[u8]) {
    let range = body.as_ptr_range();
    assert!(range.start <= part.as_ptr() && part.as_ptr_range().end <= range.end);
    assert_no_nul(part);
}

fn assert_no_nul(part: &[u8]) {
    assert!(!part.contains(&0));
}

fn cstr_count(body: &[u8]) -> usize {
    body.iter().filter(|&&b| b == 0).count()
}

/// The length of the first C string with its NUL.
fn parsed_name_len(body: &[u8]) -> usize {
    body.iter().position(|&b| b == 0).expect("a NUL") + 1
}
