//! Runtime control: the settings that change while lockroute runs (the mode and its kill
//! switches, the pin policy, the presets and lock patterns), swapped as a whole without a
//! restart.
//!
//! [`Live`] is one immutable snapshot; [`LiveHandle`] holds the current one. A session reads the
//! handle once at each unit boundary (`Session::decide`) and once when it opens, so a change
//! takes effect at each client's next unit, and a unit or transaction in flight finishes on the
//! lane where it started (the routing decision keeps an open transaction on its lane whatever
//! the mode).
//!
//! [`Control`] re-reads `--control-file` on SIGHUP, on `POST /reload` and when the file's
//! content changes (polled every `--control-poll-interval`, 500 ms by default, so a change applies well
//! inside the 2 s an operator is promised; reading the content through the path also
//! catches a Kubernetes ConfigMap's atomic `..data` symlink swap, which changes neither the
//! path nor, often, the mtime seen through it). A file that does not parse, or names a bad regex
//! or an unknown preset, is refused as a whole: the old snapshot keeps serving and one log line
//! names the bad entry.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::control::{ControlFileError, Effective, Inputs, Pin, read_control_file};
use crate::config::{Config, Mode};
use crate::metrics;
use crate::route::detect::{Detector, PatternError};
use crate::route::presets::PresetId;

mod json;

/// One snapshot of the runtime-changeable settings. Never changed; replaced as a whole.
#[derive(Debug)]
pub struct Live {
    pub mode: Mode,
    pub pin: Pin,
    pub detector: Detector,
    /// Every setting with where it came from, for `GET /config` and the logs.
    pub effective: Effective,
}

impl Live {
    pub fn build(tag: &str, effective: Effective) -> Result<Live, PatternError> {
        Ok(Live {
            mode: effective.mode.value,
            pin: effective.pin.value,
            detector: build_detector(
                tag,
                &effective.presets.value,
                &effective.lock_patterns.value,
            )?,
            effective,
        })
    }
}

/// Builds the statement detector from the tag, the presets and the custom lock patterns. The
/// one place a detector is built, at start and at every reload.
///
/// Preset names were validated when they were read (an unknown one refuses the file, or exits
/// 64 at start), so a name that is not a built-in preset here is `none`'s empty list.
pub fn build_detector(
    tag: &str,
    presets: &[String],
    patterns: &[String],
) -> Result<Detector, PatternError> {
    let presets: Vec<PresetId> = presets
        .iter()
        .filter_map(|name| PresetId::from_name(name))
        .collect();
    Detector::build(tag, &presets, patterns)
}

/// The current [`Live`] snapshot. A read is an uncontended read lock and an `Arc` clone, once
/// per unit; a reload takes the write lock only to swap the pointer.
#[derive(Debug)]
pub struct LiveHandle(RwLock<Arc<Live>>);

impl LiveHandle {
    pub fn new(live: Live) -> LiveHandle {
        LiveHandle(RwLock::new(Arc::new(live)))
    }

    pub fn load(&self) -> Arc<Live> {
        // A poisoned lock still holds a whole snapshot: swapping an Arc cannot half-happen.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn store(&self, live: Arc<Live>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = live;
    }
}

/// What asked for a reload, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Sighup,
    Admin,
    FileChanged,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Sighup => "SIGHUP",
            Trigger::Admin => "POST /reload",
            Trigger::FileChanged => "file changed",
        }
    }
}

