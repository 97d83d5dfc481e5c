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
    match frame.tag {
        b'Q' | b'F' => {
            if frame.tag == b'Q' && query_text(body).is_some_and(ends_transaction) {
                message::command_complete(out, "ROLLBACK");
                message::ready_for_query(out, TxStatus::Idle);
                return None;
            }
            message::error_response(out, Severity::Error, code, msg);
            message::ready_for_query(out, TxStatus::Failed);
            Some(Local::failed_transaction())
        }
        b'P' => {
            let exit = parse_message(body).is_some_and(|(_, sql)| ends_transaction(sql));
            statements.record_parse(&frame.bytes.slice(5..));
            if !exit {
                return fail(out);
            }
            message::empty(out, b'1');
            state(exit_bound, ended)
        }
        b'B' => {
            let exit = bind_names(body)
                .and_then(|(_, stmt)| statements.resolve(stmt))
                .is_some_and(|s| ends_transaction(s.sql()));
            if !exit {
                return fail(out);
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
    let text = trim_start(sql);
    let word_len = text
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (word, rest) = text.split_at(word_len);
    let is_exit = [&b"rollback"[..], b"abort", b"commit", b"end"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w));
    if !is_exit {
        return false;
    }
    let rest = trim_start(rest);
    let next_len = rest
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let next = &rest[..next_len];
    // `ROLLBACK TO`, `COMMIT PREPARED` and `COMMIT AND CHAIN` would each promise a transaction
    // that lockroute cannot provide.
    ![&b"to"[..], b"prepared", b"and"]
        .iter()
        .any(|w| next.eq_ignore_ascii_case(w))
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != b';')
        .unwrap_or(s.len());
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::try_take;

    fn frames(bytes: Vec<bytes::Bytes>) -> Vec<Frame> {
        bytes
            .into_iter()
            .map(|b| {
                try_take(&mut BytesMut::from(&b[..]), 1 << 20)
                    .unwrap()
                    .unwrap()
            })
            .collect()
    }

    fn tags(out: &BytesMut) -> Vec<u8> {
        let mut buf = out.clone();
        std::iter::from_fn(|| try_take(&mut buf, 1 << 20).unwrap().map(|f| f.tag)).collect()
    }

    #[test]
    fn ends_transaction_recognises_exit_statements() {
        for (sql, want) in [
            ("ROLLBACK", true),
            ("rollback;", true),
            ("  commit", true),
            ("END", true),
            ("abort", true),
            ("COMMIT AND CHAIN", false),
            ("ROLLBACK TO SAVEPOINT a", false),
            ("rollback to a", false),
            ("COMMIT PREPARED 'x'", false),
            ("select 1", false),
            ("committed", false),
            ("", false),
        ] {
            assert_eq!(ends_transaction(sql.as_bytes()), want, "{sql}");
        }
    }

    #[test]
    fn discard_to_sync_drops_then_answers_ready() {
        let mut statements = Statements::default();
        let mut out = BytesMut::new();
        let mut state = Some(Local::DiscardToSync {
            then: TxStatus::Idle,
        });
        for frame in frames(vec![
            message::frame(b'B', |_| {}),
            message::frame(b'E', |_| {}),
            message::sync(),
        ]) {
            state = state.unwrap().on_client(&frame, &mut statements, &mut out);
        }
        assert_eq!(state, None);
        assert_eq!(tags(&out), vec![b'Z']);
    }

    #[test]
    fn failed_transaction_rejects_until_simple_rollback() {
        let mut statements = Statements::default();
        let mut out = BytesMut::new();
        let state = Local::failed_transaction();
        let select = &frames(vec![message::query("select 1")])[0];
        let state = state.on_client(select, &mut statements, &mut out).unwrap();
        assert_eq!(tags(&out), vec![b'E', b'Z']);
        assert_eq!(out[out.len() - 1], b'E');
        out.clear();
        let rollback = &frames(vec![message::query("ROLLBACK")])[0];
        assert_eq!(state.on_client(rollback, &mut statements, &mut out), None);
        assert_eq!(tags(&out), vec![b'C', b'Z']);
        assert_eq!(out[out.len() - 1], b'I');
    }

    #[test]
    fn failed_transaction_extended_commit_ends_it() {
        let mut statements = Statements::default();
        let mut out = BytesMut::new();
        let parse = message::frame(b'P', |b| b.extend_from_slice(b"s1\0commit\0\0\0"));
        let bind = message::frame(b'B', |b| b.extend_from_slice(b"\0s1\0\0\0\0\0\0\0"));
        let execute = message::frame(b'E', |b| b.extend_from_slice(b"\0\0\0\0\0"));
        let mut state = Some(Local::failed_transaction());
        for frame in frames(vec![parse, bind, execute, message::sync()]) {
            state = state.unwrap().on_client(&frame, &mut statements, &mut out);
        }
        assert_eq!(state, None);
        assert_eq!(tags(&out), vec![b'1', b'2', b'C', b'Z']);
        assert_eq!(out[out.len() - 1], b'I');
    }

    #[test]
    fn lost_while_idle_in_transaction_first_error_is_08006_then_25p02() {
        let mut statements = Statements::default();
        let mut out = BytesMut::new();
        let state = Local::after_loss(false, false, TxStatus::InTransaction).unwrap();
        let select = &frames(vec![message::query("select 1")])[0];
        let state = state.on_client(select, &mut statements, &mut out).unwrap();
        assert_eq!(crate::protocol::message::sqlstate(&out[5..]), Some("08006"));
        out.clear();
        state.on_client(select, &mut statements, &mut out).unwrap();
        assert_eq!(crate::protocol::message::sqlstate(&out[5..]), Some("25P02"));
    }

    #[test]
    fn lost_with_a_statement_in_flight_in_transaction_next_error_is_25p02() {
        // The statement in flight already got its 08006; a second one would say the same
        // loss twice.
        let mut statements = Statements::default();
        let mut out = BytesMut::new();
        let state = Local::after_loss(false, true, TxStatus::InTransaction).unwrap();
        let select = &frames(vec![message::query("select 1")])[0];
        state.on_client(select, &mut statements, &mut out).unwrap();
        assert_eq!(crate::protocol::message::sqlstate(&out[5..]), Some("25P02"));
    }

    #[test]
    fn failed_transaction_extended_statement_fails_and_stays_failed() {
        let mut statements = Statements::default();
        let mut out = BytesMut::new();
        let parse = message::frame(b'P', |b| b.extend_from_slice(b"\0select 1\0\0\0"));
        let bind = message::frame(b'B', |b| b.extend_from_slice(b"\0\0\0\0\0\0\0\0"));
        let mut state = Some(Local::failed_transaction());
        for frame in frames(vec![parse, bind, message::sync()]) {
            state = state.unwrap().on_client(&frame, &mut statements, &mut out);
        }
        assert_eq!(state, Some(Local::failed_transaction()));
        assert_eq!(tags(&out), vec![b'E', b'Z']);
        assert_eq!(out[out.len() - 1], b'E');
    }
}
