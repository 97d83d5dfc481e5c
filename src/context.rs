//! The context every connection task gets: configuration and shared handles, passed down as
//! one value instead of many arguments.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::cancel::CancelRegistry;
use crate::config::Config;
use crate::control::LiveHandle;
use crate::startup::scram::ScramVerifier;
use crate::upstream::LaneTarget;
use crate::upstream::direct::DirectPool;

pub struct Ctx {
    pub config: Arc<Config>,
    /// The runtime-changeable settings (mode, pin policy, detector), swapped by a reload.
    /// Sessions read it once per unit: `ctx.live.load()`.
    pub live: Arc<LiveHandle>,
    pub pooler: Arc<LaneTarget>,
    pub direct: Arc<DirectPool>,
    pub cancels: Arc<CancelRegistry>,
    pub client_tls: Option<tokio_rustls::TlsAcceptor>,
    /// The client SCRAM verifier; `None` with `--client-auth trust`.
    pub scram: Option<ScramVerifier>,
    /// Cancelled when the drain deadline passes: each session closes with `57P01` at its next
    /// idle moment.
    pub terminate: CancellationToken,
    /// The per-unit metric series, resolved once (see [`crate::metrics::Hot`]).
    pub metrics: crate::metrics::Hot,
    /// The server parameters of the last successful login on each lane: what a new client is
    /// greeted with, so that a login never waits on the pooler.
    pub last_login: crate::session::greeting::LastLogin,
}
