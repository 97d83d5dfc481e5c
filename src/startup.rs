//! The client handshake: SSLRequest and TLS, GSSENCRequest, the StartupMessage, client auth
//! (SCRAM-SHA-256 or trust), or a CancelRequest.
//!
//! <https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP>

use std::io;

use bytes::{Buf, BufMut, BytesMut};
use pgwire::api::auth::sasl::scram::ScramServerAuth;
use tokio::net::TcpStream;

use crate::context::Ctx;
use crate::metrics::ErrorKind;
use crate::net::{Conn, Stream};
use crate::protocol::message::{self, Severity, cstr};
use crate::protocol::startup::{self as packet, StartupPacket};
use crate::protocol::{BackendKey, sqlstate};

pub mod scram;

use self::scram::ScramVerifier;

/// A SASL message is small; anything larger is not a password exchange.
const MAX_AUTH_MESSAGE: usize = 8 * 1024;
/// A TLS record starts with this byte: a client using `sslnegotiation=direct` (PG17+).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// An authenticated client, ready for its upstreams.
pub struct Hello {
    pub conn: Conn,
    /// The startup parameters to forward upstream: everything but `user`, `database` and
    /// protocol options.
    pub params: Vec<(String, String)>,
    pub application_name: String,
}

pub enum Handshake {
    Client(Hello),
    Cancel(BackendKey),
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("client I/O: {0}")]
    Io(#[from] io::Error),
    #[error("client closed the connection during the handshake")]
    Closed,
    #[error("{0}")]
    Protocol(&'static str),
    #[error("unsupported frontend protocol {0}.{1}")]
    UnsupportedProtocol(u16, u16),
    #[error("TLS handshake: {0}")]
    Tls(io::Error),
    #[error("password authentication failed for user {0:?}")]
    Auth(String),
    #[error("database {0:?} is not served here")]
    Database(String),
}

impl StartupError {
    /// The SQLSTATE the client was sent, for logs.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            StartupError::Io(_) | StartupError::Closed | StartupError::Tls(_) => {
                sqlstate::CONNECTION_FAILURE
            }
            StartupError::Protocol(_) => sqlstate::PROTOCOL_VIOLATION,
            StartupError::UnsupportedProtocol(..) => sqlstate::FEATURE_NOT_SUPPORTED,
            StartupError::Auth(_) => sqlstate::INVALID_PASSWORD,
            StartupError::Database(_) => sqlstate::INVALID_CATALOG_NAME,
        }
    }

    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            StartupError::Io(_) | StartupError::Closed => None,
            StartupError::Protocol(_) | StartupError::UnsupportedProtocol(..) => {
                Some(ErrorKind::Protocol)
            }
            StartupError::Tls(_) => Some(ErrorKind::ClientTls),
            StartupError::Auth(_) | StartupError::Database(_) => Some(ErrorKind::ClientAuth),
        }
    }
}

