//! Issue 13, "Done when": real, unmodified job queues (pg-boss 12, graphile-worker 0.18,
//! procrastinate 3) behind lockroute with DEFAULT flags while the pooler drops every socket.
//!
//! Each test gives one queue a PgBouncer of its own, `KILL app` + `RESUME app` on its admin
//! console every 1.5 s for 30 s (`LOCKROUTE_QUEUE_SECONDS`), and 40 jobs of 2 to 4 s (longer than
//! the reap interval), then 10 wake-up jobs sent while the worker is idle. The handler records
//! every run of every job on PostgreSQL itself (`queue_runs`), and an audit trigger on the
//! queue's own tables records the role that ran each claim, heartbeat and completion
//! (`queue_audit`): `app` is the direct lane, `pooler` is PgBouncer. The runners are
//! js/queues/*.mjs and py/procrastinate_run.py; each ends with one JSON line, and each test prints
//! one grep-able `QUEUE ...` line (`cargo nextest run --test queues --no-capture | grep ^QUEUE`).
//!
//! Through lockroute every job completes exactly once, nothing expires or stalls, the lock path
//! runs as the direct role and the queue's LISTEN wake-ups arrive. Straight at the same
//! PgBouncer, the same run fails in at least one of those ways.
//!
//! What the through-lockroute assertions need from lockroute (issue 13, issue 9), marked at each:
//! [presets]  built-in per-queue presets, on by default, that send claim and heartbeat to the
//!            shared direct lane;
//! [pinning]  auto-pinning of a client that LISTENs to a dedicated direct session;
//! [begin]    BEGIN-deferred lane choice (procrastinate's psycopg pool wraps nothing in a
//!            transaction today, so no assertion here needs it; it is listed for the lead).

mod common;
#[allow(dead_code)] // tests/faults_pooler.rs uses the other half
#[path = "faults/reaper.rs"]
mod reaper;
#[path = "queues/runner.rs"]
mod runner;

use std::sync::Arc;
use std::time::Duration;

use common::proxy::Proxy;
use common::{StandIn, unique_name};
use reaper::{Reaped, reap_every};
use runner::{Outcome, Queue};

const JOBS: u64 = 40;
const WAKEUPS: u64 = 10;
const REAP_EVERY_MS: u64 = 1500;

