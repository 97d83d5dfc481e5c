//! Deferred `BEGIN`: a transaction's lane is chosen at its first real statement (DESIGN.md,
//! "Routing"). lockroute answers a bare `BEGIN`/`START TRANSACTION` itself, remembers it, and
//! sends it on, ahead of the first statement, to the lane that statement picks; so a
//! transaction that opens with a lock-path statement runs on the direct lane, whole. A
//! `COMMIT`/`ROLLBACK` with nothing before it is answered too, at no upstream round trip.
//!
//! Only commands [`tx_command`] understands whole are deferred, so what the client sees is what
//! a server would send. In the extended protocol lockroute answers the batch message by message
//! (`ParseComplete`, `BindComplete`, `ParameterDescription` + `NoData`, `CommandComplete`,
//! `CloseComplete`, and at `Sync` the `ReadyForQuery`). A message that is not part of the
//! command ends the local answering, and goes where the transaction's first statement goes.

use bytes::{BufMut, Bytes};

use crate::config::Mode;
use crate::protocol::message::{self, bind_names, parse_message, target};
use crate::protocol::{Frame, TxStatus};
use crate::route::Lane;
use crate::route::txcmd::{TxCommand, tx_command};

use super::analysis::Text;
use super::unit::Phase;
use super::{Direct, Session};

/// A `BEGIN` lockroute answered and has not sent anywhere yet.
#[derive(Debug, Clone)]
pub(super) struct Begun {
    /// The client's own text of it, sent on as a simple `Query`.
    pub sql: Bytes,
}

/// An extended-protocol batch of one transaction command, answered locally up to its `Sync`.
#[derive(Debug, Clone)]
pub(super) struct LocalBatch {
    command: TxCommand,
    /// The command is a `BEGIN` inside a transaction lockroute already began: Postgres warns.
    redundant: bool,
    /// The command's text: what a deferred `BEGIN` sends on.
    sql: Bytes,
}

/// What the deferral did with a client frame.
pub(super) enum Answered {
    /// lockroute answered it.
    Yes,
    /// Route it as usual (a deferred `BEGIN` goes ahead of it).
    No,
    /// Earlier units are still owed: hold it until they are answered.
    Stall,
}

const ALREADY_IN_TRANSACTION: &str = "there is already a transaction in progress";

impl Session {
    /// Answers `frame` itself if it is, or continues, a bare transaction command lockroute may
    /// answer.
    pub(super) fn answer_tx_command(&mut self, frame: &Frame) -> Answered {
        if let Phase::Batch(batch) = &self.units.phase {
            let batch = batch.clone();
            if self.answer_in_batch(&batch, frame) {
                return Answered::Yes;
            }
            // Something else in the batch: the transaction's first real statement.
            self.units.phase = Phase::Idle;
            return Answered::No;
        }
        if self.units.begun.is_some()
            && !self.units.phase.is_open()
            && matches!(frame.tag, b'S' | b'H' | b'C')
        {
            // A lone Sync, Flush or Close inside the deferred transaction: nothing reaches a
            // server. (Drivers close the statement they prepared for BEGIN right after it ran;
            // lockroute never sends client statement names to a shared server, so there is
            // nothing to close there.)
            if !Lane::ALL.iter().all(|&lane| self.lane_quiescent(lane)) {
                return Answered::Stall;
            }
            match frame.tag {
                b'S' => message::ready_for_query(&mut self.client.wbuf, TxStatus::InTransaction),
                b'C' => {
                    if let Some((b'S', name)) = target(frame.body()) {
                        self.statements.close(name);
                    }
                    message::empty(&mut self.client.wbuf, b'3');
                }
                _ => {}
            }
            return Answered::Yes;
        }
        if self.units.phase.is_open() || !matches!(frame.tag, b'Q' | b'P' | b'B') {
            return Answered::No;
        }
        let Some(text) = Text::of(&self.statements, frame) else {
            return Answered::No;
        };
        let sql = text.sql;
        let live = self.ctx.live.load();
        let Some(command) = self.last_statement.tx_command(&live, text) else {
            return Answered::No;
        };
        if !self.may_defer() {
            return Answered::No;
        }
        // A tagged BEGIN routes its transaction itself.
        if live.detector.statement(sql).is_some() {
            return Answered::No;
        }
        let sql = Bytes::copy_from_slice(sql);
        let begun = self.units.begun.is_some();
        if command != TxCommand::Begin && !begun {
            // COMMIT outside a transaction: the server's warning is the right answer.
            return Answered::No;
        }
        if !Lane::ALL.iter().all(|&lane| self.lane_quiescent(lane)) {
            return Answered::Stall;
        }
        if frame.tag == b'Q' {
            self.begin_or_end(command, &sql);
            self.answer_simple(command, begun);
            return Answered::Yes;
        }
        let batch = LocalBatch {
            command,
            redundant: command == TxCommand::Begin && begun,
            sql,
        };
        self.units.phase = Phase::Batch(batch.clone());
        let answered = self.answer_in_batch(&batch, frame);
        debug_assert!(answered, "the batch's first message is its command");
        Answered::Yes
    }

