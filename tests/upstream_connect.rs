//! Upstream stage, connect: the connector against real PostgreSQL 15 servers.
//!
//! Each test starts its own throwaway cluster in a temp dir (initdb as `postgres`, a free port,
//! 127.0.0.1 only, its unix socket inside the temp dir) and a [`Cluster`] guard stops it with
//! `pg_ctl stop` when the test ends, panics included. The server certificate is issued by a test
//! CA generated here: rustls refuses a self-signed CA used as the server certificate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lockroute::config::{SslMode, UpstreamTarget};
use lockroute::protocol::frame::{self, Frame};
use lockroute::protocol::message;
use lockroute::upstream::connect::{ConnectError, Connected, connect, send_cancel};
use lockroute::upstream::tls::UpstreamTls;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const TIMEOUT: Duration = Duration::from_secs(10);
const LIMIT: usize = 1 << 20;

/// One running cluster. Dropping it stops the server and removes its directory.
struct Cluster {
    dir: PathBuf,
    port: u16,
    /// The CA that issued the server certificate (absent with `ssl=off`).
    ca: PathBuf,
    /// A CA that issued nothing this server shows.
    wrong_ca: PathBuf,
}

const HBA: &str = "\
local all all trust
hostssl all ssl_user 127.0.0.1/32 scram-sha-256
host all ssl_user 127.0.0.1/32 reject
host all md5_user 127.0.0.1/32 md5
host all clear_user 127.0.0.1/32 password
host all all 127.0.0.1/32 scram-sha-256
";

const ROLES: &str = "\
CREATE ROLE scram_user LOGIN PASSWORD 'scram-pw';
CREATE ROLE clear_user LOGIN PASSWORD 'clear-pw';
CREATE ROLE ssl_user LOGIN PASSWORD 'ssl-pw';
SET password_encryption = 'md5';
CREATE ROLE md5_user LOGIN PASSWORD 'md5-pw';
";

