//! `lockroute explain`: what the proxy would do with one statement, for people writing or
//! checking rules. It runs the proxy's own code: the [`Detector`] built from the same flags, and
//! [`decide`] for a unit that starts outside a transaction in split mode, from an untagged
//! client. Pure apart from reading stdin and printing.

use std::io::{Read, Write};
use std::process::ExitCode;

use crate::config::{ConfigError, ExplainConfig, Mode, Pin};
use crate::route::decide::{Decision, UnitContext, decide};
use crate::route::detect::{Detector, LockMatch, PatternError};
use crate::route::effects::{PinReason, effects};

/// The answer for one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    pub decision: Decision,
    pub lock: Option<LockMatch>,
    /// The session-feature pin the statement would trigger (`listen`, `advisory_lock`, …).
    pub pin: Option<&'static str>,
}

/// Explains `sql`, named `name` (empty for unnamed), as the proxy configured by `config` would.
pub fn explain(
    config: &ExplainConfig,
    name: &[u8],
    sql: &[u8],
) -> Result<Explanation, PatternError> {
    let routing = &config.routing;
    let detector = Detector::build(&routing.tag, &routing.presets, &routing.lock_patterns)?;
    let detection = detector.statement_named(name, sql);
    // With --pin auto, a statement that creates session state moves its client to a dedicated
    // direct session before it runs (the session's `pin_needed`).
    let pin = effects(sql).pin().filter(|_| routing.pin == Pin::Auto);
    let decision = decide(&UnitContext {
        mode: Mode::Split,
        session_tagged: false,
        pinned: pin.is_some(),
        open_transaction: None,
        detected: detection.map(|d| d.reason),
    });
    Ok(Explanation {
        decision,
        lock: detection.and_then(|d| d.lock),
        pin: pin.map(PinReason::as_str),
    })
}

impl Explanation {
    /// `key: value` lines, one per field; `none` where a field does not apply.
    pub fn text(&self) -> String {
        self.fields()
            .map(|(key, value)| format!("{key}: {}\n", value.unwrap_or("none")))
            .collect()
    }

    /// One JSON object on one line; `null` where a field does not apply.
    pub fn json(&self) -> String {
        let body: Vec<String> = self
            .fields()
            .map(|(key, value)| match value {
                Some(v) => format!("\"{key}\":{}", json_string(v)),
                None => format!("\"{key}\":null"),
            })
            .collect();
        format!("{{{}}}\n", body.join(","))
    }

    fn fields(&self) -> impl Iterator<Item = (&'static str, Option<&'static str>)> {
        let lock = self.lock;
        [
            ("lane", Some(self.decision.lane.as_str())),
            ("reason", Some(self.decision.reason.as_str())),
            ("preset", lock.map(|l| l.preset.as_str())),
            ("kind", lock.map(|l| l.kind.as_str())),
            ("retry", lock.map(|l| l.retry.as_str())),
            ("rule", lock.map(|l| l.statement)),
            ("signal", lock.map(|l| l.signal.as_str())),
            ("pin", self.pin),
        ]
        .into_iter()
    }
}

/// A JSON string literal (RFC 8259 §7): quotes, backslashes and control characters escaped.
fn json_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `lockroute explain …`: `args` starts at `explain`. Exit 0 with the answer on stdout, or 64
/// with one line on stderr for a bad flag, 1 when stdin cannot be read.
pub fn main<I, T>(args: I, env: &dyn Fn(&str) -> Option<String>) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let config = match ExplainConfig::from_args(args, env) {
        Ok(config) => config,
        Err(err @ ConfigError::Info { .. }) => {
            print!("{err}");
            return ExitCode::from(err.exit_code());
        }
        Err(err) => {
            eprintln!("lockroute explain: {err}");
            return ExitCode::from(err.exit_code());
        }
    };
    let sql = match &config.statement {
        Some(sql) => sql.as_bytes().to_vec(),
        None => {
            let mut buf = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut buf) {
                eprintln!("lockroute explain: cannot read the statement from stdin: {e}");
                return ExitCode::from(1);
            }
            buf
        }
    };
    let answer = match explain(&config, config.name.as_bytes(), &sql) {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("lockroute explain: --lock-pattern: {e}");
            return ExitCode::from(64);
        }
    };
    let out = if config.json {
        answer.json()
    } else {
        answer.text()
    };
    // A closed stdout (`| head -1`) is not an error worth reporting.
    let _ = std::io::stdout().write_all(out.as_bytes());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests;
