//! The application: wires the listener, the admin server and the signals, and owns the drain.
//!
//! [`run`] takes listeners that are already bound and a [`Shutdown`] the caller owns, so tests
//! run whole proxies on ephemeral ports and drive the drain themselves.
//!
//! The drain (DESIGN.md, "Lifecycle"): on the first SIGTERM or SIGINT `/readyz` turns 503 at
//! once and no new client is accepted; existing clients keep working, so an open transaction
//! can still commit. lockroute exits 0 when the last client is gone, or at `--drain-timeout`,
//! when each remaining session gets `57P01` at its next idle moment. A second signal exits at
//! once.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, AdminState, PoolerProbe};
use crate::cancel::CancelRegistry;
use crate::config::{ClientAuth, Config, Mode};
use crate::context::Ctx;
use crate::control::{Control, LiveHandle};
use crate::metrics;
use crate::route::Lane;
use crate::startup::scram::ScramVerifier;
use crate::upstream::LaneTarget;
use crate::upstream::direct::DirectPool;
use crate::upstream::tls::UpstreamTls;

/// After the drain deadline, how long sessions get to reach an idle moment and say `57P01`.
const TERMINATE_GRACE: Duration = Duration::from_secs(1);

/// The caller's handles on a running lockroute.
#[derive(Clone, Default)]
pub struct Shutdown {
    /// Start the drain (first SIGTERM or SIGINT).
    pub drain: CancellationToken,
    /// Exit at once (second signal).
    pub abort: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("--tls-cert/--tls-key: {0}")]
    ClientTls(#[from] crate::tls::TlsSetupError),
    #[error("{lane} URL TLS settings: {error}")]
    UpstreamTls {
        lane: &'static str,
        error: crate::upstream::tls::TlsConfigError,
    },
    #[error("--lock-pattern: {0}")]
    Pattern(#[from] crate::route::detect::PatternError),
}

/// Runs lockroute until it has drained. Called by `main` once the config is valid and logging
/// is set up.
///
/// One thread: lockroute is a sidecar on a 2-core pod whose cores belong to the worker, and a
/// proxied round trip is a few microseconds of CPU, so one thread is far from saturated. A
/// multi-thread runtime cost more per round trip in bench/profile.sh (callgrind and strace on
/// pgbench -S -M simple): 13.3k instructions per transaction against 11.7k at 1 client, and at
/// 8 clients 12.7k against 10.0k with 6.25 syscalls (0.84 of them futex wakeups between the
/// workers) against 4.25. The price: the PBKDF2 of a SCRAM exchange toward an upstream (1-2 ms
/// of CPU) holds up the other sessions while it runs, once per upstream connection.
pub fn main(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lockroute: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(config.listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("lockroute: --listen {}: {e}", config.listen);
                return ExitCode::from(1);
            }
        };
        let admin = match TcpListener::bind(config.admin_listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("lockroute: --admin-listen {}: {e}", config.admin_listen);
                return ExitCode::from(1);
            }
        };
        let shutdown = Shutdown::default();
        spawn_signal_handler(shutdown.clone());
        let aborted = shutdown.abort.clone();
        match run(Arc::new(config), listener, admin, shutdown).await {
            Ok(()) if aborted.is_cancelled() => ExitCode::from(1),
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lockroute: {e}");
                ExitCode::from(1)
            }
        }
    })
}

