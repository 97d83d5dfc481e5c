//! What an upstream still owes: the replies to messages already forwarded, in order.
//!
//! Only three things need tracking to relay replies correctly:
//! - each `Parse`, so that the `ParseComplete` of a `Parse` lockroute injected itself (to
//!   re-prepare a statement on a pooler server) is swallowed and the client's own are kept;
//! - each `Sync`, `Query` and `FunctionCall`, which each end in exactly one `ReadyForQuery`:
//!   their count is the number of units still outstanding on the upstream;
//! - after an `ErrorResponse` in the extended protocol the server skips every message up to
//!   the next `Sync`, so the `Parse` entries before that `Sync` will never be answered;
//! - in copy-in mode the server ignores `Sync` until the client's `CopyDone` or `CopyFail`
//!   (or its own error), so those `Sync`s get no `ReadyForQuery` either.
//!
//! <https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY>

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::time::Instant;

use crate::protocol::TxStatus;
use crate::protocol::message::ready_status;
use crate::upstream::names::StatementKey;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    /// A `Parse`; `swallow` when lockroute injected it and the client did not ask for it;
    /// `prepares` when it creates one of lockroute's named statements, confirmed by its
    /// `ParseComplete`.
    Parse {
        swallow: bool,
        prepares: Option<Box<Prepares>>,
    },
    /// A `Sync`: ends an extended-protocol batch. Carries the unit's start time.
    Sync { started: Instant },
    /// A `Query` or `FunctionCall`: ends in its own `ReadyForQuery`.
    Simple { started: Instant },
    /// A `Query` lockroute sent itself (a deferred `BEGIN`) and already answered to the client:
    /// every reply to it, its `ReadyForQuery` included, is swallowed.
    Injected,
}

/// A statement key and the server-side name a `Parse` prepares it under.
pub type Prepares = (StatementKey, Arc<[u8]>);

/// What to do with one backend message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Relay it to the client.
    Forward,
    /// Drop it: it answers a message the client never sent.
    Swallow,
    /// A `ParseComplete` that confirms one of lockroute's named statements; relay it unless
    /// `swallow`.
    Prepared {
        swallow: bool,
        prepares: Box<Prepares>,
    },
    /// A `ReadyForQuery`: relay it; one unit is complete.
    UnitDone {
        status: TxStatus,
        started: Option<Instant>,
    },
    /// The `ReadyForQuery` of an injected `Query`: swallow it, but the server is now in
    /// `status`.
    InjectedDone { status: TxStatus },
}

/// The replies an upstream still owes, in request order.
#[derive(Debug, Default)]
pub struct InFlight {
    queue: VecDeque<Pending>,
    units: usize,
    /// The server is in copy-in mode: it waits for the client's data and ignores `Sync`.
    copy_in: bool,
    /// An extended-protocol COPY left copy-in mode, and its `Sync`s were ignored: the server
    /// still owes its CommandComplete (or error), and the `ReadyForQuery` of the client's
    /// next `Sync`. Until that `Sync` is sent, the connection is not free.
    awaiting_sync: bool,
}

impl InFlight {
    pub fn push_parse(&mut self, swallow: bool) {
        self.queue.push_back(Pending::Parse {
            swallow,
            prepares: None,
        });
    }

    /// A `Parse` that prepares one of lockroute's named statements.
    pub fn push_prepare(&mut self, swallow: bool, prepares: Prepares) {
        self.queue.push_back(Pending::Parse {
            swallow,
            prepares: Some(Box::new(prepares)),
        });
    }

    pub fn push_sync(&mut self, started: Instant) {
        if self.copy_in {
            // Ignored by a server in copy-in mode: no ReadyForQuery will answer it.
            return;
        }
        self.queue.push_back(Pending::Sync { started });
        self.units += 1;
        self.awaiting_sync = false;
    }

    /// The client sent `CopyDone` or `CopyFail`: the server leaves copy-in mode.
    pub fn push_copy_end(&mut self) {
        self.leave_copy_in();
    }

    fn leave_copy_in(&mut self) {
        // A simple-protocol COPY ends in its Query's own ReadyForQuery; an extended one only
        // at the next Sync.
        let simple = self
            .queue
            .iter()
            .any(|p| matches!(p, Pending::Simple { .. }));
        self.awaiting_sync |= self.copy_in && !simple;
        self.copy_in = false;
    }

    /// The server waits for COPY data from the client.
    pub fn copy_in(&self) -> bool {
        self.copy_in
    }

    /// The server waits for the client's `Sync` after an extended-protocol COPY.
    pub fn awaiting_sync(&self) -> bool {
        self.awaiting_sync
    }

    pub fn push_simple(&mut self, started: Instant) {
        self.queue.push_back(Pending::Simple { started });
        self.units += 1;
    }

    /// A `Query` lockroute sends on its own behalf; its replies are all swallowed.
    pub fn push_injected(&mut self) {
        self.queue.push_back(Pending::Injected);
        self.units += 1;
    }

