use proptest::prelude::*;

use super::*;

const L: Effects = Effects::LISTEN;
const A: Effects = Effects::ADVISORY_LOCK;
const S: Effects = Effects::SET;
const H: Effects = Effects::SET_HARMLESS;
const T: Effects = Effects::TEMP;
const P: Effects = Effects::PREPARE;
const C: Effects = Effects::CURSOR;
const R: Effects = Effects::RELEASE;
const N: Effects = Effects::NONE;

#[test]
fn effects_table() {
    let cases: &[(&str, Effects)] = &[
        // LISTEN and UNLISTEN, as the queues send them.
        ("LISTEN \"pgboss_notify\"", L),
        ("listen jobs_insert", L),
        ("/* c */ -- x\n  LISTEN \"procrastinate_queue#default\"", L),
        ("UNLISTEN *", R),
        ("select 'LISTEN x'", N),
        // Session advisory locks anywhere; the _xact_ forms do not count.
        ("select pg_advisory_lock(4242)", A),
        ("SELECT PG_TRY_ADVISORY_LOCK(777)", A),
        ("select pg_try_advisory_lock_shared(1, 2)", A),
        ("select pg_advisory_lock_shared($1)", A),
        ("select pg_advisory_unlock(777)", R),
        ("select pg_advisory_unlock_all()", R),
        ("select pg_advisory_xact_lock(1)", N),
        ("select pg_try_advisory_xact_lock(1)", N),
        ("select 'pg_advisory_lock(1)'", N),
        ("select 1 -- pg_advisory_lock(1)\n", N),
        // good_job: the lock inside a CTE, long after the statement's start.
        (
            "WITH rows AS (SELECT id, active_job_id FROM good_jobs WHERE queue_name = 'q' \
             ORDER BY priority LIMIT 1) SELECT id FROM rows \
             WHERE pg_try_advisory_lock(('x' || substr(md5('good_jobs' || '-' || active_job_id::text), 1, 16))::bit(64)::bigint)",
            A,
        ),
        // Que's lock_job CTE.
        (
            "WITH RECURSIVE jobs AS (SELECT (j).*, pg_try_advisory_lock((j).id) AS locked FROM \
             (SELECT j FROM public.que_jobs AS j LIMIT 1) AS t1) SELECT id FROM jobs WHERE locked",
            A,
        ),
        // SET and RESET.
        ("SET statement_timeout = '4321ms'", S),
        ("set search_path = 'leaked'; select pg_sleep(0.3)", S),
        ("SET SESSION search_path TO x", S),
        ("SET LOCAL statement_timeout = 5", N),
        ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", N),
        ("SET CONSTRAINTS ALL DEFERRED", N),
        ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", S),
        ("SET SESSION AUTHORIZATION bob", S),
        ("SET ROLE bob", S),
        ("SET myapp.tenant = '7'", S),
        ("RESET search_path", R),
        // Connect-time settings of frameworks: harmless, no pin.
        ("SET client_min_messages TO 'warning'", H),
        ("SET standard_conforming_strings = on", H),
        ("SET intervalstyle = iso_8601", H),
        ("SET SESSION timezone TO 'UTC'", H),
        ("SET TIME ZONE 'UTC'", H),
        ("SET NAMES 'UTF8'", H),
        // set_config: session-wide unless is_local is literally true.
        ("select set_config('search_path', 'leaked2', false)", S),
        ("select set_config('search_path', 'x', true)", N),
        ("SELECT SET_CONFIG('a.b', 'x', TRUE)", N),
        ("select set_config($1, $2, $3)", S),
        ("select set_config('a', concat('x', 'y'), false)", S),
        ("select set_config('a', concat('x', 'y'), true)", N),
        ("select set_config('a', (select 'x, y'), true)", N),
        ("select 'set_config(1,2,false)'", N),
        // PREPARE and DEALLOCATE.
        ("PREPARE q (int) AS SELECT $1", P),
        ("PREPARE TRANSACTION 'x'", N),
        ("DEALLOCATE q", R),
        ("DEALLOCATE ALL", R),
        // Temp objects.
        ("CREATE TEMP TABLE t (id int)", T),
        ("create temporary table t as select 1", T),
        ("CREATE GLOBAL TEMPORARY TABLE t (id int)", T),
        ("CREATE OR REPLACE TEMP VIEW v AS SELECT 1", T),
        ("CREATE TABLE temp (id int)", N),
        ("CREATE TABLE t (temp int)", N),
        ("SELECT 1 INTO TEMP t", T),
        ("select * from pg_temp.t", T),
        ("select temp from readings", N),
        // Cursors.
        ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", C),
        ("DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT 1", C),
        ("DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1", N),
        ("DECLARE c CURSOR FOR SELECT 1", N),
        ("WITH hold AS (SELECT 1) SELECT * FROM hold", N),
        // LOAD and DISCARD.
        ("LOAD 'auto_explain'", Effects::LOAD),
        ("DISCARD ALL", R),
        // Several statements: every one counts.
        ("select 1; LISTEN x", L),
        ("select 1; set search_path = x; select 2", S),
        ("select ';LISTEN x'", N),
        ("select 1;   ", N),
        // Ordinary statements.
        (
            "UPDATE minion_jobs SET lock_until = now() + interval '30s' WHERE id = $1",
            N,
        ),
        ("select current_user", N),
        ("BEGIN", N),
        ("", N),
        ("   -- only a comment", N),
        ("/* unterminated", N),
        ("select $tag$ LISTEN x; pg_advisory_lock(1) $tag$", N),
        ("select E'\\' LISTEN x; select 1'", N),
        ("select \"pg_advisory_lock\"(1)", N),
    ];
    for &(sql, want) in cases {
        assert_eq!(effects(sql.as_bytes()), want, "{sql:?}");
        assert_eq!(classify(sql.as_bytes()), want, "full lexer: {sql:?}");
    }
}

