//! A session's start and end: open the upstream the client is greeted from, greet it, run the
//! loop, and leave every upstream clean.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::context::Ctx;
use crate::metrics::{self, ErrorKind};
use crate::protocol::message::{self, Severity};
use crate::protocol::{TxStatus, sqlstate};
use crate::route::Lane;
use crate::startup::Hello;
use crate::upstream::Upstream;
use crate::upstream::connect::ConnectError;

use super::statements::Statements;
use super::{Direct, End, Session, Units};

/// How long the last words to a closing client (a FATAL) may take to write.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs one authenticated client to the end.
pub async fn run(ctx: Arc<Ctx>, hello: Hello) {
    let Some(mut session) = open(ctx, hello).await else {
        return;
    };
    let end = session.run_loop().await;
    match &end {
        End::ClientGone => tracing::debug!("client disconnected"),
        End::Protocol(e) => tracing::info!(error = %e, "closed a client that broke the protocol"),
        End::Closed(why) => tracing::info!(reason = why, "closed a client"),
    }
    finish(session).await;
}

/// Opens the upstream the client will be greeted from, and greets it with that upstream's
/// real `ParameterStatus` values (or its real error).
async fn open(ctx: Arc<Ctx>, hello: Hello) -> Option<Session> {
    let Hello {
        mut conn,
        params,
        application_name,
    } = hello;
    // Decided once, in the mode live now: a client that connects during passthrough or shadow
    // is routed like an untagged client for its whole life (docs/kill-switch.md).
    let live = ctx.live.load();
    let tagged = live.mode == crate::config::Mode::Split
        && live.detector.session_tagged(application_name.as_bytes());
    drop(live);
    let mut direct = Direct::None;
    let mut pooler = None;
    let greeting_params;
    if tagged {
        let Some(permit) = ctx.direct.try_session() else {
            metrics::error(ErrorKind::DirectLimit);
            let msg = format!(
                "lockroute: too many session-tagged clients: all {} dedicated direct connections are in use \
                 (--direct-max-sessions)",
                ctx.config.direct_lane.max_sessions
            );
            crate::startup::fatal(&mut conn, sqlstate::TOO_MANY_CONNECTIONS, &msg).await;
            return None;
        };
        match ctx
            .direct
            .target()
            .connect_within(&params, ctx.config.direct_lane.connect_timeout)
            .await
        {
            Ok((upstream, server_params)) => {
                direct = Direct::Dedicated {
                    upstream,
                    _permit: permit,
                };
                greeting_params = server_params;
            }
            Err(e) => {
                tracing::warn!(lane = "direct", reason = "direct_unavailable", error = %e,
                    "a session-tagged client runs on the pooler: its dedicated direct connection could not be opened");
                metrics::routed(Lane::Pooler, crate::route::Reason::DirectUnavailable);
                let (upstream, server_params) = connect_pooler(&ctx, &mut conn, &params).await?;
                pooler = Some(upstream);
                greeting_params = server_params;
            }
        }
    } else {
        let (upstream, server_params) = connect_pooler(&ctx, &mut conn, &params).await?;
        pooler = Some(upstream);
        greeting_params = server_params;
    }
    let cancel = ctx.cancels.register();
    for (name, value) in &greeting_params {
        message::parameter_status(&mut conn.wbuf, name, value);
    }
    message::backend_key_data(&mut conn.wbuf, cancel.key);
    message::ready_for_query(&mut conn.wbuf, TxStatus::Idle);
    let active = if matches!(direct, Direct::Dedicated { .. }) {
        Lane::Direct
    } else {
        Lane::Pooler
    };
    Some(Session {
        ctx,
        client: conn,
        pooler,
        direct,
        tagged,
        pinned: None,
        pin_refused_logged: false,
        units: Units {
            active,
            open: false,
            started: Instant::now(),
            stalled: None,
            local: None,
            begun: None,
            local_batch: None,
            retry: None,
            retrying: false,
        },
        statements: Statements::default(),
        params,
        cancel,
        last_client_frame: Instant::now(),
    })
}

/// Opens a client's pooler upstream. On failure the client has been told why.
pub async fn connect_pooler(
    ctx: &Ctx,
    conn: &mut crate::net::Conn,
    params: &[(String, String)],
) -> Option<(Upstream, Vec<(String, String)>)> {
    match ctx.pooler.connect(params).await {
        Ok(connected) => Some(connected),
        Err(e) => {
            metrics::error(ErrorKind::UpstreamConnect);
            tracing::warn!(lane = "pooler", error = %e, sqlstate = e.sqlstate(), "could not connect a client's pooler upstream");
            match &e {
                // The pooler's own answer (a wrong password in the pooler URL, too many
                // clients, ...) is the most useful thing the client can see.
                ConnectError::Server { frame, .. } => conn.wbuf.extend_from_slice(frame),
                _ => message::error_response(
                    &mut conn.wbuf,
                    Severity::Fatal,
                    sqlstate::CONNECTION_UNABLE,
                    &format!("lockroute: could not connect to the pooler: {e}"),
                ),
            }
            let _ = tokio::time::timeout(FAREWELL_TIMEOUT, conn.drain()).await;
            None
        }
    }
}

/// Says goodbye to the client and leaves the upstreams clean. A shared direct connection goes
/// back to its pool through the lease (rolled back first if the client left mid-unit).
async fn finish(mut session: Session) {
    // A shared connection whose client left in the middle of a unit is closed, not reused:
    // the server rolls back what it abandoned, and no one else sees its leftovers.
    if session.units.open
        && session.units.active == Lane::Direct
        && let Direct::Shared(mut lease) = std::mem::replace(&mut session.direct, Direct::None)
    {
        drop(lease.take());
    }
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, session.client.drain()).await;
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, session.client.io_shutdown()).await;
    for upstream in [session.pooler.take(), dedicated(&mut session.direct)]
        .into_iter()
        .flatten()
    {
        terminate(upstream).await;
    }
    drop(session);
}

fn dedicated(direct: &mut Direct) -> Option<Upstream> {
    match std::mem::replace(direct, Direct::None) {
        Direct::Dedicated { upstream, .. } => Some(upstream),
        other => {
            *direct = other;
            None
        }
    }
}

/// Ends an upstream session politely. A server that is mid-transaction rolls back when its
/// client leaves, so a dirty one is simply closed.
async fn terminate(mut upstream: Upstream) {
    if upstream.is_clean() {
        upstream.conn.wbuf.extend_from_slice(&message::terminate());
        let _ = tokio::time::timeout(FAREWELL_TIMEOUT, upstream.conn.drain()).await;
    }
}