    /// Units sent whose `ReadyForQuery` has not come back.
    pub fn outstanding(&self) -> usize {
        self.units
    }

    /// Nothing at all is owed: no unit, no `Parse` of an unfinished batch, no COPY in progress.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && !self.copy_in && !self.awaiting_sync
    }

    /// Forgets everything owed: the upstream is gone. Returns the units the *client* is still
    /// owed (an injected `Query` was answered to it already), and whether an injected `Query`
    /// (a deferred `BEGIN`) was among them: the client then believes a transaction is open.
    pub fn clear(&mut self) -> (usize, bool) {
        let injected = self
            .queue
            .iter()
            .filter(|p| matches!(p, Pending::Injected))
            .count();
        let units = self.units - injected;
        self.queue.clear();
        self.units = 0;
        self.copy_in = false;
        self.awaiting_sync = false;
        (units, injected > 0)
    }

    /// Classifies one backend message by its tag and body.
    pub fn on_backend(&mut self, tag: u8, body: &[u8]) -> Reply {
        if matches!(self.queue.front(), Some(Pending::Injected)) {
            return match tag {
                b'Z' => {
                    self.queue.pop_front();
                    self.units -= 1;
                    let status = ready_status(body).unwrap_or(TxStatus::Idle);
                    Reply::InjectedDone { status }
                }
                // Notices and parameter changes are still the client's to see.
                b'N' | b'S' | b'A' => Reply::Forward,
                _ => Reply::Swallow,
            };
        }
        match tag {
            b'1' => match self.queue.front() {
                Some(Pending::Parse { .. }) => {
                    let Some(Pending::Parse { swallow, prepares }) = self.queue.pop_front() else {
                        unreachable!("the front was just matched")
                    };
                    match (prepares, swallow) {
                        (Some(prepares), swallow) => Reply::Prepared { swallow, prepares },
                        (None, true) => Reply::Swallow,
                        (None, false) => Reply::Forward,
                    }
                }
                _ => Reply::Forward,
            },
            b'G' => {
                // CopyInResponse. Every Sync the client sent after the COPY's Execute reached a
                // server in copy-in mode and was ignored; so will be those it sends until
                // CopyDone. (Clients wait for this message before sending data, so no CopyDone
                // can be queued yet.)
                self.copy_in = true;
                let before = self.queue.len();
                self.queue.retain(|p| !matches!(p, Pending::Sync { .. }));
                self.units -= before - self.queue.len();
                Reply::Forward
            }
            b'E' => {
                // An error ends copy-in mode; the next Sync is honoured again.
                self.leave_copy_in();
                if !matches!(self.queue.front(), Some(Pending::Simple { .. })) {
                    // Extended protocol: the server now skips to the next Sync.
                    while let Some(Pending::Parse { .. }) = self.queue.front() {
                        self.queue.pop_front();
                    }
                }
                Reply::Forward
            }
            b'Z' => {
                let status = ready_status(body).unwrap_or(TxStatus::Idle);
                let mut started = None;
                while let Some(entry) = self.queue.pop_front() {
                    match entry {
                        Pending::Parse { .. } => continue,
                        Pending::Sync { started: s } | Pending::Simple { started: s } => {
                            self.units -= 1;
                            started = Some(s);
                            break;
                        }
                        Pending::Injected => unreachable!("an injected Query is answered first"),
                    }
                }
                Reply::UnitDone { status, started }
            }
            _ => Reply::Forward,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn injected_parse_complete_is_swallowed_and_clients_kept() {
        let mut f = InFlight::default();
        f.push_parse(true);
        f.push_parse(false);
        f.push_sync(now());
        assert_eq!(f.on_backend(b'1', b""), Reply::Swallow);
        assert_eq!(f.on_backend(b'1', b""), Reply::Forward);
        assert_eq!(f.on_backend(b'2', b""), Reply::Forward);
        assert!(matches!(
            f.on_backend(b'Z', b"I"),
            Reply::UnitDone {
                status: TxStatus::Idle,
                ..
            }
        ));
        assert!(f.is_empty());
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn error_in_batch_skips_parses_up_to_sync() {
        let mut f = InFlight::default();
        f.push_parse(false);
        f.push_parse(true);
        f.push_sync(now());
        f.push_parse(true);
        f.push_sync(now());
        assert_eq!(f.on_backend(b'E', b""), Reply::Forward);
        assert!(matches!(f.on_backend(b'Z', b"I"), Reply::UnitDone { .. }));
        // The next batch is unaffected: its injected ParseComplete is still swallowed.
        assert_eq!(f.on_backend(b'1', b""), Reply::Swallow);
        assert!(matches!(
            f.on_backend(b'Z', b"T"),
            Reply::UnitDone {
                status: TxStatus::InTransaction,
                ..
            }
        ));
        assert!(f.is_empty());
    }

    #[test]
    fn error_in_simple_query_keeps_later_batches() {
        let mut f = InFlight::default();
        f.push_simple(now());
        f.push_parse(true);
        f.push_sync(now());
        assert_eq!(f.outstanding(), 2);
        assert_eq!(f.on_backend(b'E', b""), Reply::Forward);
        assert!(matches!(f.on_backend(b'Z', b"I"), Reply::UnitDone { .. }));
        assert_eq!(f.on_backend(b'1', b""), Reply::Swallow);
        assert_eq!(f.outstanding(), 1);
    }

    #[test]
    fn flush_without_sync_leaves_no_unit_but_is_not_empty() {
        let mut f = InFlight::default();
        f.push_parse(false);
        assert_eq!(f.outstanding(), 0);
        assert!(!f.is_empty());
        assert_eq!(f.on_backend(b'1', b""), Reply::Forward);
        assert_eq!(f.on_backend(b't', b""), Reply::Forward);
        assert!(f.is_empty());
    }

    #[test]
    fn async_messages_are_forwarded_without_changing_state() {
        let mut f = InFlight::default();
        f.push_sync(now());
        for tag in [b'N', b'S', b'A', b'D', b'C'] {
            assert_eq!(f.on_backend(tag, b""), Reply::Forward);
        }
        assert_eq!(f.outstanding(), 1);
    }

    #[test]
    fn extended_copy_in_syncs_before_copy_done_are_not_units() {
        // tokio-postgres: Bind, Execute, Sync | CopyInResponse | CopyData, CopyDone, Sync.
        let mut f = InFlight::default();
        f.push_sync(now());
        assert_eq!(f.on_backend(b'2', b""), Reply::Forward);
        assert_eq!(f.on_backend(b'G', b""), Reply::Forward);
        assert_eq!(f.outstanding(), 0);
        assert!(!f.is_empty(), "a COPY in progress is owed work");
        f.push_sync(now());
        assert_eq!(
            f.outstanding(),
            0,
            "a Sync during copy-in is ignored by the server"
        );
        f.push_copy_end();
        f.push_sync(now());
        assert_eq!(f.outstanding(), 1);
        assert_eq!(f.on_backend(b'C', b""), Reply::Forward);
        assert!(matches!(f.on_backend(b'Z', b"I"), Reply::UnitDone { .. }));
        assert!(f.is_empty());
    }

    #[test]
    fn extended_copy_in_is_owed_work_from_copy_done_until_the_next_sync() {
        // CopyDone and its Sync may arrive in different reads: in between, the server still
        // owes CommandComplete, so the connection must not look free.
        for end_by_server_error in [false, true] {
            let mut f = InFlight::default();
            f.push_sync(now());
            assert_eq!(f.on_backend(b'G', b""), Reply::Forward);
            if end_by_server_error {
                assert_eq!(f.on_backend(b'E', b""), Reply::Forward);
            } else {
                f.push_copy_end();
            }
            assert!(!f.is_empty(), "error: {end_by_server_error}");
            f.push_sync(now());
            assert_eq!(f.outstanding(), 1);
            assert!(matches!(f.on_backend(b'Z', b"I"), Reply::UnitDone { .. }));
            assert!(f.is_empty(), "error: {end_by_server_error}");
        }
    }

    #[test]
    fn error_during_copy_in_honours_the_next_sync() {
        let mut f = InFlight::default();
        f.push_simple(now());
        assert_eq!(f.on_backend(b'G', b""), Reply::Forward);
        assert_eq!(f.outstanding(), 1, "a simple COPY keeps its Query unit");
        assert_eq!(f.on_backend(b'E', b""), Reply::Forward);
        assert!(matches!(f.on_backend(b'Z', b"I"), Reply::UnitDone { .. }));
        assert!(f.is_empty());
        f.push_sync(now());
        assert_eq!(f.outstanding(), 1);
    }

    #[test]
    fn clear_returns_outstanding_units() {
        let mut f = InFlight::default();
        f.push_simple(now());
        f.push_parse(false);
        f.push_sync(now());
        assert_eq!(f.clear(), (2, false));
    }

    #[test]
    fn an_injected_query_is_not_owed_to_the_client() {
        let mut f = InFlight::default();
        f.push_injected();
        f.push_simple(now());
        assert_eq!(f.clear(), (1, true));
        f.push_injected();
        f.push_simple(now());
        assert_eq!(f.on_backend(b'C', b"BEGIN\0"), Reply::Swallow);
        assert_eq!(
            f.on_backend(b'Z', b"T"),
            Reply::InjectedDone {
                status: TxStatus::InTransaction
            }
        );
        assert_eq!(f.clear(), (1, false));
    }

    #[test]
    fn parse_complete_of_a_named_prepare_carries_its_name() {
        let mut f = InFlight::default();
        let prepares: Prepares = (
            bytes::Bytes::from_static(b"select 1\0\0\0"),
            Arc::from(&b"lockroute_1"[..]),
        );
        f.push_prepare(true, prepares.clone());
        f.push_sync(now());
        assert_eq!(
            f.on_backend(b'1', b""),
            Reply::Prepared {
                swallow: true,
                prepares: Box::new(prepares)
            }
        );
        assert_eq!(f.outstanding(), 1);
    }
}
