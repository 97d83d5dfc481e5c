//! The application: wires the listener, the admin server and the signals, and owns the drain.
//! OWNER: lead. Interface only for now.

use std::process::ExitCode;

use crate::config::Config;

/// Runs lockroute until it has drained. Called by `main` after the config is valid and
/// logging is set up.
pub fn main(config: Config) -> ExitCode {
    let _ = config;
    ExitCode::SUCCESS
}
