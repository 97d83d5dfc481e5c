//! Tests for `Statements::name_of`: the statement name detection sees for each first message.
use bytes::{BufMut, BytesMut};

use super::*;
use crate::protocol::frame::try_take;

fn frame(tag: u8, body: &[u8]) -> Frame {
    let mut buf = BytesMut::new();
    buf.put_u8(tag);
    buf.put_u32(body.len() as u32 + 4);
    buf.put_slice(body);
    try_take(&mut buf, 1 << 20)
        .expect("valid")
        .expect("complete")
}

#[test]
fn name_of_is_the_clients_statement_name_for_each_first_message() {
    let statements = Statements::default();
    let cases: [(u8, &[u8], &[u8]); 7] = [
        (
            b'P',
            b"get_job/graphile_worker\0select 1\0\0\0",
            b"get_job/graphile_worker",
        ),
        (b'P', b"\0select 1\0\0\0", b""),
        (
            b'B',
            b"portal\0get_job/graphile_worker\0\0\0\0\0\0\0",
            b"get_job/graphile_worker",
        ),
        (
            b'D',
            b"Sget_job/graphile_worker\0",
            b"get_job/graphile_worker",
        ),
        (b'D', b"Pportal\0", b""),
        (b'Q', b"select 1\0", b""),
        (b'B', b"no terminator", b""),
    ];
    for (tag, body, want) in cases {
        let frame = frame(tag, body);
        assert_eq!(
            statements.name_of(&frame),
            want,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}
