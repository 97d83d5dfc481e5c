//! Configuration, control-file stage: the settings that may change while lockroute runs, where
//! each came from, and the parser of the control file (`--control-file`). Pure: text in, values
//! out; [`crate::control`] reads the file and swaps the live settings.
//!
//! The file holds `NAME=value` lines with the environment's names. `#` starts a comment line;
//! blank lines are skipped; the name and the value are trimmed; the value is taken literally
//! (no quotes, no escapes). A list is written one item per line:
//! `LOCKROUTE_LOCK_PATTERNS=REGEX` once per regex (each line adds one; together they replace
//! the start-up patterns), and `LOCKROUTE_PRESETS=a,b` as a comma list on one line.
//!
//! Precedence, per name: the control file, then the flag or its environment variable, then the
//! default. A line removed from the file hands its name back to the start-up value. The kill
//! switches then win over `LOCKROUTE_MODE`, whatever set them.
//!
//! A file with any bad line is refused as a whole: an unknown name, a name set twice, a value
//! that does not parse, a regex that does not compile, an unknown preset.

use std::fmt;

use super::{Mode, ModeSource};

/// Largest control file read; a real one is a few lines.
pub const MAX_CONTROL_FILE: u64 = 64 * 1024;

/// Built-in job-queue presets (DESIGN.md, `--preset`); `none` turns them all off.
pub const PRESET_NAMES: [&str; 10] = [
    "gbrain",
    "pg-boss",
    "graphile-worker",
    "procrastinate",
    "pgqueuer",
    "river",
    "oban",
    "solid-queue",
    "good-job",
    "que",
];

pub const MODE_VAR: &str = "LOCKROUTE_MODE";
pub const PASSTHROUGH_VAR: &str = "LOCKROUTE_PASSTHROUGH";
pub const GBRAIN_VAR: &str = "GBRAIN_DISABLE_DIRECT_POOL";
pub const PRESETS_VAR: &str = "LOCKROUTE_PRESETS";
pub const PATTERNS_VAR: &str = "LOCKROUTE_LOCK_PATTERNS";
pub const PIN_VAR: &str = "LOCKROUTE_PIN";

/// Where a setting's value came from, for `GET /config` and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Default,
    Env,
    Flag,
    ControlFile,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::Env => "env",
            Origin::Flag => "flag",
            Origin::ControlFile => "control-file",
        }
    }
}

/// `--pin` / `LOCKROUTE_PIN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    Auto,
    Off,
}

impl Pin {
    pub fn as_str(self) -> &'static str {
        match self {
            Pin::Auto => "auto",
            Pin::Off => "off",
        }
    }
}

/// One value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

/// The runtime-changeable settings one source gives; `None` means "this source does not set
/// it". The start-up inputs (flags and env) and the control file are each one `Inputs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    pub mode: Option<Setting<Mode>>,
    pub passthrough: Option<Setting<bool>>,
    pub gbrain_disable_direct_pool: Option<Setting<bool>>,
    pub presets: Option<Setting<Vec<String>>>,
    pub lock_patterns: Option<Setting<Vec<String>>>,
    pub pin: Option<Setting<Pin>>,
}

/// The settings in force, every one resolved to a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub mode: Setting<Mode>,
    /// The name that chose the mode (`--mode`, `LOCKROUTE_PASSTHROUGH`, ...).
    pub mode_source: ModeSource,
    pub presets: Setting<Vec<String>>,
    pub lock_patterns: Setting<Vec<String>>,
    pub pin: Setting<Pin>,
}

impl Inputs {
    /// `self` (the control file) over `base` (the start-up inputs), name by name.
    pub fn over(&self, base: &Inputs) -> Inputs {
        Inputs {
            mode: self.mode.clone().or_else(|| base.mode.clone()),
            passthrough: self
                .passthrough
                .clone()
                .or_else(|| base.passthrough.clone()),
            gbrain_disable_direct_pool: self
                .gbrain_disable_direct_pool
                .clone()
                .or_else(|| base.gbrain_disable_direct_pool.clone()),
            presets: self.presets.clone().or_else(|| base.presets.clone()),
            lock_patterns: self
                .lock_patterns
                .clone()
                .or_else(|| base.lock_patterns.clone()),
            pin: self.pin.clone().or_else(|| base.pin.clone()),
        }
    }

    /// Fills in the defaults and applies the kill switches, which win over the mode.
    pub fn resolve(&self) -> Effective {
        let mut mode = self.mode.clone().unwrap_or(default(Mode::Split));
        let mut mode_source = ModeSource::Flag;
        // GBRAIN_DISABLE_DIRECT_POOL first, so LOCKROUTE_PASSTHROUGH names the source when both
        // are on.
        for (switch, source) in [
            (
                &self.gbrain_disable_direct_pool,
                ModeSource::GbrainDisableDirectPool,
            ),
            (&self.passthrough, ModeSource::LockroutePassthrough),
        ] {
            if let Some(Setting {
                value: true,
                origin,
            }) = switch
            {
                mode = Setting {
                    value: Mode::Passthrough,
                    origin: *origin,
                };
                mode_source = source;
            }
        }
        let all_presets: Vec<String> = PRESET_NAMES.iter().map(|p| (*p).to_owned()).collect();
        Effective {
            mode,
            mode_source,
            presets: self.presets.clone().unwrap_or(default(all_presets)),
            lock_patterns: self.lock_patterns.clone().unwrap_or(default(
                crate::route::detect::DEFAULT_LOCK_PATTERNS
                    .iter()
                    .map(|p| (*p).to_owned())
                    .collect(),
            )),
            pin: self.pin.clone().unwrap_or(default(Pin::Auto)),
        }
    }
}

