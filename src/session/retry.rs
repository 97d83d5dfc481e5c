//! Retry of retry-safe lock statements (presets mark them: a renewal fenced by its lock token
//! may run twice; a claim may not). When the shared direct connection is lost before any reply
//! of such a unit reached the client, lockroute runs the unit again, once, on a fresh direct
//! connection, and the client sees one normal reply instead of `08006`.
//!
//! Only a unit that is safe to repeat as a whole qualifies: a single autocommit statement (one
//! `Query` of one statement, or one `Execute` up to its `Sync`), outside a transaction, and the
//! only unit the lost connection owed. A unit whose `Sync` has not come yet is replayed as far
//! as it was sent, and the client's next messages follow it as they would have. Its original
//! frames are kept while it runs; on the loss they go back to the front of the client's read
//! buffer, so the unit is routed again exactly as it first was.
//!
//! postgres.js sends a renewal describe-first (`Parse`, `Describe`, `Flush`, and then `Bind`,
//! `Execute`, `Sync` once the description is back), so part of the reply may have reached the
//! client before the loss. The replay then swallows that prefix (the same messages, by tag, that the
//! server sends again for the same statement) and relays the rest.

use std::collections::VecDeque;

use bytes::BytesMut;

use crate::metrics;
use crate::protocol::Frame;
use crate::protocol::message::query_text;
use crate::route::detect::LockMatch;
use crate::route::presets::Retry;

use super::Session;

/// A retry-safe unit in flight on the shared direct lane.
#[derive(Debug)]
pub(super) struct Retryable {
    lock: LockMatch,
    /// The client's frames of the unit, as it sent them.
    bytes: BytesMut,
    /// Its last frame (`Sync` or `Query`) was sent.
    sealed: bool,
    /// The tags of its reply messages that already reached the client, in order (async
    /// messages aside): a replay swallows them.
    relayed: Vec<u8>,
    executes: usize,
}

impl Retryable {
    /// Arms a retry for a unit that starts with `frame`, if its statement is retry-safe.
    pub(super) fn arm(frame: &Frame, lock: Option<LockMatch>) -> Option<Retryable> {
        let lock = lock.filter(|l| l.retry == Retry::Safe)?;
        if frame.tag == b'Q' && !single_statement(frame) {
            return None;
        }
        let mut unit = Retryable {
            lock,
            bytes: BytesMut::new(),
            sealed: false,
            relayed: Vec::new(),
            executes: 0,
        };
        unit.add(frame);
        Some(unit)
    }

    pub(super) fn add(&mut self, frame: &Frame) {
        self.bytes.extend_from_slice(&frame.bytes);
        self.executes += usize::from(frame.tag == b'E');
        self.sealed = matches!(frame.tag, b'S' | b'Q');
    }

    /// A reply message with `tag` reached the client.
    pub(super) fn relayed(&mut self, tag: u8) {
        if !is_async(tag) {
            self.relayed.push(tag);
        }
    }
}

/// Messages a server may send at any time, which are not part of a unit's reply.
fn is_async(tag: u8) -> bool {
    matches!(tag, b'N' | b'S' | b'A')
}

/// The reply prefix a replayed unit's client has already seen.
#[derive(Debug, Default)]
pub(super) struct Replay {
    swallow: VecDeque<u8>,
}

impl Replay {
    /// Whether a reply message of the replay is one the client already has. A message that
    /// differs from the prefix ends the swallowing: the rest is new to the client.
    pub(super) fn swallows(&mut self, tag: u8) -> bool {
        if is_async(tag) {
            return false;
        }
        match self.swallow.front() {
            Some(&expected) if expected == tag => {
                self.swallow.pop_front();
                true
            }
            Some(_) => {
                self.swallow.clear();
                false
            }
            None => false,
        }
    }

    pub(super) fn is_done(&self) -> bool {
        self.swallow.is_empty()
    }
}

/// One statement, give or take a trailing `;`.
fn single_statement(frame: &Frame) -> bool {
    let Some(sql) = query_text(frame.body()) else {
        return false;
    };
    match sql.iter().position(|&b| b == b';') {
        None => true,
        Some(at) => sql[at + 1..].iter().all(u8::is_ascii_whitespace),
    }
}

impl Session {
    /// The shared direct connection was lost with `owed` units outstanding. Re-queues the unit
    /// in flight if it may run again; returns whether it did.
    pub(super) fn retry_after_loss(&mut self, owed: usize) -> bool {
        let Some(unit) = self.units.retry.take() else {
            return false;
        };
        // Sealed, it is the one unit the connection owed; still open (a describe-first client
        // waiting for the description before it binds), it owed no whole unit yet.
        let only_this = if unit.sealed { owed == 1 } else { owed == 0 };
        if !only_this || unit.executes > 1 || self.units.retrying {
            return false;
        }
        metrics::lock_path_retry(unit.lock);
        tracing::info!(
            preset = unit.lock.preset.as_str(),
            kind = unit.lock.kind.as_str(),
            "the direct connection was lost under a retry-safe lock statement; running it again"
        );
        let mut rbuf = unit.bytes;
        rbuf.extend_from_slice(&self.client.rbuf);
        self.client.rbuf = rbuf;
        self.units.retrying = true;
        self.units.replay = Some(Replay {
            swallow: unit.relayed.into(),
        });
        true
    }
}