#[test]
fn pin_reasons_follow_the_label_order() {
    assert_eq!(effects(b"LISTEN x").pin(), Some(PinReason::Listen));
    assert_eq!(
        effects(b"select pg_advisory_lock(1); LISTEN x").pin(),
        Some(PinReason::Listen)
    );
    assert_eq!(effects(b"SET search_path = x").pin(), Some(PinReason::Set));
    assert_eq!(effects(b"SET client_min_messages = warning").pin(), None);
    assert!(effects(b"SET client_min_messages = warning").changes_session());
    assert_eq!(effects(b"UNLISTEN *").pin(), None);
    assert!(effects(b"UNLISTEN *").changes_session());
    assert_eq!(effects(b"LOAD 'x'").pin(), Some(PinReason::Other));
    assert_eq!(
        effects(b"CREATE TEMP TABLE t()").pin(),
        Some(PinReason::Temp)
    );
    assert_eq!(
        effects(b"PREPARE p AS SELECT 1").pin(),
        Some(PinReason::Prepare)
    );
    assert_eq!(
        effects(b"DECLARE c CURSOR WITH HOLD FOR SELECT 1").pin(),
        Some(PinReason::Cursor)
    );
    assert_eq!(effects(b"select 1").pin(), None);
    let labels: Vec<_> = PinReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        labels,
        [
            "listen",
            "advisory_lock",
            "set",
            "temp",
            "prepare",
            "cursor",
            "other"
        ]
    );
    for (i, reason) in PinReason::ALL.into_iter().enumerate() {
        assert_eq!(reason.index(), i);
    }
}

#[test]
fn only_the_scan_window_is_read() {
    let mut sql = vec![b' '; SCAN_LIMIT];
    sql.extend_from_slice(b"LISTEN x");
    assert_eq!(effects(&sql), N);
    let mut sql = b"select 1 ".to_vec();
    sql.resize(SCAN_LIMIT - 30, b' ');
    sql.extend_from_slice(b", pg_advisory_lock(1)");
    assert_eq!(effects(&sql), A);
}

/// SQL-ish text made of the words and delimiters the classifier cares about.
fn sql_soup() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("LISTEN "),
        Just("unlisten "),
        Just("SET "),
        Just("local "),
        Just("session "),
        Just("search_path "),
        Just("timezone "),
        Just("set_config"),
        Just("pg_advisory_lock"),
        Just("pg_try_advisory_xact_lock"),
        Just("pg_temp."),
        Just("CREATE "),
        Just("TEMP "),
        Just("into "),
        Just("DECLARE "),
        Just("WITH "),
        Just("HOLD "),
        Just("true"),
        Just("false"),
        Just("("),
        Just(")"),
        Just(", "),
        Just("; "),
        Just("'"),
        Just("\""),
        Just("$$"),
        Just("$1"),
        Just("--"),
        Just("\n"),
        Just("/*"),
        Just("*/"),
        Just("E'\\'"),
        Just("select "),
        Just("x "),
    ];
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

proptest! {
    /// The fast path (prefilter plus first word) answers exactly what the full lexer does.
    #[test]
    fn the_fast_path_agrees_with_the_full_scan(sql in sql_soup()) {
        prop_assert_eq!(effects(sql.as_bytes()), classify(sql.as_bytes()));
    }

    /// Arbitrary bytes never panic, and bytes past the window never change the answer.
    #[test]
    fn never_panics_and_never_reads_past_the_window(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let got = effects(&bytes);
        let mut long = bytes.clone();
        long.resize(SCAN_LIMIT.max(bytes.len()), b' ');
        let windowed = effects(&long);
        long.extend_from_slice(&tail);
        prop_assert_eq!(effects(&long), windowed);
        let _ = got;
    }

    /// A statement after a `;` counts as much as the first one.
    #[test]
    fn a_later_statement_counts(prefix in "[a-z ]{0,20}") {
        let sql = format!("select {prefix}; LISTEN chan");
        prop_assert!(effects(sql.as_bytes()).contains(Effects::LISTEN));
    }
}
