//! Configuration, value stage: the parsers for one flag's value (addresses, durations,
//! connection counts, message sizes) and the readable-file check. Each returns a
//! [`ConfigError`] that names the flag and echoes the value through [`Shown`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::{ConfigError, Shown};

#[cfg(test)]
mod tests;

/// No timeout may exceed this: larger values are typos, and `Instant + Duration` must not
/// overflow anywhere downstream.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// Sanity bound for connection counts, so a typo cannot ask for millions of upstreams.
const MAX_CONNECTIONS: usize = 10_000;
const MIN_MESSAGE_SIZE: u64 = 1024;
const MAX_MESSAGE_SIZE: u64 = 1024 * 1024 * 1024;

pub(super) fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// Opens the file to prove it is readable now, so a bad mount fails at start, not at the
/// first client.
pub(super) fn readable(path: &Path) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.is_file() {
        Ok(())
    } else {
        Err(std::io::Error::other("not a regular file"))
    }
}

pub(super) fn readable_flag(flag: &'static str, path: &Path) -> Result<(), ConfigError> {
    readable(path).map_err(|source| ConfigError::Unreadable {
        flag,
        path: path.to_owned(),
        source,
    })
}

/// `IP:PORT`, `[v6]:PORT`, or `localhost:PORT`. No name resolution happens here: config
/// opens no sockets, and a listen address should not depend on DNS.
pub(super) fn socket_addr(flag: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    let trimmed = value.trim();
    if let Ok(addr) = trimmed.parse::<SocketAddr>() {
        return Ok(addr);
    }
    trimmed
        .strip_prefix("localhost:")
        .and_then(|port| port.parse::<u16>().ok())
        .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        .ok_or(ConfigError::Address {
            flag,
            value: Shown::new(value),
        })
}

pub(super) fn duration(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let parsed =
        humantime::parse_duration(value.trim()).map_err(|source| ConfigError::Duration {
            flag,
            value: Shown::new(value),
            source,
        })?;
    if parsed.is_zero() || parsed > MAX_DURATION {
        return Err(ConfigError::DurationRange {
            flag,
            value: Shown::new(value),
        });
    }
    Ok(parsed)
}

pub(super) fn count(flag: &'static str, value: &str, min: usize) -> Result<usize, ConfigError> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (min..=MAX_CONNECTIONS).contains(n))
        .ok_or(ConfigError::Count {
            flag,
            value: Shown::new(value),
            min,
            max: MAX_CONNECTIONS,
        })
}

/// Plain bytes, or a number with a unit: KB/MB/GB are powers of 1000 and KiB/MiB/GiB powers of
/// 1024, as their names say. Units are case-insensitive.
pub(super) fn message_size(value: &str) -> Result<usize, ConfigError> {
    let trimmed = value.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => u64::MAX,
    };
    let number: u64 = number
        .parse()
        .ok()
        .filter(|_| multiplier != u64::MAX)
        .ok_or(ConfigError::Size {
            value: Shown::new(value),
        })?;
    let bytes = number.saturating_mul(multiplier);
    if !(MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE).contains(&bytes) {
        return Err(ConfigError::SizeRange {
            value: Shown::new(value),
        });
    }
    usize::try_from(bytes).map_err(|_| ConfigError::SizeRange {
        value: Shown::new(value),
    })
}
