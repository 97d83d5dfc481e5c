//! Answers lockroute gives itself after an upstream was lost in the middle of a unit.
//!
//! DESIGN.md, "Pooler lane": the client gets `08006`, its messages up to `Sync` are discarded
//! as a server would after an error, and then `ReadyForQuery`. If a transaction was open, the
//! client is now in a failed transaction that no server holds any more: every statement gets
//! `25P02` until it ends the transaction, which lockroute acknowledges itself.

use bytes::BytesMut;

use crate::protocol::message::{self, Severity, bind_names, parse_message, query_text, target};
use crate::protocol::{Frame, TxStatus, sqlstate};

use super::statements::Statements;

/// A state in which lockroute answers the client itself instead of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// Drop messages up to the next `Sync`, then send `ReadyForQuery(then)`.
    DiscardToSync { then: TxStatus },
    /// In a failed transaction whose server is gone.
    FailedTransaction {
        /// The client has not been told yet: its next statement gets `08006`, not `25P02`.
        unreported: bool,
        /// The portal bound in this batch ends the transaction.
        exit_bound: bool,
        /// An `Execute` of such a portal ran: the next `Sync` reports `I`.
        ended: bool,
    },
}

const LOST_IN_TRANSACTION: &str = "lockroute: the upstream connection was lost while this transaction was open; \
                                   the transaction is aborted, end it with ROLLBACK";

const LOST_BEFORE_COMMIT: &str = "lockroute: the upstream connection was lost while this transaction was \
                                  open; it was rolled back and nothing was committed";

const FAILED: &str = "current transaction is aborted, commands ignored until end of transaction block \
                      (the upstream connection was lost; lockroute holds the failed transaction)";

impl Local {
    pub fn failed_transaction() -> Local {
        Local::FailedTransaction {
            unreported: false,
            exit_bound: false,
            ended: false,
        }
    }

    /// The state to enter after a unit failed: discard to `Sync` if the client is still
    /// sending the unit, else go straight to the transaction state. `reported`: the units in
    /// flight already got their `08006`, so later statements get `25P02`.
    pub fn after_loss(unit_open: bool, reported: bool, status: TxStatus) -> Option<Local> {
        match (unit_open, status) {
            (true, then) => Some(Local::DiscardToSync { then }),
            (false, TxStatus::Idle) => None,
            (false, _) if reported => Some(Local::failed_transaction()),
            // Lost while the client sat idle in its transaction: nothing has told it yet.
            (false, _) => Some(Local::FailedTransaction {
                unreported: true,
                exit_bound: false,
                ended: false,
            }),
        }
    }

    /// Answers one client frame. Returns the next state; `None` means normal relaying resumes.
    pub fn on_client(
        self,
        frame: &Frame,
        statements: &mut Statements,
        out: &mut BytesMut,
    ) -> Option<Local> {
        match self {
            Local::DiscardToSync { then } => {
                if frame.tag != b'S' {
                    return Some(self);
                }
                message::ready_for_query(out, then);
                (then != TxStatus::Idle).then(Local::failed_transaction)
            }
            Local::FailedTransaction {
                unreported,
                exit_bound,
                ended,
            } => failed_transaction(frame, unreported, exit_bound, ended, statements, out),
        }
    }
}

