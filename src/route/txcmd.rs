//! Bare transaction commands: which client statements lockroute may answer itself.
//!
//! DESIGN.md, "Routing": a transaction's lane is chosen at its first real statement, so
//! lockroute answers a bare `BEGIN` or `START TRANSACTION` itself and sends it on with that
//! statement. Only commands whose whole text is understood here are deferred: anything else
//! (an unknown option, a second statement, `COMMIT AND CHAIN`, `ROLLBACK TO SAVEPOINT`) goes to
//! a server, which answers it exactly as Postgres does, errors included. Pure and bounded.

use super::lex::{Lexer, Token};

/// Longer texts are never bare transaction commands worth deferring.
const MAX_LEN: usize = 256;

/// A transaction command lockroute can answer itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxCommand {
    /// `BEGIN` / `START TRANSACTION` with any valid transaction modes.
    Begin,
    /// `COMMIT` / `END`, answered `COMMIT`.
    Commit,
    /// `ROLLBACK` / `ABORT`, answered `ROLLBACK`.
    Rollback,
}

impl TxCommand {
    /// The command tag Postgres answers it with.
    pub fn tag(self) -> &'static str {
        match self {
            TxCommand::Begin => "BEGIN",
            TxCommand::Commit => "COMMIT",
            TxCommand::Rollback => "ROLLBACK",
        }
    }
}

/// What `sql` is, if it is one bare transaction command and nothing else.
pub fn tx_command(sql: &[u8]) -> Option<TxCommand> {
    if sql.len() > MAX_LEN {
        return None;
    }
    let mut words = Words {
        lexer: Lexer::new(sql),
        ended: false,
    };
    let first = words.next()?;
    let command = match_word(
        first,
        &[b"begin", b"start", b"commit", b"end", b"rollback", b"abort"],
    )?;
    let command = match command {
        0 => {
            words.optional(&[b"work", b"transaction"])?;
            modes(&mut words)?;
            TxCommand::Begin
        }
        1 => {
            words.expect(b"transaction")?;
            modes(&mut words)?;
            TxCommand::Begin
        }
        _ => {
            words.optional(&[b"work", b"transaction"])?;
            if words.peek_is(b"and") {
                words.next();
                words.expect(b"no")?;
                words.expect(b"chain")?;
            }
            if command <= 3 {
                TxCommand::Commit
            } else {
                TxCommand::Rollback
            }
        }
    };
    words.finished().then_some(command)
}

/// Transaction modes, optionally separated by commas.
fn modes(words: &mut Words<'_>) -> Option<()> {
    let mut after_comma = false;
    loop {
        if words.at_end() {
            // A comma must be followed by another mode.
            return (!after_comma).then_some(());
        }
        let word = words.next()?;
        match match_word(word, &[b"isolation", b"read", b"deferrable", b"not"])? {
            0 => {
                words.expect(b"level")?;
                let level = words.next()?;
                match match_word(level, &[b"serializable", b"repeatable", b"read"])? {
                    0 => {}
                    1 => words.expect(b"read")?,
                    _ => {
                        let which = words.next()?;
                        match_word(which, &[b"committed", b"uncommitted"])?;
                    }
                }
            }
            1 => {
                let which = words.next()?;
                match_word(which, &[b"write", b"only"])?;
            }
            2 => {}
            _ => words.expect(b"deferrable")?,
        }
        after_comma = words.comma();
    }
}

fn match_word(word: &[u8], options: &[&[u8]]) -> Option<usize> {
    options.iter().position(|o| o.eq_ignore_ascii_case(word))
}

/// The words of a statement; any other token ends it, and makes it not bare.
struct Words<'a> {
    lexer: Lexer<'a>,
    /// A `;` was seen: only whitespace and comments may follow.
    ended: bool,
}

impl<'a> Words<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        match self.lexer_next()? {
            Token::Word(w) => Some(w),
            _ => None,
        }
    }

    fn lexer_next(&mut self) -> Option<Token<'a>> {
        if self.ended {
            return None;
        }
        let token = self.lexer.next()?;
        if token == Token::Semicolon {
            self.ended = true;
            return None;
        }
        Some(token)
    }

    fn peek_is(&self, word: &[u8]) -> bool {
        matches!(self.lexer_clone().next(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn lexer_clone(&self) -> Lexer<'a> {
        self.lexer.clone()
    }

    fn at_end(&self) -> bool {
        self.ended || matches!(self.lexer_clone().next(), None | Some(Token::Semicolon))
    }

    fn expect(&mut self, word: &[u8]) -> Option<()> {
        self.next()
            .filter(|w| w.eq_ignore_ascii_case(word))
            .map(|_| ())
    }

    /// Skips `word` if it is one of `options`; fails only on a token that is not a word.
    fn optional(&mut self, options: &[&[u8]]) -> Option<()> {
        let mut ahead = self.lexer_clone();
        if let Some(Token::Word(w)) = ahead.next()
            && match_word(w, options).is_some()
        {
            self.lexer = ahead;
        }
        Some(())
    }

    /// Skips a comma; whether there was one.
    fn comma(&mut self) -> bool {
        let mut ahead = self.lexer_clone();
        let comma = ahead.next() == Some(Token::Comma);
        if comma {
            self.lexer = ahead;
        }
        comma
    }

    /// Nothing but whitespace, comments and one optional `;` is left.
    fn finished(&mut self) -> bool {
        if !self.ended && self.lexer.next().is_some_and(|t| t != Token::Semicolon) {
            return false;
        }
        self.ended = true;
        self.lexer.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_transaction_commands() {
        use TxCommand::*;
        let cases: &[(&str, Option<TxCommand>)] = &[
            ("BEGIN", Some(Begin)),
            ("begin;", Some(Begin)),
            ("  begin work ; ", Some(Begin)),
            ("BEGIN TRANSACTION", Some(Begin)),
            ("/* c */ BEGIN -- x\n", Some(Begin)),
            ("START TRANSACTION", Some(Begin)),
            ("start transaction read only", Some(Begin)),
            ("BEGIN ISOLATION LEVEL SERIALIZABLE", Some(Begin)),
            (
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY, DEFERRABLE",
                Some(Begin),
            ),
            (
                "begin isolation level read committed read write not deferrable",
                Some(Begin),
            ),
            ("BEGIN ISOLATION LEVEL READ UNCOMMITTED", Some(Begin)),
            ("COMMIT", Some(Commit)),
            ("commit work;", Some(Commit)),
            ("END", Some(Commit)),
            ("COMMIT AND NO CHAIN", Some(Commit)),
            ("ROLLBACK", Some(Rollback)),
            ("abort transaction", Some(Rollback)),
            // Not bare: a server must answer these.
            ("BEGIN ISOLATION LEVEL bogus", None),
            ("BEGIN; select 1", None),
            ("BEGIN READ", None),
            ("START", None),
            ("COMMIT AND CHAIN", None),
            ("ROLLBACK TO SAVEPOINT a", None),
            ("ROLLBACK PREPARED 'x'", None),
            ("COMMIT PREPARED 'x'", None),
            ("BEGIN;;", None),
            ("select 1", None),
            ("", None),
            ("BEGIN 'x'", None),
            ("BEGIN ISOLATION LEVEL SERIALIZABLE,", None),
        ];
        for &(sql, want) in cases {
            assert_eq!(tx_command(sql.as_bytes()), want, "{sql:?}");
        }
        assert_eq!(Begin.tag(), "BEGIN");
        assert_eq!(Commit.tag(), "COMMIT");
        assert_eq!(Rollback.tag(), "ROLLBACK");
    }
}
