//! Properties of where a tag counts, over generated statements. The tables in `tests.rs` pin
//! the cases by name; these check that no neighbouring input changes the answer.
use std::sync::LazyLock;

use proptest::prelude::*;

use super::statements::{CLAIM_NEW, RENEW_LOCK, TAG};
use super::{sql_soup, untagged_comments};
use crate::route::Reason;
use crate::route::detect::{COMMENT_SCAN_LIMIT, Detector};

/// One detector for every case: compiling the patterns would cost more than the cases.
static DETECTOR: LazyLock<Detector> = LazyLock::new(|| Detector::with_defaults(TAG));

fn detector() -> &'static Detector {
    &DETECTOR
}

/// The start of a statement's text: a first token that is not whitespace or a comment.
fn first_token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("SELECT ".to_owned()),
        Just("UPDATE minion_jobs SET x = ".to_owned()),
        Just("INSERT INTO t VALUES (".to_owned()),
        Just(RENEW_LOCK[..40].to_owned()),
        "[a-zA-Z(;][a-zA-Z0-9_ ,=()]{0,20}",
    ]
}

/// Text that carries the tag where it must not count: quoted, or in a comment after the first
/// token.
fn tag_in_text() -> impl Strategy<Value = String> {
    let noise = "[a-z0-9 ]{0,10}";
    (noise, noise, 0..6usize).prop_map(|(a, b, shape)| {
        let comment = format!("/* {a}{TAG}{b} */");
        match shape {
            0 => format!("'{a}{comment}{b}'"),
            1 => format!("$${comment}$$"),
            2 => format!("$q$ -- {TAG}\n $q$"),
            3 => format!("\"{comment}\""),
            4 => format!("E'\\'{comment}'"),
            _ => format!("{a} {comment} {b}"),
        }
    })
}

/// A block comment body without comment markers, so the comment ends where it seems to.
fn comment_body() -> impl Strategy<Value = String> {
    "[a-z0-9 =:',.\n-]{0,20}".prop_filter("no comment markers", |body| {
        !body.contains("*/") && !body.contains("/*")
    })
}

proptest! {
    // The generated statements are long; fewer cases keep the unit tests quick.
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn statement_arbitrary_utf8_never_panics(sql in any::<String>()) {
        let detector = detector();
        let found = detector.statement(sql.as_bytes());
        prop_assert!(matches!(found, None | Some(Reason::StatementTag | Reason::Pattern)));
        let _ = detector.session_tagged(sql.as_bytes());
    }

    #[test]
    fn tag_after_first_token_is_never_a_tag(
        comments in untagged_comments(),
        token in first_token(),
        text in tag_in_text(),
        tail in sql_soup(),
    ) {
        let sql = [comments.as_slice(), token.as_bytes(), text.as_bytes(), &tail].concat();
        prop_assert_ne!(detector().statement(&sql), Some(Reason::StatementTag));
    }

    #[test]
    fn tagged_leading_comment_routes_whatever_follows(
        comments in untagged_comments(),
        (before, after) in (comment_body(), comment_body()),
        line in any::<bool>(),
        tail in sql_soup(),
    ) {
        let tagged = if line {
            format!("--{}{TAG}{}\n", before.replace('\n', " "), after.replace('\n', " "))
        } else {
            format!("/*{before}{TAG}{after}*/")
        };
        let sql = [comments.as_slice(), tagged.as_bytes(), &tail].concat();
        prop_assume!(comments.len() + tagged.len() <= COMMENT_SCAN_LIMIT);
        prop_assert_eq!(detector().statement(&sql), Some(Reason::StatementTag));
    }

    #[test]
    fn pattern_survives_any_suffix(tail in prop::collection::vec(any::<u8>(), 0..256)) {
        // The patterns are prefix matches: what follows the identifying prefix never matters.
        for statement in [CLAIM_NEW, RENEW_LOCK] {
            let sql = [statement.as_bytes(), &tail].concat();
            prop_assert_eq!(detector().statement(&sql), Some(Reason::Pattern));
        }
    }

    #[test]
    fn session_tagged_is_exact_substring(
        before in "[ -~]{0,24}",
        after in "[ -~]{0,24}",
        flip in 0..TAG.len(),
    ) {
        let detector = detector();
        let name = format!("{before}{TAG}{after}");
        prop_assert!(detector.session_tagged(name.as_bytes()));
        // Changing any one byte of the tag (and nothing else containing it) untags the session.
        let mut broken = TAG.as_bytes().to_vec();
        broken[flip] ^= 0x20;
        let name = [before.as_bytes(), &broken, after.as_bytes()].concat();
        let contains = name.windows(TAG.len()).any(|w| w == TAG.as_bytes());
        prop_assert_eq!(detector.session_tagged(&name), contains);
    }
}
