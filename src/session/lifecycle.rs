//! A session's start and end: greet the client (never waiting on the pooler), run the loop, and
//! leave every upstream clean.

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
use crate::upstream::loss::{self, Failure};

use super::greeting::greeting;
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

/// Greets the client without waiting for the pooler: a session-tagged client from its
/// dedicated direct connection, every other client from the last successful login of this
/// process (see [`super::greeting`]). The pooler upstream is opened at the first pooler unit.
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
    let mut dedicated_params = None;
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
                ctx.last_login.record_direct(&server_params);
                direct = Direct::Dedicated {
                    upstream,
                    _permit: permit,
                };
                dedicated_params = Some(server_params);
            }
            Err(e) => {
                tracing::warn!(lane = "direct", reason = "direct_unavailable", cause = loss::cause(&e), error = %e,
                    "a session-tagged client runs on the pooler: its dedicated direct connection could not be opened");
                metrics::routed(Lane::Pooler, crate::route::Reason::DirectUnavailable);
            }
        }
    }
    let greeting_params = match dedicated_params {
        Some(server_params) => server_params,
        None => {
            let (upstream, server_params) = login_params(&ctx, &mut conn, &params).await?;
            pooler = upstream;
            server_params
        }
    };
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
            phase: Default::default(),
            started: Instant::now(),
            stalled: None,
            begun: None,
            retry: None,
            retrying: false,
            replay: None,
            answer_held: false,
        },
        statements: Statements::default(),
        last_statement: Default::default(),
        params,
        cancel,
        last_client_frame: Instant::now(),
        pooler_failure: None,
    })
}

/// The values a client that is not served by a dedicated connection is greeted with, and the
/// pooler upstream if one was opened for them. On failure the client has been told why.
///
/// Once any login of this process succeeded, no upstream is asked: the login cannot fail on
/// the pooler. Until then (the first clients after start), the pooler is asked first, so that a
/// pooler that refuses lockroute's configured login (a wrong password or database in the pooler
/// URL, an unknown tenant) says so to the first client, verbatim. A pooler that is merely down
/// or restarting is passed over for the direct lane, which is asked once for its values.
async fn login_params(
    ctx: &Ctx,
    conn: &mut crate::net::Conn,
    params: &[(String, String)],
) -> Option<(Option<Upstream>, Vec<(String, String)>)> {
    if let Some(known) = ctx.last_login.best() {
        return Some((None, greeting(&known, params)));
    }
    let pooler_error = match ctx.pooler.connect(params).await {
        Ok((upstream, server_params)) => {
            ctx.last_login.record_pooler(&server_params);
            return Some((Some(upstream), server_params));
        }
        Err(e) if loss::classify(&e) == Failure::Refused => {
            refuse_login(conn, e).await;
            return None;
        }
        Err(e) => e,
    };
    tracing::info!(lane = "pooler", cause = loss::cause(&pooler_error), error = %pooler_error,
        "the pooler is unreachable at login; greeting with the direct lane's values");
    match ctx
        .direct
        .target()
        .connect_within(params, ctx.config.direct_lane.connect_timeout)
        .await
    {
        Ok((upstream, server_params)) => {
            ctx.last_login.record_direct(&server_params);
            terminate(upstream).await;
            Some((None, greeting(&server_params, params)))
        }
        Err(direct_error) => {
            metrics::error(ErrorKind::UpstreamConnect);
            tracing::warn!(pooler_error = %pooler_error, direct_error = %direct_error,
                "a login failed: neither lane could be connected");
            let msg = format!(
                "lockroute: neither lane can serve this login: the pooler: {pooler_error}; \
                 the direct lane: {direct_error}"
            );
            message::error_response(
                &mut conn.wbuf,
                Severity::Fatal,
                sqlstate::CONNECTION_UNABLE,
                &msg,
            );
            let _ = tokio::time::timeout(FAREWELL_TIMEOUT, conn.drain()).await;
            None
        }
    }
}

/// Opens a client's pooler upstream (passthrough mode). On failure the client has been told
/// why.
pub async fn connect_pooler(
    ctx: &Ctx,
    conn: &mut crate::net::Conn,
    params: &[(String, String)],
) -> Option<(Upstream, Vec<(String, String)>)> {
    match ctx.pooler.connect(params).await {
        Ok(connected) => Some(connected),
        Err(e) => {
            refuse_login(conn, e).await;
            None
        }
    }
}

/// Ends a login the pooler would not take, with the pooler's own answer where it gave one (a
/// wrong password in the pooler URL, an unknown database, too many clients ...): that is the
/// most useful thing the client can see.
async fn refuse_login(conn: &mut crate::net::Conn, e: ConnectError) {
    metrics::error(ErrorKind::UpstreamConnect);
    tracing::warn!(lane = "pooler", cause = loss::cause(&e), error = %e, sqlstate = e.sqlstate(),
        "could not connect a client's pooler upstream");
    match &e {
        ConnectError::Server { frame, .. } => conn.wbuf.extend_from_slice(frame),
        _ => message::error_response(
            &mut conn.wbuf,
            Severity::Fatal,
            sqlstate::CONNECTION_UNABLE,
            &format!("lockroute: could not connect to the pooler: {e}"),
        ),
    }
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, conn.drain()).await;
}

/// Says goodbye to the client and leaves the upstreams clean. A shared direct connection goes
/// back to its pool through the lease (rolled back first if the client left mid-unit).
async fn finish(mut session: Session) {
    // A shared connection whose client left in the middle of a unit is closed, not reused:
    // the server rolls back what it abandoned, and no one else sees its leftovers.
    if session.units.phase.is_open()
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
