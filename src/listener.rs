//! The accept loop: one task per client, tracked so that the drain can wait for them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::Mode;
use crate::context::Ctx;
use crate::metrics::{self, ErrorKind};
use crate::route::Lane;
use crate::startup::{self, Handshake};

/// Pause after a failed accept. Short, because the descriptors a leaving client frees are
/// reused at once; long enough that a process out of descriptors does not burn a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// While accepts keep failing, warn once and then every this many failures (about every 5 s),
/// so that a process out of descriptors does not also flood its log.
const ACCEPT_WARN_EVERY: u64 = 100;

/// Accepts clients until `stop` is cancelled, then drops the listener.
pub async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let mut failures: u64 = 0;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                failures = 0;
                let span = tracing::info_span!("client", client.addr = %peer);
                tracker.spawn(serve(ctx.clone(), tcp, peer).instrument(span));
            }
            Err(e) => {
                // EMFILE and friends: the connection stays in the kernel's backlog until a
                // descriptor frees up, so retrying at once would spin. Back off a moment, but
                // stop at once if the drain starts meanwhile.
                failures += 1;
                if failures % ACCEPT_WARN_EVERY == 1 {
                    tracing::warn!(error = %e, failures, "accept failed");
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
}

async fn serve(ctx: Arc<Ctx>, tcp: TcpStream, peer: SocketAddr) {
    let _client = metrics::client_opened();
    let _ = crate::net::configure_client_socket(&tcp);
    let handshake = tokio::time::timeout(
        ctx.config.client.handshake_timeout,
        startup::handshake(&ctx, tcp),
    )
    .await;
    let hello = match handshake {
        Err(_) => {
            metrics::error(ErrorKind::HandshakeTimeout);
            tracing::info!("client did not finish its handshake in time");
            return;
        }
        Ok(Err(e)) => {
            if let Some(kind) = e.kind() {
                metrics::error(kind);
                tracing::info!(error = %e, sqlstate = e.sqlstate(), "client handshake failed");
            } else {
                tracing::debug!(error = %e, "client left during the handshake");
            }
            return;
        }
        Ok(Ok(Handshake::Cancel(key))) => return cancel(&ctx, key, peer).await,
        Ok(Ok(Handshake::Client(hello))) => hello,
    };
    // The byte pipe only when the mode can never change: with a control file, passthrough is
    // the session loop sending every unit to the pooler, so that the switch can flip back
    // without a reconnect (docs/kill-switch.md).
    if ctx.config.mode == Mode::Passthrough && ctx.config.control_file.is_none() {
        crate::passthrough::run(ctx, hello).await;
    } else {
        crate::session::run(ctx, hello).await;
    }
}

/// Forwards a CancelRequest to the upstream running the client's unit, with that upstream's
/// key. Unknown keys are ignored silently, as a server does.
async fn cancel(ctx: &Ctx, key: crate::protocol::BackendKey, peer: SocketAddr) {
    let Some(target) = ctx.cancels.lookup(key) else {
        tracing::debug!(%peer, "cancel request for no running unit");
        return;
    };
    let lane = match target.lane {
        Lane::Pooler => &ctx.pooler,
        Lane::Direct => ctx.direct.target(),
    };
    if let Err(e) = lane.cancel(target.key).await {
        tracing::warn!(lane = target.lane.as_str(), error = %e, "could not forward a cancel request");
    }
}
