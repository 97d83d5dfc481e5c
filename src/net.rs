//! Sockets: one stream type for plain TCP, TLS from a client, and TLS to an upstream, plus the
//! socket options every connection gets.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection lockroute reads and writes frames on.
pub enum Stream {
    Plain(TcpStream),
    /// TLS terminated by lockroute, toward a client.
    ClientTls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// TLS originated by lockroute, toward an upstream.
    UpstreamTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::UpstreamTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::UpstreamTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::UpstreamTls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::ClientTls(s) => s.is_write_vectored(),
            Stream::UpstreamTls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::UpstreamTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::UpstreamTls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// TCP keepalive for every upstream socket: a pooler or a NAT that silently drops an idle
/// connection is noticed within about a minute instead of at the next statement.
const KEEPALIVE_TIME: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Options for an upstream socket: no Nagle delay (every message is latency-bound) and keepalive.
pub fn configure_upstream_socket(tcp: &TcpStream) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_TIME)
        .with_interval(KEEPALIVE_INTERVAL);
    socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive)
}

/// Options for a client socket.
pub fn configure_client_socket(tcp: &TcpStream) -> io::Result<()> {
    tcp.set_nodelay(true)
}

/// A stream with its read and write buffers: the unit the session's event loop polls.
///
/// Reads fill `rbuf`; frames are taken off its front. Writes are appended to `wbuf` and drained
/// by [`Conn::poll_drain`], so one task can read and write both sides of a proxy without ever
/// blocking on one side while the other waits (the classic proxy deadlock when both socket
/// buffers fill).
pub struct Conn {
    pub io: Stream,
    pub rbuf: bytes::BytesMut,
    pub wbuf: bytes::BytesMut,
    rbuf_memory: ReadMemory,
}

/// What `rbuf` holds, for [`Conn::shrink_idle`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadMemory {
    /// Nothing allocated, or nothing worth keeping.
    None,
    /// A buffer of about the read size: it goes back to the spares.
    Chunk,
    /// A buffer that grew for a large message (or came from the handshake): it is freed.
    Other,
}

/// Read in chunks of this size; a frame larger than this reserves exactly what it needs.
const READ_CHUNK: usize = 8 * 1024;

/// A write buffer this small is kept while its connection is idle: freeing it there and
/// allocating it again at the next unit cost two allocations per round trip (bench/profile.sh),
/// for a few hundred bytes.
const KEEP_WRITE_BUF: usize = 1024;

/// Read buffers of connections that went idle, kept per worker thread for the next socket that
/// becomes readable.
///
/// An idle connection gives its read buffer back (see [`Conn::shrink_idle`]), so that a
/// thousand idle clients hold no buffers. Without this pool every round trip paid for that
/// with a fresh 8 KiB allocation per socket, plus the one `bytes` makes to share it with the
/// frames split off it (bench/profile.sh). The pool is bounded, and takes only buffers of about
/// the read size: one grown for a large message is freed.
mod spare {
    use std::cell::RefCell;

    use bytes::BytesMut;

    /// 32 per worker thread: a few hundred KiB at most.
    const MAX: usize = 32;

    thread_local! {
        static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    }

    pub fn take() -> Option<BytesMut> {
        SPARE.try_with(|s| s.borrow_mut().pop()).ok().flatten()
    }

    /// Keeps an empty buffer for [`take`] if the pool has room. A buffer still shared with a
    /// frame is fine: `reserve` then allocates afresh, as it would have anyway.
    pub fn give(buf: BytesMut) {
        debug_assert!(buf.is_empty());
        let _ = SPARE.try_with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < MAX {
                s.push(buf);
            }
        });
    }
}

impl Conn {
    pub fn new(io: Stream, rbuf: bytes::BytesMut) -> Conn {
        Conn {
            io,
            rbuf,
            wbuf: bytes::BytesMut::new(),
            rbuf_memory: ReadMemory::Other,
        }
    }

    /// Reads whatever is available into `rbuf`. `Ok(0)` is end of stream.
    ///
    /// An idle plain-TCP connection holds no read buffer: memory is reserved only once the
    /// socket is readable, so a thousand idle clients cost a thousand sockets, not a thousand
    /// buffers.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            if let Stream::Plain(tcp) = &self.io
                && self.rbuf.is_empty()
            {
                std::task::ready!(tcp.poll_read_ready(cx))?;
            }
            if self.rbuf.capacity() == 0
                && let Some(buf) = spare::take()
            {
                self.rbuf = buf;
            }
            self.rbuf.reserve(READ_CHUNK);
            if self.rbuf_memory == ReadMemory::None {
                self.rbuf_memory = ReadMemory::Chunk;
            }
        }
        // A frame larger than the read size reserved room for itself (frame::try_take).
        if self.rbuf.capacity() > 2 * READ_CHUNK {
            self.rbuf_memory = ReadMemory::Other;
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf)
    }

    /// Writes out `wbuf` and flushes. `Ready(Ok(()))` once everything is written.
    pub fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        use bytes::Buf;
        while !self.wbuf.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.wbuf.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // A TLS stream may hold encrypted bytes after poll_write; plain TCP flush is a no-op.
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Writes out `wbuf` completely.
    pub async fn drain(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_drain(cx)).await
    }

    /// Reads until one whole frame is buffered, then takes it. `Ok(None)` is a clean EOF
    /// between frames.
    pub async fn read_frame(&mut self, limit: usize) -> io::Result<Option<crate::protocol::Frame>> {
        loop {
            match crate::protocol::frame::try_take(&mut self.rbuf, limit) {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            let n = std::future::poll_fn(|cx| self.poll_fill(cx)).await?;
            if n == 0 {
                return if self.rbuf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    /// Frees buffer memory while the connection is idle, so that an idle client costs little:
    /// the read buffer goes back to the thread's spares, a large write buffer is freed.
    pub fn shrink_idle(&mut self) {
        // An empty buffer may still hold its allocation with no capacity left, once its last
        // frame was split off the end: give it back whatever capacity() says.
        if self.rbuf.is_empty() {
            match std::mem::replace(&mut self.rbuf_memory, ReadMemory::None) {
                ReadMemory::None => {}
                ReadMemory::Chunk => spare::give(std::mem::take(&mut self.rbuf)),
                ReadMemory::Other => self.rbuf = bytes::BytesMut::new(),
            }
        }
        if self.wbuf.is_empty() && self.wbuf.capacity() > KEEP_WRITE_BUF {
            self.wbuf = bytes::BytesMut::new();
        }
    }
}

impl Conn {
    /// Shuts down the write side (TLS close_notify, then FIN).
    pub async fn io_shutdown(&mut self) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.io.shutdown().await
    }
}