/// Runs the handshake on a new client socket. Errors the client can still read have already
/// been sent to it as FATAL.
pub async fn handshake(ctx: &Ctx, tcp: TcpStream) -> Result<Handshake, StartupError> {
    let mut first = [0u8; 1];
    let direct_tls = tcp.peek(&mut first).await? == 1 && first[0] == TLS_HANDSHAKE_RECORD;
    let mut conn = Conn::new(Stream::Plain(tcp), BytesMut::new());
    if direct_tls {
        conn = upgrade_tls(ctx, conn).await?;
    }
    let (minor, all) = loop {
        let body = read_startup_packet(&mut conn).await?;
        match packet::decode(&body) {
            Ok(StartupPacket::SslRequest) if !conn.io.is_tls() => {
                if ctx.client_tls.is_none() {
                    write_now(&mut conn, b"N").await?;
                    continue;
                }
                write_now(&mut conn, b"S").await?;
                conn = upgrade_tls(ctx, conn).await?;
            }
            Ok(StartupPacket::GssEncRequest) => write_now(&mut conn, b"N").await?,
            Ok(StartupPacket::Cancel(key)) => return Ok(Handshake::Cancel(key)),
            Ok(StartupPacket::Startup { minor, params }) => break (minor, params),
            Ok(StartupPacket::Unsupported { major, minor }) => {
                return Err(unsupported(&mut conn, major, minor).await);
            }
            // An SSLRequest over TLS is an unknown protocol version, as it is to Postgres.
            Ok(StartupPacket::SslRequest) => {
                let (major, minor) = packet::version(packet::SSL_REQUEST);
                return Err(unsupported(&mut conn, major, minor).await);
            }
            Err(e) => {
                fatal(&mut conn, sqlstate::PROTOCOL_VIOLATION, e.as_str()).await;
                return Err(StartupError::Protocol(e.as_str()));
            }
        }
    };
    let protocol_options: Vec<&str> = all
        .iter()
        .filter(|(k, _)| k.starts_with("_pq_."))
        .map(|(k, _)| k.as_str())
        .collect();
    if minor > 0 || !protocol_options.is_empty() {
        // Speak 3.0 and say so, as a server does for a newer minor version.
        message::negotiate_protocol_version(&mut conn.wbuf, 0, &protocol_options);
    }
    let get = |name: &str| all.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let Some(user) = get("user") else {
        fatal(
            &mut conn,
            sqlstate::INVALID_AUTHORIZATION,
            "no PostgreSQL user name specified in startup packet",
        )
        .await;
        return Err(StartupError::Protocol("no user in startup packet"));
    };
    authenticate(ctx, &mut conn, &user).await?;
    let database = get("database").unwrap_or_else(|| user.clone());
    if database != ctx.config.pooler.database {
        let msg = format!(
            "database \"{database}\" does not exist (lockroute serves \"{}\")",
            ctx.config.pooler.database
        );
        fatal(&mut conn, sqlstate::INVALID_CATALOG_NAME, &msg).await;
        return Err(StartupError::Database(database));
    }
    let application_name = get("application_name").unwrap_or_default();
    let params = all
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "user" | "database") && !k.starts_with("_pq_."))
        .collect();
    Ok(Handshake::Client(Hello {
        conn,
        params,
        application_name,
    }))
}

async fn upgrade_tls(ctx: &Ctx, conn: Conn) -> Result<Conn, StartupError> {
    let Some(acceptor) = &ctx.client_tls else {
        return Err(StartupError::Protocol("TLS requested but TLS is disabled"));
    };
    if !conn.rbuf.is_empty() {
        // Bytes sent before the TLS handshake would be unauthenticated plaintext (CVE-2021-23214).
        return Err(StartupError::Protocol(
            "received unencrypted data after SSL request",
        ));
    }
    let Stream::Plain(tcp) = conn.io else {
        return Err(StartupError::Protocol("TLS requested twice"));
    };
    let tls = acceptor.accept(tcp).await.map_err(StartupError::Tls)?;
    Ok(Conn::new(Stream::ClientTls(Box::new(tls)), BytesMut::new()))
}

/// Reads a length-prefixed startup packet (no tag byte) and returns its body.
async fn read_startup_packet(conn: &mut Conn) -> Result<BytesMut, StartupError> {
    loop {
        match packet::packet_len(&conn.rbuf) {
            Ok(Some(len)) if conn.rbuf.len() >= len => {
                let mut packet = conn.rbuf.split_to(len);
                packet.advance(4);
                return Ok(packet);
            }
            Ok(_) => {}
            Err(e) => {
                fatal(conn, sqlstate::PROTOCOL_VIOLATION, e.as_str()).await;
                return Err(StartupError::Protocol(e.as_str()));
            }
        }
        if std::future::poll_fn(|cx| conn.poll_fill(cx)).await? == 0 {
            return Err(StartupError::Closed);
        }
    }
}

