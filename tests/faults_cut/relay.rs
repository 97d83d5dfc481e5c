//! A fault-injecting TCP relay between lockroute and a real upstream (PgBouncer or PostgreSQL).
//!
//! It reads whole protocol frames in each direction and forwards them, so that a fault can be
//! placed at an exact byte of a chosen frame: "forward 9 bytes of the DataRow that contains
//! `cutme`, then reset the connection". A fault is armed on the relay and fires on the first
//! frame, on any of its connections, that matches; it can fire once or until disarmed.
//!
//! Actions: cut (RST through `SO_LINGER` 0, or FIN), or stall one direction (for a while, until
//! the test releases it, or for ever) and then resume or cut. A relay can also fragment every
//! frame into 1-byte writes with jittered pauses.
//!
//! Plaintext only (`sslmode=disable`): the first frame lockroute sends is the untagged
//! StartupMessage, which a fault matches with tag [`STARTUP`].

#[path = "relay/pump.rs"]
mod pump;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The pseudo-tag of the untagged StartupMessage, the first frame toward the server.
pub const STARTUP: u8 = 0;

/// Which way bytes flow through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// lockroute → upstream.
    ToServer,
    /// upstream → lockroute.
    ToProxy,
}

/// How lockroute's side of a connection is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// `SO_LINGER` 0, then close: lockroute reads ECONNRESET.
    Rst,
    /// Shut down the write side: lockroute reads EOF.
    Fin,
}

/// When a stall ends.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    Elapsed(Duration),
    /// [`Relay::release`].
    Released,
    /// Never; the connection ends when one of its ends gives up.
    Forever,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Cut(How),
    Stall(Until, Option<How>),
}

/// Where and what: the first frame in `dir` with `tag` (and the optional body prefix and
/// contents) gets `action` after `offset` of its bytes (header included) went through.
#[derive(Debug, Clone)]
pub struct Fault {
    dir: Dir,
    tag: u8,
    body_prefix: Vec<u8>,
    contains: Vec<u8>,
    offset: usize,
    action: Action,
    times: usize,
}

impl Fault {
    pub fn on(dir: Dir, tag: u8) -> Fault {
        Fault {
            dir,
            tag,
            body_prefix: Vec::new(),
            contains: Vec::new(),
            offset: 0,
            action: Action::Cut(How::Rst),
            times: 1,
        }
    }

    /// The StartupMessage toward the server: a fault here is a connect fault.
    pub fn startup() -> Fault {
        Fault::on(Dir::ToServer, STARTUP)
    }

    /// An `Authentication*` message (tag `R`) with this code: 11 is SASLContinue, 0 is Ok.
    pub fn auth(code: i32) -> Fault {
        Fault::on(Dir::ToProxy, b'R').body_prefix(&code.to_be_bytes())
    }

    pub fn body_prefix(mut self, prefix: &[u8]) -> Fault {
        self.body_prefix = prefix.to_vec();
        self
    }

    pub fn containing(mut self, needle: &str) -> Fault {
        self.contains = needle.as_bytes().to_vec();
        self
    }

    /// Forward this many bytes of the frame (its 5-byte header included) before acting.
    pub fn at(mut self, offset: usize) -> Fault {
        self.offset = offset;
        self
    }

    /// Fire on this many frames (`usize::MAX`: until [`Armed::disarm`]).
    pub fn times(mut self, times: usize) -> Fault {
        self.times = times;
        self
    }

    pub fn cut(mut self, how: How) -> Fault {
        self.action = Action::Cut(how);
        self
    }

    pub fn stall(mut self, until: Until) -> Fault {
        self.action = Action::Stall(until, None);
        self
    }

    pub fn stall_then_cut(mut self, until: Until, how: How) -> Fault {
        self.action = Action::Stall(until, Some(how));
        self
    }

    pub fn dir(&self) -> Dir {
        self.dir
    }

    /// Whether the connection ends with a FIN (data sent before it is delivered).
    pub fn ends_with_fin(&self) -> bool {
        matches!(
            self.action,
            Action::Cut(How::Fin) | Action::Stall(_, Some(How::Fin))
        )
    }

    fn matches(&self, dir: Dir, tag: u8, frame: &[u8]) -> bool {
        let body = &frame[if tag == STARTUP { 4 } else { 5 }.min(frame.len())..];
        self.dir == dir
            && self.tag == tag
            && body.starts_with(&self.body_prefix)
            && (self.contains.is_empty()
                || frame
                    .windows(self.contains.len())
                    .any(|w| w == self.contains))
    }
}

