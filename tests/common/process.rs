//! Test harness, stage "real binary": start `lockroute` as a process, talk to its admin port,
//! signal it by pid, and wait for its exit.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The binary, killed on drop if a test fails before it exits.
pub struct Running {
    pub child: Child,
    pub port: u16,
    pub admin_port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Waits (bounded) until `path` on the admin port answers 200.
    pub async fn wait_until_ok(self, path: &str) -> Running {
        for _ in 0..200 {
            if http_status(self.admin_port, path).await == Some(200) {
                return self;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("lockroute did not answer {path} with 200 within 5s");
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends a signal to the child by its pid.
pub fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// `GET path` on 127.0.0.1:`port`; the status code, or `None` if nothing answered.
pub async fn http_status(port: u16, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    out.split(' ').nth(1)?.parse().ok()
}

/// Waits up to `within` for the child to exit.
pub async fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// What a child process left behind.
pub struct Finished {
    /// Its exit status; `None` when it outlived its limit and was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to its end with stdout and stderr in temporary files, killing it (by its pid) if
/// it runs longer than `limit`.
pub async fn run_bounded(mut cmd: Command, limit: Duration, name: &str) -> Finished {
    let out_path = std::env::temp_dir().join(super::unique_name(name));
    let err_path = out_path.with_extension("err");
    cmd.stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let status = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("the child process starts");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    Finished {
        status,
        stdout,
        stderr,
    }
}
