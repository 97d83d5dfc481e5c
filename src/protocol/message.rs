//! The few messages lockroute reads or writes itself.
//!
//! Readers take a frame body and return borrowed slices; they never panic on malformed input
//! and return `None` instead. Writers append one whole frame to a buffer.
//! <https://www.postgresql.org/docs/current/protocol-message-formats.html>

use bytes::{BufMut, Bytes, BytesMut};

use super::{BackendKey, TxStatus};

// ---------------------------------------------------------------------------------------------
// Readers

/// Reads a NUL-terminated string at `*pos` and moves `*pos` past its NUL.
pub fn cstr<'a>(body: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let rest = body.get(*pos..)?;
    // Most names are empty (the unnamed statement and portal): no search for those.
    let nul = match rest.first() {
        Some(0) => 0,
        _ => memchr::memchr(0, rest)?,
    };
    *pos += nul + 1;
    Some(&rest[..nul])
}

/// The SQL text of a `Query` (`Q`) body.
pub fn query_text(body: &[u8]) -> Option<&[u8]> {
    let mut pos = 0;
    cstr(body, &mut pos)
}

/// The statement name and SQL text of a `Parse` (`P`) body.
pub fn parse_message(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut pos = 0;
    let name = cstr(body, &mut pos)?;
    let sql = cstr(body, &mut pos)?;
    Some((name, sql))
}

/// The portal and statement names of a `Bind` (`B`) body.
pub fn bind_names(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut pos = 0;
    let portal = cstr(body, &mut pos)?;
    let statement = cstr(body, &mut pos)?;
    Some((portal, statement))
}

/// The kind (`S` or `P`) and name of a `Describe` (`D`) or `Close` (`C`) body.
pub fn target(body: &[u8]) -> Option<(u8, &[u8])> {
    let (&kind, rest) = body.split_first()?;
    let mut pos = 0;
    let name = cstr(rest, &mut pos)?;
    Some((kind, name))
}

/// One field of an `ErrorResponse` or `NoticeResponse` body, by its code.
pub fn error_field(body: &[u8], code: u8) -> Option<&[u8]> {
    let mut pos = 0;
    while let Some(&field) = body.get(pos) {
        if field == 0 {
            return None;
        }
        pos += 1;
        let value = cstr(body, &mut pos)?;
        if field == code {
            return Some(value);
        }
    }
    None
}

/// The SQLSTATE of an `ErrorResponse` body.
pub fn sqlstate(body: &[u8]) -> Option<&str> {
    error_field(body, b'C').and_then(|c| std::str::from_utf8(c).ok())
}

/// Whether an `ErrorResponse` body is FATAL or PANIC: the server closes the connection after it.
pub fn is_fatal(body: &[u8]) -> bool {
    let severity = error_field(body, b'V').or_else(|| error_field(body, b'S'));
    matches!(severity, Some(b"FATAL") | Some(b"PANIC"))
}

