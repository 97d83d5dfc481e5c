//! Routing, stage one: detection. Does this client or this statement belong on the direct lane?
//!
//! Pure code: bytes in, an `Option<Reason>` out. No I/O, no async, and no allocation per call
//! (the regex engine's scratch space is pooled), because it runs on every `Parse` and `Query` a
//! client sends. Callers pass the query string without its NUL terminator; for a multi-statement
//! `Query`, only the first statement's start is examined.
//!
//! A statement is on the lock path when either
//! 1. a comment that *leads* the statement contains the tag word (`/* lockroute:direct */ UPDATE …`),
//!    which gives [`Reason::StatementTag`]; or
//! 2. one of the lock patterns matches the statement text after its leading whitespace and
//!    comments, which gives [`Reason::Pattern`].
//!
//! Both scans are bounded, so a hostile multi-megabyte statement costs no more than a short one:
//! at most [`COMMENT_SCAN_LIMIT`] bytes of leading whitespace and comments are skipped, and the
//! patterns see at most [`MATCH_PREFIX_LIMIT`] bytes of the text after them. The detector never
//! reads past byte `COMMENT_SCAN_LIMIT + MATCH_PREFIX_LIMIT` of its input.
//!
//! The defaults are gbrain's lock path: `MinionQueue.claim()`, `MinionQueue.renewLock()` and the
//! `gbrain_cycle_locks` heartbeat (see `reference/gbrain-lock-path.md` §1).

use regex::bytes::{Regex, RegexSet};

use super::Reason;

/// How many bytes of statement text (after leading comments) the patterns may look at.
///
/// gbrain's claim is about 1.3 KB and its identifying prefix is in the first 60 bytes, so 4 KiB
/// leaves room for longer future versions while keeping the worst case small.
pub const MATCH_PREFIX_LIMIT: usize = 4096;

/// How many bytes of leading whitespace and comments are scanned before giving up.
///
/// The statement text must begin inside the first `COMMENT_SCAN_LIMIT` bytes, and a tag counts
/// only in a comment that ends inside them. A statement with more leading comment than that is
/// treated as untagged and unmatched, so it goes to the pooler, the safe default. Real tags are
/// a few dozen bytes.
pub const COMMENT_SCAN_LIMIT: usize = 4096;

/// `MinionQueue.claim()`. Matches the stable prefix `UPDATE minion_jobs SET status = 'active',
/// lock_token = $1,` that the older 4-parameter and the current 6-parameter versions share.
/// A literal token (the `gbrain jobs smoke` fixture) has no `$`, so it does not match.
pub const CLAIM_PATTERN: &str = r"(?i-u)^\s*UPDATE\s+minion_jobs\s+SET\s+status\s*=\s*'active'\s*,\s*lock_token\s*=\s*\$\d+\s*,";

/// `MinionQueue.renewLock()`: the only statement whose SET clause starts by extending the lease.
/// Test fixtures that expire a lease (`lock_until = now() - interval …`) do not match.
pub const RENEW_LOCK_PATTERN: &str =
    r"(?i-u)^\s*UPDATE\s+minion_jobs\s+SET\s+lock_until\s*=\s*now\(\)\s*\+";

/// The `gbrain_cycle_locks` heartbeat (`db-lock.ts` `refresh()`). Acquire is an `INSERT … ON
/// CONFLICT DO UPDATE` and release a `DELETE`, so the leading `UPDATE` excludes both.
pub const CYCLE_LOCK_REFRESH_PATTERN: &str =
    r"(?i-u)^\s*UPDATE\s+gbrain_cycle_locks\s+SET\s+ttl_expires_at\s*=\s*NOW\(\)\s*\+";

/// The lock patterns used when the operator gives none.
///
/// They use `(?i-u)`: SQL keywords and Postgres whitespace are ASCII, and Unicode case folding
/// would only let look-alikes (`ſ` for `s`) match and make the automaton bigger.
pub const DEFAULT_LOCK_PATTERNS: &[&str] = &[
    CLAIM_PATTERN,
    RENEW_LOCK_PATTERN,
    CYCLE_LOCK_REFRESH_PATTERN,
];

/// Why a set of lock patterns was refused.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    /// One pattern does not compile.
    #[error("invalid lock pattern {pattern:?}: {source}")]
    Invalid {
        pattern: String,
        #[source]
        source: regex::Error,
    },
    /// Every pattern compiles alone, but together they exceed the regex size limit.
    #[error("lock patterns are too large together: {source}")]
    Set {
        #[source]
        source: regex::Error,
    },
}

/// Decides whether a session or a statement is on the lock path. Built once from config, then
/// shared (it is `Send + Sync`, and cheap to clone).
#[derive(Debug, Clone)]
pub struct Detector {
    /// The tag word; empty disables tagging.
    tag: Box<[u8]>,
    patterns: RegexSet,
}

/// Where the statement text begins, once leading whitespace and comments are skipped.
enum Leading {
    /// A terminated leading comment contains the tag word.
    Tagged,
    /// The statement text starts at this byte offset.
    Text(usize),
    /// There is no text to match: the input is only whitespace and comments, ends inside a
    /// comment, or its leading comments run past [`COMMENT_SCAN_LIMIT`].
    NoText,
}

