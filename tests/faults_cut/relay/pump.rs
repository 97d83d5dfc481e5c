//! The relay's moving parts: accept, then one pump per direction that reads whole frames,
//! applies the first armed fault that matches, and forwards (whole or fragmented).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{Action, Dir, How, STARTUP, Shared, Until};

pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((proxy_side, _)) = accepted else {
            continue;
        };
        let n = shared.accepted.fetch_add(1, Ordering::SeqCst);
        let token = stop.child_token();
        shared.conns.lock().unwrap().push(token.clone());
        tokio::spawn(serve(n, proxy_side, shared.clone(), token));
    }
}

/// Relays one connection until both directions end or a fault cuts it.
async fn serve(n: usize, proxy_side: TcpStream, shared: Arc<Shared>, stop: CancellationToken) {
    let server = match TcpStream::connect(shared.target).await {
        Ok(server) => server,
        Err(e) => return eprintln!("relay #{n}: upstream connect failed: {e}"),
    };
    let _ = proxy_side.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (proxy_read, proxy_write) = proxy_side.into_split();
    let (server_read, server_write) = server.into_split();
    let conn = Conn {
        n,
        shared,
        stop,
        cut: Mutex::new(None),
        logged_in: AtomicBool::new(false),
    };
    let (up, down) = tokio::join!(
        conn.pump(Dir::ToServer, proxy_read, server_write),
        conn.pump(Dir::ToProxy, server_read, proxy_write),
    );
    let ((mut proxy_read, _server_write), (_server_read, mut proxy_write)) = (up, down);
    let cut = *conn.cut.lock().unwrap();
    match cut {
        Some(How::Rst) => {
            // Whole again, so that dropping the write half sends no FIN first: close with
            // SO_LINGER 0 sends only a RST.
            let proxy_side = proxy_read
                .reunite(proxy_write)
                .expect("one socket's halves");
            let _ = socket2::SockRef::from(&proxy_side).set_linger(Some(Duration::ZERO));
        }
        Some(How::Fin) => {
            // FIN, then wait for lockroute to close its end: closing with unread bytes would
            // turn the FIN into a RST.
            let _ = proxy_write.shutdown().await;
            drop((_server_read, _server_write));
            let mut sink = [0u8; 4096];
            let drain =
                async { while matches!(proxy_read.read(&mut sink).await, Ok(k) if k > 0) {} };
            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
        }
        None => {}
    }
}

struct Conn {
    n: usize,
    shared: Arc<Shared>,
    stop: CancellationToken,
    cut: Mutex<Option<How>>,
    /// The upstream sent its first ReadyForQuery. PgBouncer refuses a login message that
    /// arrives in pieces ("client sent partial pkt in startup phase"), so lockroute's messages
    /// are fragmented only after it.
    logged_in: AtomicBool,
}

/// What a pump does after a stall.
enum Resume {
    Go,
    Stop,
}

impl Conn {
    /// Copies frames from `src` to `dst`, applying faults. Returns both halves so that the
    /// connection decides how to close them.
    async fn pump<R, W>(&self, dir: Dir, mut src: R, mut dst: W) -> (R, W)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut first = dir == Dir::ToServer;
        loop {
            let frame = match self.read_frame(&mut src, &mut buf, first).await {
                Some(frame) => frame,
                // Stopped by a fault: the connection decides how its sockets close.
                None if self.stop.is_cancelled() => return (src, dst),
                None => {
                    // EOF from the source: pass the half-close on, keep the other direction.
                    let _ = dst.shutdown().await;
                    return (src, dst);
                }
            };
            let tag = if first { STARTUP } else { frame[0] };
            first = false;
            if dir == Dir::ToProxy && tag == b'Z' {
                self.logged_in.store(true, Ordering::SeqCst);
            }
            let Some(slot) = self.shared.claim(dir, tag, &frame) else {
                if !self.write(dir, &mut dst, &frame).await {
                    return (src, dst);
                }
                continue;
            };
            let at = slot.fault.offset.min(frame.len());
            let ok = self.write(dir, &mut dst, &frame[..at]).await;
            eprintln!(
                "relay #{}: fired {} (a {}-byte frame), t={:?}",
                self.n,
                slot.fault,
                frame.len(),
                self.shared.started.elapsed()
            );
            slot.fired.fetch_add(1, Ordering::SeqCst);
            slot.notify.notify_waiters();
            if !ok {
                return (src, dst);
            }
            let cut = match slot.fault.action {
                Action::Cut(how) => Some(how),
                Action::Stall(until, then) => match self.stall(until, &mut src, &mut buf).await {
                    Resume::Stop => return (src, dst),
                    Resume::Go => then,
                },
            };
            if let Some(how) = cut {
                *self.cut.lock().unwrap() = Some(how);
                self.stop.cancel();
                return (src, dst);
            }
            if !self.write(dir, &mut dst, &frame[at..]).await {
                return (src, dst);
            }
        }
    }

    /// Reads one whole frame. `None` at EOF, on an error, or when the connection is stopped.
    async fn read_frame<R: AsyncRead + Unpin>(
        &self,
        src: &mut R,
        buf: &mut BytesMut,
        untagged: bool,
    ) -> Option<BytesMut> {
        let header = if untagged { 4 } else { 5 };
        loop {
            if buf.len() >= header {
                let len = u32::from_be_bytes(buf[header - 4..header].try_into().unwrap()) as usize;
                let total = header - 4 + len;
                if buf.len() >= total {
                    return Some(buf.split_to(total));
                }
                buf.reserve(total - buf.len());
            }
            let read = tokio::select! {
                _ = self.stop.cancelled() => return None,
                read = src.read_buf(buf) => read,
            };
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Writes `bytes` whole or fragmented. `false` when the connection is gone or stopped.
    async fn write<W: AsyncWrite + Unpin>(&self, dir: Dir, dst: &mut W, mut bytes: &[u8]) -> bool {
        let fragment = match self.shared.fragment {
            Some(_) if dir == Dir::ToServer && !self.logged_in.load(Ordering::SeqCst) => None,
            fragment => fragment,
        };
        let work = async {
            let Some(fragment) = fragment else {
                return dst.write_all(bytes).await.is_ok();
            };
            while bytes.has_remaining() {
                let k = fragment.chunk.min(bytes.len());
                if dst.write_all(&bytes[..k]).await.is_err() {
                    return false;
                }
                bytes.advance(k);
                if rand::random_range(0..fragment.pause_one_in) == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                } else {
                    tokio::task::yield_now().await;
                }
            }
            true
        };
        tokio::select! {
            _ = self.stop.cancelled() => false,
            ok = work => ok,
        }
    }

    /// Holds this direction. The source is still read (into `buf`), so that an end that
    /// gives up is noticed and the whole connection closes.
    async fn stall<R: AsyncRead + Unpin>(
        &self,
        until: Until,
        src: &mut R,
        buf: &mut BytesMut,
    ) -> Resume {
        let mut released = self.shared.released.subscribe();
        released.mark_unchanged();
        let end = async {
            match until {
                Until::Elapsed(d) => tokio::time::sleep(d).await,
                Until::Released => {
                    let _ = released.changed().await;
                }
                Until::Forever => std::future::pending().await,
            }
        };
        tokio::pin!(end);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return Resume::Stop,
                _ = &mut end => return Resume::Go,
                read = src.read_buf(buf) => {
                    if !matches!(read, Ok(k) if k > 0) {
                        self.stop.cancel();
                        return Resume::Stop;
                    }
                }
            }
        }
    }
}
