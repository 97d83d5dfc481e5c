//! The wire side of the interleaving test: frontend messages built by hand, and backend
//! replies read with a timeout, so that a hang fails with what the client was waiting for.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::common::proxy::raw::{self, message, send, sqlstate, startup};

/// A reply that has not come within this is a hang, reported with what was awaited.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A simple Query.
pub fn query(sql: &str) -> Vec<u8> {
    message(b'Q', format!("{sql}\0").as_bytes())
}

/// A Parse with no parameter types: the server infers them.
pub fn parse(name: &str, sql: &str) -> Vec<u8> {
    message(b'P', format!("{name}\0{sql}\0\0\0").as_bytes())
}

/// `Bind` to the unnamed portal with at most one text parameter, then `Execute` and `Sync`.
pub fn bind_execute_sync(name: &str, param: Option<&str>) -> Vec<u8> {
    let mut body = format!("\0{name}\0").into_bytes();
    body.extend_from_slice(&0u16.to_be_bytes());
    match param {
        Some(p) => {
            body.extend_from_slice(&1u16.to_be_bytes());
            body.extend_from_slice(&(p.len() as u32).to_be_bytes());
            body.extend_from_slice(p.as_bytes());
        }
        None => body.extend_from_slice(&0u16.to_be_bytes()),
    }
    body.extend_from_slice(&0u16.to_be_bytes());
    let mut out = message(b'B', &body);
    out.extend(message(b'E', b"\0\0\0\0\0"));
    out.extend(message(b'S', b""));
    out
}

pub fn extended_unit(name: &str, sql: &str, param: Option<&str>) -> Vec<u8> {
    let mut out = parse(name, sql);
    out.extend(bind_execute_sync(name, param));
    out
}

/// Reads one backend message.
pub async fn read_message(s: &mut TcpStream) -> Result<(u8, Vec<u8>), String> {
    let read = async {
        let mut header = [0u8; 5];
        s.read_exact(&mut header).await?;
        let len = u32::from_be_bytes(header[1..5].try_into().expect("4 bytes")) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        s.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>((header[0], body))
    };
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(format!("connection lost: {e}")),
        Err(_) => Err(format!("no reply within {READ_TIMEOUT:?}")),
    }
}

/// Reads one reply, up to the first message whose tag is in `stops`. Asynchronous messages
/// (NoticeResponse, ParameterStatus, NotificationResponse) may come at any time and are dropped.
pub async fn read_reply(s: &mut TcpStream, stops: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, String> {
    let mut out = Vec::new();
    loop {
        let (tag, body) = read_message(s).await?;
        if matches!(tag, b'N' | b'S' | b'A') {
            continue;
        }
        out.push((tag, body));
        if stops.contains(&tag) {
            return Ok(out);
        }
    }
}

/// The text fields of a DataRow.
pub fn data_row(body: &[u8]) -> Vec<String> {
    let mut fields = Vec::new();
    let mut pos = 2;
    while pos + 4 <= body.len() {
        let len = i32::from_be_bytes(body[pos..pos + 4].try_into().expect("4 bytes"));
        let len = usize::try_from(len).unwrap_or(0);
        let end = (pos + 4 + len).min(body.len());
        fields.push(String::from_utf8_lossy(&body[pos + 4..end]).into_owned());
        pos = end;
    }
    fields
}

/// A readable account of a reply, for failure messages.
pub fn describe_reply(reply: &[(u8, Vec<u8>)]) -> String {
    let parts: Vec<String> = reply
        .iter()
        .map(|(tag, body)| match tag {
            b'D' => format!("D{:?}", data_row(body)),
            b'E' => format!("E[{}: {}]", sqlstate(body), error_message(body)),
            b'C' | b'Z' => format!("{}{:?}", *tag as char, String::from_utf8_lossy(body)),
            _ => (*tag as char).to_string(),
        })
        .collect();
    parts.join(" ")
}

pub fn error_message(body: &[u8]) -> String {
    body.split(|&b| b == 0)
        .find_map(|f| f.strip_prefix(b"M"))
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default()
}

/// A client's connection after startup, or why it failed.
pub async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut s = raw::connect(addr).await;
    send(&mut s, &startup(&[("user", "app"), ("database", "app")])).await;
    loop {
        match read_message(&mut s).await? {
            (b'Z', _) => return Ok(s),
            (b'E', body) => return Err(format!("startup failed: {}", error_message(&body))),
            _ => {}
        }
    }
}
