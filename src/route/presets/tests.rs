//! Table tests of every preset over its queue's statements (`tests/lock.rs`), and the corpus
//! test: no preset matches another queue's statements or any statement of the non-lock corpus
//! (`tests/other.rs`, plus gbrain's own non-lock statements).

use std::collections::HashSet;

use super::*;
use crate::route::Reason;
use crate::route::detect::tests::statements::{NOT_LOCK_PATH, TAG};
use crate::route::detect::{Detection, Detector};

mod lock;
mod other;
use lock::LOCK;
use other::NOT_LOCK;

fn only(preset: PresetId) -> Detector {
    Detector::build(TAG, &[preset], &[] as &[&str]).expect("presets compile")
}

#[test]
fn every_lock_statement_matches_its_own_rule_with_all_presets_loaded() {
    let detector = Detector::with_defaults(TAG);
    for case in LOCK {
        let found = detector.statement_named(case.name.as_bytes(), case.sql.as_bytes());
        let lock = found.and_then(|d| d.lock);
        let what = format!("{} {} {:?}", case.preset.as_str(), case.rule, case.sql);
        let lock = lock.unwrap_or_else(|| panic!("no match: {what}"));
        assert_eq!(found.map(|d| d.reason), Some(Reason::Pattern), "{what}");
        assert_eq!(lock.preset, case.preset, "{what}");
        assert_eq!(lock.statement, case.rule, "{what}");
        assert_eq!(lock.kind, case.kind, "{what}");
    }
}

#[test]
fn no_preset_matches_another_queues_lock_statements() {
    for preset in PresetId::BUILT_IN {
        let detector = only(preset);
        for case in LOCK {
            let found = detector.statement_named(case.name.as_bytes(), case.sql.as_bytes());
            if case.preset == preset {
                assert!(found.is_some(), "{} misses {:?}", preset.as_str(), case.sql);
            } else {
                assert_eq!(
                    found,
                    None,
                    "{} matches {}'s {:?}",
                    preset.as_str(),
                    case.preset.as_str(),
                    case.sql
                );
            }
        }
    }
}

#[test]
fn no_preset_matches_the_non_lock_corpus() {
    let detector = Detector::with_defaults(TAG);
    let gbrain = NOT_LOCK_PATH.iter().map(|&(what, sql)| (what, "", sql));
    for (what, name, sql) in NOT_LOCK.iter().copied().chain(gbrain) {
        assert_eq!(
            detector.statement_named(name.as_bytes(), sql.as_bytes()),
            None,
            "{what}"
        );
        // The same statement on one line, as some drivers and ORMs send it.
        let squashed = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(
            detector.statement_named(name.as_bytes(), squashed.as_bytes()),
            None,
            "{what}, one line"
        );
    }
}

#[test]
fn every_rule_is_exercised_by_a_lock_statement() {
    let detector = Detector::with_defaults(TAG);
    let hit: HashSet<(PresetId, &str, Signal)> = LOCK
        .iter()
        .filter_map(|case| detector.statement_named(case.name.as_bytes(), case.sql.as_bytes()))
        .filter_map(|d| d.lock)
        .map(|l| (l.preset, l.statement, l.signal))
        .collect();
    for preset in PresetId::BUILT_IN {
        for rule in preset.preset().rules {
            assert!(
                hit.contains(&(preset, rule.statement, rule.signal)),
                "{} {} ({}) has no test statement",
                preset.as_str(),
                rule.statement,
                rule.signal.as_str()
            );
        }
    }
}

#[test]
fn lock_statements_match_on_one_line_and_in_lower_case() {
    let detector = Detector::with_defaults(TAG);
    for case in LOCK.iter().filter(|c| !c.sql.contains("--")) {
        let squashed = case.sql.split_whitespace().collect::<Vec<_>>().join(" ");
        for sql in [squashed.clone(), squashed.to_lowercase()] {
            let lock = detector
                .statement_named(case.name.as_bytes(), sql.as_bytes())
                .and_then(|d| d.lock);
            assert_eq!(lock.map(|l| l.preset), Some(case.preset), "{sql:?}");
        }
    }
}

#[test]
fn claims_are_never_safe_to_retry() {
    for preset in PresetId::BUILT_IN {
        for rule in preset
            .preset()
            .rules
            .iter()
            .filter(|r| r.kind == Kind::Claim)
        {
            assert_eq!(
                rule.retry,
                Retry::Unsafe,
                "{} {}",
                preset.as_str(),
                rule.statement
            );
        }
    }
}

#[test]
fn retry_classes_follow_the_fencing() {
    let detector = Detector::with_defaults(TAG);
    let cases: [(&str, &str, Retry); 4] = [
        (
            "gbrain renewLock",
            crate::route::detect::tests::statements::RENEW_LOCK,
            Retry::Safe,
        ),
        (
            "gbrain claim",
            crate::route::detect::tests::statements::CLAIM_NEW,
            Retry::Unsafe,
        ),
        (
            "River re-elect",
            "-- name: LeaderAttemptReelect :execrows\nUPDATE river_leader SET expires_at = now()",
            Retry::Safe,
        ),
        (
            "procrastinate heartbeat",
            "SELECT procrastinate_update_heartbeat_v1($1);",
            Retry::Safe,
        ),
    ];
    for (what, sql, retry) in cases {
        let lock = detector
            .statement_named(b"", sql.as_bytes())
            .and_then(|d| d.lock);
        assert_eq!(lock.map(|l| l.retry), Some(retry), "{what}");
    }
}

