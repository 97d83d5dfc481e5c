//! The kill switch: after client auth, one pooler upstream and a byte pipe in both directions.
//! No parsing, no routing, no direct connection: the cheapest thing that can possibly work,
//! for when anything smarter is in doubt.

use std::sync::Arc;

use bytes::Buf;
use tokio::io::AsyncWriteExt;

use crate::cancel::CancelTarget;
use crate::context::Ctx;
use crate::metrics::{self, Direction};
use crate::protocol::{TxStatus, message};
use crate::route::{Lane, Reason};
use crate::session::connect_pooler;
use crate::startup::Hello;

pub async fn run(ctx: Arc<Ctx>, hello: Hello) {
    let Hello {
        mut conn, params, ..
    } = hello;
    let Some((mut upstream, server_params)) = connect_pooler(&ctx, &mut conn, &params).await else {
        return;
    };
    let cancel = ctx.cancels.register();
    cancel.set(upstream.key.map(|key| CancelTarget {
        lane: Lane::Pooler,
        key,
    }));
    for (name, value) in &server_params {
        message::parameter_status(&mut conn.wbuf, name, value);
    }
    message::backend_key_data(&mut conn.wbuf, cancel.key);
    message::ready_for_query(&mut conn.wbuf, TxStatus::Idle);
    metrics::routed(Lane::Pooler, Reason::Passthrough);
    // Whatever either side sent past the handshake goes first.
    conn.wbuf.extend_from_slice(&upstream.conn.rbuf);
    upstream.conn.rbuf.clear();
    upstream.conn.wbuf.extend_from_slice(&conn.rbuf);
    conn.rbuf.advance(conn.rbuf.len());
    if conn.drain().await.is_err() || upstream.conn.drain().await.is_err() {
        return;
    }
    let copied = tokio::select! {
        r = tokio::io::copy_bidirectional(&mut conn.io, &mut upstream.conn.io) => r,
        _ = ctx.terminate.cancelled() => {
            let _ = conn.io.shutdown().await;
            return;
        }
    };
    if let Ok((to_upstream, to_client)) = copied {
        metrics::bytes(Lane::Pooler, Direction::ToUpstream, to_upstream);
        metrics::bytes(Lane::Pooler, Direction::ToClient, to_client);
    }
}