impl Cluster {
    /// Starts a cluster; `cert_names` are the server certificate's SANs, or `None` for
    /// `ssl=off`.
    fn start(cert_names: Option<&[&str]>) -> Cluster {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("lockroute-upconn-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The guard exists from here on, so a failed start is cleaned up too.
        let cluster = Cluster {
            ca: dir.join("ca.crt"),
            wrong_ca: dir.join("wrong-ca.crt"),
            dir,
            port,
        };
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&cluster.dir));
        run(as_postgres("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(cluster.data()));
        let mut conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 20\nshared_buffers = 16MB\n",
            cluster.dir.join("sock").display()
        );
        match cert_names {
            Some(names) => {
                cluster.write_certificates(names);
                conf.push_str(
                    "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
                );
            }
            None => conf.push_str("ssl = off\n"),
        }
        append(&cluster.data().join("postgresql.conf"), &conf);
        std::fs::write(cluster.data().join("pg_hba.conf"), HBA).unwrap();
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&cluster.dir));
        let log = cluster.dir.join("server.log");
        run(as_postgres("pg_ctl")
            .args(["-w", "-t", "60", "-l"])
            .arg(&log)
            .arg("-D")
            .arg(cluster.data())
            .arg("start"));
        cluster.psql(ROLES);
        // `md5` in pg_hba silently falls back to SCRAM for a SCRAM verifier: make sure md5 is
        // what this role really gets.
        let stored =
            cluster.psql("SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = 'md5_user'");
        assert_eq!(stored.trim(), "md5");
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A CA, a server certificate for `names` issued by it, and a second, unrelated CA.
    fn write_certificates(&self, names: &[&str]) {
        let (ca, ca_key) = new_ca();
        let (wrong_ca, _) = new_ca();
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        std::fs::write(&self.ca, ca.pem()).unwrap();
        std::fs::write(&self.wrong_ca, wrong_ca.pem()).unwrap();
        std::fs::write(self.data().join("server.crt"), cert.pem()).unwrap();
        let key_path = self.data().join("server.key");
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        // The server refuses a key file that others can read.
        run(Command::new("chmod").arg("600").arg(&key_path));
    }

    fn psql(&self, sql: &str) -> String {
        let output = as_postgres("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-h",
            ])
            .arg(self.dir.join("sock"))
            .args(["-p", &self.port.to_string(), "-c", sql])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn target(&self, user: &str, password: Option<&str>, mode: SslMode) -> UpstreamTarget {
        UpstreamTarget {
            host: "127.0.0.1".into(),
            port: self.port,
            user: user.into(),
            password: password.map(Into::into),
            database: "postgres".into(),
            sslmode: mode,
            sslrootcert: None,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.dir.join("server.log"))
        {
            eprintln!("--- server log ---\n{log}");
        }
        // pg_ctl finds the postmaster by the pid file in the data directory.
        let _ = as_postgres("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn as_postgres(program: &str) -> Command {
    let mut command = Command::new("runuser");
    command
        .args(["-u", "postgres", "--"])
        .arg(Path::new(BIN).join(program));
    command
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn append(path: &Path, text: &str) {
    let mut conf = std::fs::read_to_string(path).unwrap();
    conf.push_str(text);
    std::fs::write(path, conf).unwrap();
}

fn new_ca() -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    (params.self_signed(&key).unwrap(), key)
}

async fn connect_to(
    target: &UpstreamTarget,
    params: &[(String, String)],
) -> Result<Connected, ConnectError> {
    let tls = UpstreamTls::for_target(target).unwrap();
    connect(target, &tls, params, TIMEOUT, LIMIT).await
}

/// A short description of a connect result, for table tests.
fn outcome(result: Result<Connected, ConnectError>) -> String {
    match result {
        Ok(c) if c.stream.is_tls() => "ok tls".into(),
        Ok(_) => "ok plain".into(),
        Err(ConnectError::Server { sqlstate, .. }) => format!("server {sqlstate}"),
        Err(e) => e.kind().into(),
    }
}

async fn read_frame(conn: &mut Connected) -> Frame {
    loop {
        if let Some(frame) = frame::try_take(&mut conn.read_buf, LIMIT).unwrap() {
            return frame;
        }
        let n = conn.stream.read_buf(&mut conn.read_buf).await.unwrap();
        assert!(n > 0, "the upstream closed the connection");
    }
}

/// Runs one simple Query; returns the first column of each row, or the error's SQLSTATE.
async fn simple_query(conn: &mut Connected, sql: &str) -> Result<Vec<String>, String> {
    conn.stream.write_all(&message::query(sql)).await.unwrap();
    let mut rows = Vec::new();
    let mut error = None;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), read_frame(conn))
            .await
            .unwrap();
        match frame.tag {
            b'D' => rows.push(first_column(frame.body())),
            b'E' => error = Some(message::sqlstate(frame.body()).unwrap().to_owned()),
            b'Z' => return error.map_or(Ok(rows), Err),
            _ => {}
        }
    }
}

fn first_column(body: &[u8]) -> String {
    let len = i32::from_be_bytes(body[2..6].try_into().unwrap());
    String::from_utf8(body[6..6 + len as usize].to_vec()).unwrap()
}

#[tokio::test]
async fn connect_each_auth_method_authenticates_or_reports_server_error() {
    let cluster = Cluster::start(Some(&["localhost", "127.0.0.1"]));
    let table = [
        ("scram_user", Some("scram-pw"), SslMode::Disable, "ok plain"),
        ("scram_user", Some("scram-pw"), SslMode::Require, "ok tls"),
        ("md5_user", Some("md5-pw"), SslMode::Disable, "ok plain"),
        ("clear_user", Some("clear-pw"), SslMode::Disable, "ok plain"),
        ("clear_user", Some("clear-pw"), SslMode::Require, "ok tls"),
        ("ssl_user", Some("ssl-pw"), SslMode::Require, "ok tls"),
        ("ssl_user", Some("ssl-pw"), SslMode::Disable, "server 28000"),
        (
            "scram_user",
            Some("wrong-scram-secret"),
            SslMode::Disable,
            "server 28P01",
        ),
        (
            "md5_user",
            Some("wrong-md5-secret"),
            SslMode::Disable,
            "server 28P01",
        ),
        (
            "clear_user",
            Some("wrong-clear-secret"),
            SslMode::Require,
            "server 28P01",
        ),
        ("scram_user", None, SslMode::Disable, "missing_password"),
    ];
    for (user, password, mode, want) in table {
        let result = connect_to(&cluster.target(user, password, mode), &[]).await;
        assert_eq!(outcome(result), want, "{user} {mode:?}");
    }
}

