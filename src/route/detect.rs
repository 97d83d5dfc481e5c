//! Routing, stage one: detection. Does this client or this statement belong on the direct lane,
//! and if a lock rule says so, which one?
//!
//! Pure code: bytes in, an `Option<Detection>` out. No I/O, no async, and no allocation per
//! call (the regex engines' scratch space is pooled), because it runs on every `Parse` and
//! `Query` a client sends. Callers pass the query string without its NUL terminator; for a
//! multi-statement `Query`, only the first statement's start is examined.
//!
//! A statement is on the lock path when either
//! 1. a comment that *leads* the statement contains the tag word (`/* lockroute:direct */ UPDATE …`),
//!    which gives [`Reason::StatementTag`]; or
//! 2. a lock rule matches, which gives [`Reason::Pattern`] and a [`LockMatch`] naming the preset,
//!    the kind and the retry class. The rules are the enabled [presets](super::presets) followed
//!    by the custom `--lock-pattern`s (preset `custom`, kind `unknown`, retry `unsafe`). A rule
//!    looks at one [`Signal`], tried in this order: the extended-protocol statement name, a
//!    leading comment's body, then the statement text after its leading whitespace and comments.
//!    Within one signal, the first rule in that order that matches wins.
//!
//! Every scan is bounded, so a hostile multi-megabyte statement costs no more than a short one:
//! at most [`COMMENT_SCAN_LIMIT`] bytes of leading whitespace and comments are skipped, the text
//! rules see at most [`MATCH_PREFIX_LIMIT`] bytes of the text after them, and the name rules at
//! most [`NAME_LIMIT`] bytes of the name, and the comment rules the first
//! [`COMMENT_RULE_LIMIT`] leading comments. The detector never reads past byte
//! `COMMENT_SCAN_LIMIT + MATCH_PREFIX_LIMIT` of its input.
//!
//! gbrain's lock path (`MinionQueue.claim()`, `MinionQueue.renewLock()` and the
//! `gbrain_cycle_locks` heartbeat, `reference/gbrain-lock-path.md` §1) is the `gbrain` preset.

use regex::bytes::Regex;

use super::Reason;
use super::presets::{CUSTOM_KIND, PresetId, Retry, Signal};

mod rules;
use rules::{RuleSet, RuleSets};

/// How many bytes of statement text (after leading comments) the patterns may look at.
///
/// gbrain's claim is about 1.3 KB and its identifying prefix is in the first 60 bytes, so 4 KiB
/// leaves room for longer future versions while keeping the worst case small.
pub const MATCH_PREFIX_LIMIT: usize = 4096;

/// How many bytes of an extended-protocol statement name the name rules may look at. Client
/// libraries' names are short (`get_job/graphile_worker`); longer ones are cut, not refused.
pub const NAME_LIMIT: usize = 256;

/// How many leading comments the comment rules look at. River's sqlc header is the first line,
/// and one or two tracing comments may come before it; the bound keeps a statement made of a
/// thousand tiny comments from costing a thousand regex searches.
pub const COMMENT_RULE_LIMIT: usize = 4;

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

/// gbrain's lock patterns, the rules of the `gbrain` preset.
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
        source: Box<regex_automata::meta::BuildError>,
    },
}

/// Which lock rule matched a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockMatch {
    pub preset: PresetId,
    pub kind: super::presets::Kind,
    pub retry: Retry,
    /// What the rule looked at.
    pub signal: Signal,
    /// The queue's name for the statement (`fetchNextJob()`), or `--lock-pattern` for a
    /// custom pattern.
    pub statement: &'static str,
}

/// The match for every custom pattern.
const CUSTOM_MATCH: LockMatch = LockMatch {
    preset: PresetId::Custom,
    kind: CUSTOM_KIND,
    retry: Retry::Unsafe,
    signal: Signal::Text,
    statement: "--lock-pattern",
};

/// Why a statement belongs on the direct lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    /// [`Reason::StatementTag`] or [`Reason::Pattern`].
    pub reason: Reason,
    /// The rule, for [`Reason::Pattern`]; `None` for a statement tag.
    pub lock: Option<LockMatch>,
}

/// Decides whether a session or a statement is on the lock path. Built once from config, then
/// shared (it is `Send + Sync`, and cheap to clone).
#[derive(Debug, Clone)]
pub struct Detector {
    /// The tag word; empty disables tagging.
    tag: Box<[u8]>,
    rules: RuleSets,
    /// The custom patterns as given, for [`Detector::patterns`].
    custom: Box<[String]>,
}

/// Where the statement text begins, once leading whitespace and comments are skipped.
enum Leading {
    /// A terminated leading comment contains the tag word.
    Tagged,
    /// The statement text starts at this byte offset; `comment` is the first comment rule that
    /// matched a leading comment, if any.
    Text {
        start: usize,
        comment: Option<LockMatch>,
    },
    /// There is no text to match: the input is only whitespace and comments, ends inside a
    /// comment, or its leading comments run past [`COMMENT_SCAN_LIMIT`].
    NoText,
}

impl Detector {
    /// Builds a detector for `tag` with only the custom `patterns`, no preset.
    ///
    /// The patterns are matched against the statement text after its leading whitespace and
    /// comments, so anchor them with `^`: an unanchored pattern has to scan the whole
    /// [`MATCH_PREFIX_LIMIT`] of every statement that does not match.
    ///
    /// An empty `tag` disables both session and statement tags.
    pub fn new(tag: &str, patterns: &[impl AsRef<str>]) -> Result<Detector, PatternError> {
        Detector::build(tag, &[], patterns)
    }

