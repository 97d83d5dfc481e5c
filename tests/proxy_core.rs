//! The proxy core against the real stand-in (PostgreSQL + PgBouncer in transaction mode):
//! real clients, auth, TLS both ways, cancel, and pooler loss.

mod common;

use common::proxy::{Proxy, ProxyOptions};
use common::{StandIn, current_user, pg_connect, pgbouncer_admin};
use tokio_postgres::error::SqlState;

/// Runs psql off the runtime's thread: the proxy under test runs on the same runtime.
async fn psql(url: &str, sql: &str) -> std::process::Output {
    let mut cmd = std::process::Command::new("psql");
    cmd.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .env_remove("PGPASSWORD");
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("psql runs")
}

#[tokio::test]
async fn untagged_query_runs_on_the_pooler_lane() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    assert_eq!(current_user(&client).await, "pooler");
    proxy.stop().await;
}

#[tokio::test]
async fn tokio_postgres_prepared_statements_survive_pooler_transactions() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    let table = common::unique_name("tp");
    client
        .batch_execute(&format!(
            "create table {table} (id int primary key, v text)"
        ))
        .await
        .unwrap();
    let insert = client
        .prepare(&format!("insert into {table} values ($1, $2)"))
        .await
        .unwrap();
    let select = client
        .prepare(&format!("select v from {table} where id = $1"))
        .await
        .unwrap();
    // Each statement is its own pooler transaction, so PgBouncer may hand each one another
    // server: the named statements must keep working regardless.
    for i in 0..50i32 {
        let v = format!("v{i}");
        client.execute(&insert, &[&i, &v]).await.unwrap();
        let row = client.query_one(&select, &[&i]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), format!("v{i}"));
    }
    let mut client = client;
    let tx = client.transaction().await.unwrap();
    tx.execute(&format!("update {table} set v = 'in-tx' where id = 1"), &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let direct = pg_connect(&StandIn::shared().direct_url).await;
    let v: String = direct
        .query_one(&format!("select v from {table} where id = 1"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "in-tx");
    direct
        .batch_execute(&format!("drop table {table}"))
        .await
        .unwrap();
    proxy.stop().await;
}

#[tokio::test]
async fn psql_with_sslmode_require_and_disable_both_work() {
    let proxy = Proxy::start(&[]).await;
    let port = proxy.addr.port();
    let tls = psql(
        &format!("postgres://app:app-secret@127.0.0.1:{port}/app?sslmode=require"),
        "\\conninfo",
    )
    .await;
    assert!(
        tls.status.success(),
        "{}",
        String::from_utf8_lossy(&tls.stderr)
    );
    assert!(
        String::from_utf8_lossy(&tls.stdout).contains("SSL connection"),
        "{tls:?}"
    );
    let plain = psql(
        &format!("postgres://app:app-secret@127.0.0.1:{port}/app?sslmode=disable"),
        "\\conninfo",
    )
    .await;
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("SSL connection"),
        "{plain:?}"
    );
    let who = psql(
        &format!("postgres://app:app-secret@127.0.0.1:{port}/app?sslmode=require"),
        "select current_user",
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&who.stdout).trim(), "pooler");
    proxy.stop().await;
}

#[tokio::test]
async fn wrong_password_is_rejected_with_28p01() {
    let proxy = Proxy::start(&[]).await;
    let url = format!(
        "postgres://app:wrong@127.0.0.1:{}/app?sslmode=disable",
        proxy.addr.port()
    );
    let err = common::proxy::connect_err(&url).await;
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
    let unknown_user = format!(
        "postgres://mallory:app-secret@127.0.0.1:{}/app?sslmode=disable",
        proxy.addr.port()
    );
    let err = common::proxy::connect_err(&unknown_user).await;
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
    // The proxy keeps serving.
    assert_eq!(current_user(&proxy.connect().await).await, "pooler");
    proxy.stop().await;
}

#[tokio::test]
async fn upstream_verify_full_with_the_test_ca_connects() {
    let s = StandIn::shared();
    let ca = s.ca.display().to_string();
    let pooler = format!(
        "postgres://app:app-secret@localhost:{}/app?sslmode=verify-full&sslrootcert={ca}",
        s.pgb_port
    );
    let direct = format!(
        "postgres://app:app-secret@localhost:{}/app?sslmode=verify-full&sslrootcert={ca}",
        s.pg_port
    );
    let proxy = Proxy::start_with(ProxyOptions {
        pooler_url: &pooler,
        direct_url: &direct,
        args: &[],
        env: &[],
    })
    .await;
    let client = proxy.connect().await;
    assert_eq!(current_user(&client).await, "pooler");
    // Ask PostgreSQL itself that the direct lane is encrypted.
    let row = client
        .query_one(
            "/* lockroute:direct */ select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the direct lane must run over TLS");
    proxy.stop().await;
}

