//! The client's prepared statements, remembered so that they work on upstreams that are not
//! the client's own session.
//!
//! A transaction pooler may hand each transaction a different server, and a shared direct
//! connection is used by many clients, so a name the client prepared may not exist on the
//! server that runs its next `Bind`. lockroute keeps every `Parse` by name and, toward such a
//! "virtual" upstream, sends statements unnamed: `Parse("")` then `Bind("")`, re-sending the
//! `Parse` whenever the server's unnamed slot holds something else. The `ParseComplete` of an
//! injected `Parse` is swallowed ([`crate::upstream::inflight`]). A `Close` of a named
//! statement is forwarded as it is: on a virtual upstream the name never exists server-side,
//! and closing a missing statement is not an error in Postgres.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::Instant;

use crate::protocol::Frame;
use crate::protocol::message;
use crate::protocol::message::{
    bind_names, cstr, parse_message, parse_renamed, target, target_frame, write_frame,
};
use crate::upstream::names::StatementKey;
use crate::upstream::server::Server;

/// One statement as the client prepared it.
#[derive(Debug)]
pub struct Statement {
    /// Unique within the client; identifies what a server's unnamed slot holds.
    pub id: u64,
    /// The original `Parse` body.
    body: Bytes,
    sql: std::ops::Range<usize>,
}

impl Statement {
    pub fn sql(&self) -> &[u8] {
        &self.body[self.sql.clone()]
    }

    /// SQL text and parameter types: what makes two statements the same statement.
    pub fn key(&self) -> StatementKey {
        self.body.slice(self.sql.start..)
    }
}

/// The client's statements: named ones, and its current unnamed one.
#[derive(Debug, Default)]
pub struct Statements {
    named: HashMap<Bytes, Arc<Statement>>,
    unnamed: Option<Arc<Statement>>,
}

/// Statement ids are unique across clients, because a shared direct connection's unnamed slot
/// outlives the client that filled it.
static NEXT_STATEMENT_ID: AtomicU64 = AtomicU64::new(1);

/// The parts of an upstream that forwarding touches.
pub struct Outbound<'a> {
    pub wbuf: &'a mut BytesMut,
    /// What the server will owe, and what its unnamed slot and prepared names hold.
    pub server: &'a mut Server,
    /// Whether names must be virtualised (pooler and shared direct) or passed through (a
    /// dedicated session connection).
    pub virtualize: bool,
    /// When the current unit started, for the request duration histogram.
    pub started: Instant,
    /// Set on a shared direct connection: statements are mapped onto lockroute's own named
    /// statements there instead of being sent unnamed.
    pub shared: Option<Shared<'a>>,
}

/// On a shared direct connection: the client's reply buffer for the `ParseComplete` lockroute
/// answers itself when the statement is already prepared there.
pub struct Shared<'a> {
    pub reply: &'a mut BytesMut,
    /// The frame is the first of its unit, so the server owes this client nothing yet.
    pub unit_start: bool,
}

