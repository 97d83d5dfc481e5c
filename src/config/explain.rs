//! Configuration for `lockroute explain`: the proxy's own routing flags and variables (`--tag`,
//! `--preset`, `--lock-pattern`), validated by the same code, plus the statement to explain.
//! No upstream URL is needed: explaining opens no sockets.

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches, Parser};

use super::cli::RoutingArgs;
use super::{ConfigError, RoutingConfig};

const ABOUT: &str = "Prints the lane, reason, preset, kind, retry class and pin that lockroute \
would give a statement, using the proxy's own detection and routing code (split mode, a unit \
that starts outside a transaction, an untagged client).";

const AFTER_HELP: &str = "The statement comes from the argument, or from stdin when the \
argument is absent or -. The routing flags read the same variables as the proxy \
(LOCKROUTE_TAG, LOCKROUTE_PRESETS, LOCKROUTE_LOCK_PATTERNS), so with the proxy's environment \
the answer is the proxy's. A bad value exits with status 64.";

#[derive(Parser)]
#[command(
    name = "lockroute explain",
    bin_name = "lockroute explain",
    about = ABOUT,
    after_help = AFTER_HELP
)]
struct ExplainCli {
    /// Print one JSON object instead of lines
    #[arg(long)]
    json: bool,
    /// The extended-protocol statement name the driver gives it in Parse (graphile-worker's
    /// get_job/graphile_worker) [default: unnamed]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The statement [default: read from stdin]
    #[arg(value_name = "STATEMENT", allow_hyphen_values = true)]
    statement: Option<String>,
    #[command(flatten)]
    routing: RoutingArgs,
}

/// What `lockroute explain` was asked.
#[derive(Debug, Clone)]
pub struct ExplainConfig {
    pub routing: RoutingConfig,
    pub json: bool,
    /// The statement name; empty for the unnamed statement.
    pub name: String,
    /// The statement; `None` means read it from stdin.
    pub statement: Option<String>,
}

impl ExplainConfig {
    /// Parses `lockroute explain …`; `args` starts with the program name (`explain`). `env`
    /// answers `LOCKROUTE_LOCK_PATTERNS`, as for the proxy.
    pub fn from_args<I, T>(
        args: I,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ExplainConfig, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut matches = ExplainCli::command()
            .mut_args(|arg| arg.hide_env_values(true))
            .try_get_matches_from(args)
            .map_err(ConfigError::from_clap)?;
        let cli = ExplainCli::from_arg_matches_mut(&mut matches).map_err(ConfigError::from_clap)?;
        Ok(ExplainConfig {
            routing: cli.routing.validate(env)?,
            json: cli.json,
            name: cli.name.unwrap_or_default(),
            statement: cli.statement.filter(|s| s != "-"),
        })
    }
}