#[tokio::test]
async fn connect_wrong_password_error_is_forwardable_and_never_shows_the_password() {
    let cluster = Cluster::start(None);
    let err = match connect_to(
        &cluster.target("scram_user", Some("hunter2-wrong"), SslMode::Disable),
        &[],
    )
    .await
    {
        Ok(_) => panic!("a wrong password must not authenticate"),
        Err(e) => e,
    };
    assert_eq!((err.kind(), err.sqlstate()), ("server", "28P01"));
    let ConnectError::Server { message, frame, .. } = &err else {
        unreachable!()
    };
    assert!(
        message.contains("password authentication failed"),
        "{message}"
    );
    assert_eq!(frame[0], b'E');
    assert_eq!(message::sqlstate(&frame[5..]), Some("28P01"));
    for text in [
        err.to_string(),
        format!("{err:?}"),
        String::from_utf8_lossy(frame).into_owned(),
    ] {
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[tokio::test]
async fn connect_each_sslmode_against_tls_server_follows_libpq() {
    let cluster = Cluster::start(Some(&["localhost", "127.0.0.1"]));
    let ca = Some(cluster.ca.clone());
    let wrong = Some(cluster.wrong_ca.clone());
    let table = [
        (SslMode::Disable, "127.0.0.1", None, "ok plain"),
        (SslMode::Prefer, "127.0.0.1", None, "ok tls"),
        (SslMode::Require, "127.0.0.1", None, "ok tls"),
        (SslMode::Require, "127.0.0.1", ca.clone(), "ok tls"),
        // libpq: require with a root certificate checks the chain.
        (SslMode::Require, "127.0.0.1", wrong.clone(), "tls"),
        (SslMode::VerifyCa, "127.0.0.1", ca.clone(), "ok tls"),
        (SslMode::VerifyCa, "127.0.0.1", wrong.clone(), "tls"),
        // webpki-roots do not know the test CA.
        (SslMode::VerifyCa, "127.0.0.1", None, "tls"),
        (SslMode::VerifyFull, "127.0.0.1", ca.clone(), "ok tls"),
        (SslMode::VerifyFull, "localhost", ca.clone(), "ok tls"),
        (SslMode::VerifyFull, "localhost", wrong.clone(), "tls"),
    ];
    for (mode, host, root, want) in table {
        let mut target = cluster.target("scram_user", Some("scram-pw"), mode);
        target.host = host.into();
        target.sslrootcert = root.clone();
        let result = connect_to(&target, &[]).await;
        assert_eq!(outcome(result), want, "{mode:?} {host} {root:?}");
    }
}

#[tokio::test]
async fn connect_tls_session_is_encrypted_on_the_server_side() {
    let cluster = Cluster::start(Some(&["localhost", "127.0.0.1"]));
    let mut target = cluster.target("scram_user", Some("scram-pw"), SslMode::VerifyFull);
    target.sslrootcert = Some(cluster.ca.clone());
    let mut conn = connect_to(&target, &[]).await.unwrap();
    let ssl = simple_query(
        &mut conn,
        "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .await;
    assert_eq!(ssl, Ok(vec!["true".to_owned()]));
}

#[tokio::test]
async fn connect_verify_full_host_not_in_certificate_fails_but_verify_ca_passes() {
    // The certificate names only `localhost`; the connection goes to 127.0.0.1.
    let cluster = Cluster::start(Some(&["localhost"]));
    let table = [
        (SslMode::VerifyFull, "127.0.0.1", "tls"),
        (SslMode::VerifyCa, "127.0.0.1", "ok tls"),
        (SslMode::VerifyFull, "localhost", "ok tls"),
    ];
    for (mode, host, want) in table {
        let mut target = cluster.target("scram_user", Some("scram-pw"), mode);
        target.host = host.into();
        target.sslrootcert = Some(cluster.ca.clone());
        let result = connect_to(&target, &[]).await;
        if let Err(ConnectError::Tls(text)) = &result {
            assert!(text.contains("not valid for name"), "{text}");
        }
        assert_eq!(outcome(result), want, "{mode:?} {host}");
    }
}

#[tokio::test]
async fn connect_server_without_ssl_refuses_tls_modes_and_prefer_falls_back() {
    let cluster = Cluster::start(None);
    let table = [
        (SslMode::Disable, "ok plain"),
        (SslMode::Prefer, "ok plain"),
        (SslMode::Require, "tls_refused"),
        (SslMode::VerifyCa, "tls_refused"),
        (SslMode::VerifyFull, "tls_refused"),
    ];
    for (mode, want) in table {
        let result = connect_to(&cluster.target("scram_user", Some("scram-pw"), mode), &[]).await;
        assert_eq!(outcome(result), want, "{mode:?}");
    }
}

#[tokio::test]
async fn connect_client_startup_parameters_reach_the_server() {
    let cluster = Cluster::start(Some(&["localhost", "127.0.0.1"]));
    let params: Vec<(String, String)> = [
        ("application_name", "xyz"),
        ("statement_timeout", "1234"),
        ("options", "-c search_path=lockroute_test"),
        // The target's user wins over a client's.
        ("user", "postgres"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let target = cluster.target("scram_user", Some("scram-pw"), SslMode::Require);
    let mut conn = connect_to(&target, &params).await.unwrap();
    assert!(conn.key.is_some());
    assert!(conn.read_buf.is_empty());
    assert!(
        conn.parameters
            .contains(&("application_name".to_owned(), "xyz".to_owned()))
    );
    assert!(conn.parameters.iter().any(|(k, _)| k == "server_version"));
    let table = [
        ("show statement_timeout", "1234ms"),
        ("show application_name", "xyz"),
        ("show search_path", "lockroute_test"),
        ("select current_user", "scram_user"),
    ];
    for (sql, want) in table {
        assert_eq!(
            simple_query(&mut conn, sql).await,
            Ok(vec![want.to_owned()]),
            "{sql}"
        );
    }
}

#[tokio::test]
async fn connect_silent_listener_times_out() {
    // The kernel completes the TCP handshake, but nothing ever answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    for mode in [SslMode::Disable, SslMode::Prefer] {
        let target = UpstreamTarget {
            host: "127.0.0.1".into(),
            port,
            user: "app".into(),
            password: Some("pw".into()),
            database: "app".into(),
            sslmode: mode,
            sslrootcert: None,
        };
        let tls = UpstreamTls::for_target(&target).unwrap();
        let result = connect(&target, &tls, &[], Duration::from_millis(200), LIMIT).await;
        let Err(err) = result else {
            panic!("no server answered, so no connection")
        };
        assert!(matches!(err, ConnectError::Timeout), "{mode:?}: {err}");
        assert_eq!((err.kind(), err.sqlstate()), ("timeout", "08001"));
    }
    drop(listener);
}

#[tokio::test]
async fn send_cancel_running_query_is_cancelled() {
    let cluster = Cluster::start(Some(&["localhost", "127.0.0.1"]));
    let mut target = cluster.target("scram_user", Some("scram-pw"), SslMode::VerifyFull);
    target.sslrootcert = Some(cluster.ca.clone());
    let tls = UpstreamTls::for_target(&target).unwrap();
    let mut sleeper = connect(&target, &tls, &[], TIMEOUT, LIMIT).await.unwrap();
    let key = sleeper.key.expect("a BackendKeyData");
    sleeper
        .stream
        .write_all(&message::query("select pg_sleep(10)"))
        .await
        .unwrap();

    // A cancel that arrives before the statement starts is ignored, so wait until the server
    // reports it running.
    let mut watcher = connect(&target, &tls, &[], TIMEOUT, LIMIT).await.unwrap();
    let running = format!(
        "select count(*) from pg_stat_activity where pid = {} and state = 'active'",
        key.pid
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while simple_query(&mut watcher, &running).await != Ok(vec!["1".to_owned()]) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the statement never started"
        );
        tokio::task::yield_now().await;
    }

    send_cancel(&target, &tls, key, TIMEOUT).await.unwrap();
    let mut sqlstate = None;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(8), read_frame(&mut sleeper))
            .await
            .unwrap();
        match frame.tag {
            b'E' => sqlstate = message::sqlstate(frame.body()).map(str::to_owned),
            b'Z' => break,
            _ => {}
        }
    }
    assert_eq!(sqlstate.as_deref(), Some("57014"));
}
