//! Entry point: parse the configuration, set up logging, run the application, and turn the
//! outcome into an exit code. A bad configuration exits with 64 (`EX_USAGE`) and one line on
//! stderr; `--help` and `--version` print to stdout and exit 0.

use std::io::IsTerminal;
use std::process::ExitCode;

use lockroute::config::{Config, ConfigError, LogFormat};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args_os(), &|k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(err @ ConfigError::Info { .. }) => {
            print!("{err}");
            return ExitCode::from(err.exit_code());
        }
        Err(err) => {
            eprintln!("lockroute: {err}");
            return ExitCode::from(err.exit_code());
        }
    };
    init_tracing(config.log_format);
    // The mode and what chose it come first, so an operator can see at once whether a kill
    // switch is on. No URLs: they would carry user names and hosts into log pipelines.
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        mode = config.mode.as_str(),
        mode_source = config.mode_source.as_str(),
        listen = %config.listen,
        admin_listen = %config.admin_listen,
        "lockroute starting"
    );
    lockroute::app::main(config)
}

/// Logs go to stderr. The filter comes from `RUST_LOG`, default `info`; a malformed
/// directive is skipped rather than fatal, since logging must never stop the proxy starting.
/// JSON is one object per line with top-level `timestamp`, `level`, `target`, `message` and
/// the event's own fields, so log pipelines can rely on those names.
fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            // The client span carries `client.addr`: every line about a client says which.
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
