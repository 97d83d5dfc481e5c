//! One statement's classification: a small state machine fed the lexer's tokens, which knows
//! the keywords that touch session state and where in a statement they count.

use super::{Effects, HARMLESS_SETTINGS};

/// The keywords the classifier acts on. Everything else is `Kw::Word`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Kw {
    #[default]
    None,
    Word,
    Listen,
    Unlisten,
    Set,
    Reset,
    Local,
    Session,
    Transaction,
    Constraints,
    Characteristics,
    Authorization,
    Prepare,
    Deallocate,
    Create,
    Or,
    Replace,
    Global,
    Temp,
    Into,
    Declare,
    With,
    Hold,
    Load,
    Discard,
    AdvisoryLock,
    AdvisoryUnlock,
    SetConfig,
    PgTemp,
    True,
}

pub(super) fn keyword(word: &[u8]) -> Kw {
    const TABLE: &[(&[u8], Kw)] = &[
        (b"listen", Kw::Listen),
        (b"unlisten", Kw::Unlisten),
        (b"set", Kw::Set),
        (b"reset", Kw::Reset),
        (b"local", Kw::Local),
        (b"session", Kw::Session),
        (b"transaction", Kw::Transaction),
        (b"constraints", Kw::Constraints),
        (b"characteristics", Kw::Characteristics),
        (b"authorization", Kw::Authorization),
        (b"prepare", Kw::Prepare),
        (b"deallocate", Kw::Deallocate),
        (b"create", Kw::Create),
        (b"or", Kw::Or),
        (b"replace", Kw::Replace),
        (b"global", Kw::Global),
        (b"temp", Kw::Temp),
        (b"temporary", Kw::Temp),
        (b"into", Kw::Into),
        (b"declare", Kw::Declare),
        (b"with", Kw::With),
        (b"hold", Kw::Hold),
        (b"load", Kw::Load),
        (b"discard", Kw::Discard),
        (b"pg_advisory_lock", Kw::AdvisoryLock),
        (b"pg_try_advisory_lock", Kw::AdvisoryLock),
        (b"pg_advisory_lock_shared", Kw::AdvisoryLock),
        (b"pg_try_advisory_lock_shared", Kw::AdvisoryLock),
        (b"pg_advisory_unlock", Kw::AdvisoryUnlock),
        (b"pg_advisory_unlock_shared", Kw::AdvisoryUnlock),
        (b"pg_advisory_unlock_all", Kw::AdvisoryUnlock),
        (b"set_config", Kw::SetConfig),
        (b"pg_temp", Kw::PgTemp),
        (b"true", Kw::True),
    ];
    TABLE
        .iter()
        .find(|(name, _)| name.len() == word.len() && name.eq_ignore_ascii_case(word))
        .map_or(Kw::Word, |&(_, kw)| kw)
}

fn harmless(setting: &[u8]) -> bool {
    HARMLESS_SETTINGS
        .iter()
        .any(|name| name.len() == setting.len() && name.as_bytes().eq_ignore_ascii_case(setting))
}

/// Where a `set_config(` call is: which argument the scan is in, at which paren depth.
#[derive(Debug, Clone, Copy, Default)]
struct SetConfigCall {
    depth: u32,
    arg: u8,
    /// The third argument's first token has been seen.
    decided: bool,
}

/// One statement's classification state.
#[derive(Debug, Default)]
pub(super) struct Statement {
    pub(super) effects: Effects,
    /// Words seen so far, saturating.
    words: usize,
    pub(super) first: Kw,
    second: Kw,
    prev: Kw,
    /// Only `OR REPLACE GLOBAL LOCAL` have followed `CREATE` so far.
    create_prefix: bool,
    depth: u32,
    /// The last word was `set_config`; the next `(` opens its call.
    set_config_next: bool,
    set_config: Option<SetConfigCall>,
}