/// Why a control file was refused. `Display` is one line that names the bad entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlFileError {
    #[error("--control-file {path}: cannot read it: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("--control-file line {line}: {entry}: {reason}")]
    Entry {
        line: usize,
        entry: String,
        reason: String,
    },
}

/// Parses a control file's text. Every value is checked here, regexes included, so a file
/// that parses can be applied.
pub fn parse(text: &str) -> Result<Inputs, ControlFileError> {
    let mut inputs = Inputs::default();
    let mut patterns: Vec<String> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |entry: &str, reason: String| ControlFileError::Entry {
            line: index + 1,
            entry: super::Shown::new(entry).to_string(),
            reason,
        };
        let Some((name, value)) = line.split_once('=') else {
            return Err(bad(line, "expected NAME=value".to_owned()));
        };
        let (name, value) = (name.trim(), value.trim());
        let name = KNOWN_NAMES
            .iter()
            .find(|known| **known == name)
            .ok_or_else(|| {
                bad(
                    name,
                    format!("unknown name (known: {})", KNOWN_NAMES.join(", ")),
                )
            })?;
        if *name != PATTERNS_VAR && seen.contains(name) {
            return Err(bad(name, "set twice".to_owned()));
        }
        seen.push(name);
        match *name {
            MODE_VAR => inputs.mode = file(mode(value).map_err(|r| bad(name, r))?),
            PASSTHROUGH_VAR => {
                inputs.passthrough = file(switch(value).map_err(|r| bad(name, r))?);
            }
            GBRAIN_VAR => {
                inputs.gbrain_disable_direct_pool = file(switch(value).map_err(|r| bad(name, r))?);
            }
            PRESETS_VAR => inputs.presets = file(presets(value).map_err(|r| bad(name, r))?),
            PIN_VAR => inputs.pin = file(pin(value).map_err(|r| bad(name, r))?),
            _ => {
                pattern(value).map_err(|r| bad(name, r))?;
                patterns.push(value.to_owned());
            }
        }
    }
    if !patterns.is_empty() {
        inputs.lock_patterns = file(patterns);
    }
    Ok(inputs)
}

fn default<T>(value: T) -> Setting<T> {
    Setting {
        value,
        origin: Origin::Default,
    }
}

fn file<T>(value: T) -> Option<Setting<T>> {
    Some(Setting {
        value,
        origin: Origin::ControlFile,
    })
}

const KNOWN_NAMES: [&str; 6] = [
    PASSTHROUGH_VAR,
    GBRAIN_VAR,
    MODE_VAR,
    PRESETS_VAR,
    PATTERNS_VAR,
    PIN_VAR,
];

/// `1`/`true` on, `0`/`false`/empty off, as the kill-switch variables.
pub(super) fn switch(value: &str) -> Result<bool, String> {
    if value.is_empty() || value == "0" || value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else if value == "1" || value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else {
        Err(format!(
            "invalid value {}: expected 1, true, 0 or false",
            super::Shown::new(value)
        ))
    }
}

fn mode(value: &str) -> Result<Mode, String> {
    Mode::ALL
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(value))
        .ok_or_else(|| {
            format!(
                "invalid value {}: expected split, passthrough or shadow",
                super::Shown::new(value)
            )
        })
}

pub(super) fn pin(value: &str) -> Result<Pin, String> {
    match value.to_ascii_lowercase().as_str() {
        "auto" => Ok(Pin::Auto),
        "off" => Ok(Pin::Off),
        _ => Err(format!(
            "invalid value {}: expected auto or off",
            super::Shown::new(value)
        )),
    }
}

/// A comma list of preset names; `none` alone turns every preset off (an empty list).
pub(super) fn presets(value: &str) -> Result<Vec<String>, String> {
    let names: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names == ["none"] {
        return Ok(Vec::new());
    }
    if names.is_empty() {
        return Err("empty list: name presets, or none".to_owned());
    }
    for name in &names {
        if !PRESET_NAMES.contains(name) {
            return Err(format!(
                "unknown preset {} (known: {}, none)",
                super::Shown::new(name),
                PRESET_NAMES.join(", ")
            ));
        }
    }
    Ok(names.into_iter().map(str::to_owned).collect())
}

fn pattern(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("an empty pattern would match every statement".to_owned());
    }
    regex::bytes::Regex::new(value).map(drop).map_err(|e| {
        format!(
            "invalid regex {}: {}",
            super::Shown::new(value),
            super::regex_reason(&e)
        )
    })
}

impl fmt::Display for Inputs {
    /// The names this source sets, for a log line: `LOCKROUTE_PASSTHROUGH,LOCKROUTE_PIN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = [
            (PASSTHROUGH_VAR, self.passthrough.is_some()),
            (GBRAIN_VAR, self.gbrain_disable_direct_pool.is_some()),
            (MODE_VAR, self.mode.is_some()),
            (PRESETS_VAR, self.presets.is_some()),
            (PATTERNS_VAR, self.lock_patterns.is_some()),
            (PIN_VAR, self.pin.is_some()),
        ];
        let names: Vec<&str> = set.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests;
