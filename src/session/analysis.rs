//! What lockroute reads in a unit's first statement, remembered for the next unit.
//!
//! A job queue sends the same few statements over and over, and the extended protocol keeps
//! parameters out of the text, so the text repeats exactly: drivers send it with every unnamed
//! `Parse` (postgres.js, pgbench `-M extended`), or `Bind` a statement prepared once.
//! Detection, the effects classifier and the transaction-command check are pure functions of
//! the text, the statement name and the live settings, so each session keeps its last
//! extended-protocol statement's answers and reuses them when the next unit's statement is the
//! same. That costs one comparison; the three analyses cost about 1,500 instructions per unit
//! (bench/profile.sh). A simple `Query` writes its literals into the text, so it rarely
//! repeats and is analysed afresh, without touching what is remembered.

use std::sync::{Arc, Weak};

use crate::control::Live;
use crate::protocol::Frame;
use crate::route::detect::Detection;
use crate::route::effects::{Effects, effects};
use crate::route::txcmd::{TxCommand, tx_command};

use super::statements::Statements;

/// Statements longer than this are analysed afresh every time: a session does not keep a
/// large copy around while idle (gbrain's claim, the longest lock-path statement, is 1.3 KB).
const MAX_REMEMBERED: usize = 2048;

/// A unit's first statement: the message it came in, its name and its text.
#[derive(Clone, Copy)]
pub(super) struct Text<'a> {
    pub tag: u8,
    pub name: &'a [u8],
    pub sql: &'a [u8],
}

impl<'a> Text<'a> {
    /// The statement `frame` carries or refers to; `None` for a message without one.
    pub(super) fn of(statements: &'a Statements, frame: &'a Frame) -> Option<Text<'a>> {
        Some(Text {
            tag: frame.tag,
            name: statements.name_of(frame),
            sql: statements.sql_of(frame)?,
        })
    }
}

/// The last analysed statement and what is known about it so far.
#[derive(Default)]
pub(super) struct LastStatement {
    /// The live settings the answers were computed under; `None` when nothing is remembered.
    /// A weak reference: an idle session must not keep a replaced detector alive, and the
    /// allocation it points to cannot be reused for another snapshot while it exists.
    live: Option<Weak<Live>>,
    name: Vec<u8>,
    sql: Vec<u8>,
    tx: Option<Option<TxCommand>>,
    detection: Option<Option<Detection>>,
    effects: Option<Effects>,
}

impl LastStatement {
    /// `BEGIN`, `COMMIT` and the like, or `None`.
    pub(super) fn tx_command(&mut self, live: &Arc<Live>, at: Text<'_>) -> Option<TxCommand> {
        if at.tag == b'Q' {
            return tx_command(at.sql);
        }
        let entry = self.entry(live, at);
        *entry.tx.get_or_insert_with(|| tx_command(at.sql))
    }

    /// Why the statement belongs on the direct lane, if it does.
    pub(super) fn detection(&mut self, live: &Arc<Live>, at: Text<'_>) -> Option<Detection> {
        let detect = || live.detector.statement_named(at.name, at.sql);
        if at.tag == b'Q' {
            return detect();
        }
        *self.entry(live, at).detection.get_or_insert_with(detect)
    }

    /// The session features the statement touches.
    pub(super) fn effects(&mut self, live: &Arc<Live>, at: Text<'_>) -> Effects {
        if at.tag == b'Q' {
            return effects(at.sql);
        }
        *self
            .entry(live, at)
            .effects
            .get_or_insert_with(|| effects(at.sql))
    }

