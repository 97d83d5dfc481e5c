//! Upstream stage, connect: TCP, SSLRequest and TLS as `sslmode` says, StartupMessage,
//! authentication (SCRAM-SHA-256, md5, cleartext), then the server's ParameterStatus and
//! BackendKeyData up to the first ReadyForQuery. Also the CancelRequest that runs on a
//! connection of its own.
//!
//! pgwire's client hides its socket and mishandles `sslmode` (see
//! `shared/reference/pgwire-notes.md`), so this is written directly against the protocol:
//! <https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP>

use std::io;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use md5::{Digest, Md5};
use postgres_protocol::authentication::sasl::{self, ChannelBinding, ScramSha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tls::{UpstreamTls, bare_host};
use crate::config::UpstreamTarget;
use crate::net::{Stream, configure_upstream_socket};
use crate::protocol::frame::{self, Frame};
use crate::protocol::message::{self, cstr};
use crate::protocol::{BackendKey, sqlstate};

/// An authenticated upstream, ready for its first query.
pub struct Connected {
    pub stream: Stream,
    /// The server's `ParameterStatus` values, in the order it sent them.
    pub parameters: Vec<(String, String)>,
    pub key: Option<BackendKey>,
    /// Bytes read past the final ReadyForQuery; normally empty.
    pub read_buf: BytesMut,
}

/// Why an upstream could not be connected. The password never appears in any variant.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("upstream I/O: {0}")]
    Io(#[from] io::Error),
    #[error("upstream connect timed out")]
    Timeout,
    #[error("upstream refused TLS (answered N to SSLRequest), but sslmode requires it")]
    TlsRefused,
    #[error("upstream TLS: {0}")]
    Tls(String),
    /// An ErrorResponse during startup, kept verbatim so the proxy can forward it to its client.
    #[error("upstream {sqlstate}: {message}")]
    Server {
        sqlstate: String,
        message: String,
        frame: Bytes,
    },
    #[error("upstream asked for an unsupported authentication method: {0}")]
    UnsupportedAuth(String),
    #[error("upstream asked for a password, but the upstream URL has none")]
    MissingPassword,
    #[error("upstream protocol violation during startup: {0}")]
    Protocol(String),
}

impl ConnectError {
    /// A short, closed label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectError::Io(_) => "io",
            ConnectError::Timeout => "timeout",
            ConnectError::TlsRefused => "tls_refused",
            ConnectError::Tls(_) => "tls",
            ConnectError::Server { .. } => "server",
            ConnectError::UnsupportedAuth(_) => "unsupported_auth",
            ConnectError::MissingPassword => "missing_password",
            ConnectError::Protocol(_) => "protocol",
        }
    }

    /// The SQLSTATE a client should see: the server's own for `Server`, else 08001.
    pub fn sqlstate(&self) -> &str {
        match self {
            ConnectError::Server { sqlstate, .. } => sqlstate,
            _ => sqlstate::CONNECTION_UNABLE,
        }
    }
}

/// SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
/// The CancelRequest code, 80877102.
const CANCEL_REQUEST_CODE: i32 = 80877102;