impl Detector {
    /// Builds a detector for `tag` and `patterns`.
    ///
    /// The patterns replace the defaults. They are matched against the statement text after its
    /// leading whitespace and comments, so anchor them with `^`: an unanchored pattern has to
    /// scan the whole [`MATCH_PREFIX_LIMIT`] of every statement that does not match.
    ///
    /// An empty `tag` disables both session and statement tags.
    pub fn new(tag: &str, patterns: &[impl AsRef<str>]) -> Result<Detector, PatternError> {
        // RegexSet's error does not say which pattern is bad, so compile each one alone first.
        for pattern in patterns {
            let pattern = pattern.as_ref();
            Regex::new(pattern).map_err(|source| PatternError::Invalid {
                pattern: pattern.to_owned(),
                source,
            })?;
        }
        let patterns = RegexSet::new(patterns.iter().map(AsRef::as_ref))
            .map_err(|source| PatternError::Set { source })?;
        Ok(Detector {
            tag: tag.as_bytes().into(),
            patterns,
        })
    }

    /// A detector for `tag` with gbrain's lock path, [`DEFAULT_LOCK_PATTERNS`].
    pub fn with_defaults(tag: &str) -> Detector {
        Detector {
            tag: tag.as_bytes().into(),
            patterns: RegexSet::new(DEFAULT_LOCK_PATTERNS)
                .expect("the default lock patterns compile; a unit test checks it"),
        }
    }

    /// The lock patterns, in the order they were given.
    pub fn patterns(&self) -> &[String] {
        self.patterns.patterns()
    }

    /// Whether the client's startup `application_name` marks the whole session for the direct
    /// lane: the tag word appears anywhere in it.
    ///
    /// The match is an exact, case-sensitive substring: tags are written by machines (a DSN's
    /// `?application_name=` or `PGAPPNAME`), and a loose match would route sessions nobody tagged.
    pub fn session_tagged(&self, application_name: &[u8]) -> bool {
        contains(application_name, &self.tag)
    }

    /// Why this statement belongs on the direct lane, or `None` when it does not.
    ///
    /// A tag counts only inside a terminated comment before the first token, so a tag in a
    /// string literal, or later in the statement, is ignored. The tag wins over the patterns.
    pub fn statement(&self, sql: &[u8]) -> Option<Reason> {
        match self.leading(sql) {
            Leading::Tagged => Some(Reason::StatementTag),
            Leading::NoText => None,
            Leading::Text(start) => {
                let whole = &sql[start..];
                let text = &whole[..whole.len().min(MATCH_PREFIX_LIMIT)];
                // A driver's connection bootstrap runs with the lock path it precedes (the
                // whole text: nothing may follow it).
                (self.patterns.is_match(text) || super::bootstrap::is_driver_bootstrap(whole))
                    .then_some(Reason::Pattern)
            }
        }
    }

    /// Skips leading whitespace and comments the way the Postgres lexer does (`scan.l`):
    /// `--` runs to a newline; `/* */` nests. Looks at no more than [`COMMENT_SCAN_LIMIT`] bytes,
    /// plus one byte of lookahead for a comment opener on the last of them.
    fn leading(&self, sql: &[u8]) -> Leading {
        let window = &sql[..sql.len().min(COMMENT_SCAN_LIMIT)];
        let mut at = 0;
        while let Some(&byte) = window.get(at) {
            if is_pg_space(byte) {
                at += 1;
                continue;
            }
            let comment = match (byte, sql.get(at + 1)) {
                (b'-', Some(b'-')) => line_comment(window, at),
                (b'/', Some(b'*')) => block_comment(window, at),
                _ => return Leading::Text(at),
            };
            // An unterminated comment (or one cut by the window) is not a tag, and leaves no
            // statement text to match.
            let Some(comment) = comment else {
                return Leading::NoText;
            };
            if contains(&window[comment.body.0..comment.body.1], &self.tag) {
                return Leading::Tagged;
            }
            at = comment.end;
        }
        Leading::NoText
    }
}

/// Whether `needle` occurs in `haystack`; never for an empty needle, so an empty tag tags nothing.
///
/// A plain search: application names are at most 63 bytes, and comment bodies are bounded by
/// [`COMMENT_SCAN_LIMIT`], so even a hostile comment costs a few microseconds at most. (A regex
/// would be faster there, but a long tag could exceed its size limit, and `with_defaults` cannot
/// fail.)
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return false;
    };
    haystack
        .iter()
        .enumerate()
        .filter(|&(_, &byte)| byte == first)
        .any(|(at, _)| haystack.get(at + 1..at + 1 + rest.len()) == Some(rest))
}

/// A comment found by the leading scan: the byte range of its body and the offset just past it.
struct Comment {
    body: (usize, usize),
    end: usize,
}

/// Postgres whitespace (`scan.l` `space`: space, tab, newline, carriage return, form feed and,
/// since PostgreSQL 16, vertical tab).
fn is_pg_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The `--` comment at `start`, ended by `\n` or `\r`. `None` when no newline is in `buf`:
/// the comment either runs to the end of the input (no statement follows) or past the window.
fn line_comment(buf: &[u8], start: usize) -> Option<Comment> {
    let body_start = start + 2;
    let newline = buf
        .get(body_start..)?
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')?;
    let body_end = body_start + newline;
    Some(Comment {
        body: (body_start, body_end),
        end: body_end + 1,
    })
}

/// The `/* */` comment at `start`. Block comments nest in Postgres, unlike the SQL standard's
/// C-style ones, so `/* a /* b */ c */` is one comment. `None` when unterminated within `buf`.
fn block_comment(buf: &[u8], start: usize) -> Option<Comment> {
    let mut depth = 1usize;
    let mut at = start + 2;
    while at + 1 < buf.len() {
        match (buf[at], buf[at + 1]) {
            (b'/', b'*') => {
                depth += 1;
                at += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                at += 2;
                if depth == 0 {
                    return Some(Comment {
                        body: (start + 2, at - 2),
                        end: at,
                    });
                }
            }
            _ => at += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests;
