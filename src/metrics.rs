//! Metrics: every metric name as a const, described once, with closed label sets.
//!
//! The recorder is lockroute's one global (STYLE.md): session code records through the free
//! functions below, and [`install`] sets the recorder up once per process. Nothing here opens a
//! socket; [`crate::admin`] renders the [`PrometheusHandle`] on its own listener.
//!
//! Every series is registered at zero before the first client arrives, so that dashboards and
//! alerts see it before it first moves (DESIGN.md, Metrics). [`register_all`] runs against the
//! current recorder, so tests can point it at a local one with `metrics::with_local_recorder`.
//!
//! Hot-path cost: each labelled series has a [`Key`] built once, so recording is one lookup in
//! the recorder's registry plus an atomic add, with no allocation. The `counter!` macro with
//! runtime label values would allocate the label list on every call, and the recorder would copy
//! it again into an `Arc`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Level, Metadata};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::Mode;
use crate::route::detect::LockMatch;
use crate::route::presets::{Kind, PresetId};
use crate::route::{Lane, Reason};

mod describe;
mod keys;
pub mod pins;

use describe::describe_all;
use keys::*;

pub const CLIENT_CONNECTIONS: &str = "lockroute_client_connections";
pub const CLIENT_CONNECTIONS_TOTAL: &str = "lockroute_client_connections_total";
pub const ROUTED_TOTAL: &str = "lockroute_routed_total";
pub const UPSTREAM_CONNECTIONS: &str = "lockroute_upstream_connections";
pub const UPSTREAM_CONNECTS_TOTAL: &str = "lockroute_upstream_connects_total";
pub const UPSTREAM_LOST_TOTAL: &str = "lockroute_upstream_lost_total";
pub const REQUEST_DURATION_SECONDS: &str = "lockroute_request_duration_seconds";
pub const DIRECT_WAIT_SECONDS: &str = "lockroute_direct_wait_seconds";
pub const ERRORS_TOTAL: &str = "lockroute_errors_total";
pub const BYTES_TOTAL: &str = "lockroute_bytes_total";
pub const MODE: &str = "lockroute_mode";
/// Gauge, always 1, labelled with the crate version: `count by (version)` shows a rollout.
pub const BUILD_INFO: &str = "lockroute_build_info";
/// Gauge, 1 from the first shutdown signal on. `/readyz` says the same thing as a status code.
pub const DRAINING: &str = "lockroute_draining";
/// Gauge: tokio tasks alive now, taken at each scrape. One per client plus a few fixed ones;
/// once clients leave it must return to its idle value, or a task is leaking.
pub const RUNTIME_TASKS: &str = "lockroute_runtime_tasks";
/// Counter: units routed because a lock rule matched, by the rule's `preset` and `kind`.
pub const LOCK_PATH_TOTAL: &str = "lockroute_lock_path_total";
/// Counter: retry-safe lock statements run again on a fresh direct connection after theirs was
/// lost before the reply reached the client, by `preset` and `kind`.
pub const LOCK_PATH_RETRIES_TOTAL: &str = "lockroute_lock_path_retries_total";

pub const CONFIG_RELOADS_TOTAL: &str = "lockroute_config_reloads_total";
pub const CONFIG_LAST_RELOAD_SUCCESS: &str =
    "lockroute_config_last_reload_success_timestamp_seconds";

/// Every metric lockroute exports.
pub const ALL_NAMES: [&str; 23] = [
    CLIENT_CONNECTIONS,
    CLIENT_CONNECTIONS_TOTAL,
    ROUTED_TOTAL,
    UPSTREAM_CONNECTIONS,
    UPSTREAM_CONNECTS_TOTAL,
    UPSTREAM_LOST_TOTAL,
    REQUEST_DURATION_SECONDS,
    DIRECT_WAIT_SECONDS,
    ERRORS_TOTAL,
    BYTES_TOTAL,
    MODE,
    BUILD_INFO,
    DRAINING,
    RUNTIME_TASKS,
    pins::PINS_TOTAL,
    pins::PINNED_CLIENTS,
    pins::PIN_REFUSED_TOTAL,
    pins::DIRECT_SESSIONS,
    pins::DIRECT_SESSIONS_MAX,
    LOCK_PATH_TOTAL,
    LOCK_PATH_RETRIES_TOTAL,
    CONFIG_RELOADS_TOTAL,
    CONFIG_LAST_RELOAD_SUCCESS,
];