/// Opens and authenticates one upstream, all of it within `timeout`.
///
/// `params` are the client's forwarded startup parameters; `user` and `database` always come
/// from the target.
pub async fn connect(
    target: &UpstreamTarget,
    tls: &UpstreamTls,
    params: &[(String, String)],
    timeout: Duration,
    max_message_size: usize,
) -> Result<Connected, ConnectError> {
    let work = async {
        let stream = open(target, tls).await?;
        let mut wire = Wire {
            stream,
            buf: BytesMut::with_capacity(1024),
            limit: max_message_size,
        };
        wire.send(&startup_message(target, params)).await?;
        authenticate(&mut wire, target).await?;
        let (parameters, key) = collect_status(&mut wire).await?;
        Ok(Connected {
            stream: wire.stream,
            parameters,
            key,
            read_buf: wire.buf,
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ConnectError::Timeout)?
}

/// Sends a CancelRequest for `key` on a new connection (negotiated like any other), then waits
/// for the server to close it, so that the cancel has been read when this returns.
pub async fn send_cancel(
    target: &UpstreamTarget,
    tls: &UpstreamTls,
    key: BackendKey,
    timeout: Duration,
) -> Result<(), ConnectError> {
    let work = async {
        let mut stream = open(target, tls).await?;
        stream.write_all(&cancel_request(key)).await?;
        stream.flush().await?;
        let mut sink = [0u8; 64];
        loop {
            match stream.read(&mut sink).await {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                // A server may close a TLS connection without close_notify, or reset it.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(ConnectError::Io(e)),
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ConnectError::Timeout)?
}

/// TCP to the first resolved address that answers, then SSLRequest and TLS per `sslmode`.
async fn open(target: &UpstreamTarget, tls: &UpstreamTls) -> Result<Stream, ConnectError> {
    let mut tcp = tcp_connect(target).await?;
    configure_upstream_socket(&tcp)?;
    let Some((connector, server_name)) = tls.connector() else {
        return Ok(Stream::Plain(tcp));
    };
    tcp.write_all(&SSL_REQUEST).await?;
    // Exactly one byte: anything the server sent after it must go through the TLS handshake,
    // not be read as plaintext protocol (CVE-2021-23222).
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    match answer[0] {
        b'S' => {}
        b'N' if tls.requires_tls() => return Err(ConnectError::TlsRefused),
        b'N' => return Ok(Stream::Plain(tcp)),
        // A pre-7.0 style error; libpq does not show it either, since the server is not
        // authenticated yet (CVE-2024-10977).
        b'E' => {
            return Err(ConnectError::Protocol(
                "the upstream answered SSLRequest with an error".into(),
            ));
        }
        other => {
            return Err(ConnectError::Protocol(format!(
                "unexpected answer {other:#04x} to SSLRequest"
            )));
        }
    }
    let stream = connector
        .connect(server_name.clone(), tcp)
        .await
        .map_err(tls_error)?;
    Ok(Stream::UpstreamTls(Box::new(stream)))
}

async fn tcp_connect(target: &UpstreamTarget) -> Result<TcpStream, ConnectError> {
    let host = bare_host(&target.host);
    let mut last = None;
    for addr in tokio::net::lookup_host((host, target.port)).await? {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(ConnectError::Io(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolved to no address"),
        )
    })))
}

/// tokio-rustls reports handshake failures as `io::Error`s wrapping a `rustls::Error`.
fn tls_error(e: io::Error) -> ConnectError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => ConnectError::Tls(tls.to_string()),
        None if e.kind() == io::ErrorKind::InvalidData => ConnectError::Tls(e.to_string()),
        None => ConnectError::Io(e),
    }
}

/// A stream with the bytes read from it but not yet taken as frames.
struct Wire {
    stream: Stream,
    buf: BytesMut,
    limit: usize,
}

impl Wire {
    async fn read_frame(&mut self) -> Result<Frame, ConnectError> {
        loop {
            let taken = frame::try_take(&mut self.buf, self.limit)
                .map_err(|e| ConnectError::Protocol(e.to_string()))?;
            if let Some(frame) = taken {
                return Ok(frame);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                let eof = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the upstream closed the connection during startup",
                );
                return Err(ConnectError::Io(eof));
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), ConnectError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }
}

