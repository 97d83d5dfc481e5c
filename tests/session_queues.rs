//! Session features as job queues use them, through lockroute with default flags and a real
//! pooler that drops sockets: LISTEN wake-ups from real drivers while PgBouncer is `KILL`ed,
//! and good_job-style workers whose job lock is a session advisory lock.

mod common;
#[path = "faults/reaper.rs"]
mod reaper;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::proxy::Proxy;
use common::{StandIn, current_user, pg_connect, simple_rows, unique_name};
use reaper::reap;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn js_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Sends `count` NOTIFYs on `channel`, one every `every`, from a direct superuser connection.
async fn notify(channel: &str, count: usize, every: Duration) {
    let notifier = pg_connect(&StandIn::shared().super_url).await;
    for i in 0..count {
        tokio::time::sleep(every).await;
        simple_rows(&notifier, &format!("NOTIFY {channel}, 'job-{i}'")).await;
    }
}

/// The venv's python (scripts/queues-venv.sh; `LOCKROUTE_QUEUES_VENV` moves it).
fn python() -> std::path::PathBuf {
    std::env::var_os("LOCKROUTE_QUEUES_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-queues"))
        .join("bin/python")
}

/// An untagged LISTEN client (`program script`) through lockroute while PgBouncer is `KILL`ed
/// every 1–2 s: the LISTEN pins it to a dedicated direct session, so every NOTIFY arrives.
async fn listen_under_reaping(name: &str, program: std::path::PathBuf, script: std::path::PathBuf) {
    let private = Arc::new(StandIn::shared().private_pooler(name));
    let proxy = Proxy::in_front_of(&private.pooler_url).await;
    let channel = unique_name("wake");
    let mut child = Command::new(program)
        .arg(script)
        .env("DATABASE_URL", proxy.url())
        .env("CHANNEL", &channel)
        .env("COUNT", "10")
        .env("SECONDS", "40")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the client runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the client starts listening")
        .unwrap();
    assert_eq!(first.as_deref(), Some("listening"));
    let reaping = tokio::spawn(reap(Arc::clone(&private), Duration::from_secs(12)));
    notify(&channel, 10, Duration::from_millis(1000)).await;
    let reaped = reaping.await.unwrap();
    assert!(reaped.kills >= 4, "{reaped:?}");
    let summary = tokio::time::timeout(Duration::from_secs(45), lines.next_line())
        .await
        .expect("the client reports")
        .unwrap()
        .unwrap_or_default();
    let status = child.wait().await.unwrap();
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["received"], 10, "{summary}");
    assert!(status.success(), "{summary}");
    assert!(
        proxy
            .metric("lockroute_pins_total{reason=\"listen\"}")
            .await
            >= 1.0,
        "the LISTEN pinned its client"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn postgres_js_listen_gets_every_notify_while_the_pooler_is_reaped() {
    listen_under_reaping("listenjs", "node".into(), js_dir().join("listen.mjs")).await;
}

#[tokio::test]
async fn psycopg_listen_gets_every_notify_while_the_pooler_is_reaped() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py/listen.py");
    listen_under_reaping("listenpy", python(), script).await;
}

/// Four good_job-style workers take each job with `pg_try_advisory_lock` inside a CTE, run it,
/// and unlock it, for 20 s through lockroute with default flags. No job runs twice, every lock
/// is released, and none is left in `pg_locks` once the workers are gone.
#[tokio::test]
async fn advisory_lock_workers_never_run_a_job_twice() {
    let jobs = unique_name("good_jobs");
    let runs = format!("{jobs}_runs");
    // Advisory lock keys are database-wide: this run's job ids are its own range.
    let base = 9_000_000 + i64::from(std::process::id() % 1000) * 1000;
    let admin = pg_connect(&StandIn::shared().super_url).await;
    simple_rows(
        &admin,
        &format!(
            "create table {jobs} (id bigint primary key, finished_at timestamptz);
             create table {runs} (job_id bigint, worker int, ran_by text default current_user);
             grant all on {jobs}, {runs} to app, pooler;
             insert into {jobs} (id) select {base} + g from generate_series(1, 400) g;"
        ),
    )
    .await;
    let proxy = Proxy::start(&[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut workers = Vec::new();
    for worker in 0..4 {
        let url = proxy.url();
        let (jobs, runs) = (jobs.clone(), runs.clone());
        workers.push(tokio::spawn(async move {
            let client = pg_connect(&url).await;
            let mut done = 0u32;
            while tokio::time::Instant::now() < deadline {
                // good_job's shape: the lock is taken inside the statement, per candidate row.
                let claim = format!(
                    "with rows as (select id from {jobs} where finished_at is null \
                     order by id limit 10) \
                     select id from rows where pg_try_advisory_lock(id) limit 1"
                );
                let rows = client.query(&claim, &[]).await.unwrap();
                let Some(row) = rows.first() else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let id: i64 = row.get(0);
                // A job another worker finished between the read and the lock is skipped.
                let finished = client
                    .query_one(
                        &format!("select finished_at is not null from {jobs} where id = $1"),
                        &[&id],
                    )
                    .await
                    .unwrap()
                    .get::<_, bool>(0);
                if !finished {
                    client
                        .execute(
                            &format!("insert into {runs} (job_id, worker) values ($1, $2)"),
                            &[&id, &worker],
                        )
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    client
                        .execute(
                            &format!("update {jobs} set finished_at = now() where id = $1"),
                            &[&id],
                        )
                        .await
                        .unwrap();
                    done += 1;
                }
                let unlocked: bool = client
                    .query_one("select pg_advisory_unlock($1)", &[&id])
                    .await
                    .unwrap()
                    .get(0);
                assert!(
                    unlocked,
                    "the unlock runs on the session that holds the lock"
                );
            }
            assert_eq!(current_user(&client).await, "app", "the worker was pinned");
            done
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await.unwrap();
    }
    let twice = simple_rows(
        &admin,
        &format!(
            "select count(*) from (select job_id from {runs} group by job_id having count(*) > 1) d"
        ),
    )
    .await;
    assert_eq!(twice[0].get(0), Some("0"), "a job ran twice");
    let ran = simple_rows(
        &admin,
        &format!("select count(*), count(*) filter (where ran_by = 'app') from {runs}"),
    )
    .await;
    assert_eq!(ran[0].get(0), Some(total.to_string().as_str()));
    assert_eq!(
        ran[0].get(0),
        ran[0].get(1),
        "every run was on the direct role"
    );
    assert!(total > 20, "the workers ran only {total} jobs");
    proxy.stop().await;
    let mut left = String::new();
    for _ in 0..40 {
        left = simple_rows(
            &admin,
            &format!(
                "select count(*) from pg_locks where locktype = 'advisory' and objsubid = 1 \
                 and objid between {} and {}",
                base + 1,
                base + 400
            ),
        )
        .await[0]
            .get(0)
            .unwrap_or_default()
            .to_owned();
        if left == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, "0", "advisory locks left in pg_locks");
    simple_rows(&admin, &format!("drop table {jobs}, {runs}")).await;
}