impl Statement {
    pub(super) fn word(&mut self, word: &[u8]) {
        let kw = keyword(word);
        self.words += 1;
        match self.words {
            1 => self.on_first(kw),
            2 => self.on_second(kw, word),
            3 => self.on_third(kw, word),
            _ => {}
        }
        if self.first == Kw::Create && self.words > 1 && self.create_prefix {
            // CREATE [OR REPLACE] [GLOBAL | LOCAL] TEMP …; a table merely named `temp` is not.
            match kw {
                Kw::Temp => self.effects |= Effects::TEMP,
                Kw::Or | Kw::Replace | Kw::Global | Kw::Local => {}
                _ => self.create_prefix = false,
            }
        }
        match kw {
            Kw::AdvisoryLock => self.effects |= Effects::ADVISORY_LOCK,
            Kw::AdvisoryUnlock => self.effects |= Effects::RELEASE,
            Kw::PgTemp => self.effects |= Effects::TEMP,
            Kw::Temp if self.prev == Kw::Into => self.effects |= Effects::TEMP,
            Kw::Hold if self.prev == Kw::With && self.first == Kw::Declare => {
                self.effects |= Effects::CURSOR
            }
            _ => {}
        }
        self.third_argument(kw == Kw::True);
        self.set_config_next = kw == Kw::SetConfig;
        self.prev = kw;
    }

    fn on_first(&mut self, kw: Kw) {
        self.first = kw;
        self.create_prefix = kw == Kw::Create;
        self.effects |= match kw {
            Kw::Listen => Effects::LISTEN,
            Kw::Unlisten | Kw::Reset | Kw::Deallocate | Kw::Discard => Effects::RELEASE,
            Kw::Load => Effects::LOAD,
            _ => Effects::NONE,
        };
    }

    fn on_second(&mut self, kw: Kw, word: &[u8]) {
        self.second = kw;
        match (self.first, kw) {
            (Kw::Prepare, Kw::Transaction) => {}
            (Kw::Prepare, _) => self.effects |= Effects::PREPARE,
            (Kw::Set, Kw::Local | Kw::Transaction | Kw::Constraints | Kw::Session) => {}
            (Kw::Set, _) => self.effects |= set_effect(word),
            _ => {}
        }
    }

    fn on_third(&mut self, kw: Kw, word: &[u8]) {
        if (self.first, self.second) == (Kw::Set, Kw::Session) {
            self.effects |= match kw {
                Kw::Characteristics | Kw::Authorization => Effects::SET,
                _ => set_effect(word),
            };
        }
    }

    /// A token that is not a word. As the statement's first token it leaves no first word.
    fn not_a_word(&mut self) {
        if self.words == 0 {
            self.words = 1;
        }
    }

    pub(super) fn open(&mut self) {
        self.not_a_word();
        self.depth += 1;
        if std::mem::take(&mut self.set_config_next) {
            self.set_config = Some(SetConfigCall {
                depth: self.depth,
                arg: 0,
                decided: false,
            });
        }
        self.third_argument(false);
        self.prev = Kw::None;
    }

    pub(super) fn close(&mut self) {
        self.not_a_word();
        self.third_argument(false);
        if let Some(call) = self.set_config
            && call.depth == self.depth
        {
            // A call that ended before a third argument was seen is malformed; the server
            // rejects it, so it sets nothing.
            self.set_config = None;
        }
        self.depth = self.depth.saturating_sub(1);
        self.set_config_next = false;
        self.prev = Kw::None;
    }

    pub(super) fn comma(&mut self) {
        self.not_a_word();
        self.third_argument(false);
        if let Some(call) = self.set_config.as_mut()
            && call.depth == self.depth
        {
            call.arg += 1;
        }
        self.set_config_next = false;
        self.prev = Kw::None;
    }

    pub(super) fn punct(&mut self) {
        self.not_a_word();
        self.third_argument(false);
        self.set_config_next = false;
        self.prev = Kw::None;
    }

    /// At the first token of `set_config`'s third argument: session-wide unless it is `true`.
    fn third_argument(&mut self, is_true: bool) {
        let Some(call) = self.set_config.as_mut() else {
            return;
        };
        if call.arg == 2 && !call.decided && self.depth == call.depth {
            call.decided = true;
            if !is_true {
                self.effects |= Effects::SET;
            }
        }
    }
}

fn set_effect(setting: &[u8]) -> Effects {
    if harmless(setting) {
        Effects::SET_HARMLESS
    } else {
        Effects::SET
    }
}
