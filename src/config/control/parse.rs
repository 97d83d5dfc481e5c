//! Configuration, control-file stage, parser: the text of a control file to [`Inputs`], and the
//! one-value parsers the start-up environment shares. Pure. See the parent module for the
//! format and the precedence.

use super::{
    GBRAIN_VAR, Inputs, MODE_VAR, Origin, PASSTHROUGH_VAR, PATTERNS_VAR, PIN_VAR, PRESET_NAMES,
    PRESETS_VAR, Pin, Setting,
};
use crate::config::{Mode, Shown, regex_reason};

/// Parses a control file's text. Every value is checked here, regexes included, so a file
/// that parses can be applied.
pub fn parse(text: &str) -> Result<Inputs, super::ControlFileError> {
    let mut inputs = Inputs::default();
    let mut patterns: Vec<String> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |entry: &str, reason: String| super::ControlFileError::Entry {
            line: index + 1,
            entry: Shown::new(entry).to_string(),
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
pub(in crate::config) fn switch(value: &str) -> Result<bool, String> {
    if value.is_empty() || value == "0" || value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else if value == "1" || value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else {
        Err(format!(
            "invalid value {}: expected 1, true, 0 or false",
            Shown::new(value)
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
                Shown::new(value)
            )
        })
}

pub(in crate::config) fn pin(value: &str) -> Result<Pin, String> {
    match value.to_ascii_lowercase().as_str() {
        "auto" => Ok(Pin::Auto),
        "off" => Ok(Pin::Off),
        _ => Err(format!(
            "invalid value {}: expected auto or off",
            Shown::new(value)
        )),
    }
}

/// A comma list of preset names; `none` alone turns every preset off (an empty list).
pub(in crate::config) fn presets(value: &str) -> Result<Vec<String>, String> {
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
                Shown::new(name),
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
    regex::bytes::Regex::new(value)
        .map(drop)
        .map_err(|e| format!("invalid regex {}: {}", Shown::new(value), regex_reason(&e)))
}