/// `Cut(Rst) at byte 9 of ToProxy 'D' containing "cutme"`, for messages and timings.
impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.tag {
            STARTUP => "StartupMessage".to_owned(),
            t => format!("'{}'", t as char),
        };
        write!(
            f,
            "{:?} at byte {} of {:?} {tag}",
            self.action, self.offset, self.dir
        )?;
        if !self.body_prefix.is_empty() {
            write!(f, " starting {:?}", self.body_prefix)?;
        }
        if !self.contains.is_empty() {
            write!(
                f,
                " containing {:?}",
                String::from_utf8_lossy(&self.contains)
            )?;
        }
        Ok(())
    }
}

/// One armed fault, shared between the test and the relay's connections.
struct Slot {
    fault: Fault,
    remaining: AtomicUsize,
    fired: AtomicUsize,
    notify: Notify,
}

/// The test's handle on an armed fault.
pub struct Armed(Arc<Slot>);

impl Armed {
    pub fn fired(&self) -> usize {
        self.0.fired.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until the fault has fired at least once.
    pub async fn wait_fired(&self, within: Duration) {
        let wait = async {
            loop {
                let notified = self.0.notify.notified();
                if self.fired() > 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(within, wait).await.is_err() {
            panic!("fault {} did not fire within {within:?}", self.0.fault);
        }
    }

    pub fn disarm(&self) {
        self.0.remaining.store(0, Ordering::SeqCst);
    }
}

/// Split frames into chunks of `chunk` bytes, pausing 1 ms after one chunk in `pause_one_in`.
#[derive(Debug, Clone, Copy)]
pub struct Fragment {
    pub chunk: usize,
    pub pause_one_in: u32,
}

struct Shared {
    target: SocketAddr,
    faults: Mutex<Vec<Arc<Slot>>>,
    released: watch::Sender<u64>,
    fragment: Option<Fragment>,
    accepted: AtomicUsize,
    /// Cancels every live connection (dropped with a plain close, as a vanished peer would).
    conns: Mutex<Vec<CancellationToken>>,
    started: Instant,
}

impl Shared {
    /// Claims one firing of the first armed fault that matches the frame.
    fn claim(&self, dir: Dir, tag: u8, frame: &[u8]) -> Option<Arc<Slot>> {
        let faults = self.faults.lock().unwrap();
        faults
            .iter()
            .find(|slot| {
                slot.fault.matches(dir, tag, frame)
                    && slot
                        .remaining
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
            })
            .cloned()
    }
}

/// A relay on an ephemeral loopback port. Dropping it closes every connection.
pub struct Relay {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Relay {
    /// A relay in front of the host and port of `upstream_url`.
    pub async fn start(upstream_url: &str) -> Relay {
        Relay::start_with(upstream_url, None).await
    }

    pub async fn start_with(upstream_url: &str, fragment: Option<Fragment>) -> Relay {
        let url = url::Url::parse(upstream_url).expect("upstream URL");
        assert!(
            upstream_url.contains("sslmode=disable"),
            "the relay reads plaintext frames"
        );
        let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
            .parse()
            .expect("a numeric loopback upstream");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            target,
            faults: Mutex::new(Vec::new()),
            released: watch::channel(0).0,
            fragment,
            accepted: AtomicUsize::new(0),
            conns: Mutex::new(Vec::new()),
            started: Instant::now(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(pump::accept_loop(listener, shared.clone(), stop.clone()));
        Relay { addr, shared, stop }
    }

    /// `upstream_url` with its host and port replaced by the relay's.
    pub fn url(&self, upstream_url: &str) -> String {
        let mut url = url::Url::parse(upstream_url).expect("upstream URL");
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.addr.port())).unwrap();
        url.to_string()
    }

    pub fn arm(&self, fault: Fault) -> Armed {
        let slot = Arc::new(Slot {
            remaining: AtomicUsize::new(fault.times),
            fired: AtomicUsize::new(0),
            notify: Notify::new(),
            fault,
        });
        self.shared.faults.lock().unwrap().push(slot.clone());
        Armed(slot)
    }

    /// Ends every stall that waits for [`Until::Released`].
    pub fn release(&self) {
        self.shared.released.send_modify(|g| *g += 1);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Cuts every live connection now, between frames.
    pub fn cut_all(&self) {
        for token in self.shared.conns.lock().unwrap().drain(..) {
            token.cancel();
        }
    }
}
