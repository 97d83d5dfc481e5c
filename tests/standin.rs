//! Stage "stand-in": proves that the local Supabase stand-in behaves as the other tests assume.
//! Each lane logs in as its own server role, the roles share tables, TLS verifies against the
//! test CA, and PgBouncer's admin console can drop pooled connections.

mod common;

use std::process::Command;

use common::{StandIn, current_user, pg_connect, pgbouncer_admin, simple_rows, unique_name};
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn direct_url_runs_as_app() {
    let client = pg_connect(&StandIn::shared().direct_url).await;
    assert_eq!(current_user(&client).await, "app");
}

#[tokio::test]
async fn pooler_url_runs_as_pooler_in_transaction_mode() {
    let s = StandIn::shared();
    let client = pg_connect(&s.pooler_url).await;
    assert_eq!(current_user(&client).await, "pooler");
    let pools = pgbouncer_admin(&s.pgb_admin_url, "SHOW POOLS").await;
    let app = pools
        .iter()
        .find(|row| row.get("database") == Some("app"))
        .expect("SHOW POOLS lists app");
    assert_eq!(app.get("user"), Some("pooler"));
    assert_eq!(app.get("pool_mode"), Some("transaction"));
}

#[tokio::test]
async fn table_created_through_either_lane_is_fully_usable_through_the_other() {
    // Simple protocol throughout: see `current_user` on named statements through PgBouncer.
    let s = StandIn::shared();
    let direct = pg_connect(&s.direct_url).await;
    let pooler = pg_connect(&s.pooler_url).await;
    for (creator, user) in [(&pooler, &direct), (&direct, &pooler)] {
        let table = unique_name("shared");
        let create = format!(
            "create table {table} (id bigserial primary key, v text);
             insert into {table} (v) values ('creator')"
        );
        creator.batch_execute(&create).await.unwrap();
        let change = format!(
            "insert into {table} (v) values ('user');
             alter table {table} add column w int;
             create index on {table} (v)"
        );
        user.batch_execute(&change).await.unwrap();
        let rows = simple_rows(creator, &format!("select count(*) from {table}")).await;
        assert_eq!(rows[0].get(0), Some("2"));
        user.batch_execute(&format!("drop table {table}"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn startup_parameters_lockroute_forwards_are_accepted_by_pgbouncer() {
    // postgres.js sends statement_timeout and idle_in_transaction_session_timeout at startup;
    // PgBouncer must not refuse them (ignore_startup_parameters).
    let url = format!(
        "{}&options=-c%20statement_timeout%3D5000&application_name=standin",
        StandIn::shared().pooler_url
    );
    let client = pg_connect(&url).await;
    assert_eq!(current_user(&client).await, "pooler");
}

/// Runs `select ...` through psql with `sslmode=verify-full` against `localhost:port`, trusting
/// `root`; returns psql's exit status and stdout.
fn psql_verify_full(port: u16, root: &std::path::Path, sql: &str) -> (bool, String) {
    let out = Command::new("psql")
        .args(["-X", "-At", "-c", sql])
        .env("PGHOST", "localhost")
        .env("PGPORT", port.to_string())
        .env("PGDATABASE", "app")
        .env("PGUSER", "app")
        .env("PGPASSWORD", "app-secret")
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", root)
        .output()
        .expect("run psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

#[tokio::test]
async fn tls_verify_full_with_the_test_ca_works_on_both_endpoints() {
    let s = StandIn::shared();
    let (ok, out) = psql_verify_full(
        s.pg_port,
        &s.ca,
        "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
    );
    assert!(ok && out == "t", "direct endpoint over TLS: {out:?}");
    // PgBouncer terminates TLS itself; its link to PostgreSQL is plain, so ask psql instead.
    let (ok, out) = psql_verify_full(s.pgb_port, &s.ca, "select current_user");
    assert!(ok && out == "pooler", "pooler endpoint over TLS: {out:?}");
}

#[tokio::test]
async fn tls_verify_full_with_the_server_cert_as_root_is_refused() {
    // The server certificate is not a CA; verification must fail rather than pass trivially.
    let s = StandIn::shared();
    let (ok, _) = psql_verify_full(s.pg_port, &s.dir.join("server.crt"), "select 1");
    assert!(
        !ok,
        "verify-full must reject a chain that does not lead to the test CA"
    );
}

#[tokio::test]
async fn pgbouncer_kill_then_resume_drops_a_pooled_client_and_admits_new_ones() {
    let private = StandIn::shared().private_pooler("standin_kill");
    let victim = pg_connect(&private.pooler_url).await;
    assert_eq!(current_user(&victim).await, "pooler");
    pgbouncer_admin(&private.admin_url, "KILL app").await;
    pgbouncer_admin(&private.admin_url, "RESUME app").await;
    let err = victim
        .simple_query("select 1")
        .await
        .expect_err("KILL closes the client's connection");
    assert!(
        err.is_closed() || err.code().is_none(),
        "expected a closed connection, got {err}"
    );
    let fresh = pg_connect(&private.pooler_url).await;
    assert_eq!(current_user(&fresh).await, "pooler");
}

#[tokio::test]
async fn private_pooler_serves_its_own_port_and_stops_on_drop() {
    let s = StandIn::shared();
    let private = s.private_pooler("standin_private");
    assert_ne!(private.port, s.pgb_port);
    let client = pg_connect(&private.pooler_url).await;
    assert_eq!(current_user(&client).await, "pooler");
    let (port, env) = (private.port, s.dir.join(format!("{}.env", private.name)));
    assert!(env.exists());
    drop(private);
    assert!(
        !env.exists(),
        "stop-pgbouncer removes the instance's env file"
    );
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert!(
        refused.is_err(),
        "the private pooler's port must be closed after drop"
    );
}

#[tokio::test]
async fn super_url_can_terminate_a_direct_session() {
    let s = StandIn::shared();
    let victim = pg_connect(&s.direct_url).await;
    let pid: i32 = victim
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let admin = pg_connect(&s.super_url).await;
    let killed: bool = admin
        .query_one("select pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    let err = victim
        .simple_query("select 1")
        .await
        .expect_err("the session is gone");
    assert!(
        err.is_closed() || err.code() == Some(&SqlState::ADMIN_SHUTDOWN),
        "unexpected error: {err}"
    );
}