/// Buckets of `lockroute_request_duration_seconds`, 0.5 ms to 10 s. A unit through a pooler on
/// the same network takes about a millisecond; seconds are slow queries or a pooler that queues.
/// 10 s bounds the useful range: gbrain's lock renewal gives up after `min(lease/3, 15 s)`.
pub const REQUEST_DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of `lockroute_direct_wait_seconds`, 0.1 ms to 5 s. An uncontended wait is a queue
/// hand-off of microseconds. A wait of seconds means the shared direct connections are saturated
/// and lock heartbeats are at risk, which is what this histogram exists to show.
pub const DIRECT_WAIT_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// How often [`run_upkeep`] drains histogram samples. A scrape drains them too, but without
/// scrapes the samples would pile up without bound. This is the exporter's own default.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The `kind` label of `lockroute_errors_total`. A closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A malformed frame or startup packet from a client.
    Protocol,
    /// A wrong password or an unknown user.
    ClientAuth,
    /// The client did not finish its handshake in time.
    HandshakeTimeout,
    /// A TLS handshake with a client failed.
    ClientTls,
    /// An upstream could not be connected (TCP, TLS or auth).
    UpstreamConnect,
    /// An upstream dropped while it ran a unit.
    UpstreamLost,
    /// A session-tagged client was refused: `--direct-max-sessions` reached.
    DirectLimit,
    /// A client held a shared direct connection too long without sending anything.
    DirectHoldTimeout,
    /// A frame larger than `--max-message-size`.
    MessageTooLarge,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Protocol,
        ErrorKind::ClientAuth,
        ErrorKind::HandshakeTimeout,
        ErrorKind::ClientTls,
        ErrorKind::UpstreamConnect,
        ErrorKind::UpstreamLost,
        ErrorKind::DirectLimit,
        ErrorKind::DirectHoldTimeout,
        ErrorKind::MessageTooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Protocol => "protocol",
            ErrorKind::ClientAuth => "client_auth",
            ErrorKind::HandshakeTimeout => "handshake_timeout",
            ErrorKind::ClientTls => "client_tls",
            ErrorKind::UpstreamConnect => "upstream_connect",
            ErrorKind::UpstreamLost => "upstream_lost",
            ErrorKind::DirectLimit => "direct_limit",
            ErrorKind::DirectHoldTimeout => "direct_hold_timeout",
            ErrorKind::MessageTooLarge => "message_too_large",
        }
    }
}

/// The `state` label of `lockroute_upstream_lost_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossState {
    Idle,
    InFlight,
}

impl LossState {
    pub const ALL: [LossState; 2] = [LossState::Idle, LossState::InFlight];

    pub fn as_str(self) -> &'static str {
        match self {
            LossState::Idle => "idle",
            LossState::InFlight => "in_flight",
        }
    }
}

/// The `direction` label of `lockroute_bytes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    ToUpstream,
    ToClient,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::ToUpstream, Direction::ToClient];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToUpstream => "to_upstream",
            Direction::ToClient => "to_client",
        }
    }
}

/// The `result` label of `lockroute_upstream_connects_total`, indexed by `!ok as usize`.
const CONNECT_RESULTS: [&str; 2] = ["ok", "error"];

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

fn counter(key: &Key) -> Counter {
    metrics::with_recorder(|r| r.register_counter(key, &METADATA))
}

fn gauge(key: &Key) -> Gauge {
    metrics::with_recorder(|r| r.register_gauge(key, &METADATA))
}

fn histogram(key: &Key) -> Histogram {
    metrics::with_recorder(|r| r.register_histogram(key, &METADATA))
}

