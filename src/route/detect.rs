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
                let text = &sql[start..];
                let text = &text[..text.len().min(MATCH_PREFIX_LIMIT)];
                self.patterns.is_match(text).then_some(Reason::Pattern)
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TAG: &str = "lockroute:direct";

    /// `MinionQueue.claim()` at gbrain v0.46.28.0 (6 parameters), verbatim.
    const CLAIM_NEW: &str = "UPDATE minion_jobs SET
        status = 'active',
        lock_token = $1,
        lock_until = now() + ((CASE WHEN COALESCE(lock_duration_ms, ($6::jsonb ->> name)::int) IS NULL THEN $2
                                    ELSE LEAST(GREATEST(COALESCE(lock_duration_ms, ($6::jsonb ->> name)::int), 5000), 3600000) END)::double precision * interval '1 millisecond'),
        lock_duration_ms = CASE WHEN COALESCE(lock_duration_ms, ($6::jsonb ->> name)::int) IS NULL THEN NULL
                                ELSE LEAST(GREATEST(COALESCE(lock_duration_ms, ($6::jsonb ->> name)::int), 5000), 3600000) END,
        timeout_ms = COALESCE(timeout_ms, ($5::jsonb ->> name)::int),
        timeout_at = CASE WHEN COALESCE(timeout_ms, ($5::jsonb ->> name)::int) IS NOT NULL
                          THEN now() + (COALESCE(timeout_ms, ($5::jsonb ->> name)::int)::double precision * interval '1 millisecond')
                          ELSE NULL END,
        attempts_started = attempts_started + 1,
        started_at = COALESCE(started_at, now()),
        updated_at = now()
       WHERE id = (
         SELECT id FROM minion_jobs
         WHERE queue = $3 AND status = 'waiting' AND name = ANY($4)
         ORDER BY priority ASC, created_at ASC
         FOR UPDATE SKIP LOCKED
         LIMIT 1
       )
       RETURNING *";

    /// `claim()` at the fix commit (4 parameters, plain `$2` lease).
    const CLAIM_OLD: &str = "UPDATE minion_jobs SET
        status = 'active',
        lock_token = $1,
        lock_until = now() + ($2::double precision * interval '1 millisecond'),
        timeout_at = CASE WHEN timeout_ms IS NOT NULL
                          THEN now() + (timeout_ms::double precision * interval '1 millisecond')
                          ELSE NULL END,
        attempts_started = attempts_started + 1,
        started_at = COALESCE(started_at, now()),
        updated_at = now()
       WHERE id = (
         SELECT id FROM minion_jobs
         WHERE queue = $3 AND status = 'waiting' AND name = ANY($4)
         ORDER BY priority ASC, created_at ASC
         FOR UPDATE SKIP LOCKED
         LIMIT 1
       )
       RETURNING *";

    /// `MinionQueue.renewLock()`, verbatim.
    const RENEW_LOCK: &str = "UPDATE minion_jobs SET lock_until = now() + ($1::double precision * interval '1 millisecond'), updated_at = now()
       WHERE id = $2 AND lock_token = $3 AND status = 'active'
       RETURNING id";

    /// `db-lock.ts` `refresh()`, verbatim.
    const CYCLE_LOCK_REFRESH: &str = "UPDATE gbrain_cycle_locks SET ttl_expires_at = NOW() + ($1)::interval, last_refreshed_at = NOW() WHERE id = $2 AND holder_pid = $3 AND extract(epoch from acquired_at)::text = $4 RETURNING id";

    /// gbrain's other queue and lock statements (reference §1.3, §1.4). None is on the lock path.
    const NOT_LOCK_PATH: &[(&str, &str)] = &[
        (
            "promoteDelayed",
            "UPDATE minion_jobs SET status = 'waiting', delay_until = NULL, started_at = NULL, lock_token = NULL, lock_until = NULL, updated_at = now() WHERE status = 'delayed' AND delay_until <= now() RETURNING *",
        ),
        (
            "handleStalled candidates",
            "SELECT id, parent_job_id, stalled_counter, max_stalled FROM minion_jobs WHERE status = 'active' AND lock_until < now() - ($1::double precision * interval '1 millisecond')",
        ),
        (
            "handleStalled parents",
            "SELECT id FROM minion_jobs WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
        ),
        (
            "handleStalled requeue",
            "UPDATE minion_jobs SET status = 'waiting', stalled_counter = stalled_counter + 1, started_at = NULL, lock_token = NULL, lock_until = NULL, updated_at = now()\n WHERE id IN (SELECT id FROM minion_jobs WHERE status = 'active' AND lock_until < now() - ($2::double precision * interval '1 millisecond') AND stalled_counter + 1 < max_stalled FOR UPDATE SKIP LOCKED) RETURNING *",
        ),
        (
            "handleStalled dead-letter",
            "UPDATE minion_jobs SET status = 'dead', stalled_counter = stalled_counter + 1, finished_at = now(), lock_token = NULL, lock_until = NULL, updated_at = now()\n WHERE id IN (SELECT id FROM minion_jobs WHERE status = 'active' AND lock_until < now() - ($2::double precision * interval '1 millisecond') AND stalled_counter + 1 >= max_stalled FOR UPDATE SKIP LOCKED) RETURNING *",
        ),
        (
            "handleStalled inbox",
            "INSERT INTO minion_inbox (job_id, sender, payload)\n SELECT $1, 'minions', $2::jsonb\n WHERE EXISTS (SELECT 1 FROM minion_jobs WHERE id = $1 AND status NOT IN ('completed','failed','dead','cancelled'))",
        ),
        (
            "handleStalled unblock parent",
            "UPDATE minion_jobs SET status = 'waiting', updated_at = now()\n WHERE id = $1 AND status = 'waiting-children'\n AND NOT EXISTS (SELECT 1 FROM minion_jobs WHERE parent_job_id = $1 AND status NOT IN ('completed', 'failed', 'dead', 'cancelled'))",
        ),
        (
            "handleStalled self-heal",
            "UPDATE minion_jobs SET status = 'waiting', updated_at = now() WHERE status = 'waiting-children' AND NOT EXISTS (SELECT 1 FROM minion_jobs c WHERE c.parent_job_id = minion_jobs.id AND c.status NOT IN ('completed', 'failed', 'dead', 'cancelled'))",
        ),
        (
            "handleTimeouts candidates",
            "SELECT id, parent_job_id FROM minion_jobs WHERE status = 'active' AND timeout_at IS NOT NULL AND timeout_at < now() AND lock_until > now()",
        ),
        (
            "handleTimeouts dead-letter",
            "UPDATE minion_jobs SET\n  status = 'dead',\n  error_text = 'timeout exceeded',\n  lock_token = NULL,\n  lock_until = NULL,\n  finished_at = now(),\n  updated_at = now()\n WHERE id IN (SELECT id FROM minion_jobs WHERE id = ANY($1::bigint[]) FOR UPDATE SKIP LOCKED)\n RETURNING *",
        ),
        (
            "handleWallClockTimeouts",
            "UPDATE minion_jobs SET\n  status = 'dead',\n  error_text = 'wall-clock timeout exceeded',\n  attempts_made = attempts_made + 1,\n  lock_token = NULL,\n  lock_until = NULL,\n  finished_at = now(),\n  updated_at = now()\n WHERE id IN (SELECT id FROM minion_jobs WHERE status = 'active' AND started_at IS NOT NULL AND EXTRACT(EPOCH FROM (now() - started_at)) * 1000 > CASE WHEN timeout_ms IS NOT NULL THEN timeout_ms * 2 ELSE $1::double precision * 2 * GREATEST(max_stalled, 1) END FOR UPDATE SKIP LOCKED)\n RETURNING *",
        ),
        (
            "completeJob peek",
            "SELECT parent_job_id FROM minion_jobs WHERE id = $1",
        ),
        (
            "completeJob lock parent",
            "SELECT id FROM minion_jobs WHERE id = $1 FOR UPDATE",
        ),
        (
            "completeJob",
            "UPDATE minion_jobs SET status = 'completed', result = $1::jsonb, finished_at = now(), lock_token = NULL, lock_until = NULL, updated_at = now() WHERE id = $2 AND status = 'active' AND lock_token = $3 RETURNING *",
        ),
        (
            "failJob",
            "UPDATE minion_jobs SET status = $1, error_text = $2, attempts_made = attempts_made + 1, stacktrace = COALESCE(stacktrace, '[]'::jsonb) || $3::jsonb, delay_until = $4, finished_at = CASE WHEN $1 IN ('failed','dead') THEN now() ELSE NULL END, lock_token = NULL, lock_until = NULL, updated_at = now() WHERE id = $5 AND status = 'active' AND lock_token = $6 RETURNING *",
        ),
        (
            "releaseLeaseFullJob",
            "UPDATE minion_jobs SET status = 'delayed', delay_until = now() + ($1::double precision * interval '1 millisecond'), error_text = $2, lock_token = NULL, lock_until = NULL, updated_at = now() WHERE id = $3 AND status = 'active' AND lock_token = $4 RETURNING *",
        ),
        (
            "cancelJobs",
            "WITH RECURSIVE descendants AS (\n  SELECT id, 0 AS d FROM minion_jobs WHERE id = $1\n  UNION ALL\n  SELECT m.id, descendants.d + 1 FROM minion_jobs m JOIN descendants ON m.parent_job_id = descendants.id WHERE descendants.d < 100\n)\nUPDATE minion_jobs SET\n  status = 'cancelled',\n  lock_token = NULL,\n  lock_until = NULL, -- Reason stamps ROOT ids only\n  finished_at = now(),\n  updated_at = now()\n WHERE id IN (SELECT id FROM descendants)\n RETURNING *",
        ),
        (
            "retryJob",
            "UPDATE minion_jobs SET status = 'waiting', error_text = NULL,\n  lock_token = NULL, lock_until = NULL, delay_until = NULL,\n  started_at = NULL, timeout_at = NULL,\n  finished_at = NULL, updated_at = now()\n WHERE id = $1 AND status IN ('failed', 'dead')\n RETURNING *",
        ),
        (
            "pauseJob",
            "UPDATE minion_jobs SET status = 'paused', lock_token = NULL, lock_until = NULL, updated_at = now() WHERE id = $1 AND status IN ('waiting', 'active', 'delayed') RETURNING *",
        ),
        (
            "resumeJob",
            "UPDATE minion_jobs SET status = 'waiting', lock_token = NULL, lock_until = NULL, updated_at = now() WHERE id = $1 AND status = 'paused' RETURNING *",
        ),
        (
            "updateProgress",
            "UPDATE minion_jobs SET progress = $1::jsonb, updated_at = now() WHERE id = $2 AND status = 'active' AND lock_token = $3 RETURNING id",
        ),
        (
            "updateTokens",
            "UPDATE minion_jobs SET tokens_input = tokens_input + $1, tokens_output = tokens_output + $2, tokens_cache_read = tokens_cache_read + $3, updated_at = now() WHERE id = $4 AND status = 'active' AND lock_token = $5 RETURNING id",
        ),
        (
            "readInbox",
            "SELECT id FROM minion_jobs WHERE id = $1 AND lock_token = $2 AND status = 'active'",
        ),
        (
            "ctx.log",
            "UPDATE minion_jobs SET stacktrace = COALESCE(stacktrace, '[]'::jsonb) || $1::jsonb, updated_at = now() WHERE id = $2 AND status = 'active' AND lock_token = $3",
        ),
        (
            "ctx.isActive",
            "SELECT id FROM minion_jobs WHERE id = $1 AND lock_token = $2 AND status = 'active'",
        ),
        (
            "releaseClaimForPause",
            "UPDATE minion_jobs SET status = 'delayed', lock_token = NULL, lock_until = NULL, delay_until = now() + interval '1 minute', updated_at = now() WHERE id = $1 AND lock_token = $2",
        ),
        (
            "renewPrivateQueueLease",
            "UPDATE minion_jobs SET private_queue_lease_until = GREATEST(COALESCE(private_queue_lease_until, now()), now() + ($3::double precision * interval '1 millisecond')) WHERE queue = $1 AND private_queue_owner_token = $2 AND status IN ('waiting', 'active')",
        ),
        (
            "lease-health read",
            "SELECT count(*) FILTER (WHERE status = 'active' AND lock_until > now())::text AS active_healthy FROM minion_jobs WHERE queue = $1",
        ),
        (
            "jobs smoke fixture",
            "UPDATE minion_jobs SET status='active', lock_token='smoke-4f1c', lock_until = now() + interval '30 seconds' WHERE id = $1",
        ),
        (
            "expired-lease test fixture",
            "UPDATE minion_jobs SET lock_until = now() - interval '1 minute' WHERE id = $1",
        ),
        (
            "db-lock acquire",
            "INSERT INTO gbrain_cycle_locks (id, holder_pid, holder_host, acquired_at, ttl_expires_at, last_refreshed_at)\n VALUES ($1, $2, $3, NOW(), NOW() + $4::interval, NOW())\n ON CONFLICT (id) DO UPDATE SET holder_pid = EXCLUDED.holder_pid, holder_host = EXCLUDED.holder_host, acquired_at = NOW(), ttl_expires_at = EXCLUDED.ttl_expires_at, last_refreshed_at = NOW()\n WHERE gbrain_cycle_locks.ttl_expires_at < NOW()\n RETURNING id",
        ),
        (
            "db-lock release",
            "DELETE FROM gbrain_cycle_locks WHERE id = $1 AND holder_pid = $2",
        ),
        ("transaction begin", "begin "),
        ("transaction commit", "commit"),
        ("health probe", "SELECT 1"),
    ];

    fn detector() -> Detector {
        Detector::with_defaults(TAG)
    }

    /// The defaults plus an unanchored `~`, so that reading even one byte too far into appended
    /// bytes (which start with `~`) turns a `None` into a `Pattern` and the bound properties fail.
    fn bound_probe() -> Detector {
        let mut patterns = DEFAULT_LOCK_PATTERNS.to_vec();
        patterns.push("~");
        Detector::new(TAG, &patterns).expect("valid patterns")
    }

    /// Bytes to append past a bound: `~` first, then arbitrary bytes and the tag.
    fn appended_bytes() -> impl Strategy<Value = Vec<u8>> {
        (prop::collection::vec(any::<u8>(), 0..64), sql_soup())
            .prop_map(|(noise, soup)| [b"~".as_slice(), &noise, TAG.as_bytes(), &soup].concat())
    }

    /// Removes the probe byte from the part of the input that the detector may read.
    fn without_probe(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes
            .iter_mut()
            .filter(|b| **b == b'~')
            .for_each(|b| *b = b'.');
        bytes
    }

    fn check(detector: &Detector, cases: &[(&str, &[u8], Option<Reason>)]) {
        for &(name, sql, want) in cases {
            assert_eq!(detector.statement(sql), want, "case {name:?}");
        }
    }

    #[test]
    fn lock_path_statements_match_pattern() {
        let lower = RENEW_LOCK.to_lowercase();
        let squashed = CLAIM_NEW.split_whitespace().collect::<Vec<_>>().join(" ");
        let tabbed = CYCLE_LOCK_REFRESH.replace(' ', "\t\r\n ");
        let indented = format!("\n      {CLAIM_OLD}");
        let cases: &[(&str, &[u8], Option<Reason>)] = &[
            (
                "claim, 6 params",
                CLAIM_NEW.as_bytes(),
                Some(Reason::Pattern),
            ),
            (
                "claim, 4 params",
                CLAIM_OLD.as_bytes(),
                Some(Reason::Pattern),
            ),
            ("renewLock", RENEW_LOCK.as_bytes(), Some(Reason::Pattern)),
            (
                "cycle-lock refresh",
                CYCLE_LOCK_REFRESH.as_bytes(),
                Some(Reason::Pattern),
            ),
            (
                "renewLock, lower case",
                lower.as_bytes(),
                Some(Reason::Pattern),
            ),
            (
                "claim, one line",
                squashed.as_bytes(),
                Some(Reason::Pattern),
            ),
            (
                "refresh, odd whitespace",
                tabbed.as_bytes(),
                Some(Reason::Pattern),
            ),
            (
                "claim, template indent",
                indented.as_bytes(),
                Some(Reason::Pattern),
            ),
        ];
        check(&detector(), cases);
    }

    #[test]
    fn other_gbrain_statements_match_nothing() {
        let detector = detector();
        for &(name, sql) in NOT_LOCK_PATH {
            assert_eq!(detector.statement(sql.as_bytes()), None, "case {name:?}");
            let squashed = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(
                detector.statement(squashed.as_bytes()),
                None,
                "case {name:?}, one line"
            );
        }
    }

    #[test]
    fn leading_comment_tag_routes_statement() {
        let tagged_claim = format!("/* {TAG} */ {CLAIM_NEW}");
        let cases: &[(&str, &[u8], Option<Reason>)] = &[
            (
                "block",
                b"/* lockroute:direct */ SELECT 1",
                Some(Reason::StatementTag),
            ),
            (
                "block, no spaces",
                b"/*lockroute:direct*/SELECT 1",
                Some(Reason::StatementTag),
            ),
            (
                "block, tag among words",
                b"/* app=gbrain, lockroute:direct, x=1 */ SELECT 1",
                Some(Reason::StatementTag),
            ),
            (
                "line, LF",
                b"-- lockroute:direct\nSELECT 1",
                Some(Reason::StatementTag),
            ),
            (
                "line, CR LF",
                b"-- lockroute:direct\r\nSELECT 1",
                Some(Reason::StatementTag),
            ),
            (
                "second of several",
                b"/* a */ -- b\n/* lockroute:direct */ SELECT 1",
                Some(Reason::StatementTag),
            ),
            (
                "after whitespace",
                b" \t\n/* lockroute:direct */\nSELECT 1",
                Some(Reason::StatementTag),
            ),
            (
                "nested, after inner",
                b"/* a /* b */ lockroute:direct */ SELECT 1",
                Some(Reason::StatementTag),
            ),
            (
                "nested, in inner",
                b"/* a /* lockroute:direct */ b */ SELECT 1",
                Some(Reason::StatementTag),
            ),
            (
                "only a comment",
                b"/* lockroute:direct */",
                Some(Reason::StatementTag),
            ),
            (
                "tag wins over pattern",
                tagged_claim.as_bytes(),
                Some(Reason::StatementTag),
            ),
            (
                "non-UTF-8 comment",
                b"/* \xff\xfe lockroute:direct */ SELECT 1",
                Some(Reason::StatementTag),
            ),
        ];
        check(&detector(), cases);
    }

    #[test]
    fn tag_outside_leading_comment_is_ignored() {
        let cases: &[(&str, &[u8], Option<Reason>)] = &[
            ("trailing block", b"SELECT 1 /* lockroute:direct */", None),
            ("trailing line", b"SELECT 1 -- lockroute:direct\n", None),
            ("string literal", b"SELECT '/* lockroute:direct */'", None),
            (
                "string literal, line",
                b"SELECT '-- lockroute:direct\n'",
                None,
            ),
            ("bare word", b"lockroute:direct", None),
            ("upper case", b"/* LOCKROUTE:DIRECT */ SELECT 1", None),
            ("partial", b"/* lockroute:dir */ SELECT 1", None),
            (
                "split across comments",
                b"/* lockroute: */ /* direct */ SELECT 1",
                None,
            ),
            (
                "split by nested comment",
                b"/* lockroute:/* */direct */ SELECT 1",
                None,
            ),
            (
                "single dash is not a comment",
                b"- lockroute:direct\nSELECT 1",
                None,
            ),
        ];
        check(&detector(), cases);
    }

    #[test]
    fn unterminated_or_empty_input_matches_nothing() {
        let cases: &[(&str, &[u8], Option<Reason>)] = &[
            ("empty", b"", None),
            ("whitespace", b" \t\r\n\x0b\x0c", None),
            ("block, open", b"/* lockroute:direct", None),
            (
                "block, nested open",
                b"/* lockroute:direct /* */ SELECT 1",
                None,
            ),
            ("block, star slash missing", b"/* lockroute:direct *", None),
            ("line, no newline", b"-- lockroute:direct", None),
            ("opener only", b"/*", None),
            ("nested close only", b"/*/", None),
            ("dashes only", b"--", None),
            ("single dash", b"-", None),
            ("single slash", b"/", None),
            ("tagged then open", b"/* x */ /* lockroute:direct", None),
        ];
        check(&detector(), cases);
    }

    #[test]
    fn comments_and_bytes_before_statement_affect_pattern_as_expected() {
        let comment_claim = format!("/* traceparent='00-ab-cd-01' */\n-- worker 7\n{CLAIM_NEW}");
        let nested_renew = format!("/* a /* b */ c */{RENEW_LOCK}");
        let mut non_utf8_tail = RENEW_LOCK.as_bytes().to_vec();
        non_utf8_tail.extend_from_slice(b" \xff\xfe\x00");
        let mut non_utf8_head = b"\xff".to_vec();
        non_utf8_head.extend_from_slice(RENEW_LOCK.as_bytes());
        let cases: &[(&str, &[u8], Option<Reason>)] = &[
            (
                "untagged comments, claim",
                comment_claim.as_bytes(),
                Some(Reason::Pattern),
            ),
            (
                "nested comment, renewLock",
                nested_renew.as_bytes(),
                Some(Reason::Pattern),
            ),
            (
                "non-UTF-8 after match",
                &non_utf8_tail,
                Some(Reason::Pattern),
            ),
            ("non-UTF-8 before statement", &non_utf8_head, None),
        ];
        check(&detector(), cases);
    }

    #[test]
    fn scan_bounds_limit_what_is_read() {
        let long_claim = format!("{CLAIM_NEW} {}", "x".repeat(2 * MATCH_PREFIX_LIMIT));
        let comment = |len: usize| format!("/*{}*/", "c".repeat(len - 4));
        // The statement's first byte must lie inside the first COMMENT_SCAN_LIMIT bytes.
        let under = format!("{}{CLAIM_NEW}", comment(COMMENT_SCAN_LIMIT - 1));
        let over = format!("{}{CLAIM_NEW}", comment(COMMENT_SCAN_LIMIT));
        let spaces = format!("{}{RENEW_LOCK}", " ".repeat(COMMENT_SCAN_LIMIT + 1));
        let far_tag = format!("/*{} {TAG} */ SELECT 1", "c".repeat(COMMENT_SCAN_LIMIT));
        let huge_line = format!("--{}\n{RENEW_LOCK}", "c".repeat(4 * COMMENT_SCAN_LIMIT));
        let cases: &[(&str, &[u8], Option<Reason>)] = &[
            (
                "claim with a long tail",
                long_claim.as_bytes(),
                Some(Reason::Pattern),
            ),
            (
                "comments fill the scan limit",
                under.as_bytes(),
                Some(Reason::Pattern),
            ),
            ("comments exceed the scan limit", over.as_bytes(), None),
            ("whitespace exceeds the scan limit", spaces.as_bytes(), None),
            ("tag past the scan limit", far_tag.as_bytes(), None),
            ("huge line comment", huge_line.as_bytes(), None),
        ];
        check(&detector(), cases);
    }

    #[test]
    fn custom_pattern_match_past_prefix_limit_is_not_seen() {
        let detector = Detector::new(TAG, &["MARKER"]).expect("valid pattern");
        let at_end = |pad: usize| format!("SELECT {}MARKER", " ".repeat(pad));
        let inside = at_end(MATCH_PREFIX_LIMIT - "SELECT MARKER".len());
        let past = at_end(MATCH_PREFIX_LIMIT - "SELECT MARKER".len() + 1);
        let cases: &[(&str, &[u8], Option<Reason>)] = &[
            (
                "marker ends at the limit",
                inside.as_bytes(),
                Some(Reason::Pattern),
            ),
            ("marker ends one byte past", past.as_bytes(), None),
        ];
        check(&detector, cases);
    }

    #[test]
    fn custom_patterns_replace_defaults() {
        let patterns = vec![r"(?i)^\s*SELECT\s+pg_advisory_lock\(".to_owned()];
        let detector = Detector::new(TAG, &patterns).expect("valid pattern");
        assert_eq!(detector.patterns(), patterns.as_slice());
        let cases: &[(&str, &[u8], Option<Reason>)] = &[
            (
                "custom",
                b"select pg_advisory_lock(42)",
                Some(Reason::Pattern),
            ),
            (
                "custom after comment",
                b"-- x\nSELECT pg_advisory_lock($1)",
                Some(Reason::Pattern),
            ),
            ("default claim no longer", CLAIM_NEW.as_bytes(), None),
            (
                "tag still works",
                b"/* lockroute:direct */ SELECT 1",
                Some(Reason::StatementTag),
            ),
        ];
        check(&detector, cases);
    }

    #[test]
    fn no_patterns_match_nothing() {
        let detector = Detector::new(TAG, &[] as &[&str]).expect("empty set");
        assert_eq!(detector.statement(CLAIM_NEW.as_bytes()), None);
        assert_eq!(
            detector.statement(b"/* lockroute:direct */ SELECT 1"),
            Some(Reason::StatementTag)
        );
    }

    #[test]
    fn default_patterns_compile_and_are_listed() {
        let detector = Detector::new(TAG, DEFAULT_LOCK_PATTERNS).expect("defaults compile");
        assert_eq!(detector.patterns(), DEFAULT_LOCK_PATTERNS);
        assert_eq!(
            detector.statement(CLAIM_NEW.as_bytes()),
            Some(Reason::Pattern)
        );
    }

    #[test]
    fn bad_pattern_error_names_pattern() {
        let err = Detector::new(TAG, &[CLAIM_PATTERN, "(unclosed"]).expect_err("bad regex");
        match &err {
            PatternError::Invalid { pattern, .. } => assert_eq!(pattern, "(unclosed"),
            other => panic!("unexpected error {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains("\"(unclosed\""), "{message}");
        assert!(message.contains("unclosed group"), "{message}");
    }

    #[test]
    fn session_tag_is_case_sensitive_substring() {
        let detector = detector();
        let cases: &[(&[u8], bool)] = &[
            (b"gbrain-worker lockroute:direct", true),
            (b"lockroute:direct", true),
            (b"lockroute:direct-7", true),
            (b"\xff lockroute:direct", true),
            (b"postgres.js", false),
            (b"", false),
            (b"LOCKROUTE:DIRECT", false),
            (b"lockroute:direc", false),
        ];
        for &(name, want) in cases {
            assert_eq!(
                detector.session_tagged(name),
                want,
                "{:?}",
                name.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn empty_tag_tags_nothing() {
        let detector = Detector::with_defaults("");
        assert!(!detector.session_tagged(b"postgres.js"));
        assert!(!detector.session_tagged(b""));
        assert_eq!(detector.statement(b"/* */ SELECT 1"), None);
        assert_eq!(
            detector.statement(b"/**/ UPDATE gbrain_cycle_locks SET ttl_expires_at = NOW() + $1"),
            Some(Reason::Pattern)
        );
    }

    #[test]
    fn detector_is_shareable_across_tasks() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Detector>();
    }

    /// Input made of the pieces the scanner cares about, so random cases reach its branches.
    fn sql_soup() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"/*".to_vec()),
            Just(b"*/".to_vec()),
            Just(b"--".to_vec()),
            Just(b"\n".to_vec()),
            Just(b" ".to_vec()),
            Just(TAG.as_bytes().to_vec()),
            Just(RENEW_LOCK.as_bytes()[..45].to_vec()),
            Just(b"'".to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    /// Leading comments without the tag: block (optionally nested) and line comments.
    fn untagged_comments() -> impl Strategy<Value = Vec<u8>> {
        let block = "[a-z0-9 =:'.\n-]{0,30}";
        let comment = prop_oneof![
            block.prop_map(|body| format!("/*{body}*/")),
            (block, block).prop_map(|(a, b)| format!("/* {a} /* {b} */ {a} */")),
            "[a-z0-9 =:'*/-]{0,30}".prop_map(|body| format!("--{body}\n")),
        ];
        prop::collection::vec((comment, "[ \t\n]{0,3}"), 0..6).prop_map(|comments| {
            comments
                .into_iter()
                .map(|(comment, space)| comment + &space)
                .collect::<String>()
                .into_bytes()
        })
    }

    /// A statement that starts with its first token, then arbitrary bytes.
    fn statement_start() -> impl Strategy<Value = Vec<u8>> {
        let head = prop_oneof![
            Just(CLAIM_NEW.as_bytes()),
            Just(RENEW_LOCK.as_bytes()),
            Just(CYCLE_LOCK_REFRESH.as_bytes()),
            Just(NOT_LOCK_PATH[0].1.as_bytes()),
            Just(b"SELECT 1 /* lockroute:direct */".as_slice()),
            Just(b"/* lockroute:direct */ SELECT 1".as_slice()),
        ];
        (head, prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(head, tail)| [head, tail.as_slice()].concat())
    }

    proptest! {
        #[test]
        fn statement_arbitrary_bytes_never_panics(sql in prop::collection::vec(any::<u8>(), 0..10_000)) {
            let detector = detector();
            let _ = detector.statement(&sql);
            let _ = detector.session_tagged(&sql);
        }

        #[test]
        fn statement_comment_soup_never_panics(sql in sql_soup()) {
            let _ = detector().statement(&sql);
        }

        #[test]
        fn statement_ignores_bytes_past_bounds(
            comments in untagged_comments(),
            start in statement_start(),
            filler in any::<u8>(),
            appended in appended_bytes(),
        ) {
            // Exactly MATCH_PREFIX_LIMIT bytes of statement text after the comments.
            let mut text = start;
            text.resize(MATCH_PREFIX_LIMIT.max(text.len()), filler);
            text.truncate(MATCH_PREFIX_LIMIT);
            let bounded = without_probe([comments.as_slice(), &text].concat());
            let longer = [bounded.as_slice(), &appended].concat();
            let detector = bound_probe();
            prop_assert_eq!(detector.statement(&longer), detector.statement(&bounded));
        }

        #[test]
        fn statement_ignores_bytes_past_absolute_bound(
            sql in sql_soup(),
            appended in appended_bytes(),
        ) {
            let mut bounded = without_probe(sql);
            bounded.resize(COMMENT_SCAN_LIMIT + MATCH_PREFIX_LIMIT, b' ');
            let longer = [bounded.as_slice(), &appended].concat();
            let detector = bound_probe();
            prop_assert_eq!(detector.statement(&longer), detector.statement(&bounded));
        }

        #[test]
        fn statement_after_scan_limit_is_not_seen(
            comments in untagged_comments(),
            appended in appended_bytes(),
        ) {
            // Whitespace and comments fill the scan window, so no statement text starts in it.
            let mut bounded = without_probe(comments);
            prop_assert!(bounded.len() < COMMENT_SCAN_LIMIT);
            bounded.resize(COMMENT_SCAN_LIMIT, b' ');
            let longer = [bounded.as_slice(), &appended].concat();
            let detector = bound_probe();
            prop_assert_eq!(detector.statement(&bounded), None);
            prop_assert_eq!(detector.statement(&longer), None);
        }

        #[test]
        fn untagged_leading_comments_do_not_change_result(
            comments in untagged_comments(),
            sql in statement_start(),
        ) {
            let with_comments = [comments.as_slice(), &sql].concat();
            let detector = detector();
            prop_assert_eq!(detector.statement(&with_comments), detector.statement(&sql));
        }
    }
}
