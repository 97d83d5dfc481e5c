//! Statement effects: which session features a statement touches. Pure, like detection.
//!
//! A transaction pooler hands each transaction whichever server is free, and a shared direct
//! connection serves many clients in turn, so anything a statement leaves on its *session*
//! (a `LISTEN`, a session advisory lock, a `SET`, a temp table, a SQL `PREPARE`, a `WITH HOLD`
//! cursor) is either lost or seen by someone else. The session asks [`effects`] before a unit
//! runs: a unit that would create session state moves its client to a dedicated direct session
//! first (`--pin auto`), and a shared direct connection that ran one is reset before reuse.
//!
//! What counts, per statement of a (possibly multi-statement) query:
//! - first word `LISTEN` (creates), `UNLISTEN` (releases);
//! - `SET`/`SET SESSION` of a setting not in [`HARMLESS_SETTINGS`]; `SET LOCAL`, `SET
//!   TRANSACTION` and `SET CONSTRAINTS` are transaction-scoped and do not count; `RESET`
//!   releases;
//! - `PREPARE` (not `PREPARE TRANSACTION`) creates, `DEALLOCATE` releases;
//! - `CREATE … TEMP[ORARY] …`, `SELECT … INTO TEMP …` and any `pg_temp` name;
//! - `DECLARE … WITH HOLD`; `LOAD`; `DISCARD` (releases);
//! - anywhere in a statement, not only at its start (good_job and Que lock inside a CTE):
//!   `pg_advisory_lock`, `pg_try_advisory_lock` and their `_shared` forms create, the
//!   `pg_advisory_unlock*` functions release. The `_xact_` forms end with their transaction
//!   and do not count. `set_config(…, …, is_local)` counts unless `is_local` is the literal
//!   `true`.
//!
//! String literals, quoted identifiers and comments are skipped, so a function name inside a
//! string does not count. So does one inside a `DO` block's body: a documented limit.
//!
//! Cost: [`effects`] looks at no more than [`SCAN_LIMIT`] bytes and does not allocate. The
//! common statement (no trigger word anywhere) is answered by a memchr pass for the bytes a
//! trigger must contain plus a look at the first words; only a statement that may contain a
//! trigger is lexed in full.

use super::detect::{COMMENT_SCAN_LIMIT, MATCH_PREFIX_LIMIT};
use super::lex::{Lexer, Token};

mod statement;

use self::statement::{Kw, Statement, keyword};

/// How many bytes of a statement are classified: the same window detection reads.
pub const SCAN_LIMIT: usize = COMMENT_SCAN_LIMIT + MATCH_PREFIX_LIMIT;

/// Settings that frameworks set on every new connection (Rails sends `client_min_messages`,
/// `standard_conforming_strings`, `intervalstyle` and `timezone`; drivers send
/// `client_encoding`, `datestyle` and `extra_float_digits`). They change how values are
/// formatted or reported, not what a query does, and every connection of a worker sets them the
/// same way. Pinning on them would move every client to a dedicated session, so they do not pin.
/// A shared direct connection that ran one is still reset before another client uses it.
pub const HARMLESS_SETTINGS: &[&str] = &[
    "application_name",
    "bytea_output",
    "client_encoding",
    "client_min_messages",
    "datestyle",
    "extra_float_digits",
    "intervalstyle",
    "names",
    "standard_conforming_strings",
    "time",
    "timezone",
];

/// Why a client is moved to a dedicated direct session. The `reason` label of
/// `lockroute_pins_total`, `lockroute_pinned_clients` and `lockroute_pin_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinReason {
    Listen,
    AdvisoryLock,
    Set,
    Temp,
    Prepare,
    Cursor,
    Other,
}

