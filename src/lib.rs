//! lockroute: a Postgres wire-protocol sidecar that sends a job queue's lock path to a sticky
//! session connection and everything else to a transaction-mode pooler.
//!
//! The request path, in the order a connection lives it:
//!
//! 1. [`listener`] accepts a client socket.
//! 2. [`startup`] answers SSLRequest/GSSENCRequest, reads the StartupMessage, authenticates the
//!    client, or forwards a CancelRequest.
//! 3. [`upstream`] opens the client's pooler upstream (TLS, SCRAM/md5/cleartext), and the
//!    direct lane's connections when a unit needs one.
//! 4. [`session`] runs the per-client loop: it groups messages into units, asks [`route`] which
//!    lane runs each unit, forwards the original frames, and relays replies in request order.
//! 5. [`passthrough`] replaces the session when the kill switch is on and no control file can
//!    turn it off again: a byte pipe after auth.
//!
//! Around it: [`config`] (validated, immutable), [`control`] (the settings that change while
//! lockroute runs, swapped whole on SIGHUP or a changed `--control-file`, read by each session
//! once per unit), [`metrics`] and [`admin`] (`/metrics`, `/healthz`, `/readyz`, `/config`,
//! `/reload`), and [`app`], which wires them together and owns the drain.
//! [`explain`] is the `lockroute explain` subcommand: the routing answer for one statement.

pub mod admin;
pub mod app;
pub mod cancel;
pub mod config;
pub mod context;
pub mod control;
pub mod explain;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod passthrough;
pub mod protocol;
pub mod route;
pub mod session;
pub mod startup;
pub mod tls;
pub mod upstream;