fn queue_seconds() -> u64 {
    std::env::var("LOCKROUTE_QUEUE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

/// One run of `queue` against `url` (lockroute, or the private PgBouncer itself) while `pooler`
/// is reaped: setup first (schema, audit trigger, jobs), then the worker and the reaper together.
async fn reaped_run(
    queue: Queue,
    path: &str,
    url: &str,
    pooler: &Arc<common::PrivatePooler>,
) -> (Outcome, Reaped) {
    let s = StandIn::shared();
    let run_id = unique_name(if path == "lockroute" { "lr" } else { "pgb" });
    let setup = runner::run(queue, "setup", url, &s.direct_url, &run_id).await;
    assert!(
        setup.ok,
        "{} setup failed: {}\n{}",
        queue.name(),
        setup.summary,
        setup.stderr
    );
    let span = Duration::from_secs(queue_seconds());
    let (out, reaped) = tokio::join!(
        runner::run(queue, "run", url, &s.direct_url, &run_id),
        reap_every(Arc::clone(pooler), span, REAP_EVERY_MS..=REAP_EVERY_MS)
    );
    report(queue, path, &out, reaped);
    assert!(
        out.ok,
        "{} runner failed: {}\n{}",
        queue.name(),
        out.summary,
        out.stderr
    );
    assert!(
        u64::from(reaped.kills) >= queue_seconds() / 3,
        "the reaper ran: {reaped:?}"
    );
    (out, reaped)
}

/// One grep-able line per run, for the table.
fn report(queue: Queue, path: &str, out: &Outcome, reaped: Reaped) {
    eprintln!(
        "QUEUE queue={} path={path} done={}/{JOBS} run_twice={} expired={} stalled={} \
         notify={}/{WAKEUPS} wake_fast={}/{WAKEUPS} errors={} kills={} pooler_restarts={} \
         lanes={} error_kinds={}",
        queue.name(),
        out.count("done"),
        out.list_len("run_twice"),
        out.count("expired"),
        out.count("stalled"),
        out.count("listen_channel_notifications"),
        out.count("wakeups_fast"),
        out.count("error_total"),
        reaped.kills,
        reaped.pooler_restarts,
        out.summary["lanes"],
        out.summary["errors"],
    );
}

async fn through_lockroute(queue: Queue) {
    let s = StandIn::shared();
    let private = Arc::new(s.private_pooler("queue_lr"));
    // DEFAULT flags: no --lock-pattern, no tag, no preset named.
    let proxy = Proxy::in_front_of(&private.pooler_url).await;
    let (out, _) = reaped_run(queue, "lockroute", &proxy.url(), &private).await;
    let sum = &out.summary;

    // Every job completes exactly once: the queue says done, and the handler ran each once.
    assert_eq!(out.count("done"), JOBS, "every job completes: {sum}");
    assert_eq!(out.count("main_started"), JOBS, "{sum}");
    assert_eq!(out.list_len("run_twice"), 0, "no job runs twice: {sum}");
    // No job expired (pg-boss), failed or was left locked (graphile-worker, procrastinate).
    assert_eq!(out.count("expired"), 0, "{sum}");
    assert_eq!(out.count("stalled"), 0, "{sum}");

    // [presets] The lock path ran on the direct lane, as the server saw it.
    for op in queue.lock_ops() {
        assert!(
            out.lane(op, "app") > 0,
            "{op} ran as the direct role: {sum}"
        );
        assert_eq!(out.lane(op, "pooler"), 0, "no {op} via PgBouncer: {sum}");
    }

    // [pinning] The queue's own LISTEN connection received every wake-up's NOTIFY, and every
    // wake-up job ran, once. (How fast the idle worker picked each up, `wakeups_fast`, is
    // reported on the QUEUE line, not asserted: it is a latency under a reaping pooler.)
    assert!(
        out.count("listen_channel_notifications") >= WAKEUPS,
        "the LISTEN wake-ups arrive: {sum}"
    );
    assert_eq!(out.count("handler_runs"), JOBS + WAKEUPS, "{sum}");
    proxy.stop().await;
}

/// The failure baseline: the same workload straight at the same kind of reaped PgBouncer. It
/// must fail at least one of the promises above; the report line says which.
async fn straight_at_pgbouncer(queue: Queue) {
    let s = StandIn::shared();
    let private = Arc::new(s.private_pooler("queue_pgb"));
    let url = private.pooler_url.clone();
    let (out, _) = reaped_run(queue, "pgbouncer", &url, &private).await;
    let failures: Vec<&str> = [
        (out.count("done") < JOBS, "not every job completed"),
        (out.list_len("run_twice") > 0, "a job ran twice"),
        (out.count("expired") > 0, "a job expired or failed"),
        (out.count("stalled") > 0, "a job stalled"),
        (
            out.count("listen_channel_notifications") < WAKEUPS,
            "LISTEN wake-ups were lost",
        ),
    ]
    .into_iter()
    .filter_map(|(failed, what)| failed.then_some(what))
    .collect();
    eprintln!("{} straight at PgBouncer: {failures:?}", queue.name());
    assert!(
        !failures.is_empty(),
        "the reaped pooler broke nothing: {}",
        out.summary
    );
}

#[tokio::test]
async fn pg_boss_keeps_every_job_through_lockroute_under_reaping() {
    through_lockroute(Queue::PgBoss).await;
}

#[tokio::test]
async fn pg_boss_fails_straight_at_a_reaped_pgbouncer() {
    straight_at_pgbouncer(Queue::PgBoss).await;
}

#[tokio::test]
async fn graphile_worker_keeps_every_job_through_lockroute_under_reaping() {
    through_lockroute(Queue::Graphile).await;
}

#[tokio::test]
async fn graphile_worker_fails_straight_at_a_reaped_pgbouncer() {
    straight_at_pgbouncer(Queue::Graphile).await;
}

#[tokio::test]
async fn procrastinate_keeps_every_job_through_lockroute_under_reaping() {
    through_lockroute(Queue::Procrastinate).await;
}

#[tokio::test]
async fn procrastinate_fails_straight_at_a_reaped_pgbouncer() {
    straight_at_pgbouncer(Queue::Procrastinate).await;
}
