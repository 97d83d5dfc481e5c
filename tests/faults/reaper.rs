//! The pooler reaper of tests/faults_pooler.rs: PgBouncer `KILL` + `RESUME` every 1 to 2 s, and
//! what it takes to keep PgBouncer 1.18 itself alive while doing that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::common::PrivatePooler;

/// What the reaper did: KILLs sent, and how often PgBouncer itself died or wedged and was
/// restarted on its port.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reaped {
    pub kills: u32,
    pub pooler_restarts: u32,
}

/// `KILL app` then `RESUME app` on a PgBouncer every 1 to 2 s for `span`.
///
/// Before each KILL the pool holds as many server connections as the fleet can use, all logged
/// in: PgBouncer 1.18 wedges (spins at full CPU, answers nothing) when a KILL lands on clients
/// waiting for a server login to finish. (Polling `SHOW POOLS` for logins in progress instead
/// made it segfault.) Over minutes of this it still segfaults now and then; the reaper then
/// restarts it on the same port and counts it. Those are bugs of the stand-in's pooler, not the
/// fault under test, and to the fleet a restart is one more way the pooler drops every socket.
pub async fn reap(pooler: Arc<PrivatePooler>, span: Duration) -> Reaped {
    reap_every(pooler, span, 1000..=2000).await
}

/// The same, with the pause between KILLs drawn from `period_ms` (e.g. `1500..=1500`).
pub async fn reap_every(
    pooler: Arc<PrivatePooler>,
    span: Duration,
    period_ms: std::ops::RangeInclusive<u64>,
) -> Reaped {
    let deadline = Instant::now() + span;
    let mut reaped = Reaped::default();
    if let Err(e) = warm(&pooler).await {
        panic!("PgBouncer did not serve the first logins: {e}");
    }
    let mut next = Instant::now();
    loop {
        next += Duration::from_millis(rand::random_range(period_ms.clone()));
        tokio::time::sleep_until(next.into()).await;
        if Instant::now() >= deadline {
            return reaped;
        }
        let mut step = admin(&pooler, "KILL app").await;
        if step.is_ok() {
            reaped.kills += 1;
            tokio::time::sleep(Duration::from_millis(rand::random_range(50..=300))).await;
            step = admin(&pooler, "RESUME app").await;
        }
        if step.is_ok() {
            step = warm(&pooler).await;
        }
        if let Err(e) = step {
            eprintln!(
                "PgBouncer stopped answering ({e}); restarting it on its port\n{}",
                pooler.log_tail(10)
            );
            reaped.pooler_restarts += 1;
            let restarting = Arc::clone(&pooler);
            tokio::task::spawn_blocking(move || restarting.restart(Duration::ZERO))
                .await
                .unwrap();
            if let Err(e) = warm(&pooler).await {
                panic!("PgBouncer did not come back: {e}");
            }
            next = Instant::now();
        }
    }
}

/// Opens 8 server connections at once (more than the fleet's transactions use at a time), so
/// that the fleet's demand needs no new server login until the next KILL.
async fn warm(pooler: &PrivatePooler) -> Result<(), String> {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let url = pooler.pooler_url.clone();
            tokio::spawn(async move {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                let slept = client.simple_query("select pg_sleep(0.1)").await;
                slept.map(|_| ()).map_err(|e| e.to_string())
            })
        })
        .collect();
    let all = futures_util::future::join_all(tasks);
    match tokio::time::timeout(Duration::from_secs(10), all).await {
        Ok(results) if results.iter().all(|r| matches!(r, Ok(Ok(())))) => Ok(()),
        outcome => Err(format!("8 logins: {outcome:?}")),
    }
}

/// One admin command, bounded, so a wedged or crashed PgBouncer cannot hang the test.
async fn admin(pooler: &PrivatePooler, cmd: &str) -> Result<(), String> {
    let admin_url = pooler.admin_url.as_str();
    let answer = async {
        let (console, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        console.simple_query(cmd).await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(10), answer).await {
        Ok(Ok(_)) => Ok(()),
        outcome => Err(format!("{cmd}: {outcome:?}")),
    }
}