    /// Split mode, not on a dedicated session, and no transaction open on any lane.
    fn may_defer(&self) -> bool {
        self.ctx.live.load().mode == Mode::Split
            && !matches!(self.direct, Direct::Dedicated { .. })
            && !self.tagged
            && Lane::ALL.iter().all(|&lane| {
                self.upstream(lane)
                    .is_none_or(|up| up.server.status() == TxStatus::Idle)
            })
    }

    fn answer_simple(&mut self, command: TxCommand, begun: bool) {
        let out = &mut self.client.wbuf;
        if command == TxCommand::Begin && begun {
            message::warning(out, "25001", ALREADY_IN_TRANSACTION);
        }
        message::command_complete(out, command.tag());
        let status = self.deferred_status();
        message::ready_for_query(&mut self.client.wbuf, status);
    }

    /// `command` ran: a first `BEGIN` is remembered, a `COMMIT` or `ROLLBACK` forgets it.
    fn begin_or_end(&mut self, command: TxCommand, sql: &[u8]) {
        match command {
            TxCommand::Begin if self.units.begun.is_none() => {
                self.units.begun = Some(Begun {
                    sql: Bytes::copy_from_slice(sql),
                });
            }
            TxCommand::Begin => {}
            TxCommand::Commit | TxCommand::Rollback => self.units.begun = None,
        }
    }

    /// The status the client's transaction is in, as far as lockroute answers it.
    fn deferred_status(&self) -> TxStatus {
        if self.units.begun.is_some() {
            TxStatus::InTransaction
        } else {
            TxStatus::Idle
        }
    }

    /// Answers one message of a local batch; `false` when it is not part of the command.
    fn answer_in_batch(&mut self, batch: &LocalBatch, frame: &Frame) -> bool {
        let body = frame.body();
        let is_command = |sql: Option<&[u8]>| sql.and_then(tx_command) == Some(batch.command);
        match frame.tag {
            b'P' => {
                if !is_command(parse_message(body).map(|(_, sql)| sql)) {
                    return false;
                }
                self.statements.record_parse(&frame.bytes.slice(5..));
                message::empty(&mut self.client.wbuf, b'1');
            }
            b'B' => {
                let bound = bind_names(body)
                    .filter(|(portal, _)| portal.is_empty())
                    .and_then(|(_, stmt)| self.statements.resolve(stmt))
                    .map(|s| s.sql());
                if !is_command(bound) {
                    return false;
                }
                message::empty(&mut self.client.wbuf, b'2');
            }
            b'D' => match target(body) {
                Some((b'S', name)) => {
                    if !is_command(self.statements.resolve(name).map(|s| s.sql())) {
                        return false;
                    }
                    message::no_parameters(&mut self.client.wbuf);
                    message::empty(&mut self.client.wbuf, b'n');
                }
                Some((b'P', b"")) => message::empty(&mut self.client.wbuf, b'n'),
                _ => return false,
            },
            b'E' => {
                // Only an Execute runs the command: a batch that merely prepares it leaves the
                // transaction status as it was.
                self.begin_or_end(batch.command, &batch.sql);
                if batch.redundant {
                    message::warning(&mut self.client.wbuf, "25001", ALREADY_IN_TRANSACTION);
                }
                message::command_complete(&mut self.client.wbuf, batch.command.tag());
            }
            b'C' => {
                if let Some((b'S', name)) = target(body) {
                    self.statements.close(name);
                }
                message::empty(&mut self.client.wbuf, b'3');
            }
            b'H' => {}
            b'S' => {
                let status = self.deferred_status();
                message::ready_for_query(&mut self.client.wbuf, status);
                self.units.phase = Phase::Idle;
            }
            _ => return false,
        }
        true
    }

    /// Before the first real statement of a deferred transaction is sent to `lane`: sends the
    /// `BEGIN` ahead of it. Its replies were answered already, so they are swallowed.
    pub(super) fn send_deferred_begin(&mut self, lane: Lane) {
        let Some(begun) = self.units.begun.take() else {
            return;
        };
        let Some(up) = self.upstream_mut(lane) else {
            self.units.begun = Some(begun);
            return;
        };
        message::write_frame(&mut up.conn.wbuf, b'Q', |b| {
            b.put_slice(&begun.sql);
            b.put_u8(0);
        });
        up.server.sent_injected();
    }
}
