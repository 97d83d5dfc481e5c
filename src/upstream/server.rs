//! What one server connection owes and holds, without I/O: the replies still owed
//! ([`InFlight`]), its transaction status, what its unnamed statement slot holds, lockroute's
//! prepared names on it, and whether a statement may have left session state on it.
//!
//! Every reply read from a server goes through [`Server::on_reply`], whether the session relays
//! it to a client or a reset, keepalive or settle path reads it for itself: a reply is
//! interpreted in one place only, so no path can forget to mark a connection dirty or to drop a
//! statement name whose `Parse` the server skipped.

use tokio::time::Instant;

use crate::protocol::TxStatus;
use crate::protocol::message::{self, is_fatal};
use crate::route::effects::Effects;

use super::inflight::{InFlight, Prepares, Reply};
use super::names::PreparedNames;

/// What to do with one backend message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Relay it to the client.
    Forward,
    /// Drop it: it answers a message the client never sent.
    Swallow,
    /// A `ReadyForQuery`: relay it; one unit is complete. Carries the unit's start time.
    UnitDone { started: Option<Instant> },
    /// A FATAL: the server is closing, so the connection is lost.
    Lost,
}

/// The state of one server connection.
#[derive(Debug)]
pub struct Server {
    inflight: InFlight,
    status: TxStatus,
    /// Behind a transaction pooler, each transaction may get another server: what the unnamed
    /// slot holds is forgotten at every `ReadyForQuery` `I`.
    pooled: bool,
    /// The client statement this server's unnamed slot holds, when lockroute knows.
    unnamed_slot: Option<u64>,
    /// When the server last answered or was handed back.
    last_used: Instant,
    /// A statement may have left session state (a `SET`, `LISTEN`, an advisory lock, a
    /// cursor ...): reset it before another client uses this connection.
    dirty: bool,
    /// lockroute's own prepared statements on this connection (shared direct lane only).
    names: PreparedNames,
}

impl Server {
    pub fn new(pooled: bool) -> Server {
        Server {
            inflight: InFlight::default(),
            status: TxStatus::Idle,
            pooled,
            unnamed_slot: None,
            last_used: Instant::now(),
            dirty: false,
            names: PreparedNames::default(),
        }
    }

    pub fn inflight(&self) -> &InFlight {
        &self.inflight
    }

    /// The status of the last `ReadyForQuery`.
    pub fn status(&self) -> TxStatus {
        self.status
    }

    pub fn last_used(&self) -> Instant {
        self.last_used
    }

    /// Nothing owed and no transaction open: safe to hand to another client or to drop.
    pub fn is_clean(&self) -> bool {
        self.inflight.is_empty() && self.status == TxStatus::Idle
    }

    /// Whether session state may have been left on the connection.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// A statement with these effects is being sent.
    pub fn note_effects(&mut self, effects: Effects) {
        if effects.changes_session() {
            self.dirty = true;
        }
    }

    /// The connection was reset to how it started (`DISCARD ALL`): no session state, and none
    /// of lockroute's prepared statements either.
    fn reset_done(&mut self) {
        self.dirty = false;
        self.names.clear();
        self.unnamed_slot = None;
    }

    /// The connection changes hands, or a new unit starts: the next user's statements have
    /// other ids, so what the slot holds is not to be trusted.
    pub fn handed_back(&mut self, now: Instant) {
        self.unnamed_slot = None;
        self.last_used = now;
    }

    /// The server answered: the clock that `--direct-hold-timeout` and keepalives read.
    pub fn touched(&mut self, now: Instant) {
        self.last_used = now;
    }

    // ---------------------------------------------------------------------------------------
    // Sending: what the server will owe for what is written to it.

    pub fn unnamed_slot(&self) -> Option<u64> {
        self.unnamed_slot
    }

    pub fn set_unnamed_slot(&mut self, slot: Option<u64>) {
        self.unnamed_slot = slot;
    }

    pub fn names(&mut self) -> &mut PreparedNames {
        &mut self.names
    }

    pub fn names_ref(&self) -> &PreparedNames {
        &self.names
    }

    pub fn sent_parse(&mut self, swallow: bool) {
        self.inflight.push_parse(swallow);
    }

    pub fn sent_prepare(&mut self, swallow: bool, prepares: Prepares) {
        self.inflight.push_prepare(swallow, prepares);
    }

    /// A simple `Query` or `FunctionCall`; a `Query` also destroys the unnamed statement.
    pub fn sent_simple(&mut self, started: Instant) {
        self.unnamed_slot = None;
        self.inflight.push_simple(started);
    }