    /// Builds a detector for `tag` with the rules of `presets`, then the custom `patterns`,
    /// which add to the presets.
    pub fn build(
        tag: &str,
        presets: &[PresetId],
        patterns: &[impl AsRef<str>],
    ) -> Result<Detector, PatternError> {
        // The set's error does not say which pattern is bad, so compile each one alone first.
        for pattern in patterns {
            let pattern = pattern.as_ref();
            Regex::new(pattern).map_err(|source| PatternError::Invalid {
                pattern: pattern.to_owned(),
                source,
            })?;
        }
        let mut text = RuleSet::builder();
        let mut name = RuleSet::builder();
        let mut comment = RuleSet::builder();
        for preset in presets {
            for rule in preset.preset().rules {
                let found = LockMatch {
                    preset: *preset,
                    kind: rule.kind,
                    retry: rule.retry,
                    signal: rule.signal,
                    statement: rule.statement,
                };
                let set = match rule.signal {
                    Signal::Text => &mut text,
                    Signal::Name => &mut name,
                    Signal::Comment => &mut comment,
                };
                set.push(rule.pattern, found);
            }
        }
        for pattern in patterns {
            text.push(pattern.as_ref(), CUSTOM_MATCH);
        }
        Ok(Detector {
            tag: tag.as_bytes().into(),
            rules: RuleSets {
                text: text.build()?,
                name: name.build()?,
                comment: comment.build()?,
            },
            custom: patterns.iter().map(|p| p.as_ref().to_owned()).collect(),
        })
    }

    /// A detector for `tag` with every built-in preset and no custom pattern: lockroute's
    /// defaults.
    pub fn with_defaults(tag: &str) -> Detector {
        Detector::build(tag, &PresetId::BUILT_IN, &[] as &[&str])
            .expect("the built-in presets compile; a unit test checks it")
    }

    /// The custom lock patterns, in the order they were given.
    pub fn patterns(&self) -> &[String] {
        &self.custom
    }

    /// Whether the client's startup `application_name` marks the whole session for the direct
    /// lane: the tag word appears anywhere in it.
    ///
    /// The match is an exact, case-sensitive substring: tags are written by machines (a DSN's
    /// `?application_name=` or `PGAPPNAME`), and a loose match would route sessions nobody tagged.
    pub fn session_tagged(&self, application_name: &[u8]) -> bool {
        contains(application_name, &self.tag)
    }

    /// Why this statement belongs on the direct lane, or `None` when it does not. The same as
    /// [`Detector::statement_named`] without a statement name, reason only.
    pub fn statement(&self, sql: &[u8]) -> Option<Reason> {
        self.statement_named(b"", sql).map(|d| d.reason)
    }

    /// Why this statement belongs on the direct lane, and which lock rule says so, or `None`
    /// when it does not. `name` is the extended-protocol statement name (`Parse`, or the
    /// statement a `Bind` refers to); empty for the unnamed statement and a simple `Query`.
    ///
    /// A tag counts only inside a terminated comment before the first token, so a tag in a
    /// string literal, or later in the statement, is ignored. The tag wins over every rule.
    /// A statement that has no text after its comments matches nothing, whatever its name.
    pub fn statement_named(&self, name: &[u8], sql: &[u8]) -> Option<Detection> {
        let (start, comment) = match self.leading(sql) {
            Leading::Tagged => {
                return Some(Detection {
                    reason: Reason::StatementTag,
                    lock: None,
                });
            }
            Leading::NoText => return None,
            Leading::Text { start, comment } => (start, comment),
        };
        let by_name = || match name {
            [] => None,
            name => self.rules.name.find(&name[..name.len().min(NAME_LIMIT)]),
        };
        let by_text = || {
            let text = &sql[start..];
            self.rules
                .text
                .find(&text[..text.len().min(MATCH_PREFIX_LIMIT)])
        };
        let Some(lock) = by_name().or(comment).or_else(by_text) else {
            // A driver's connection bootstrap runs with the lock path it precedes (the whole
            // text: nothing may follow it). It is no queue's statement, so it has no rule.
            return super::bootstrap::is_driver_bootstrap(&sql[start..]).then_some(Detection {
                reason: Reason::Pattern,
                lock: None,
            });
        };
        Some(Detection {
            reason: Reason::Pattern,
            lock: Some(lock),
        })
    }

    /// Skips leading whitespace and comments the way the Postgres lexer does (`scan.l`):
    /// `--` runs to a newline; `/* */` nests. Looks at no more than [`COMMENT_SCAN_LIMIT`] bytes,
    /// plus one byte of lookahead for a comment opener on the last of them.
    fn leading(&self, sql: &[u8]) -> Leading {
        let window = &sql[..sql.len().min(COMMENT_SCAN_LIMIT)];
        let mut at = 0;
        let mut matched = None;
        let mut comments = 0;
        while let Some(&byte) = window.get(at) {
            if is_pg_space(byte) {
                at += 1;
                continue;
            }
            let comment = match (byte, sql.get(at + 1)) {
                (b'-', Some(b'-')) => line_comment(window, at),
                (b'/', Some(b'*')) => block_comment(window, at),
                _ => {
                    return Leading::Text {
                        start: at,
                        comment: matched,
                    };
                }
            };
            // An unterminated comment (or one cut by the window) is not a tag, and leaves no
            // statement text to match.
            let Some(comment) = comment else {
                return Leading::NoText;
            };
            let body = &window[comment.body.0..comment.body.1];
            if contains(body, &self.tag) {
                return Leading::Tagged;
            }
            if matched.is_none() && comments < COMMENT_RULE_LIMIT {
                matched = self.rules.comment.find(body);
            }
            comments += 1;
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
pub(crate) mod tests;