/// StartupMessage 3.0: the target's user and database, then the client's parameters. Protocol
/// options (`_pq_.*`) are dropped: they would switch on protocol features lockroute does not
/// speak.
fn startup_message(target: &UpstreamTarget, params: &[(String, String)]) -> Bytes {
    let mut pairs = vec![
        ("user", target.user.as_str()),
        ("database", target.database.as_str()),
    ];
    pairs.extend(
        params
            .iter()
            .filter(|(k, _)| k != "user" && k != "database" && !k.starts_with("_pq_."))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    message::startup_message(&pairs)
}

fn cancel_request(key: BackendKey) -> [u8; 16] {
    let mut buf = [0u8; 16];
    buf[0..4].copy_from_slice(&16u32.to_be_bytes());
    buf[4..8].copy_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
    buf[8..12].copy_from_slice(&key.pid.to_be_bytes());
    buf[12..16].copy_from_slice(&key.secret.to_be_bytes());
    buf
}

// ---------------------------------------------------------------------------------------------
// Authentication

/// An `Authentication*` request (`R`), decoded from its body.
#[derive(Debug, PartialEq, Eq)]
enum AuthRequest<'a> {
    Ok,
    Cleartext,
    Md5([u8; 4]),
    Sasl(Vec<&'a [u8]>),
    SaslContinue(&'a [u8]),
    SaslFinal(&'a [u8]),
    Other(i32),
}

fn parse_auth(body: &[u8]) -> Result<AuthRequest<'_>, ConnectError> {
    let malformed = || ConnectError::Protocol("malformed authentication request".into());
    let (code, rest) = body.split_first_chunk::<4>().ok_or_else(malformed)?;
    Ok(match i32::from_be_bytes(*code) {
        0 => AuthRequest::Ok,
        3 => AuthRequest::Cleartext,
        5 => AuthRequest::Md5(rest.try_into().map_err(|_| malformed())?),
        10 => {
            let mut mechanisms = Vec::new();
            let mut pos = 0;
            loop {
                match cstr(rest, &mut pos).ok_or_else(malformed)? {
                    b"" => break,
                    name => mechanisms.push(name),
                }
            }
            AuthRequest::Sasl(mechanisms)
        }
        11 => AuthRequest::SaslContinue(rest),
        12 => AuthRequest::SaslFinal(rest),
        other => AuthRequest::Other(other),
    })
}

fn auth_method_name(code: i32) -> String {
    match code {
        2 => "KerberosV5".into(),
        6 => "SCMCredential".into(),
        7 | 8 => "GSSAPI".into(),
        9 => "SSPI".into(),
        other => format!("authentication code {other}"),
    }
}

/// Where a SCRAM exchange is.
enum Scram {
    NotStarted,
    /// SASLInitialResponse sent; waiting for SASLContinue.
    Started(ScramSha256),
    /// SASLResponse sent; waiting for SASLFinal.
    Continued(ScramSha256),
    Finished,
}

async fn authenticate(wire: &mut Wire, target: &UpstreamTarget) -> Result<(), ConnectError> {
    let mut scram = Scram::NotStarted;
    loop {
        let frame = wire.read_frame().await?;
        match frame.tag {
            b'R' => {}
            b'E' => return Err(server_error(&frame)),
            // Notices are not the client's business here; NegotiateProtocolVersion only says
            // that the server ignored options lockroute never sends.
            b'N' | b'v' => continue,
            tag => return Err(unexpected(tag, "authentication")),
        }
        let reply = match parse_auth(frame.body())? {
            AuthRequest::Ok => {
                // A server that skips SCRAM's final message skips proving it knows the password.
                if matches!(scram, Scram::Started(_) | Scram::Continued(_)) {
                    return Err(ConnectError::Protocol(
                        "AuthenticationOk before the SCRAM exchange finished".into(),
                    ));
                }
                return Ok(());
            }
            AuthRequest::Cleartext => password_message(password(target)?.as_bytes()),
            AuthRequest::Md5(salt) => {
                password_message(md5_password(&target.user, password(target)?, salt).as_bytes())
            }
            AuthRequest::Other(code) => {
                return Err(ConnectError::UnsupportedAuth(auth_method_name(code)));
            }
            request => match scram_step(&mut scram, request, target).await? {
                Some(reply) => reply,
                None => continue,
            },
        };
        wire.send(&reply).await?;
    }
}

/// Advances SCRAM-SHA-256 by one server message; returns the reply to send, if any.
async fn scram_step(
    state: &mut Scram,
    request: AuthRequest<'_>,
    target: &UpstreamTarget,
) -> Result<Option<Bytes>, ConnectError> {
    let scram_error = |e: io::Error| ConnectError::Protocol(format!("SCRAM: {e}"));
    let out_of_order = || ConnectError::Protocol("SASL message out of order".into());
    match (std::mem::replace(state, Scram::Finished), request) {
        (Scram::NotStarted, AuthRequest::Sasl(mechanisms)) => {
            if !mechanisms.contains(&sasl::SCRAM_SHA_256.as_bytes()) {
                return Err(ConnectError::UnsupportedAuth(mechanism_list(&mechanisms)));
            }
            // No channel binding: the gs2 flag `n` is accepted by servers that offer -PLUS too.
            let client =
                ScramSha256::new(password(target)?.as_bytes(), ChannelBinding::unsupported());
            let reply = sasl_initial_response(sasl::SCRAM_SHA_256, client.message());
            *state = Scram::Started(client);
            Ok(Some(reply))
        }
        (Scram::Started(mut client), AuthRequest::SaslContinue(data)) => {
            // The salted password (4096 rounds of HMAC-SHA-256, 1-2 ms) is computed off the
            // runtime's one thread: inline, every reconnect after a pooler drop would stall
            // every session, lock heartbeats included.
            let data = data.to_vec();
            let client = tokio::task::spawn_blocking(move || client.update(&data).map(|()| client))
                .await
                .map_err(|e| ConnectError::Protocol(format!("SCRAM: {e}")))?
                .map_err(scram_error)?;
            let reply = message::frame(b'p', |b| b.put_slice(client.message()));
            *state = Scram::Continued(client);
            Ok(Some(reply))
        }
        (Scram::Continued(mut client), AuthRequest::SaslFinal(data)) => {
            // Checks the server signature: the server proves it knows the password too.
            client.finish(data).map_err(scram_error)?;
            Ok(None)
        }
        _ => Err(out_of_order()),
    }
}

fn mechanism_list(mechanisms: &[&[u8]]) -> String {
    let names: Vec<_> = mechanisms
        .iter()
        .map(|m| String::from_utf8_lossy(m))
        .collect();
    format!(
        "SASL {} (lockroute speaks SCRAM-SHA-256 without channel binding)",
        names.join(", ")
    )
}

fn password(target: &UpstreamTarget) -> Result<&str, ConnectError> {
    target
        .password
        .as_deref()
        .ok_or(ConnectError::MissingPassword)
}

fn password_message(password: &[u8]) -> Bytes {
    message::frame(b'p', |b| {
        b.put_slice(password);
        b.put_u8(0);
    })
}

fn sasl_initial_response(mechanism: &str, data: &[u8]) -> Bytes {
    message::frame(b'p', |b| {
        b.put_slice(mechanism.as_bytes());
        b.put_u8(0);
        b.put_i32(data.len() as i32);
        b.put_slice(data);
    })
}

/// `"md5" + md5_hex(md5_hex(password + user) + salt)`, as the server computes it.
fn md5_password(user: &str, password: &str, salt: [u8; 4]) -> String {
    let inner = hex(&Md5::new()
        .chain_update(password)
        .chain_update(user)
        .finalize());
    let outer = hex(&Md5::new().chain_update(inner).chain_update(salt).finalize());
    format!("md5{outer}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// After authentication

/// Reads ParameterStatus and BackendKeyData up to ReadyForQuery.
async fn collect_status(
    wire: &mut Wire,
) -> Result<(Vec<(String, String)>, Option<BackendKey>), ConnectError> {
    let mut parameters = Vec::new();
    let mut key = None;
    loop {
        let frame = wire.read_frame().await?;
        match frame.tag {
            b'S' => parameters.push(parameter_status(frame.body())?),
            b'K' => key = Some(backend_key(frame.body())?),
            b'Z' => return Ok((parameters, key)),
            b'E' => return Err(server_error(&frame)),
            b'N' | b'v' => {}
            tag => return Err(unexpected(tag, "startup")),
        }
    }
}

fn parameter_status(body: &[u8]) -> Result<(String, String), ConnectError> {
    let mut pos = 0;
    let name = cstr(body, &mut pos);
    let value = cstr(body, &mut pos);
    match (name, value) {
        (Some(n), Some(v)) => Ok((
            String::from_utf8_lossy(n).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        )),
        _ => Err(ConnectError::Protocol("malformed ParameterStatus".into())),
    }
}

/// Protocol 3.0 keys are an i32 pid and an i32 secret.
fn backend_key(body: &[u8]) -> Result<BackendKey, ConnectError> {
    match body {
        [p0, p1, p2, p3, s0, s1, s2, s3] => Ok(BackendKey {
            pid: i32::from_be_bytes([*p0, *p1, *p2, *p3]),
            secret: i32::from_be_bytes([*s0, *s1, *s2, *s3]),
        }),
        _ => Err(ConnectError::Protocol(format!(
            "BackendKeyData of {} bytes",
            body.len()
        ))),
    }
}

fn server_error(frame: &Frame) -> ConnectError {
    let body = frame.body();
    ConnectError::Server {
        sqlstate: message::sqlstate(body)
            .unwrap_or(sqlstate::CONNECTION_UNABLE)
            .to_owned(),
        message: String::from_utf8_lossy(
            message::error_field(body, b'M').unwrap_or(b"(no message)"),
        )
        .into_owned(),
        frame: frame.bytes.clone(),
    }
}

fn unexpected(tag: u8, phase: &str) -> ConnectError {
    ConnectError::Protocol(format!(
        "unexpected message {:?} during {phase}",
        tag as char
    ))
}

#[cfg(test)]
mod tests;