/// The transaction status of a `ReadyForQuery` (`Z`) body.
pub fn ready_status(body: &[u8]) -> Option<TxStatus> {
    match body {
        [b] => TxStatus::from_byte(*b),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Rewriters: build a new frame from an original body with one name replaced.

/// A `Parse` frame with the same SQL and parameter types under another statement name.
pub fn parse_renamed(body: &[u8], name: &[u8]) -> Option<Bytes> {
    let mut pos = 0;
    cstr(body, &mut pos)?;
    let rest = &body[pos..];
    Some(frame(b'P', |b| {
        put_cstr(b, name);
        b.put_slice(rest);
    }))
}

/// A `Bind` frame with the same portal and parameters for another statement name.
pub fn bind_renamed(body: &[u8], statement: &[u8]) -> Option<Bytes> {
    let mut pos = 0;
    let portal = cstr(body, &mut pos)?;
    cstr(body, &mut pos)?;
    let rest = &body[pos..];
    Some(frame(b'B', |b| {
        put_cstr(b, portal);
        put_cstr(b, statement);
        b.put_slice(rest);
    }))
}

/// A `Describe` or `Close` frame for a statement or portal by name.
pub fn target_frame(tag: u8, kind: u8, name: &[u8]) -> Bytes {
    frame(tag, |b| {
        b.put_u8(kind);
        put_cstr(b, name);
    })
}

// ---------------------------------------------------------------------------------------------
// Writers

fn put_cstr(buf: &mut BytesMut, s: &[u8]) {
    buf.put_slice(s);
    buf.put_u8(0);
}

/// Builds one frame: tag, length, then whatever `body` writes.
pub fn frame(tag: u8, body: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    write_frame(&mut buf, tag, body);
    buf.freeze()
}

/// Appends one frame to `buf`.
pub fn write_frame(buf: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    let start = buf.len();
    buf.put_u8(tag);
    buf.put_u32(0);
    body(buf);
    let len = (buf.len() - start - 1) as u32;
    buf[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

/// Severity of an error lockroute sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

impl Severity {
    fn as_bytes(self) -> &'static [u8] {
        match self {
            Severity::Error => b"ERROR",
            Severity::Fatal => b"FATAL",
        }
    }
}

/// `ErrorResponse` with severity, SQLSTATE and message.
pub fn error_response(buf: &mut BytesMut, severity: Severity, code: &str, message: &str) {
    write_frame(buf, b'E', |b| {
        b.put_u8(b'S');
        put_cstr(b, severity.as_bytes());
        b.put_u8(b'V');
        put_cstr(b, severity.as_bytes());
        b.put_u8(b'C');
        put_cstr(b, code.as_bytes());
        b.put_u8(b'M');
        put_cstr(b, message.as_bytes());
        b.put_u8(0);
    });
}

/// `NoticeResponse` with severity `WARNING`, SQLSTATE and message.
pub fn warning(buf: &mut BytesMut, code: &str, message: &str) {
    write_frame(buf, b'N', |b| {
        for (field, value) in [(b'S', &b"WARNING"[..]), (b'V', b"WARNING")] {
            b.put_u8(field);
            put_cstr(b, value);
        }
        b.put_u8(b'C');
        put_cstr(b, code.as_bytes());
        b.put_u8(b'M');
        put_cstr(b, message.as_bytes());
        b.put_u8(0);
    });
}

pub fn ready_for_query(buf: &mut BytesMut, status: TxStatus) {
    write_frame(buf, b'Z', |b| b.put_u8(status.as_byte()));
}

pub fn authentication_ok(buf: &mut BytesMut) {
    write_frame(buf, b'R', |b| b.put_i32(0));
}

pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    write_frame(buf, b'S', |b| {
        put_cstr(b, name.as_bytes());
        put_cstr(b, value.as_bytes());
    });
}

pub fn backend_key_data(buf: &mut BytesMut, key: BackendKey) {
    write_frame(buf, b'K', |b| {
        b.put_i32(key.pid);
        b.put_i32(key.secret);
    });
}

pub fn command_complete(buf: &mut BytesMut, tag: &str) {
    write_frame(buf, b'C', |b| put_cstr(b, tag.as_bytes()));
}

/// A reply with an empty body: `ParseComplete` (`1`), `BindComplete` (`2`), `CloseComplete`
/// (`3`), `NoData` (`n`).
pub fn empty(buf: &mut BytesMut, tag: u8) {
    write_frame(buf, tag, |_| {});
}

/// `ParameterDescription` with no parameters.
pub fn no_parameters(buf: &mut BytesMut) {
    write_frame(buf, b't', |b| b.put_i16(0));
}

/// `NegotiateProtocolVersion`: the newest minor version lockroute speaks, and the protocol
/// options (`_pq_.*`) it did not recognise.
pub fn negotiate_protocol_version(buf: &mut BytesMut, minor: i32, unrecognized: &[&str]) {
    write_frame(buf, b'v', |b| {
        b.put_i32(minor);
        b.put_i32(unrecognized.len() as i32);
        for option in unrecognized {
            put_cstr(b, option.as_bytes());
        }
    });
}

/// A frontend `Query` frame.
pub fn query(sql: &str) -> Bytes {
    frame(b'Q', |b| put_cstr(b, sql.as_bytes()))
}

/// A frontend `Sync` frame.
pub fn sync() -> Bytes {
    frame(b'S', |_| {})
}

/// A frontend `Terminate` frame.
pub fn terminate() -> Bytes {
    frame(b'X', |_| {})
}

/// A `StartupMessage` for protocol 3.0 (it has no tag byte).
pub fn startup_message(params: &[(&str, &str)]) -> Bytes {
    let mut buf = BytesMut::with_capacity(128);
    buf.put_u32(0);
    buf.put_i32(196608);
    for (k, v) in params {
        put_cstr(&mut buf, k.as_bytes());
        put_cstr(&mut buf, v.as_bytes());
    }
    buf.put_u8(0);
    let len = buf.len() as u32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(frame: &Bytes) -> &[u8] {
        &frame[5..]
    }

    #[test]
    fn readers_malformed_bodies_return_none() {
        assert_eq!(query_text(b"no nul"), None);
        assert_eq!(parse_message(b"name\0sql without nul"), None);
        assert_eq!(bind_names(b""), None);
        assert_eq!(target(b""), None);
        assert_eq!(target(b"S"), None);
        assert_eq!(error_field(b"Cabc", b'C'), None);
        assert_eq!(ready_status(b""), None);
        assert_eq!(ready_status(b"X"), None);
    }

    #[test]
    fn parse_renamed_keeps_sql_and_types() {
        let original = frame(b'P', |b| {
            put_cstr(b, b"P_0");
            put_cstr(b, b"select $1");
            b.put_i16(1);
            b.put_u32(23);
        });
        let renamed = parse_renamed(body(&original), b"").unwrap();
        let (name, sql) = parse_message(body(&renamed)).unwrap();
        assert_eq!((name, sql), (&b""[..], &b"select $1"[..]));
        assert_eq!(
            &renamed[renamed.len() - 6..],
            &original[original.len() - 6..]
        );
        assert_eq!(
            u32::from_be_bytes(renamed[1..5].try_into().unwrap()) as usize,
            renamed.len() - 1
        );
    }

    #[test]
    fn bind_renamed_keeps_portal_and_parameters() {
        let original = frame(b'B', |b| {
            put_cstr(b, b"portal");
            put_cstr(b, b"stmt");
            b.put_slice(b"\0\0\0\x01\0\0\0\x011\0\0");
        });
        let renamed = bind_renamed(body(&original), b"").unwrap();
        assert_eq!(
            bind_names(body(&renamed)).unwrap(),
            (&b"portal"[..], &b""[..])
        );
        assert!(renamed.ends_with(b"\0\0\0\x01\0\0\0\x011\0\0"));
    }

    #[test]
    fn error_response_round_trips_through_readers() {
        let mut buf = BytesMut::new();
        error_response(&mut buf, Severity::Fatal, "57P01", "shutting down");
        assert_eq!(buf[0], b'E');
        assert_eq!(sqlstate(&buf[5..]), Some("57P01"));
        assert!(is_fatal(&buf[5..]));
        assert_eq!(error_field(&buf[5..], b'M'), Some(&b"shutting down"[..]));
    }
}
