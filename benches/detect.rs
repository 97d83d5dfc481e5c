//! Benchmark of routing stage one, detection: the per-statement cost that every `Parse` and
//! `Query` pays, with every built-in preset loaded (the default). The target is well under 1 µs
//! for gbrain's real statements and for a 4 KiB statement that matches nothing.
//!
//! Run: `cargo bench --bench detect -- --warm-up-time 1 --measurement-time 2`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lockroute::route::detect::{COMMENT_SCAN_LIMIT, Detector, MATCH_PREFIX_LIMIT};

const TAG: &str = "lockroute:direct";

/// `MinionQueue.claim()`, 6 parameters (gbrain v0.46.28.0), as sent in `Parse`.
const CLAIM: &str = "UPDATE minion_jobs SET
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

/// `MinionQueue.renewLock()`.
const RENEW_LOCK: &str = "UPDATE minion_jobs SET lock_until = now() + ($1::double precision * interval '1 millisecond'), updated_at = now()
       WHERE id = $2 AND lock_token = $3 AND status = 'active'
       RETURNING id";

/// pg-boss 12.27.0 `fetchNextJob()`: a rule that scans past its `WITH … next AS` head.
const PG_BOSS_FETCH: &str = "WITH next AS (SELECT id FROM pgboss.job_common j WHERE j.name = 'q' \
    AND j.state < 'active' ORDER BY j.id LIMIT 5 FOR UPDATE OF j SKIP LOCKED) UPDATE pgboss.job_common j \
    SET state = 'active', started_on = now(), heartbeat_on = now() FROM next WHERE j.id = next.id RETURNING j.*";

/// River's claim, recognised by its sqlc header comment.
const RIVER_CLAIM: &str = "-- name: JobGetAvailable :many\nWITH locked_jobs AS (SELECT * FROM river_job \
    WHERE state = 'available' LIMIT $1 FOR UPDATE SKIP LOCKED) UPDATE river_job SET state = 'running' \
    FROM locked_jobs WHERE river_job.id = locked_jobs.id RETURNING river_job.*";

/// A typical tagged-template read that stays on the pooler.
const TYPICAL_READ: &str = "SELECT p.slug, p.title, p.updated_at FROM pages p
       WHERE p.source_id = $1 AND p.deleted_at IS NULL
       ORDER BY p.updated_at DESC LIMIT $2";

/// A 4 KiB statement that no pattern matches: the worst case for a non-lock statement.
fn big_insert() -> String {
    format!(
        "INSERT INTO content_chunks (page_id, body) VALUES ($1, '{}')",
        "x".repeat(MATCH_PREFIX_LIMIT)
    )
}

/// The same size as a SELECT: the first word several preset rules look at.
fn big_select() -> String {
    format!(
        "SELECT id, body FROM content_chunks WHERE body <> '{}'",
        "x".repeat(MATCH_PREFIX_LIMIT)
    )
}

fn statements(c: &mut Criterion) {
    let detector = Detector::with_defaults(TAG);
    let big = big_insert();
    let tagged = format!("/* {TAG} */ SELECT pg_advisory_lock($1)");
    // A hostile leading comment that fills the whole scan window with near-misses of the tag.
    let hostile = format!(
        "/*{}*/ SELECT 1",
        "lockroute:".repeat(COMMENT_SCAN_LIMIT / 10)
    );

    // The same size as a SELECT and as a CTE: the first words every preset rule looks at.
    let big_select = big_select();
    let big_with = format!(
        "WITH next AS (SELECT id FROM t WHERE body <> '{}') SELECT * FROM next",
        "x".repeat(MATCH_PREFIX_LIMIT)
    );

    let mut group = c.benchmark_group("detect/statement");
    let cases: [(&str, &[u8]); 10] = [
        ("claim", CLAIM.as_bytes()),
        ("renew_lock", RENEW_LOCK.as_bytes()),
        ("typical_read", TYPICAL_READ.as_bytes()),
        ("non_matching_4k", big.as_bytes()),
        ("non_matching_select_4k", big_select.as_bytes()),
        ("near_miss_with_4k", big_with.as_bytes()),
        ("pg_boss_fetch", PG_BOSS_FETCH.as_bytes()),
        ("river_comment", RIVER_CLAIM.as_bytes()),
        ("statement_tagged", tagged.as_bytes()),
        ("hostile_comment_4k", hostile.as_bytes()),
    ];
    for (name, sql) in cases {
        group.bench_function(name, |b| b.iter(|| detector.statement(black_box(sql))));
    }
    // A named statement: the name rules run first (graphile-worker's `get_job/…`), and a
    // driver's generated name (pgx) costs one failed anchored match.
    let named: [(&str, &[u8]); 2] = [
        ("graphile_get_job", b"get_job/graphile_worker"),
        ("pgx_stmtcache", b"stmtcache_19a8b7c6d5e4f3a2"),
    ];
    for (name, statement) in named {
        group.bench_function(format!("named_{name}"), |b| {
            b.iter(|| detector.statement_named(black_box(statement), black_box(b"select $1")))
        });
    }
    group.finish();
}

