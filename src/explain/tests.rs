//! Tests for `explain`: the proxy's answer, printed as lines and as JSON.
use super::*;

fn config(flags: &[&str]) -> ExplainConfig {
    let args = [&["explain"], flags].concat();
    ExplainConfig::from_args(args, &|_| None).expect("valid flags")
}

#[test]
fn preset_statement_explains_direct_pattern_with_preset_kind_and_retry() {
    let answer = explain(
        &config(&[]),
        b"",
        b"SELECT procrastinate_update_heartbeat_v1($1);",
    )
    .expect("explains");
    assert_eq!(
        answer.text(),
        "lane: direct\nreason: pattern\npreset: procrastinate\nkind: heartbeat\nretry: safe\n\
         rule: update_heartbeat\nsignal: text\npin: none\n"
    );
    assert_eq!(
        answer.json(),
        "{\"lane\":\"direct\",\"reason\":\"pattern\",\"preset\":\"procrastinate\",\
         \"kind\":\"heartbeat\",\"retry\":\"safe\",\"rule\":\"update_heartbeat\",\
         \"signal\":\"text\",\"pin\":null}\n"
    );
}

#[test]
fn other_statement_explains_pooler_default_with_nulls() {
    let answer = explain(&config(&[]), b"", b"select 1").expect("explains");
    assert_eq!(
        answer.json(),
        "{\"lane\":\"pooler\",\"reason\":\"default\",\"preset\":null,\"kind\":null,\
         \"retry\":null,\"rule\":null,\"signal\":null,\"pin\":null}\n"
    );
    assert!(
        answer
            .text()
            .starts_with("lane: pooler\nreason: default\npreset: none\n")
    );
}

#[test]
fn statement_name_and_flags_change_the_answer_as_in_the_proxy() {
    let named = explain(&config(&[]), b"get_job/graphile_worker", b"select 1").expect("explains");
    assert_eq!(
        named.lock.map(|l| l.preset.as_str()),
        Some("graphile-worker")
    );
    let off = explain(
        &config(&["--preset", "none"]),
        b"get_job/graphile_worker",
        b"select 1",
    )
    .expect("explains");
    assert_eq!(off.decision.reason.as_str(), "default");
    let custom = explain(
        &config(&["--preset", "none", "--lock-pattern", "(?i)^select 1"]),
        b"",
        b"select 1",
    )
    .expect("explains");
    assert!(
        custom
            .text()
            .contains("preset: custom\nkind: unknown\nretry: unsafe\n")
    );
    let tagged = explain(&config(&[]), b"", b"/* lockroute:direct */ select 1").expect("explains");
    assert!(
        tagged
            .text()
            .starts_with("lane: direct\nreason: statement_tag\npreset: none\n")
    );
}

#[test]
fn json_strings_escape_quotes_backslashes_and_controls() {
    assert_eq!(
        json_string("a\"b\\c\n\u{1}é"),
        "\"a\\\"b\\\\c\\u000a\\u0001é\""
    );
}

#[test]
fn session_features_explain_the_pin_and_the_dedicated_session() {
    let answer = explain(&config(&[]), b"", b"LISTEN \"pgboss\"").expect("explains");
    assert_eq!(
        answer.text(),
        "lane: direct\nreason: pinned\npreset: none\nkind: none\nretry: none\n\
         rule: none\nsignal: none\npin: listen\n"
    );
    let lock = explain(
        &config(&[]),
        b"",
        b"WITH j AS (SELECT id FROM que_jobs LIMIT 1) SELECT pg_try_advisory_lock(id) FROM j",
    )
    .expect("explains");
    assert_eq!(lock.pin, Some("advisory_lock"));
    let off = explain(&config(&["--pin", "off"]), b"", b"LISTEN x").expect("explains");
    assert_eq!(off.pin, None);
    assert_eq!(off.decision.lane, crate::route::Lane::Pooler);
}
