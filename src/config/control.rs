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
use std::path::Path;

pub use super::Pin;
use super::cli::Cli;
use super::{ConfigError, Mode, ModeSource, RoutingConfig, Shown};

mod parse;

pub use self::parse::parse;

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
            // Custom patterns add to the presets; gbrain's own are its preset's.
            lock_patterns: self.lock_patterns.clone().unwrap_or(default(Vec::new())),
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

fn default<T>(value: T) -> Setting<T> {
    Setting {
        value,
        origin: Origin::Default,
    }
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

/// The runtime-changeable settings as the flags and the environment give them at start. The
/// kill switches are always checked, so a typo in either is reported even when the other one
/// is on: a kill switch that is silently ignored is worse than no kill switch.
pub(super) fn start_inputs(
    cli: &Cli,
    routing: &RoutingConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Inputs, ConfigError> {
    fn from_env<T>(value: T) -> Setting<T> {
        Setting {
            value,
            origin: Origin::Env,
        }
    }
    let mut inputs = Inputs {
        mode: Some(Setting {
            value: cli.general.mode,
            origin: cli.mode_origin,
        }),
        ..Inputs::default()
    };
    for (var, slot) in [
        (PASSTHROUGH_VAR, &mut inputs.passthrough),
        (GBRAIN_VAR, &mut inputs.gbrain_disable_direct_pool),
    ] {
        if let Some(raw) = env(var) {
            let on = parse::switch(raw.trim()).map_err(|_| ConfigError::KillSwitch {
                var,
                value: Shown::new(&raw),
            })?;
            *slot = Some(from_env(on));
        }
    }
    // `--preset` and `--pin` read their variables through clap, and are validated there; what
    // is left is where the value came from.
    let given = |var: &str| env(var).is_some_and(|v| !v.trim().is_empty());
    let presets_origin = if !cli.routing.presets.is_empty() {
        Some(Origin::Flag)
    } else {
        given(PRESETS_VAR).then_some(Origin::Env)
    };
    inputs.presets = presets_origin.map(|origin| Setting {
        value: routing
            .presets
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        origin,
    });
    let pin_origin = if cli.routing.pin.is_some() {
        Some(Origin::Flag)
    } else {
        given(PIN_VAR).then_some(Origin::Env)
    };
    inputs.pin = pin_origin.map(|origin| Setting {
        value: routing.pin,
        origin,
    });
    let origin = if !cli.routing.lock_patterns.is_empty() {
        Some(Origin::Flag)
    } else if env(PATTERNS_VAR).is_some_and(|v| !v.trim().is_empty()) {
        Some(Origin::Env)
    } else {
        None
    };
    inputs.lock_patterns = origin.map(|origin| Setting {
        value: routing.lock_patterns.clone(),
        origin,
    });
    Ok(inputs)
}

/// Reads the control file, bounded: it is an operator's few lines, not a data file.
pub fn read_control_file(path: &Path) -> Result<String, ControlFileError> {
    use std::io::Read;
    let unreadable = |reason: String| ControlFileError::Unreadable {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_CONTROL_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| unreadable(e.to_string()))?;
    if text.len() as u64 > MAX_CONTROL_FILE {
        return Err(unreadable(format!(
            "larger than {} bytes",
            MAX_CONTROL_FILE
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