#[test]
fn every_rule_pattern_compiles_alone() {
    for preset in PresetId::BUILT_IN {
        assert_eq!(preset.preset().id, preset);
        for rule in preset.preset().rules {
            regex::bytes::Regex::new(rule.pattern)
                .unwrap_or_else(|e| panic!("{} {}: {e}", preset.as_str(), rule.statement));
        }
    }
}

#[test]
fn preset_names_round_trip_and_custom_is_not_a_name() {
    for preset in PresetId::BUILT_IN {
        assert_eq!(PresetId::from_name(preset.as_str()), Some(preset));
    }
    assert_eq!(PresetId::from_name("custom"), None);
    assert_eq!(PresetId::from_name("none"), None);
    assert_eq!(PresetId::from_name("PG-BOSS"), None);
    for (i, preset) in PresetId::ALL.iter().enumerate() {
        assert_eq!(*preset as usize, i, "ALL follows discriminants");
    }
    for (i, kind) in Kind::ALL.iter().enumerate() {
        assert_eq!(*kind as usize, i, "ALL follows discriminants");
    }
}

#[test]
fn custom_patterns_add_to_presets_as_custom_unknown_unsafe() {
    let detector = Detector::build(TAG, &PresetId::BUILT_IN, &[r"(?i)^\s*select\s+'mine'"])
        .expect("valid pattern");
    let custom = detector.statement_named(b"", b"SELECT 'mine'");
    assert_eq!(
        custom,
        Some(Detection {
            reason: Reason::Pattern,
            lock: Some(crate::route::detect::LockMatch {
                preset: PresetId::Custom,
                kind: Kind::Unknown,
                retry: Retry::Unsafe,
                signal: Signal::Text,
                statement: "--lock-pattern",
            }),
        })
    );
    let preset = detector
        .statement_named(b"", b"SELECT procrastinate_update_heartbeat_v1(7)")
        .and_then(|d| d.lock);
    assert_eq!(preset.map(|l| l.preset), Some(PresetId::Procrastinate));
}

#[test]
fn a_preset_wins_over_a_custom_pattern_that_also_matches() {
    let detector =
        Detector::build(TAG, &[PresetId::Que], &[r"(?i)^\s*DELETE\b"]).expect("valid pattern");
    let lock = detector
        .statement_named(b"", b"DELETE FROM public.que_jobs WHERE id = $1::bigint")
        .and_then(|d| d.lock);
    assert_eq!(lock.map(|l| l.preset), Some(PresetId::Que));
}

#[test]
fn no_presets_and_no_patterns_match_nothing_but_tags() {
    let detector = Detector::build(TAG, &[], &[] as &[&str]).expect("empty");
    for case in LOCK {
        assert_eq!(
            detector.statement_named(case.name.as_bytes(), case.sql.as_bytes()),
            None
        );
    }
    assert_eq!(
        detector.statement_named(b"get_job/x", b"/* lockroute:direct */ SELECT 1"),
        Some(Detection {
            reason: Reason::StatementTag,
            lock: None
        })
    );
}

#[test]
fn tag_wins_over_a_statement_name_and_a_comment_rule() {
    let detector = Detector::with_defaults(TAG);
    let found = detector.statement_named(
        b"get_job/graphile_worker",
        b"-- name: JobGetAvailable :many\n/* lockroute:direct */ SELECT 1",
    );
    assert_eq!(
        found,
        Some(Detection {
            reason: Reason::StatementTag,
            lock: None
        })
    );
}

#[test]
fn comment_and_name_signals_stay_inside_their_bounds() {
    use crate::route::detect::{COMMENT_RULE_LIMIT, COMMENT_SCAN_LIMIT, NAME_LIMIT};
    let detector = Detector::with_defaults(TAG);
    // A comment rule counts only for a terminated comment inside the scan window.
    let far = format!(
        "/*{}*/ -- name: JobGetAvailable :many\nSELECT 1",
        "c".repeat(COMMENT_SCAN_LIMIT)
    );
    assert_eq!(detector.statement_named(b"", far.as_bytes()), None);
    let open = "-- name: JobGetAvailable :many";
    assert_eq!(detector.statement_named(b"", open.as_bytes()), None);
    // Comment rules look at the first COMMENT_RULE_LIMIT leading comments only.
    let header = "-- name: JobGetAvailable :many\nSELECT 1";
    let within = format!("{}{header}", "/* t */ ".repeat(COMMENT_RULE_LIMIT - 1));
    let beyond = format!("{}{header}", "/* t */ ".repeat(COMMENT_RULE_LIMIT));
    assert!(detector.statement_named(b"", within.as_bytes()).is_some());
    assert_eq!(detector.statement_named(b"", beyond.as_bytes()), None);
    // A comment that is not leading is part of the text and no comment rule sees it.
    let inner = "SELECT 1 -- name: JobGetAvailable :many\n";
    assert_eq!(detector.statement_named(b"", inner.as_bytes()), None);
    // The name is cut at NAME_LIMIT: a marker past it is never read.
    let long = format!("{}get_job/x", "a".repeat(NAME_LIMIT));
    let rules = Detector::new(TAG, &[] as &[&str]).expect("empty");
    assert_eq!(rules.statement_named(long.as_bytes(), b"SELECT 1"), None);
    assert_eq!(
        detector
            .statement_named(b"get_job/graphile_worker", b"")
            .map(|d| d.reason),
        None,
        "a name with no statement text matches nothing"
    );
}
