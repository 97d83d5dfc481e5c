//! Tests for `detect`.
use super::*;
use proptest::prelude::*;

mod props;
pub(crate) mod statements;
use statements::*;

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