/// Runs a whole lockroute on bound listeners until `shutdown` says otherwise.
pub async fn run(
    config: Arc<Config>,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), AppError> {
    // The recorder first: the context resolves its metric handles against it.
    let handle = metrics::install();
    let control = Arc::new(Control::new(&config)?);
    let ctx = Arc::new(build_context(config.clone(), control.live.clone())?);
    metrics::set_draining(false);
    tracing::info!(
        listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        admin = %admin_listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        "lockroute listening"
    );
    let background = CancellationToken::new();
    let admin_state = Arc::new(AdminState {
        metrics: handle.clone(),
        draining: Arc::new(AtomicBool::new(false)),
        pooler: PoolerProbe::new(config.pooler.host.clone(), config.pooler.port),
        control: Some(control.clone()),
    });
    tokio::spawn(admin::serve(
        admin_listener,
        admin_state.clone(),
        background.clone(),
    ));
    tokio::spawn(metrics::run_upkeep(handle, background.clone()));
    control.clone().spawn(background.clone());
    tokio::spawn(spare_direct_lane(
        control.watch_mode(),
        ctx.direct.clone(),
        background.clone(),
    ));
    // With a control file the mode can turn to split at any moment, so the keepalive runs
    // whatever the start-up mode; it only touches connections that exist.
    if config.mode == Mode::Split || config.control_file.is_some() {
        tokio::spawn(ctx.direct.clone().run_keepalive(background.clone()));
    }

    let tracker = TaskTracker::new();
    let stop_accepting = CancellationToken::new();
    let accept = tokio::spawn(crate::listener::accept_loop(
        listener,
        ctx.clone(),
        tracker.clone(),
        stop_accepting.clone(),
    ));

    tokio::select! {
        _ = shutdown.drain.cancelled() => {}
        _ = shutdown.abort.cancelled() => {}
    }
    admin_state.begin_drain();
    stop_accepting.cancel();
    let _ = accept.await;
    tracker.close();
    tracing::info!(
        clients = tracker.len(),
        "draining: waiting for clients to leave"
    );
    let drained = tokio::select! {
        _ = tracker.wait() => true,
        _ = tokio::time::sleep(config.drain_timeout) => false,
        _ = shutdown.abort.cancelled() => true,
    };
    if !drained {
        tracing::info!(
            clients = tracker.len(),
            "drain timeout: closing the remaining sessions"
        );
        ctx.terminate.cancel();
        tokio::select! {
            _ = tracker.wait() => {}
            _ = tokio::time::sleep(TERMINATE_GRACE) => {}
            _ = shutdown.abort.cancelled() => {}
        }
    }
    background.cancel();
    tracing::info!("lockroute stopped");
    Ok(())
}

fn build_context(config: Arc<Config>, live: Arc<LiveHandle>) -> Result<Ctx, AppError> {
    let lane_target = |lane: Lane, target: &crate::config::UpstreamTarget, timeout| {
        let tls = UpstreamTls::for_target(target).map_err(|error| AppError::UpstreamTls {
            lane: lane.as_str(),
            error,
        })?;
        Ok::<_, AppError>(Arc::new(LaneTarget {
            lane,
            target: target.clone(),
            tls,
            connect_timeout: timeout,
            max_message_size: config.client.max_message_size,
        }))
    };
    let pooler = lane_target(Lane::Pooler, &config.pooler, config.connect_timeout)?;
    let direct = lane_target(
        Lane::Direct,
        &config.direct,
        config.direct_lane.connect_timeout,
    )?;
    let scram = match &config.client.auth {
        ClientAuth::Scram { user, password } => Some(ScramVerifier::new(user, password)),
        ClientAuth::Trust => None,
    };
    Ok(Ctx {
        live,
        pooler,
        direct: DirectPool::new(direct, config.direct_lane.clone()),
        cancels: Arc::new(CancelRegistry::default()),
        client_tls: crate::tls::acceptor(&config.client.tls)?,
        scram,
        terminate: CancellationToken::new(),
        metrics: metrics::Hot::register(),
        last_login: Default::default(),
        config,
    })
}

/// How often idle shared direct connections are closed while the mode is not split: a lease
/// held by a transaction that was open when the mode turned comes back within about this.
const SPARE_DIRECT_EVERY: Duration = Duration::from_secs(1);

/// While the mode is not split (the kill switch flipped live, or shadow), no unit leases a
/// shared direct connection, so they are closed: passthrough spares the direct endpoint as a
/// restart into passthrough would. Dedicated connections of session-tagged clients stay; they
/// hold their client's session state (docs/kill-switch.md).
async fn spare_direct_lane(
    mut mode: tokio::sync::watch::Receiver<Mode>,
    direct: Arc<DirectPool>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = mode.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(SPARE_DIRECT_EVERY) => {}
        }
        let now = *mode.borrow_and_update();
        if now != Mode::Split {
            let closed = direct.close_idle().await;
            if closed > 0 {
                tracing::info!(
                    lane = "direct",
                    closed,
                    mode = now.as_str(),
                    "closed idle shared direct connections: the mode routes nothing to them"
                );
            }
        }
    }
}

/// The first SIGTERM or SIGINT starts the drain; a second one of either exits at once. The
/// handlers are installed before this returns, so no early signal takes the default action.
fn spawn_signal_handler(shutdown: Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "draining"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "draining"),
        }
        shutdown.drain.cancel();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        shutdown.abort.cancel();
    });
}