#[tokio::test]
async fn upstream_verify_full_with_the_wrong_root_fails_cleanly() {
    let s = StandIn::shared();
    // The server certificate is not a CA: verification must fail, not fall back to plaintext.
    let wrong_root = s.dir.join("server.crt").display().to_string();
    let pooler = format!(
        "postgres://app:app-secret@localhost:{}/app?sslmode=verify-full&sslrootcert={wrong_root}",
        s.pgb_port
    );
    let proxy = Proxy::start_with(ProxyOptions {
        pooler_url: &pooler,
        direct_url: &s.direct_url,
        args: &[],
        env: &[],
    })
    .await;
    let err = common::proxy::connect_err(&proxy.url()).await;
    assert_eq!(
        err.code(),
        Some(&SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
        "{err}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn cancel_request_cancels_a_running_pg_sleep() {
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    let token = client.cancel_token();
    let running = tokio::spawn(async move { client.simple_query("select pg_sleep(30)").await });
    common::proxy::wait_for_activity(&StandIn::shared().super_url, "select pg_sleep(30)").await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let err = running
        .await
        .unwrap()
        .expect_err("the query must be cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
    proxy.stop().await;
}

#[tokio::test]
async fn pgbouncer_kill_while_idle_is_invisible_to_the_client() {
    let s = StandIn::shared();
    let private = s.private_pooler("kill_idle");
    let proxy = Proxy::in_front_of(&private.pooler_url).await;
    let client = proxy.connect().await;
    let before: i32 = client
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    pgbouncer_admin(&private.admin_url, "KILL app").await;
    pgbouncer_admin(&private.admin_url, "RESUME app").await;
    for _ in 0..3 {
        let after: i32 = client
            .query_one("select pg_backend_pid()", &[])
            .await
            .expect("the drop is invisible")
            .get(0);
        assert_ne!(
            before, after,
            "KILL must have closed the old server connection"
        );
    }
    assert_eq!(current_user(&client).await, "pooler");
    proxy.stop().await;
}

#[tokio::test]
async fn pgbouncer_kill_mid_transaction_gives_08006_then_a_usable_session() {
    let s = StandIn::shared();
    let private = s.private_pooler("kill_tx");
    let proxy = Proxy::in_front_of(&private.pooler_url).await;
    let client = proxy.connect().await;
    client.batch_execute("begin").await.unwrap();
    client.query_one("select 1", &[]).await.unwrap();
    pgbouncer_admin(&private.admin_url, "KILL app").await;
    pgbouncer_admin(&private.admin_url, "RESUME app").await;
    let err = client
        .query_one("select 2", &[])
        .await
        .expect_err("the transaction is gone");
    assert_eq!(err.code(), Some(&SqlState::CONNECTION_FAILURE), "{err}");
    let err = client
        .query_one("select 3", &[])
        .await
        .expect_err("still in the failed transaction");
    assert_eq!(
        err.code(),
        Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
        "{err}"
    );
    client.batch_execute("rollback").await.unwrap();
    let row = client
        .query_one("select 4::int", &[])
        .await
        .expect("the session is usable");
    assert_eq!(row.get::<_, i32>(0), 4);
    assert_eq!(current_user(&client).await, "pooler");
    proxy.stop().await;
}

#[tokio::test]
async fn pgbench_all_protocol_modes_run_with_zero_failures() {
    let s = StandIn::shared();
    let init = std::process::Command::new("pgbench")
        .args(["-i", "-s", "1", "-q", &s.direct_url])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let proxy = Proxy::start(&[]).await;
    let url = proxy.url();
    for mode in ["simple", "extended", "prepared"] {
        for script in [&["-S"][..], &["-N"][..]] {
            let url = url.clone();
            let args: Vec<String> = ["-n", "-c", "8", "-j", "2", "-t", "150", "-M", mode]
                .iter()
                .chain(script)
                .map(|s| s.to_string())
                .chain([url])
                .collect();
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new("pgbench").args(&args).output()
            })
            .await
            .unwrap()
            .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "pgbench -M {mode} {script:?}: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout.contains("number of transactions actually processed: 1200/1200"),
                "{stdout}"
            );
            assert!(
                !stdout.contains("number of failed transactions: ")
                    || stdout.contains("number of failed transactions: 0 "),
                "{stdout}"
            );
            let tps = stdout.lines().find(|l| l.starts_with("tps")).unwrap_or("");
            eprintln!("pgbench -M {mode} {script:?} through lockroute: {tps}");
        }
    }
    proxy.stop().await;
}

#[tokio::test]
async fn copy_in_and_out_pass_through_and_leave_the_session_usable() {
    use futures_util::{SinkExt, TryStreamExt};
    let proxy = Proxy::start(&[]).await;
    let client = proxy.connect().await;
    let table = common::unique_name("copy");
    client
        .batch_execute(&format!("create table {table} (id int, v text)"))
        .await
        .unwrap();
    // Extended-protocol COPY (tokio-postgres): Bind/Execute/Sync, data, CopyDone, Sync.
    let sink = client
        .copy_in(&format!("copy {table} from stdin"))
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::from_static(b"1\tone\n2\ttwo\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    let out: Vec<bytes::Bytes> = client
        .copy_out(&format!("copy {table} to stdout"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(out.concat(), b"1\tone\n2\ttwo\n");
    // After a COPY the client can still switch lanes: nothing is left owed.
    let rows = common::simple_rows(&client, "/* lockroute:direct */ select current_user").await;
    assert_eq!(rows[0].get(0), Some("app"));
    // psql's \copy uses the simple protocol, both ways.
    let url = proxy.url();
    let csv = std::env::temp_dir().join(format!("{table}.tsv"));
    std::fs::write(&csv, "3\tthree\n").unwrap();
    let copy_in = psql(&url, &format!("\\copy {table} from '{}'", csv.display())).await;
    assert!(
        copy_in.status.success(),
        "{}",
        String::from_utf8_lossy(&copy_in.stderr)
    );
    let copy_out = psql(
        &url,
        &format!("\\copy (select v from {table} order by id) to stdout"),
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&copy_out.stdout),
        "one\ntwo\nthree\n"
    );
    std::fs::remove_file(csv).unwrap();
    client
        .batch_execute(&format!("drop table {table}"))
        .await
        .unwrap();
    proxy.stop().await;
}
