//! The compiled lock rules: one multi-pattern regex per signal, and the match each pattern
//! stands for.
//!
//! One `regex_automata::meta::Regex` over all of a signal's patterns finds, in one pass, whether
//! any rule matches and which one, with no allocation (its scratch space is pooled, as `regex`'s
//! own is). Leftmost-first semantics make the first rule in the configured order win when two
//! match at the same start, so presets come before custom patterns.

use regex_automata::meta::{self, BuildError};
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind};

use super::{LockMatch, PatternError};

/// The rules of every signal.
#[derive(Debug, Clone)]
pub(super) struct RuleSets {
    pub(super) text: RuleSet,
    pub(super) name: RuleSet,
    pub(super) comment: RuleSet,
}

/// One signal's rules. `regex` is `None` when there are none, so an empty set costs nothing.
#[derive(Debug, Clone)]
pub(super) struct RuleSet {
    regex: Option<meta::Regex>,
    matches: Box<[LockMatch]>,
}

pub(super) struct Builder {
    owned: Vec<String>,
    matches: Vec<LockMatch>,
}

impl RuleSet {
    pub(super) fn builder() -> Builder {
        Builder {
            owned: Vec::new(),
            matches: Vec::new(),
        }
    }

    /// The first rule that matches `haystack`, if any.
    pub(super) fn find(&self, haystack: &[u8]) -> Option<LockMatch> {
        let found = self.regex.as_ref()?.search_half(&Input::new(haystack))?;
        self.matches.get(found.pattern().as_usize()).copied()
    }
}

impl Builder {
    pub(super) fn push(&mut self, pattern: &str, found: LockMatch) {
        // Copied once, at start.
        self.owned.push(pattern.to_owned());
        self.matches.push(found);
    }

    /// Compiles the set with `regex::bytes`' own settings: no UTF-8 requirement on the input,
    /// the same size limits, and no capture groups (only which pattern matched is needed).
    pub(super) fn build(self) -> Result<RuleSet, PatternError> {
        if self.owned.is_empty() {
            return Ok(RuleSet {
                regex: None,
                matches: Box::new([]),
            });
        }
        let regex = compile(&self.owned).map_err(|source| PatternError::Set { source })?;
        Ok(RuleSet {
            regex: Some(regex),
            matches: self.matches.into_boxed_slice(),
        })
    }
}

/// The error is boxed: it is large, and only start-up ever sees one.
fn compile(patterns: &[String]) -> Result<meta::Regex, Box<BuildError>> {
    let config = meta::Config::new()
        .match_kind(MatchKind::LeftmostFirst)
        .utf8_empty(false)
        .nfa_size_limit(Some(10 * (1 << 20)))
        .hybrid_cache_capacity(2 * (1 << 20))
        .which_captures(regex_automata::nfa::thompson::WhichCaptures::Implicit);
    meta::Builder::new()
        .configure(config)
        .syntax(syntax::Config::new().utf8(false))
        .build_many(patterns)
        .map_err(Box::new)
}
