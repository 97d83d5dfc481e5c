//! A raw protocol client for the fault tests: every read is bounded, and a client socket that
//! lockroute closes instead of answering fails the test with what was awaited.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::common::proxy::raw::{self, message, send, startup};

/// Anything that takes longer than this is a hang.
pub const BOUND: Duration = Duration::from_secs(10);

/// Runs `fut` within [`BOUND`], prints how long it took, and fails the test on a hang.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    let started = Instant::now();
    match tokio::time::timeout(BOUND, fut).await {
        Ok(value) => {
            eprintln!("timing: {what}: {:?}", started.elapsed());
            value
        }
        Err(_) => panic!("{what}: nothing within {BOUND:?}; lockroute hangs"),
    }
}

/// One backend message.
#[derive(Debug, Clone)]
pub struct Msg {
    pub tag: u8,
    pub body: Vec<u8>,
}

/// A simple Query.
pub fn query(sql: &str) -> Vec<u8> {
    message(b'Q', format!("{sql}\0").as_bytes())
}

/// An extended-protocol unit on the unnamed statement and portal: Parse, Bind, Describe
/// (portal), Execute, Sync.
pub fn extended(sql: &str) -> Vec<u8> {
    let mut out = extended_no_sync(sql);
    out.extend(message(b'S', b""));
    out
}

/// The same without the Sync, so that the unit stays open.
pub fn extended_no_sync(sql: &str) -> Vec<u8> {
    let mut out = message(b'P', format!("\0{sql}\0\0\0").as_bytes());
    out.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
    out.extend(message(b'D', b"P\0"));
    out.extend(message(b'E', b"\0\0\0\0\0"));
    out
}

pub struct Client {
    pub s: TcpStream,
}

impl Client {
    /// Connects with `--client-auth trust` and reads up to the first ReadyForQuery.
    pub async fn connect(addr: SocketAddr) -> Client {
        let mut client = Client {
            s: raw::connect(addr).await,
        };
        send(
            &mut client.s,
            &startup(&[("user", "app"), ("database", "app")]),
        )
        .await;
        let greeting = client.reply().await;
        assert!(errors(&greeting).is_empty(), "greeting: {greeting:?}");
        client
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        send(&mut self.s, bytes).await;
    }

    /// One message; panics when lockroute closes the client instead of answering.
    pub async fn message(&mut self) -> Msg {
        let mut header = [0u8; 5];
        if let Err(e) = self.s.read_exact(&mut header).await {
            panic!("lockroute dropped the client instead of answering: {e}");
        }
        let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len - 4];
        if let Err(e) = self.s.read_exact(&mut body).await {
            panic!("lockroute dropped the client in the middle of a message: {e}");
        }
        Msg {
            tag: header[0],
            body,
        }
    }

    /// Messages up to and including the next ReadyForQuery.
    pub async fn reply(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        loop {
            let msg = self.message().await;
            let done = msg.tag == b'Z';
            out.push(msg);
            if done {
                return out;
            }
        }
    }

    /// The exact bytes up to and including the next ReadyForQuery.
    pub async fn reply_bytes(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for msg in self.reply().await {
            out.push(msg.tag);
            out.extend(((msg.body.len() + 4) as u32).to_be_bytes());
            out.extend(msg.body);
        }
        out
    }

    /// Sends one simple Query and reads its reply, within [`BOUND`].
    pub async fn query(&mut self, sql: &str) -> Vec<Msg> {
        self.send(&query(sql)).await;
        within(&format!("reply to {sql:?}"), self.reply()).await
    }
}

/// The SQLSTATE of every ErrorResponse.
pub fn errors(msgs: &[Msg]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m.tag == b'E')
        .map(|m| raw::sqlstate(&m.body))
        .collect()
}

/// The status of the final ReadyForQuery.
pub fn status(msgs: &[Msg]) -> char {
    let last = msgs.last().expect("a reply");
    assert_eq!(last.tag, b'Z', "{msgs:?}");
    last.body[0] as char
}

/// Every DataRow as text columns (NULL as "NULL").
pub fn rows(msgs: &[Msg]) -> Vec<Vec<String>> {
    msgs.iter()
        .filter(|m| m.tag == b'D')
        .map(|m| {
            let body = &m.body;
            let mut fields = Vec::new();
            let mut pos = 2;
            while pos + 4 <= body.len() {
                let len = i32::from_be_bytes(body[pos..pos + 4].try_into().unwrap());
                pos += 4;
                if len < 0 {
                    fields.push("NULL".to_owned());
                    continue;
                }
                let len = len as usize;
                fields.push(String::from_utf8_lossy(&body[pos..pos + len]).into_owned());
                pos += len;
            }
            fields
        })
        .collect()
}

/// The one value of a one-row, one-column reply that must have succeeded.
pub fn scalar(msgs: &[Msg]) -> String {
    assert!(errors(msgs).is_empty(), "{msgs:?}");
    let rows = rows(msgs);
    assert_eq!(rows.len(), 1, "{msgs:?}");
    rows[0][0].clone()
}

/// A reply that is exactly one clean `08006`: an ErrorResponse, then ReadyForQuery `status`.
pub fn assert_lost(msgs: &[Msg], status_want: char, what: &str) {
    assert_eq!(errors(msgs), ["08006"], "{what}: {msgs:?}");
    assert_eq!(
        msgs.iter().rev().nth(1).map(|m| m.tag),
        Some(b'E'),
        "{what}: the error comes right before ReadyForQuery: {msgs:?}"
    );
    assert_eq!(status(msgs), status_want, "{what}: {msgs:?}");
}

/// The unit never reached an upstream (the pooler stayed unreachable): `08001`, "did not run".
pub fn assert_not_run(msgs: &[Msg], status_want: char, what: &str) {
    assert_eq!(errors(msgs), ["08001"], "{what}: {msgs:?}");
    assert_eq!(
        msgs.iter().rev().nth(1).map(|m| m.tag),
        Some(b'E'),
        "{what}: the error comes right before ReadyForQuery: {msgs:?}"
    );
    assert_eq!(status(msgs), status_want, "{what}: {msgs:?}");
}

/// The rows that reached the client before a cut: all `sent` of them after a FIN, which TCP
/// delivers behind the data; after a reset, a prefix (a RST discards what the kernel had
/// received but lockroute had not read yet). Never a torn or foreign row.
pub fn assert_rows_before_cut(
    got: &[Vec<String>],
    want: &[Vec<String>],
    sent: usize,
    fin: bool,
    what: &str,
) {
    assert!(got.len() <= sent, "{what}: rows past the cut: {got:?}");
    assert_eq!(got, &want[..got.len()], "{what}: rows before the cut");
    if fin {
        assert_eq!(got.len(), sent, "{what}: a FIN loses no row sent before it");
    }
}