fn sessions(c: &mut Criterion) {
    let detector = Detector::with_defaults(TAG);
    let mut group = c.benchmark_group("detect/session_tagged");
    let cases: [(&str, &[u8]); 2] = [
        ("tagged", b"gbrain-worker lockroute:direct"),
        ("postgres_js", b"postgres.js"),
    ];
    for (name, application_name) in cases {
        group.bench_function(name, |b| {
            b.iter(|| detector.session_tagged(black_box(application_name)))
        });
    }
    group.finish();
}

/// Detection plus the routing decision, per statement: what lockroute does at the first
/// message of every unit.
fn decisions(c: &mut Criterion) {
    use lockroute::config::Mode;
    use lockroute::route::decide::{UnitContext, decide};
    let detector = Detector::with_defaults(TAG);
    let mut group = c.benchmark_group("detect_and_decide");
    let cases: [(&str, &[u8]); 3] = [
        ("claim", CLAIM.as_bytes()),
        ("renew_lock", RENEW_LOCK.as_bytes()),
        ("typical_read", TYPICAL_READ.as_bytes()),
    ];
    for (name, sql) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                decide(&UnitContext {
                    mode: Mode::Split,
                    session_tagged: false,
                    pinned: false,
                    open_transaction: None,
                    detected: detector.statement(black_box(sql)),
                })
            })
        });
    }
    group.finish();
}

/// The statement-effects classifier (session features) on the same statements, plus a 4 KiB
/// statement with no trigger word and one whose advisory lock is at its very end.
fn classify(c: &mut Criterion) {
    use lockroute::route::effects::effects;
    let mut group = c.benchmark_group("effects");
    let mut long = String::from("SELECT a FROM t WHERE b IN (");
    while long.len() < 4000 {
        long.push_str("'value', ");
    }
    long.push_str("'x')");
    let locked = format!("{long} AND pg_try_advisory_lock(1)");
    let cases: [(&str, &[u8]); 5] = [
        ("claim", CLAIM.as_bytes()),
        ("renew_lock", RENEW_LOCK.as_bytes()),
        ("typical_read", TYPICAL_READ.as_bytes()),
        ("no_trigger_4k", long.as_bytes()),
        ("lock_at_4k", locked.as_bytes()),
    ];
    for (name, sql) in cases {
        group.bench_function(name, |b| b.iter(|| effects(black_box(sql))));
    }
    group.finish();
}

/// Everything a unit's first statement pays when it is not the session's last one (a simple
/// `Query`, or a new text): the transaction-command check, detection with every preset, and
/// the effects classifier. Issue 16's goal: under 1 µs for gbrain's statements and for a
/// 4 KiB statement that matches nothing.
fn unit(c: &mut Criterion) {
    use lockroute::route::effects::effects;
    use lockroute::route::txcmd::tx_command;
    let detector = Detector::with_defaults(TAG);
    let big = big_insert();
    let big_select = big_select();
    let mut group = c.benchmark_group("unit");
    let cases: [(&str, &[u8]); 5] = [
        ("claim", CLAIM.as_bytes()),
        ("renew_lock", RENEW_LOCK.as_bytes()),
        ("typical_read", TYPICAL_READ.as_bytes()),
        ("non_matching_4k", big.as_bytes()),
        ("non_matching_select_4k", big_select.as_bytes()),
    ];
    for (name, sql) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                let sql = black_box(sql);
                (
                    tx_command(sql),
                    detector.statement_named(b"", sql),
                    effects(sql),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, statements, sessions, decisions, classify, unit);
criterion_main!(benches);