/// Why a reload was refused. `Display` is one line that names the bad entry.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no --control-file is configured; nothing to reload")]
    NoControlFile,
    #[error("{0}")]
    File(#[from] ControlFileError),
    #[error("--control-file: {0}")]
    Pattern(#[from] PatternError),
}

/// Owns the control file: reloads it and swaps [`LiveHandle`].
#[derive(Debug)]
pub struct Control {
    pub live: Arc<LiveHandle>,
    path: Option<PathBuf>,
    poll_interval: Duration,
    tag: String,
    start: Inputs,
    /// The file content last read (or why it could not be read). Held across a reload, so
    /// reloads from the signal, the poll and the admin server run one at a time.
    last_seen: Mutex<Option<String>>,
    /// Why the last reload was refused; `None` after one that applied (or none yet).
    last_error: std::sync::Mutex<Option<String>>,
    /// The live mode, for tasks that act on a change (the app closes idle shared direct
    /// connections while the mode is not split).
    mode: tokio::sync::watch::Sender<Mode>,
}

impl Control {
    /// The settings at start: the control file as `Config` read and checked it, over the flags
    /// and the environment.
    pub fn new(config: &Config) -> Result<Control, PatternError> {
        let effective = config.initial_control.over(&config.start).resolve();
        let live = Live::build(&config.routing.tag, effective)?;
        metrics::set_mode(live.mode);
        metrics::config_loaded();
        let (mode, _) = tokio::sync::watch::channel(live.mode);
        Ok(Control {
            mode,
            live: Arc::new(LiveHandle::new(live)),
            path: config.control_file.clone(),
            poll_interval: config.control_poll_interval,
            tag: config.routing.tag.clone(),
            start: config.start.clone(),
            last_seen: Mutex::new(config.initial_control_text.clone()),
            last_error: std::sync::Mutex::new(None),
        })
    }

    /// Follows the live mode.
    pub fn watch_mode(&self) -> tokio::sync::watch::Receiver<Mode> {
        self.mode.subscribe()
    }

    /// Reads the file and applies it, or refuses it and keeps the old settings. Counted in
    /// `lockroute_config_reloads_total` and logged in one line either way.
    pub async fn reload(&self, trigger: Trigger) -> Result<Arc<Live>, ReloadError> {
        let Some(path) = &self.path else {
            return Err(ReloadError::NoControlFile);
        };
        let mut last_seen = self.last_seen.lock().await;
        let text = read_control_file(path);
        *last_seen = Some(seen(&text));
        self.apply(trigger, text)
    }

    /// Applies the file if its content changed since it was last read.
    async fn poll(&self) {
        let Some(path) = &self.path else { return };
        let mut last_seen = self.last_seen.lock().await;
        // A blocking read of a few hundred bytes from a local file or a ConfigMap's tmpfs.
        let text = read_control_file(path);
        let now = seen(&text);
        if last_seen.as_ref() == Some(&now) {
            return;
        }
        *last_seen = Some(now);
        let _ = self.apply(Trigger::FileChanged, text);
    }

    fn apply(
        &self,
        trigger: Trigger,
        text: Result<String, ControlFileError>,
    ) -> Result<Arc<Live>, ReloadError> {
        let built = text
            .map_err(ReloadError::from)
            .and_then(|text| Ok(crate::config::control::parse(&text)?))
            .and_then(|file| {
                let effective = file.over(&self.start).resolve();
                Ok((file, Live::build(&self.tag, effective)?))
            });
        let (file, live) = match built {
            Ok(built) => built,
            Err(e) => {
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                metrics::config_reload(false);
                tracing::warn!(trigger = trigger.as_str(), error = %e,
                    "control file refused; the previous settings keep serving");
                return Err(e);
            }
        };
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let before = self.live.load().mode;
        let live = Arc::new(live);
        self.live.store(live.clone());
        self.mode.send_replace(live.mode);
        metrics::set_mode(live.mode);
        metrics::config_reload(true);
        tracing::info!(
            trigger = trigger.as_str(),
            mode = live.mode.as_str(),
            previous_mode = before.as_str(),
            mode_source = live.effective.mode_source.as_str(),
            mode_origin = live.effective.mode.origin.as_str(),
            file_sets = %file,
            "control file applied"
        );
        Ok(live)
    }

    /// Reloads on SIGHUP and when the file changes, until `stop` is cancelled. Without a
    /// control file it still takes SIGHUP, so that the signal never kills the process. The
    /// handler is installed before this returns, so no early SIGHUP takes the default action
    /// (terminate).
    pub fn spawn(self: Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let hup = match signal(SignalKind::hangup()) {
            Ok(hup) => Some(hup),
            Err(e) => {
                tracing::error!(error = %e, "cannot install the SIGHUP handler");
                None
            }
        };
        tokio::spawn(self.run(hup, stop))
    }

    async fn run(
        self: Arc<Self>,
        mut hup: Option<tokio::signal::unix::Signal>,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                Some(()) = recv(&mut hup) => {
                    if let Err(ReloadError::NoControlFile) = self.reload(Trigger::Sighup).await {
                        tracing::info!("SIGHUP: no --control-file is configured; nothing to reload");
                    }
                }
                _ = tick.tick(), if self.path.is_some() => self.poll().await,
            }
        }
    }

    /// `GET /config`: the effective settings as JSON. Never a password.
    pub fn to_json(&self) -> String {
        let last_error = self
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        json::render(
            &self.live.load(),
            self.path.as_deref(),
            last_error.as_deref(),
        )
    }
}

async fn recv(hup: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hup {
        Some(hup) => hup.recv().await,
        None => std::future::pending().await,
    }
}

fn seen(text: &Result<String, ControlFileError>) -> String {
    match text {
        Ok(text) => text.clone(),
        // Not a possible file content: the NUL cannot be in a control file that parses.
        Err(e) => format!("\0{e}"),
    }
}
