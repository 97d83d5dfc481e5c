//! A TCP forwarder in front of a real server whose port a test can close and open again: the
//! direct endpoint going away (connection refused) and coming back on the same address.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Forward {
    pub port: u16,
    target: SocketAddr,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    accept: Option<JoinHandle<()>>,
    /// One task per forwarded connection, with the local port of its link to the target (what
    /// the server sees as `client_port`).
    links: Vec<(u16, JoinHandle<()>)>,
}

impl Forward {
    /// Forwards a fresh loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Forward {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let forward = Forward {
            port: listener.local_addr().unwrap().port(),
            target,
            state: Arc::default(),
        };
        forward.serve(listener);
        forward
    }

    /// Closes the port (new connections are refused) and drops every forwarded connection.
    pub fn down(&self) {
        let mut state = self.state.lock().unwrap();
        if let Some(accept) = state.accept.take() {
            accept.abort();
        }
        for (_, link) in state.links.drain(..) {
            link.abort();
        }
    }

    /// Opens the same port again.
    pub async fn up(&self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("rebind {addr}: {e}"));
        self.serve(listener);
    }

    /// Local ports of the live links to the target, for `pg_stat_activity.client_port`.
    pub fn upstream_ports(&self) -> Vec<i32> {
        let state = self.state.lock().unwrap();
        state
            .links
            .iter()
            .filter(|(_, link)| !link.is_finished())
            .map(|(port, _)| i32::from(*port))
            .collect()
    }

    fn serve(&self, listener: TcpListener) {
        let (target, state) = (self.target, Arc::clone(&self.state));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let Ok(mut outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let port = outbound.local_addr().unwrap().port();
                let link = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                state.lock().unwrap().links.push((port, link));
            }
        });
        self.state.lock().unwrap().accept = Some(accept);
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.down();
    }
}
