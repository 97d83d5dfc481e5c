//! The two sides of the session/upstream boundary as a pair, without I/O: a client's messages,
//! chosen by the fuzzer, go through `Statements::forward` into a `Server`; a model server
//! answers what was actually sent, erroring where the fuzzer says (and then skipping to `Sync`,
//! as Postgres does); every answer goes back through `Server::on_reply`.
//!
//! Whatever the plan: the client gets exactly one `ReadyForQuery` per `Sync` or `Query` it
//! sent, never more `ParseComplete`s than `Parse`s it sent, and afterwards the server owes
//! nothing.
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use lockroute::protocol::Frame;
use lockroute::protocol::frame::try_take;
use lockroute::session::statements::{Outbound, Statements};
use lockroute::upstream::server::{Server, Verdict};
use tokio::time::Instant;

const SQL: [&str; 4] = [
    "select 1",
    "select $1::int",
    "LISTEN x",
    "update t set a = 1",
];
const NAMES: [&str; 3] = ["", "s1", "s2"];

fn frame(tag: u8, body: &[u8]) -> Frame {
    let mut buf = BytesMut::new();
    buf.put_u8(tag);
    buf.put_u32(body.len() as u32 + 4);
    buf.put_slice(body);
    try_take(&mut buf, 1 << 20).unwrap().unwrap()
}

fn cstrs(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p);
        out.push(0);
    }
    out
}

/// One client message from two fuzz bytes.
fn client_message(op: u8, arg: u8) -> Frame {
    let name = NAMES[usize::from(arg) % NAMES.len()].as_bytes();
    let sql = SQL[usize::from(arg >> 2) % SQL.len()].as_bytes();
    match op % 7 {
        0 => {
            let mut body = cstrs(&[name, sql]);
            body.extend_from_slice(&[0, 0]);
            frame(b'P', &body)
        }
        1 => {
            let mut body = cstrs(&[b"", name]);
            body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            frame(b'B', &body)
        }
        2 => frame(b'D', &[&[b'S'][..], &cstrs(&[name])].concat()),
        3 => frame(b'E', &[&cstrs(&[b""])[..], &[0, 0, 0, 0]].concat()),
        4 => frame(b'C', &[&[b'S'][..], &cstrs(&[name])].concat()),
        5 => frame(b'S', &[]),
        _ => frame(b'Q', &cstrs(&[sql])),
    }
}

/// A model Postgres: answers each message it was sent, skipping to `Sync` after an error.
struct Model {
    skipping: bool,
}

impl Model {
    fn answer(&mut self, sent: &Frame, fail: bool, out: &mut Vec<(u8, Vec<u8>)>) {
        let error = || (b'E', b"SERROR\0C42000\0Mfuzz\0\0".to_vec());
        match sent.tag {
            b'S' => {
                self.skipping = false;
                out.push((b'Z', vec![b'I']));
            }
            b'Q' => {
                out.push(if fail {
                    error()
                } else {
                    (b'C', b"SELECT 1\0".to_vec())
                });
                out.push((b'Z', vec![b'I']));
            }
            _ if self.skipping => {}
            _ if fail => {
                self.skipping = true;
                out.push(error());
            }
            b'P' => out.push((b'1', vec![])),
            b'B' => out.push((b'2', vec![])),
            b'D' => {
                out.push((b't', vec![0, 0]));
                out.push((b'n', vec![]));
            }
            b'E' => out.push((b'C', b"SELECT 1\0".to_vec())),
            b'C' => out.push((b'3', vec![])),
            _ => {}
        }
    }
}

/// The pair under test and what the client has seen.
struct Pair {
    statements: Statements,
    server: Server,
    model: Model,
    virtualize: bool,
    units: usize,
    parses: usize,
    ready: usize,
    parse_completes: usize,
}

impl Pair {
    /// The client sends `sent`; the model answers what reached it (failing where `fail` says),
    /// and the server core decides what the client sees.
    fn step(&mut self, sent: &Frame, fail: bool) {
        match sent.tag {
            b'S' | b'Q' => self.units += 1,
            b'P' => self.parses += 1,
            _ => {}
        }
        let now = Instant::now();
        let mut wbuf = BytesMut::new();
        self.statements.forward(
            sent,
            Outbound {
                wbuf: &mut wbuf,
                server: &mut self.server,
                virtualize: self.virtualize,
                started: now,
                shared: None,
            },
        );
        let mut answers = Vec::new();
        while let Some(upstream) = try_take(&mut wbuf, 1 << 20).unwrap() {
            self.model.answer(&upstream, fail, &mut answers);
        }
        for (tag, body) in answers {
            match self.server.on_reply(tag, &body, now) {
                Verdict::Swallow => continue,
                Verdict::Lost => panic!("the model never sends FATAL"),
                Verdict::Forward | Verdict::UnitDone { .. } => {}
            }
            match tag {
                b'Z' => self.ready += 1,
                b'1' => self.parse_completes += 1,
                _ => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let mut pair = Pair {
        statements: Statements::default(),
        server: Server::new(mode & 2 == 2),
        model: Model { skipping: false },
        virtualize: mode & 1 == 1,
        units: 0,
        parses: 0,
        ready: 0,
        parse_completes: 0,
    };
    for step in data.chunks_exact(3) {
        pair.step(&client_message(step[0], step[1]), step[2] & 7 == 0);
    }
    // End the last batch, as a client must before it expects its answers.
    pair.step(&frame(b'S', &[]), false);
    assert_eq!(
        pair.ready, pair.units,
        "one ReadyForQuery per Sync or Query"
    );
    assert!(
        pair.parse_completes <= pair.parses,
        "a ParseComplete the client never asked for"
    );
    assert!(pair.server.is_clean(), "the server still owes something");
});
