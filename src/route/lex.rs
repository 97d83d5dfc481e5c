//! A minimal SQL lexer for the pure classifiers: words and the few punctuation marks they act
//! on, with whitespace, comments, literals and quoted identifiers skipped as the Postgres lexer
//! (`scan.l`) delimits them. No allocation; it never reads past its buffer.

/// A token of SQL, as far as the classifier cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    /// A keyword or identifier. Quoted identifiers and literals are `Other`.
    Word(&'a [u8]),
    Open,
    Close,
    Comma,
    Semicolon,
    Other,
}

/// A lexer that skips whitespace, comments (nested `/* */` and `--`), string literals
/// (`'…'`, `E'…'`, `$tag$…$tag$`) and quoted identifiers, the way the Postgres lexer
/// (`scan.l`) delimits them. An unterminated literal or comment ends the input.
#[derive(Clone)]
pub(crate) struct Lexer<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Lexer<'a> {
        Lexer { buf, at: 0 }
    }

    fn peek(&self, offset: usize) -> Option<u8> {
        self.buf.get(self.at + offset).copied()
    }

    pub(crate) fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let byte = self.peek(0)?;
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => self.at += 1,
                b'-' if self.peek(1) == Some(b'-') => self.skip_line_comment(),
                b'/' if self.peek(1) == Some(b'*') => self.skip_block_comment(),
                b'\'' => {
                    self.skip_quoted(b'\'', false);
                    return Some(Token::Other);
                }
                b'"' => {
                    self.skip_quoted(b'"', false);
                    return Some(Token::Other);
                }
                b'$' => {
                    self.skip_dollar();
                    return Some(Token::Other);
                }
                b'(' | b')' | b',' | b';' => {
                    self.at += 1;
                    return Some(match byte {
                        b'(' => Token::Open,
                        b')' => Token::Close,
                        b',' => Token::Comma,
                        _ => Token::Semicolon,
                    });
                }
                _ if is_ident_start(byte) => return Some(self.word()),
                _ => {
                    self.at += 1;
                    return Some(Token::Other);
                }
            }
        }
    }

    fn word(&mut self) -> Token<'a> {
        let start = self.at;
        while self.peek(0).is_some_and(is_ident_char) {
            self.at += 1;
        }
        let word = &self.buf[start..self.at];
        // E'…' is an escape string: a backslash escapes the next byte.
        if word.eq_ignore_ascii_case(b"e") && self.peek(0) == Some(b'\'') {
            self.skip_quoted(b'\'', true);
            return Token::Other;
        }
        Token::Word(word)
    }

    fn skip_line_comment(&mut self) {
        match self.buf[self.at..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            Some(end) => self.at += end + 1,
            None => self.at = self.buf.len(),
        }
    }

    fn skip_block_comment(&mut self) {
        let mut depth = 1usize;
        self.at += 2;
        while let (Some(a), Some(b)) = (self.peek(0), self.peek(1)) {
            match (a, b) {
                (b'/', b'*') => {
                    depth += 1;
                    self.at += 2;
                }
                (b'*', b'/') => {
                    depth -= 1;
                    self.at += 2;
                    if depth == 0 {
                        return;
                    }
                }
                _ => self.at += 1,
            }
        }
        self.at = self.buf.len();
    }

    /// Skips a literal delimited by `quote`, where a doubled quote is one quote character.
    fn skip_quoted(&mut self, quote: u8, backslash_escapes: bool) {
        self.at += 1;
        while let Some(byte) = self.peek(0) {
            self.at += 1;
            if backslash_escapes && byte == b'\\' {
                self.at += 1;
            } else if byte == quote {
                if self.peek(0) == Some(quote) {
                    self.at += 1;
                } else {
                    return;
                }
            }
        }
        self.at = self.buf.len();
    }

    /// Skips `$tag$ … $tag$`, or a parameter `$1`, or a lone `$`.
    fn skip_dollar(&mut self) {
        let start = self.at;
        self.at += 1;
        if self.peek(0).is_some_and(|b| b.is_ascii_digit()) {
            while self.peek(0).is_some_and(|b| b.is_ascii_digit()) {
                self.at += 1;
            }
            return;
        }
        while self.peek(0).is_some_and(is_ident_char) && self.peek(0) != Some(b'$') {
            self.at += 1;
        }
        if self.peek(0) != Some(b'$') {
            return;
        }
        self.at += 1;
        let delimiter = &self.buf[start..self.at];
        match self.buf[self.at..]
            .windows(delimiter.len())
            .position(|w| w == delimiter)
        {
            Some(end) => self.at += end + delimiter.len(),
            None => self.at = self.buf.len(),
        }
    }
}

fn is_ident_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte >= 0x80
}

fn is_ident_char(byte: u8) -> bool {
    is_ident_start(byte) || byte.is_ascii_digit() || byte == b'$'
}