async fn authenticate(ctx: &Ctx, conn: &mut Conn, user: &str) -> Result<(), StartupError> {
    let Some(verifier) = &ctx.scram else {
        if user != ctx.config.pooler.user {
            let msg = format!(
                "role \"{user}\" is not served here (lockroute serves \"{}\")",
                ctx.config.pooler.user
            );
            fatal(conn, sqlstate::INVALID_AUTHORIZATION, &msg).await;
            return Err(StartupError::Auth(user.to_owned()));
        }
        message::authentication_ok(&mut conn.wbuf);
        return Ok(());
    };
    match scram_exchange(verifier, conn).await {
        // A wrong user fails exactly like a wrong password, so users cannot be enumerated.
        Ok(true) if user == verifier.user => {
            message::authentication_ok(&mut conn.wbuf);
            Ok(())
        }
        Ok(_) => {
            let msg = format!("password authentication failed for user \"{user}\"");
            fatal(conn, sqlstate::INVALID_PASSWORD, &msg).await;
            Err(StartupError::Auth(user.to_owned()))
        }
        Err(e) => {
            if let StartupError::Protocol(what) = &e {
                fatal(conn, sqlstate::PROTOCOL_VIOLATION, what).await;
            }
            Err(e)
        }
    }
}

/// The SCRAM-SHA-256 exchange (RFC 5802 as Postgres uses it). Returns whether the proof
/// was right.
async fn scram_exchange(verifier: &ScramVerifier, conn: &mut Conn) -> Result<bool, StartupError> {
    message::write_frame(&mut conn.wbuf, b'R', |b| {
        b.put_i32(10);
        b.put_slice(b"SCRAM-SHA-256\0\0");
    });
    conn.drain().await?;
    let initial = read_password_message(conn).await?;
    let mut pos = 0;
    let mechanism =
        cstr(&initial, &mut pos).ok_or(StartupError::Protocol("malformed SASLInitialResponse"))?;
    if mechanism != b"SCRAM-SHA-256" {
        return Ok(false);
    }
    let data = initial
        .get(pos + 4..)
        .ok_or(StartupError::Protocol("malformed SASLInitialResponse"))?;
    let Ok((server_first, waiting)) =
        ScramServerAuth::new().on_client_first_message_with_secret(data, verifier.secret())
    else {
        return Ok(false);
    };
    message::write_frame(&mut conn.wbuf, b'R', |b| {
        b.put_i32(11);
        b.put_slice(server_first.as_bytes());
    });
    conn.drain().await?;
    let response = read_password_message(conn).await?;
    match waiting.on_client_final_message(&response) {
        Ok(server_final) => {
            message::write_frame(&mut conn.wbuf, b'R', |b| {
                b.put_i32(12);
                b.put_slice(server_final.as_bytes());
            });
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

async fn read_password_message(conn: &mut Conn) -> Result<bytes::Bytes, StartupError> {
    let frame = match conn.read_frame(MAX_AUTH_MESSAGE).await {
        Ok(Some(frame)) => frame,
        Ok(None) => return Err(StartupError::Closed),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(StartupError::Protocol("invalid authentication message"));
        }
        Err(e) => return Err(e.into()),
    };
    if frame.tag != b'p' {
        return Err(StartupError::Protocol("expected a password message"));
    }
    Ok(frame.bytes.slice(5..))
}

async fn unsupported(conn: &mut Conn, major: u16, minor: u16) -> StartupError {
    let msg = format!("unsupported frontend protocol {major}.{minor}: lockroute supports 3.0");
    fatal(conn, sqlstate::FEATURE_NOT_SUPPORTED, &msg).await;
    StartupError::UnsupportedProtocol(major, minor)
}

async fn write_now(conn: &mut Conn, bytes: &[u8]) -> io::Result<()> {
    conn.wbuf.extend_from_slice(bytes);
    conn.drain().await
}

/// Sends a FATAL error; the caller closes the connection. Best effort: the client may be gone.
pub async fn fatal(conn: &mut Conn, code: &str, message: &str) {
    message::error_response(&mut conn.wbuf, Severity::Fatal, code, message);
    let _ = conn.drain().await;
}
