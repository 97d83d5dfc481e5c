//! The series lockroute exports, as keys built once: recording is then one registry lookup and
//! an atomic add, with no allocation (see the parent module's notes on the hot path).

use std::sync::LazyLock;

use metrics::{Key, Label};

use super::*;

pub(super) const LANES: usize = Lane::ALL.len();

pub(super) static CLIENT_CONNECTIONS_KEY: Key = Key::from_static_name(CLIENT_CONNECTIONS);
pub(super) static CLIENT_CONNECTIONS_TOTAL_KEY: Key =
    Key::from_static_name(CLIENT_CONNECTIONS_TOTAL);
pub(super) static DIRECT_WAIT_KEY: Key = Key::from_static_name(DIRECT_WAIT_SECONDS);
pub(super) static DRAINING_KEY: Key = Key::from_static_name(DRAINING);
pub(super) static RUNTIME_TASKS_KEY: Key = Key::from_static_name(RUNTIME_TASKS);
pub(super) static CONFIG_LAST_RELOAD_SUCCESS_KEY: Key =
    Key::from_static_name(CONFIG_LAST_RELOAD_SUCCESS);
static BUILD_INFO_LABELS: [Label; 1] = [Label::from_static_parts(
    "version",
    env!("CARGO_PKG_VERSION"),
)];
pub(super) static BUILD_INFO_KEY: Key = Key::from_static_parts(BUILD_INFO, &BUILD_INFO_LABELS);

/// The key of every labelled series, indexed by the enums' discriminants (which follow the order
/// of their `ALL` arrays; a test checks that).
pub(super) struct Keys {
    pub(super) routed: [[Key; Reason::ALL.len()]; LANES],
    pub(super) upstream_connections: [Key; LANES],
    pub(super) upstream_connects: [[Key; CONNECT_RESULTS.len()]; LANES],
    pub(super) upstream_lost: [[Key; LossState::ALL.len()]; LANES],
    pub(super) request_duration: [Key; LANES],
    pub(super) errors: [Key; ErrorKind::ALL.len()],
    pub(super) bytes: [[Key; Direction::ALL.len()]; LANES],
    pub(super) mode: [Key; Mode::ALL.len()],
    /// `None` where a preset has no rule of that kind: that series does not exist.
    pub(super) lock_path: [[Option<Key>; Kind::ALL.len()]; PresetId::ALL.len()],
    /// The same series of `lockroute_lock_path_retries_total`.
    pub(super) lock_path_retries: [[Option<Key>; Kind::ALL.len()]; PresetId::ALL.len()],
    pub(super) config_reloads: [Key; CONNECT_RESULTS.len()],
}

pub(super) static KEYS: LazyLock<Keys> = LazyLock::new(Keys::build);

/// A key whose name and labels are `'static`, so the recorder's `to_retained` copies nothing.
/// The label slice is leaked once per series: a few dozen small slices for the process's life.
fn static_key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|&(k, v)| Label::from_static_parts(k, v))
        .collect();
    Key::from_static_parts(name, Box::leak(labels.into_boxed_slice()))
}

/// The series of `name` for every lane × every value of a second label.
fn by_lane<const N: usize>(
    name: &'static str,
    label: &'static str,
    values: [&'static str; N],
) -> [[Key; N]; LANES] {
    Lane::ALL.map(|lane| values.map(|v| static_key(name, &[("lane", lane.as_str()), (label, v)])))
}

/// The series of `name` for every value of its one label.
pub(super) fn by<const N: usize>(
    name: &'static str,
    label: &'static str,
    values: [&'static str; N],
) -> [Key; N] {
    values.map(|v| static_key(name, &[(label, v)]))
}

/// The keys of `name` for each of [`lock_path_series`], at `[preset][kind]`.
fn lock_path_keys(name: &'static str) -> [[Option<Key>; Kind::ALL.len()]; PresetId::ALL.len()] {
    let mut keys = [const { [const { None }; Kind::ALL.len()] }; PresetId::ALL.len()];
    for (preset, kind) in lock_path_series() {
        keys[preset as usize][kind as usize] = Some(static_key(
            name,
            &[("preset", preset.as_str()), ("kind", kind.as_str())],
        ));
    }
    keys
}

impl Keys {
    pub(super) fn build() -> Keys {
        let lanes = Lane::ALL.map(Lane::as_str);
        Keys {
            routed: by_lane(ROUTED_TOTAL, "reason", Reason::ALL.map(Reason::as_str)),
            upstream_connections: by(UPSTREAM_CONNECTIONS, "lane", lanes),
            upstream_connects: by_lane(UPSTREAM_CONNECTS_TOTAL, "result", CONNECT_RESULTS),
            upstream_lost: by_lane(
                UPSTREAM_LOST_TOTAL,
                "state",
                LossState::ALL.map(LossState::as_str),
            ),
            request_duration: by(REQUEST_DURATION_SECONDS, "lane", lanes),
            errors: by(ERRORS_TOTAL, "kind", ErrorKind::ALL.map(ErrorKind::as_str)),
            bytes: by_lane(
                BYTES_TOTAL,
                "direction",
                Direction::ALL.map(Direction::as_str),
            ),
            mode: by(MODE, "mode", Mode::ALL.map(Mode::as_str)),
            lock_path: lock_path_keys(LOCK_PATH_TOTAL),
            lock_path_retries: lock_path_keys(LOCK_PATH_RETRIES_TOTAL),
            config_reloads: by(CONFIG_RELOADS_TOTAL, "result", CONNECT_RESULTS),
        }
    }

    pub(super) fn counters(&self) -> impl Iterator<Item = &Key> {
        self.routed
            .iter()
            .flatten()
            .chain(self.upstream_connects.iter().flatten())
            .chain(self.upstream_lost.iter().flatten())
            .chain(&self.errors)
            .chain(self.bytes.iter().flatten())
            .chain(&self.config_reloads)
            .chain([&CLIENT_CONNECTIONS_TOTAL_KEY])
            .chain(self.lock_path.iter().flatten().flatten())
            .chain(self.lock_path_retries.iter().flatten().flatten())
    }

    pub(super) fn gauges(&self) -> impl Iterator<Item = &Key> {
        self.upstream_connections.iter().chain(&self.mode).chain([
            &CLIENT_CONNECTIONS_KEY,
            &DRAINING_KEY,
            &BUILD_INFO_KEY,
            &RUNTIME_TASKS_KEY,
            &CONFIG_LAST_RELOAD_SUCCESS_KEY,
        ])
    }

    pub(super) fn histograms(&self) -> impl Iterator<Item = &Key> {
        self.request_duration.iter().chain([&DIRECT_WAIT_KEY])
    }
}