fn failed_transaction(
    frame: &Frame,
    unreported: bool,
    exit_bound: bool,
    ended: bool,
    statements: &mut Statements,
    out: &mut BytesMut,
) -> Option<Local> {
    let body = frame.body();
    // The first error after a loss says what happened; later ones say what a server says.
    let (code, msg) = if unreported {
        (sqlstate::CONNECTION_FAILURE, LOST_IN_TRANSACTION)
    } else {
        (sqlstate::IN_FAILED_TRANSACTION, FAILED)
    };
    let state = |exit_bound, ended| {
        Some(Local::FailedTransaction {
            unreported,
            exit_bound,
            ended,
        })
    };
    let fail = |out: &mut BytesMut| {
        message::error_response(out, Severity::Error, code, msg);
        Some(Local::DiscardToSync {
            then: TxStatus::Failed,
        })
    };
    // A COMMIT that is the first the client hears of the loss must fail: answering it with the
    // `ROLLBACK` tag, as a server does for a transaction the client knows is aborted, would
    // tell a client that never saw an error that its writes are committed.
    let commit_unreported = |sql: &[u8]| unreported && asks_to_commit(sql);
    let fail_commit = |out: &mut BytesMut| {
        message::error_response(
            out,
            Severity::Error,
            sqlstate::CONNECTION_FAILURE,
            LOST_BEFORE_COMMIT,
        );
        Some(Local::DiscardToSync {
            then: TxStatus::Idle,
        })
    };
    match frame.tag {
        b'Q' | b'F' => {
            let ending = (frame.tag == b'Q')
                .then(|| query_text(body))
                .flatten()
                .filter(|sql| ends_transaction(sql));
            if let Some(sql) = ending {
                if commit_unreported(sql) {
                    fail_commit(out);
                } else {
                    message::command_complete(out, "ROLLBACK");
                }
                message::ready_for_query(out, TxStatus::Idle);
                return None;
            }
            message::error_response(out, Severity::Error, code, msg);
            message::ready_for_query(out, TxStatus::Failed);
            Some(Local::failed_transaction())
        }
        b'P' => {
            let sql = parse_message(body).map(|(_, sql)| sql);
            let exit = sql.is_some_and(ends_transaction);
            statements.record_parse(&frame.bytes.slice(5..));
            if !exit {
                return fail(out);
            }
            if sql.is_some_and(commit_unreported) {
                return fail_commit(out);
            }
            message::empty(out, b'1');
            state(exit_bound, ended)
        }
        b'B' => {
            let sql = bind_names(body)
                .and_then(|(_, stmt)| statements.resolve(stmt))
                .map(|s| s.sql());
            if !sql.is_some_and(ends_transaction) {
                return fail(out);
            }
            if sql.is_some_and(commit_unreported) {
                return fail_commit(out);
            }
            message::empty(out, b'2');
            state(true, ended)
        }
        b'D' => {
            if let Some((b'S', _)) = target(body) {
                message::no_parameters(out);
            }
            message::empty(out, b'n');
            state(exit_bound, ended)
        }
        b'E' if exit_bound => {
            message::command_complete(out, "ROLLBACK");
            state(exit_bound, true)
        }
        b'E' => fail(out),
        b'C' => {
            if let Some((b'S', name)) = target(body) {
                statements.close(name);
            }
            message::empty(out, b'3');
            state(exit_bound, ended)
        }
        b'S' => {
            let status = if ended {
                TxStatus::Idle
            } else {
                TxStatus::Failed
            };
            message::ready_for_query(out, status);
            (!ended).then_some(Local::FailedTransaction {
                unreported,
                exit_bound: false,
                ended: false,
            })
        }
        // Flush, and stray COPY messages: nothing to answer.
        _ => state(exit_bound, ended),
    }
}

/// Whether a statement ends a transaction block: `ROLLBACK`, `ABORT`, `COMMIT` or `END`
/// (but not `ROLLBACK TO SAVEPOINT`, which would keep a transaction that no longer exists).
pub fn ends_transaction(sql: &[u8]) -> bool {
    let (word, rest) = first_word(sql);
    let is_exit = [&b"rollback"[..], b"abort", b"commit", b"end"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w));
    if !is_exit {
        return false;
    }
    let (next, _) = first_word(rest);
    // `ROLLBACK TO`, `COMMIT PREPARED` and `COMMIT AND CHAIN` would each promise a transaction
    // that lockroute cannot provide.
    ![&b"to"[..], b"prepared", b"and"]
        .iter()
        .any(|w| next.eq_ignore_ascii_case(w))
}

/// Whether a statement that ends a transaction block asks to commit (`COMMIT`, `END`).
fn asks_to_commit(sql: &[u8]) -> bool {
    let (word, _) = first_word(sql);
    word.eq_ignore_ascii_case(b"commit") || word.eq_ignore_ascii_case(b"end")
}

/// The first word of `sql` (letters, after whitespace and `;`) and what follows it.
fn first_word(sql: &[u8]) -> (&[u8], &[u8]) {
    let text = trim_start(sql);
    let len = text
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(text.len());
    text.split_at(len)
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != b';')
        .unwrap_or(s.len());
    &s[n..]
}

#[cfg(test)]
mod tests;