/// The builder with lockroute's histogram buckets and no HTTP listener. Explicit buckets make
/// the exporter render real histograms (`_bucket` lines that aggregate across pods) instead of
/// per-process summaries.
fn builder() -> PrometheusBuilder {
    const { assert!(!REQUEST_DURATION_BUCKETS.is_empty() && !DIRECT_WAIT_BUCKETS.is_empty()) };
    let with_buckets = |b: PrometheusBuilder, name: &str, buckets: &[f64]| {
        b.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            // The only error is an empty bucket list, ruled out at compile time above.
            .expect("bucket lists are non-empty constants")
    };
    let b = with_buckets(
        PrometheusBuilder::new(),
        REQUEST_DURATION_SECONDS,
        &REQUEST_DURATION_BUCKETS,
    );
    with_buckets(b, DIRECT_WAIT_SECONDS, &DIRECT_WAIT_BUCKETS)
}

/// A fresh recorder with lockroute's configuration, not installed anywhere. Tests use it with
/// `metrics::with_local_recorder` and [`register_all`].
pub fn recorder() -> PrometheusRecorder {
    builder().build_recorder()
}

static INSTALLED: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs lockroute's recorder as the global one, registers every series at zero, and returns
/// the handle that `/metrics` renders.
///
/// Idempotent: a second call (a second proxy in one test process) returns the same handle, so
/// both proxies count into one registry. The caller must also run [`run_upkeep`] for the life of
/// the process. The mode gauge starts all-zero; call [`set_mode`] once the mode is known.
pub fn install() -> PrometheusHandle {
    INSTALLED
        .get_or_init(|| {
            let recorder = recorder();
            let handle = recorder.handle();
            metrics::with_local_recorder(&recorder, register_all);
            if metrics::set_global_recorder(recorder).is_err() {
                // Only code outside lockroute can have got there first; our own recording then
                // goes to that recorder and /metrics shows the zeros registered above.
                tracing::warn!(
                    "another metrics recorder is already installed; /metrics will not move"
                );
            }
            handle
        })
        .clone()
}

/// Drains histogram samples every [`UPKEEP_INTERVAL`] until `shutdown` is cancelled.
pub async fn run_upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

/// Describes every metric and registers every series of the closed label sets at zero, on the
/// current recorder. Sets `lockroute_build_info` to 1.
pub fn register_all() {
    describe_all();
    let keys = &*KEYS;
    keys.counters().for_each(|k| drop(counter(k)));
    keys.gauges().for_each(|k| drop(gauge(k)));
    // A registered histogram renders its buckets with zero counts before the first sample.
    keys.histograms().for_each(|k| drop(histogram(k)));
    pins::register();
    build_info();
}

/// A unit was routed to `lane` because of `reason`.
pub fn routed(lane: Lane, reason: Reason) {
    counter(&KEYS.routed[lane as usize][reason as usize]).increment(1);
}

/// A unit was routed because the lock rule `lock` matched.
pub fn lock_path(lock: LockMatch) {
    if let Some(key) = &KEYS.lock_path[lock.preset as usize][lock.kind as usize] {
        counter(key).increment(1);
    }
}

/// A retry-safe lock statement (`lock`) was run again after its direct connection was lost.
pub fn lock_path_retry(lock: LockMatch) {
    if let Some(key) = &KEYS.lock_path_retries[lock.preset as usize][lock.kind as usize] {
        counter(key).increment(1);
    }
}

/// The `(preset, kind)` series of `lockroute_lock_path_total`: each built-in preset with the
/// kinds its rules report, and `custom` with `unknown`. Closed, and exported at zero.
pub fn lock_path_series() -> impl Iterator<Item = (PresetId, Kind)> {
    PresetId::ALL
        .into_iter()
        .flat_map(|preset| preset.kinds().map(move |kind| (preset, kind)))
}

