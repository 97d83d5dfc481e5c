//! The detector (every built-in preset loaded) and the routing decision on arbitrary statement
//! bytes (valid UTF-8 or not), and on arbitrary statement names.
//!
//! Detection never reads past its documented bounds, a tag is only ever found where the scan
//! may look, an untagged leading comment changes nothing, a lock rule is reported exactly when
//! the reason is a pattern, and the decision keeps the routing rules of DESIGN.md for every
//! mode, session tag and open transaction.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lockroute::config::Mode;
use lockroute::route::decide::{UnitContext, decide};
use lockroute::route::detect::{COMMENT_SCAN_LIMIT, Detector, MATCH_PREFIX_LIMIT, NAME_LIMIT};
use lockroute::route::{Lane, Reason};

const TAG: &str = "lockroute:direct";

static DETECTOR: LazyLock<Detector> = LazyLock::new(|| Detector::with_defaults(TAG));

fuzz_target!(|data: &[u8]| {
    let detector = &*DETECTOR;
    let found = detector.statement(data);
    assert!(matches!(
        found,
        None | Some(Reason::StatementTag | Reason::Pattern)
    ));

    // Nothing past the bound is read.
    let bound = COMMENT_SCAN_LIMIT + MATCH_PREFIX_LIMIT;
    assert_eq!(detector.statement(&data[..data.len().min(bound)]), found);
    // A statement tag lies inside the comment scan window.
    if found == Some(Reason::StatementTag) {
        assert!(contains(
            &data[..data.len().min(COMMENT_SCAN_LIMIT)],
            TAG.as_bytes()
        ));
    }
    // An untagged leading comment is skipped like whitespace.
    const PREFIX: &[u8] = b"/* traceparent */ ";
    if data.len() + PREFIX.len() <= COMMENT_SCAN_LIMIT {
        assert_eq!(detector.statement(&[PREFIX, data].concat()), found);
    }
    assert_eq!(
        detector.session_tagged(data),
        contains(data, TAG.as_bytes())
    );

    // The input up to its first NUL as a statement name, the rest as the statement.
    let (name, sql) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&data[..0], data),
    };
    let named = detector.statement_named(name, sql);
    if let Some(detection) = named {
        assert_eq!(
            detection.lock.is_some(),
            detection.reason == Reason::Pattern
        );
    }
    // A name is read only up to NAME_LIMIT, and it never beats a statement tag.
    assert_eq!(
        detector.statement_named(&name[..name.len().min(NAME_LIMIT)], sql),
        named
    );
    if detector.statement(sql) == Some(Reason::StatementTag) {
        assert_eq!(named.map(|d| d.reason), Some(Reason::StatementTag));
    }

    for mode in Mode::ALL {
        for (session_tagged, pinned) in [(false, false), (true, false), (false, true)] {
            for open_transaction in [None, Some(Lane::Pooler), Some(Lane::Direct)] {
                let unit = UnitContext {
                    mode,
                    session_tagged,
                    pinned,
                    open_transaction,
                    detected: found,
                };
                check_decision(&unit);
            }
        }
    }
});

fn check_decision(unit: &UnitContext) {
    let decision = decide(unit);
    // A transaction never spans lanes, in every mode: one open on a lane finishes there. (A
    // session-tagged or pinned client in split mode has all its transactions on its own
    // session; the session never asks with another lane's transaction open.)
    let own_session = unit.mode == Mode::Split && (unit.session_tagged || unit.pinned);
    if let Some(lane) = unit.open_transaction.filter(|_| !own_session) {
        assert_eq!(decision.lane, lane);
    }
    match unit.mode {
        // The kill switch and shadow mode send nothing new to the direct lane.
        Mode::Passthrough | Mode::Shadow => {
            if unit.open_transaction != Some(Lane::Direct) {
                assert_eq!(decision.lane, Lane::Pooler);
            }
            if unit.mode == Mode::Passthrough && unit.open_transaction.is_none() {
                assert_eq!(decision.reason, Reason::Passthrough);
            }
        }
        Mode::Split if unit.session_tagged => {
            assert_eq!(
                (decision.lane, decision.reason),
                (Lane::Direct, Reason::SessionTag)
            )
        }
        // A pinned client runs everything on its own session.
        Mode::Split if unit.pinned => {
            assert_eq!(
                (decision.lane, decision.reason),
                (Lane::Direct, Reason::Pinned)
            )
        }
        Mode::Split => match (unit.open_transaction, unit.detected) {
            (Some(_), _) => {}
            (None, Some(reason)) => {
                assert_eq!((decision.lane, decision.reason), (Lane::Direct, reason))
            }
            (None, None) => assert_eq!(
                (decision.lane, decision.reason),
                (Lane::Pooler, Reason::Default)
            ),
        },
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