    /// A `Query` lockroute answered to the client itself (a deferred `BEGIN`).
    pub fn sent_injected(&mut self) {
        self.unnamed_slot = None;
        self.inflight.push_injected();
    }

    pub fn sent_sync(&mut self, started: Instant) {
        self.inflight.push_sync(started);
    }

    pub fn sent_copy_end(&mut self) {
        self.inflight.push_copy_end();
    }

    // ---------------------------------------------------------------------------------------
    // Receiving: the one interpreter of replies.

    /// Interprets one backend message and updates what the server owes and holds.
    pub fn on_reply(&mut self, tag: u8, body: &[u8], now: Instant) -> Verdict {
        if tag == b'E' && is_fatal(body) {
            return Verdict::Lost;
        }
        let verdict = match self.inflight.on_backend(tag, body) {
            Reply::Swallow => Verdict::Swallow,
            Reply::Forward => Verdict::Forward,
            Reply::Prepared { swallow, prepares } => {
                let (key, name) = *prepares;
                self.names.confirm(key, name);
                if swallow {
                    Verdict::Swallow
                } else {
                    Verdict::Forward
                }
            }
            Reply::InjectedDone { status } => {
                if status != TxStatus::InTransaction {
                    // Only a BEGIN lockroute recognised is deferred, so this is unexpected; the
                    // client's transaction then runs in autocommit, and the log says so.
                    tracing::warn!(status = ?status, "a deferred BEGIN did not open a transaction");
                }
                self.status = status;
                self.last_used = now;
                Verdict::Swallow
            }
            Reply::UnitDone { status, started } => {
                self.status = status;
                self.last_used = now;
                if self.pooled && status == TxStatus::Idle {
                    self.unnamed_slot = None;
                }
                Verdict::UnitDone { started }
            }
        };
        match tag {
            b'E' => {
                // The server skipped the rest of the batch: an injected Parse may not have run.
                self.unnamed_slot = None;
                self.names.forget_pending();
            }
            b'C' if !leaves_session_clean(body) => {
                self.dirty = true;
                // DEALLOCATE ALL and DISCARD ALL drop lockroute's statements too.
                if body.starts_with(b"DEALLOCATE") || body.starts_with(b"DISCARD") {
                    self.names.clear();
                }
            }
            _ => {}
        }
        verdict
    }

    /// The connection is gone: how many units it still owed, and the status to report them
    /// with (`E` when a transaction was open).
    pub fn lost(&mut self) -> (usize, TxStatus) {
        let (owed, began) = self.inflight.clear();
        // A deferred BEGIN still on its way: the client was told its transaction is open.
        let status = if self.status == TxStatus::Idle && !began {
            TxStatus::Idle
        } else {
            TxStatus::Failed
        };
        (owed, status)
    }

    /// What a connection needs before another client may use it.
    pub fn reset_plan(&self) -> ResetPlan {
        let unended_batch = !self.inflight.is_empty() && self.inflight.outstanding() == 0;
        if self.inflight.copy_in() || unended_batch {
            return ResetPlan::Close;
        }
        ResetPlan::Reset {
            rollback: self.status != TxStatus::Idle,
            discard: self.dirty,
        }
    }

    /// A `DISCARD ALL` (or the rollback before it) finished.
    pub fn after_reset(&mut self, discarded: bool) {
        if discarded {
            self.reset_done();
        }
        self.unnamed_slot = None;
    }
}

/// How to make a connection safe for the next client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetPlan {
    /// Read what is owed, then roll back an open transaction and discard session state.
    Reset { rollback: bool, discard: bool },
    /// It cannot be made safe: its last batch was never ended, or it is in COPY. Ending the
    /// batch with a Sync would commit what its client abandoned.
    Close,
}

/// Whether a command tag leaves session state as it was. Anything else (`SET`, `LISTEN`,
/// `DECLARE CURSOR`, `PREPARE`, `CREATE TEMP TABLE` ...) marks a connection dirty.
pub fn leaves_session_clean(command_tag: &[u8]) -> bool {
    let verb = command_tag
        .split(|&b| b == b' ' || b == 0)
        .next()
        .unwrap_or_default();
    matches!(
        verb,
        b"SELECT"
            | b"INSERT"
            | b"UPDATE"
            | b"DELETE"
            | b"MERGE"
            | b"COPY"
            | b"FETCH"
            | b"MOVE"
            | b"BEGIN"
            | b"COMMIT"
            | b"ROLLBACK"
            | b"START"
            | b"SAVEPOINT"
            | b"RELEASE"
    )
}

/// The SQLSTATE of a FATAL, for logs.
pub fn fatal_code(body: &[u8]) -> &str {
    message::sqlstate(body).unwrap_or("?????")
}

#[cfg(test)]
mod tests;