/// A connect attempt to `lane` finished.
pub fn upstream_connect(lane: Lane, ok: bool) {
    counter(&KEYS.upstream_connects[lane as usize][usize::from(!ok)]).increment(1);
}

/// An upstream on `lane` dropped.
pub fn upstream_lost(lane: Lane, state: LossState) {
    counter(&KEYS.upstream_lost[lane as usize][state as usize]).increment(1);
}

/// A unit on `lane` took `elapsed` from its first message to its final ReadyForQuery.
pub fn request_duration(lane: Lane, elapsed: Duration) {
    histogram(&KEYS.request_duration[lane as usize]).record(elapsed.as_secs_f64());
}

/// A unit waited `elapsed` for a shared direct connection.
pub fn direct_wait(elapsed: Duration) {
    direct_wait_histogram().record(elapsed.as_secs_f64());
}

/// The handle [`direct_wait`] records to, for a caller that records on every unit: resolving
/// it is a registry lookup (about 600 instructions), recording is a few.
pub fn direct_wait_histogram() -> Histogram {
    histogram(&DIRECT_WAIT_KEY)
}

pub fn error(kind: ErrorKind) {
    counter(&KEYS.errors[kind as usize]).increment(1);
}

/// `n` bytes were relayed on `lane` in `direction`.
pub fn bytes(lane: Lane, direction: Direction, n: u64) {
    counter(&KEYS.bytes[lane as usize][direction as usize]).increment(n);
}

/// Sets the mode gauge: 1 for `active`, 0 for the others.
pub fn set_mode(active: Mode) {
    for mode in Mode::ALL {
        let value = if mode == active { 1.0 } else { 0.0 };
        gauge(&KEYS.mode[mode as usize]).set(value);
    }
}

/// A control-file reload was applied (`ok`) or refused. A successful one also stamps
/// `lockroute_config_last_reload_success_timestamp_seconds`.
pub fn config_reload(ok: bool) {
    counter(&KEYS.config_reloads[usize::from(!ok)]).increment(1);
    if ok {
        config_loaded();
    }
}

/// The settings in force were loaded now (at start, or by a reload): sets the timestamp gauge
/// to the Unix time.
pub fn config_loaded() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    gauge(&CONFIG_LAST_RELOAD_SUCCESS_KEY).set(now);
}

pub fn set_draining(draining: bool) {
    gauge(&DRAINING_KEY).set(if draining { 1.0 } else { 0.0 });
}

/// Sets `lockroute_runtime_tasks`; the admin server calls it with the runtime's count just
/// before it renders, so the value is as fresh as the scrape.
pub fn set_runtime_tasks(alive: usize) {
    gauge(&RUNTIME_TASKS_KEY).set(alive as f64);
}

pub fn build_info() {
    gauge(&BUILD_INFO_KEY).set(1.0);
}

/// Counts one client in `lockroute_client_connections` while it lives. It holds the gauge it
/// incremented, so the decrement lands on the same series even if dropped elsewhere.
#[must_use = "the client gauge is decremented when the guard drops"]
#[derive(Debug)]
pub struct ClientGuard {
    gauge: Gauge,
}

/// A client was accepted.
pub fn client_opened() -> ClientGuard {
    counter(&CLIENT_CONNECTIONS_TOTAL_KEY).increment(1);
    let gauge = gauge(&CLIENT_CONNECTIONS_KEY);
    gauge.increment(1.0);
    ClientGuard { gauge }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

/// Counts one upstream in `lockroute_upstream_connections{lane}` while it lives.
#[must_use = "the upstream gauge is decremented when the guard drops"]
#[derive(Debug)]
pub struct UpstreamGuard {
    gauge: Gauge,
}

/// An upstream on `lane` finished its handshake.
pub fn upstream_opened(lane: Lane) -> UpstreamGuard {
    let gauge = gauge(&KEYS.upstream_connections[lane as usize]);
    gauge.increment(1.0);
    UpstreamGuard { gauge }
}

impl Drop for UpstreamGuard {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

mod hot;
pub use self::hot::Hot;

#[cfg(test)]
mod tests;
