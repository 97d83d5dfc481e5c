//! Retry of retry-safe lock statements (presets mark them: a renewal fenced by its lock token
//! may run twice; a claim may not). When the shared direct connection is lost before any reply
//! of such a unit reached the client, lockroute runs the unit again, once, on a fresh direct
//! connection, and the client sees one normal reply instead of `08006`.
//!
//! Only a unit that is safe to repeat as a whole qualifies: a single autocommit statement (one
//! `Query` of one statement, or one `Execute` up to its `Sync`), outside a transaction, fully
//! buffered (its `Sync` was sent), and the only unit the lost connection owed. Its original
//! frames are kept while it runs; on the loss they go back to the front of the client's read
//! buffer, so the unit is routed again exactly as it first was.

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
    /// Something of its reply reached the client: it can no longer be repeated unseen.
    replied: bool,
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
            replied: false,
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

    pub(super) fn replied(&mut self) {
        self.replied = true;
    }

    fn repeatable(&self) -> bool {
        self.sealed && !self.replied && self.executes <= 1
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
        if owed != 1 || !unit.repeatable() || self.units.retrying {
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
        true
    }
}