    /// The remembered answers if the statement is the last one, else an empty entry for it.
    fn entry(&mut self, live: &Arc<Live>, at: Text<'_>) -> &mut Self {
        let Text { name, sql, .. } = at;
        let same_live = self
            .live
            .as_ref()
            .is_some_and(|l| std::ptr::eq(l.as_ptr(), Arc::as_ptr(live)));
        if same_live && self.sql == sql && self.name == name {
            return self;
        }
        self.tx = None;
        self.detection = None;
        self.effects = None;
        self.name.clear();
        self.sql.clear();
        if sql.len() > MAX_REMEMBERED || name.len() > MAX_REMEMBERED {
            // Not remembered: the next call compares unequal and analyses again.
            self.live = None;
            self.sql.shrink_to(MAX_REMEMBERED);
            return self;
        }
        if !same_live {
            self.live = Some(Arc::downgrade(live));
        }
        self.name.extend_from_slice(name);
        self.sql.extend_from_slice(sql);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::control::{Inputs, Origin, Setting};

    const TAG: &str = "lockroute:direct";
    const RENEW: &[u8] = b"UPDATE minion_jobs SET lock_until = now() + ($1::double precision * interval '1 millisecond'), updated_at = now() WHERE id = $2 AND lock_token = $3 AND status = 'active' RETURNING id";

    fn live(presets: &[&str]) -> Arc<Live> {
        let inputs = Inputs {
            presets: Some(Setting {
                value: presets.iter().map(|p| p.to_string()).collect(),
                origin: Origin::ControlFile,
            }),
            ..Inputs::default()
        };
        Arc::new(Live::build(TAG, inputs.resolve()).expect("presets compile"))
    }

    fn text<'a>(tag: u8, name: &'a [u8], sql: &'a [u8]) -> Text<'a> {
        Text { tag, name, sql }
    }

    #[test]
    fn a_repeated_statement_gets_the_answers_a_fresh_analysis_gives() {
        let live = live(&["gbrain"]);
        let mut last = LastStatement::default();
        let sqls: [&[u8]; 6] = [
            RENEW,
            b"BEGIN",
            b"LISTEN jobs",
            b"SELECT 1",
            RENEW,
            b"BEGIN",
        ];
        for sql in sqls {
            for _ in 0..2 {
                let at = text(b'P', b"", sql);
                assert_eq!(last.tx_command(&live, at), tx_command(sql));
                assert_eq!(
                    last.detection(&live, at),
                    live.detector.statement_named(b"", sql)
                );
                assert_eq!(last.effects(&live, at), effects(sql));
            }
        }
        assert!(last.detection(&live, text(b'B', b"", RENEW)).is_some());
    }

    #[test]
    fn a_reload_is_not_answered_from_the_old_settings() {
        let gbrain = live(&["gbrain"]);
        let none = live(&["none"]);
        let mut last = LastStatement::default();
        let at = text(b'P', b"", RENEW);
        assert!(last.detection(&gbrain, at).is_some());
        assert_eq!(
            last.detection(&none, at),
            None,
            "the new snapshot's detector decides"
        );
        assert!(last.detection(&gbrain, at).is_some());
    }

    #[test]
    fn the_statement_name_is_part_of_the_key() {
        let live = live(&["graphile-worker"]);
        let mut last = LastStatement::default();
        let sql = b"SELECT 1";
        let named = live
            .detector
            .statement_named(b"get_job/graphile_worker", sql);
        assert!(
            named.is_some(),
            "graphile-worker's rule matches the statement name"
        );
        assert_eq!(last.detection(&live, text(b'P', b"", sql)), None);
        assert_eq!(
            last.detection(&live, text(b'P', b"get_job/graphile_worker", sql)),
            named
        );
        assert_eq!(last.detection(&live, text(b'P', b"", sql)), None);
    }

    #[test]
    fn a_simple_query_leaves_what_is_remembered_alone() {
        let live = live(&["gbrain"]);
        let mut last = LastStatement::default();
        last.detection(&live, text(b'P', b"", RENEW));
        assert_eq!(last.detection(&live, text(b'Q', b"", b"SELECT 1")), None);
        assert_eq!(
            last.sql, RENEW,
            "the extended statement is still the one remembered"
        );
    }

    #[test]
    fn a_long_statement_is_analysed_but_not_kept() {
        let live = live(&["gbrain"]);
        let mut last = LastStatement::default();
        let long = format!("SELECT '{}'", "x".repeat(MAX_REMEMBERED));
        let at = text(b'P', b"", long.as_bytes());
        assert_eq!(last.effects(&live, at), effects(long.as_bytes()));
        assert!(last.sql.is_empty() && last.live.is_none());
        assert!(last.sql.capacity() <= MAX_REMEMBERED);
    }
}