impl Statements {
    /// The statement a name refers to; `""` is the unnamed statement.
    pub fn resolve(&self, name: &[u8]) -> Option<&Arc<Statement>> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }

    /// The SQL text a unit's first message carries or refers to, for detection.
    pub fn sql_of<'a>(&'a self, frame: &'a Frame) -> Option<&'a [u8]> {
        let body = frame.body();
        match frame.tag {
            b'Q' => crate::protocol::message::query_text(body),
            b'P' => parse_message(body).map(|(_, sql)| sql),
            b'B' => bind_names(body)
                .and_then(|(_, stmt)| self.resolve(stmt))
                .map(|s| s.sql()),
            b'D' => match target(body) {
                Some((b'S', name)) => self.resolve(name).map(|s| s.sql()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The statement name a unit's first message carries: the `Parse` name, the statement a
    /// `Bind` binds, or the statement a `Describe` describes. Empty for the unnamed statement,
    /// a portal and a simple `Query`. Taken from the frame itself, so it is the client's name
    /// (graphile-worker's `get_job/graphile_worker`), never lockroute's renamed one.
    pub fn name_of<'a>(&self, frame: &'a Frame) -> &'a [u8] {
        let body = frame.body();
        let name = match frame.tag {
            // Only the name: the text after it can be kilobytes.
            b'P' => crate::protocol::message::cstr(body, &mut 0),
            b'B' => bind_names(body).map(|(_, stmt)| stmt),
            b'D' => match target(body) {
                Some((b'S', name)) => Some(name),
                _ => None,
            },
            _ => None,
        };
        name.unwrap_or_default()
    }

    /// Remembers a `Parse`. Returns the new statement, or `None` for a malformed body.
    pub fn record_parse(&mut self, body: &Bytes) -> Option<Arc<Statement>> {
        let (name, sql) = parse_message(body)?;
        let start = sql.as_ptr() as usize - body.as_ptr() as usize;
        let stmt = Arc::new(Statement {
            id: NEXT_STATEMENT_ID.fetch_add(1, Ordering::Relaxed),
            // A copy, not a slice of the client's read buffer: a slice would keep that whole
            // buffer alive for as long as the statement lives, and stop the session from
            // reusing it for the next read.
            body: Bytes::copy_from_slice(body),
            sql: start..start + sql.len(),
        });
        if name.is_empty() {
            self.unnamed = Some(stmt.clone());
        } else {
            self.named
                .insert(Bytes::copy_from_slice(name), stmt.clone());
        }
        Some(stmt)
    }

    /// Forgets a statement the client closed.
    pub fn close(&mut self, name: &[u8]) {
        if name.is_empty() {
            self.unnamed = None;
        } else {
            self.named.remove(name);
        }
    }

    /// Appends what to send upstream for one client frame, and records what the upstream will
    /// owe for it.
    pub fn forward(&mut self, frame: &Frame, mut out: Outbound<'_>) {
        let body = frame.bytes.slice(5..);
        match frame.tag {
            b'P' => {
                let stmt = self.record_parse(&body);
                if let (Some(stmt), Some(shared)) = (&stmt, out.shared.as_mut()) {
                    let key = stmt.key();
                    let names = out.server.names();
                    if names.lookup(&key).is_none()
                        && let Some(name) = names.reserve(&key)
                    {
                        out.wbuf
                            .put_slice(&parse_renamed(&body, &name).expect("parsed above"));
                        out.server.sent_prepare(false, (key, name));
                        return;
                    }
                    if shared.unit_start
                        && out.server.inflight().is_empty()
                        && out.server.names_ref().is_confirmed(&key)
                    {
                        // Already prepared on this connection, and nothing is owed before this
                        // reply: answer the client's Parse here instead of parsing again.
                        message::empty(shared.reply, b'1');
                        return;
                    }
                }
                match (&stmt, out.virtualize) {
                    (Some(stmt), true) => {
                        put_parse(out.wbuf, &body, b"").expect("parsed above");
                        out.server.set_unnamed_slot(Some(stmt.id));
                    }
                    _ => out.wbuf.put_slice(&frame.bytes),
                }
                out.server.sent_parse(false);
            }
            b'B' if out.virtualize => {
                let Some((_, name)) = bind_names(&body) else {
                    return out.wbuf.put_slice(&frame.bytes);
                };
                match self.resolve(name).cloned() {
                    Some(stmt) => {
                        let server_name = prepared_name(&stmt, &mut out);
                        put_bind(out.wbuf, &body, server_name.as_deref().unwrap_or(b""))
                            .expect("parsed above");
                    }
                    // Unknown: let the server answer 26000 for it.
                    None => out.wbuf.put_slice(&frame.bytes),
                }
            }
            b'D' if out.virtualize => match target(&body) {
                Some((b'S', name)) => match self.resolve(name).cloned() {
                    Some(stmt) => {
                        let server_name = prepared_name(&stmt, &mut out);
                        let server_name = server_name.as_deref().unwrap_or(b"");
                        out.wbuf.put_slice(&target_frame(b'D', b'S', server_name));
                    }
                    None => out.wbuf.put_slice(&frame.bytes),
                },
                _ => out.wbuf.put_slice(&frame.bytes),
            },
            b'C' => match target(&body) {
                Some((b'S', name)) if out.virtualize => {
                    self.close(name);
                    // The client's names never exist server-side here. Closing a name that no
                    // one ever prepares is a no-op that still answers CloseComplete, and never
                    // touches the unnamed slot or lockroute's own statements.
                    out.wbuf.put_slice(&target_frame(b'C', b'S', CLOSED_NAME));
                }
                Some((b'S', name)) => {
                    self.close(name);
                    out.wbuf.put_slice(&frame.bytes);
                }
                _ => out.wbuf.put_slice(&frame.bytes),
            },
            b'Q' | b'F' => {
                // A simple Query destroys the unnamed statement.
                out.wbuf.put_slice(&frame.bytes);
                out.server.sent_simple(out.started);
            }
            b'S' => {
                out.wbuf.put_slice(&frame.bytes);
                out.server.sent_sync(out.started);
                // What the slot holds is only known until the server has processed the batch:
                // an error skips an injected Parse, and a pooler may switch servers after it.
                if out.virtualize {
                    out.server.set_unnamed_slot(None);
                }
            }
            b'c' | b'f' => {
                out.wbuf.put_slice(&frame.bytes);
                out.server.sent_copy_end();
            }
            _ => out.wbuf.put_slice(&frame.bytes),
        }
    }
}

/// A statement name no one ever prepares (lockroute's own are `lockroute_N`).
const CLOSED_NAME: &[u8] = b"lockroute.closed";

/// The server-side name to bind or describe a client statement by: on a shared direct
/// connection lockroute's named statement for it (prepared now if needed), elsewhere `None`,
/// the unnamed statement (re-sent if the slot holds something else).
fn prepared_name(stmt: &Statement, out: &mut Outbound<'_>) -> Option<Arc<[u8]>> {
    if out.shared.is_some() {
        let key = stmt.key();
        if let Some(name) = out.server.names_ref().lookup(&key) {
            return Some(name);
        }
        if let Some(name) = out.server.names().reserve(&key) {
            out.wbuf.put_slice(
                &parse_renamed(&stmt.body, &name).expect("recorded Parse bodies are well-formed"),
            );
            out.server.sent_prepare(true, (key, name.clone()));
            return Some(name);
        }
    }
    ensure_in_slot(stmt, out);
    None
}

/// Re-sends a statement's `Parse` unnamed unless the server's unnamed slot already holds it.
fn ensure_in_slot(stmt: &Statement, out: &mut Outbound<'_>) {
    if out.server.unnamed_slot() == Some(stmt.id) {
        return;
    }
    put_parse(out.wbuf, &stmt.body, b"").expect("recorded Parse bodies are well-formed");
    out.server.sent_parse(true);
    out.server.set_unnamed_slot(Some(stmt.id));
}

// Renamed frames are written straight into the upstream's write buffer: building each as its
// own `Bytes` first cost an allocation and a copy per message on the pooler lane, where every
// extended-protocol unit is renamed (bench/profile.sh).

/// Appends a `Parse` frame with `body`'s SQL and parameter types under statement `name`.
fn put_parse(wbuf: &mut BytesMut, body: &[u8], name: &[u8]) -> Option<()> {
    let mut pos = 0;
    cstr(body, &mut pos)?;
    write_frame(wbuf, b'P', |b| {
        b.put_slice(name);
        b.put_u8(0);
        b.put_slice(&body[pos..]);
    });
    Some(())
}

/// Appends a `Bind` frame with `body`'s portal and parameters for statement `name`.
fn put_bind(wbuf: &mut BytesMut, body: &[u8], statement: &[u8]) -> Option<()> {
    let mut pos = 0;
    let portal = cstr(body, &mut pos)?;
    cstr(body, &mut pos)?;
    write_frame(wbuf, b'B', |b| {
        b.put_slice(portal);
        b.put_u8(0);
        b.put_slice(statement);
        b.put_u8(0);
        b.put_slice(&body[pos..]);
    });
    Some(())
}

#[cfg(test)]
mod tests;