impl PinReason {
    pub const ALL: [PinReason; 7] = [
        PinReason::Listen,
        PinReason::AdvisoryLock,
        PinReason::Set,
        PinReason::Temp,
        PinReason::Prepare,
        PinReason::Cursor,
        PinReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PinReason::Listen => "listen",
            PinReason::AdvisoryLock => "advisory_lock",
            PinReason::Set => "set",
            PinReason::Temp => "temp",
            PinReason::Prepare => "prepare",
            PinReason::Cursor => "cursor",
            PinReason::Other => "other",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The session features one statement touches, as a set of flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effects(u16);

impl Effects {
    pub const NONE: Effects = Effects(0);
    pub const LISTEN: Effects = Effects(1 << 0);
    pub const ADVISORY_LOCK: Effects = Effects(1 << 1);
    pub const SET: Effects = Effects(1 << 2);
    pub const TEMP: Effects = Effects(1 << 3);
    pub const PREPARE: Effects = Effects(1 << 4);
    pub const CURSOR: Effects = Effects(1 << 5);
    pub const LOAD: Effects = Effects(1 << 6);
    /// A harmless setting (see [`HARMLESS_SETTINGS`]): resets a shared connection, never pins.
    pub const SET_HARMLESS: Effects = Effects(1 << 7);
    /// Releases state (`UNLISTEN`, `RESET`, `DEALLOCATE`, `DISCARD`, an advisory unlock).
    pub const RELEASE: Effects = Effects(1 << 8);

    pub fn contains(self, other: Effects) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether a connection that ran the statement may hold state another client could see,
    /// so that a shared connection must be reset before it is handed on.
    pub fn changes_session(self) -> bool {
        !self.is_empty()
    }

    /// The reason to pin the client before the statement runs: the first state-creating
    /// feature, in the order of the `reason` label's list.
    pub fn pin(self) -> Option<PinReason> {
        const ORDER: [(Effects, PinReason); 7] = [
            (Effects::LISTEN, PinReason::Listen),
            (Effects::ADVISORY_LOCK, PinReason::AdvisoryLock),
            (Effects::SET, PinReason::Set),
            (Effects::TEMP, PinReason::Temp),
            (Effects::PREPARE, PinReason::Prepare),
            (Effects::CURSOR, PinReason::Cursor),
            (Effects::LOAD, PinReason::Other),
        ];
        ORDER
            .into_iter()
            .find(|&(flag, _)| self.contains(flag))
            .map(|(_, reason)| reason)
    }
}

impl std::ops::BitOr for Effects {
    type Output = Effects;
    fn bitor(self, rhs: Effects) -> Effects {
        Effects(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Effects {
    fn bitor_assign(&mut self, rhs: Effects) {
        self.0 |= rhs.0;
    }
}

/// The session features `sql` touches. `sql` is a query string without its NUL, or a `Parse`
/// statement text.
pub fn effects(sql: &[u8]) -> Effects {
    let window = &sql[..sql.len().min(SCAN_LIMIT)];
    if !anywhere(window) {
        let mut lexer = Lexer::new(window);
        return match lexer.next() {
            Some(Token::Word(first)) => first_word_alone(first, &mut lexer),
            _ => Effects::NONE,
        };
    }
    classify(window)
}

/// Whether anything past the first statement's first words could matter: a name an advisory
/// lock, `set_config` or a `pg_temp` object is written with, `INTO TEMP`, or a second statement.
/// A cheap over-approximation (it ignores quoting), so that only such statements are lexed in
/// full: `_` and `;` are found with memchr, and each is checked by its neighbours.
fn anywhere(window: &[u8]) -> bool {
    let hit = memchr::memchr2_iter(b'_', b';', window).any(|at| {
        let (before, after) = (&window[..at], &window[at + 1..]);
        if window[at] == b';' {
            return after.iter().any(|b| !b.is_ascii_whitespace());
        }
        // Identifiers are full of `_`: look at the byte after it before comparing words.
        match after.first().map(|b| b | 0x20) {
            Some(b'a') => starts_with_ci(after, b"advisory"),
            Some(b'c') => ends_with_ci(before, b"set") && starts_with_ci(after, b"config"),
            Some(b't') => ends_with_ci(before, b"pg") && starts_with_ci(after, b"temp"),
            _ => false,
        }
    });
    hit || memchr::memchr2_iter(b'i', b'I', window).any(|at| into_temp(&window[at..]))
}

/// `INTO` followed by whitespace and `TEMP`, any case.
fn into_temp(text: &[u8]) -> bool {
    if text.get(1).map(|b| b | 0x20) != Some(b'n') || !starts_with_ci(text, b"into") {
        return false;
    }
    let rest = &text[4..];
    let gap = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
    gap > 0 && starts_with_ci(&rest[gap..], b"temp")
}

fn starts_with_ci(text: &[u8], word: &[u8]) -> bool {
    text.get(..word.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(word))
}

fn ends_with_ci(text: &[u8], word: &[u8]) -> bool {
    text.len() >= word.len() && text[text.len() - word.len()..].eq_ignore_ascii_case(word)
}

/// The effects of a statement whose first word is `first` and that has no trigger word later.
fn first_word_alone(first: &[u8], lexer: &mut Lexer<'_>) -> Effects {
    // Without a trigger word later, only a statement-start keyword can touch the session: the
    // common statement (`SELECT`, `UPDATE`, `INSERT` ...) is answered by its first word.
    if !matches!(
        keyword(first),
        Kw::Listen
            | Kw::Unlisten
            | Kw::Set
            | Kw::Reset
            | Kw::Prepare
            | Kw::Deallocate
            | Kw::Create
            | Kw::Declare
            | Kw::Load
            | Kw::Discard
    ) {
        return Effects::NONE;
    }
    let mut stmt = Statement::default();
    stmt.word(first);
    // Look at a few more words: SET LOCAL, SET SESSION x, CREATE GLOBAL TEMP, DECLARE … HOLD.
    for _ in 0..STATEMENT_WORDS {
        match lexer.next() {
            Some(Token::Word(w)) => stmt.word(w),
            Some(Token::Semicolon) | None => break,
            Some(_) => stmt.punct(),
        }
    }
    if stmt.first == Kw::Declare {
        // `WITH HOLD` may come after a long cursor name; read on to the statement's end.
        while let Some(token) = lexer.next() {
            match token {
                Token::Word(w) => stmt.word(w),
                Token::Semicolon => break,
                _ => stmt.punct(),
            }
        }
    }
    stmt.effects
}

/// How many words after the first decide a statement-start keyword.
const STATEMENT_WORDS: usize = 4;

/// The full scan: every statement, every word.
fn classify(window: &[u8]) -> Effects {
    let mut all = Effects::NONE;
    let mut stmt = Statement::default();
    let mut lexer = Lexer::new(window);
    while let Some(token) = lexer.next() {
        match token {
            Token::Word(w) => stmt.word(w),
            Token::Open => stmt.open(),
            Token::Close => stmt.close(),
            Token::Comma => stmt.comma(),
            Token::Semicolon => {
                all |= stmt.effects;
                stmt = Statement::default();
            }
            Token::Other => stmt.punct(),
        }
    }
    all | stmt.effects
}

#[cfg(test)]
mod tests;
