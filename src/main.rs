//! Entry point: parse the configuration, set up logging, run the application, and turn the
//! outcome into an exit code. A bad configuration exits with 64 (`EX_USAGE`) and one line on
//! stderr; `--help` and `--version` print to stdout and exit 0. `lockroute explain …` goes to
//! [`lockroute::explain`] instead.

use std::io::IsTerminal;
use std::process::ExitCode;

use lockroute::config::{Config, ConfigError, LogFormat};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

fn main() -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    // `lockroute explain …` is a subcommand with its own flags; everything else is the proxy.
    let mut args = std::env::args_os().peekable();
    let program = args.next();
    if args.peek().is_some_and(|a| a == "explain") {
        return lockroute::explain::main(args, &env);
    }
    let config = match Config::from_args(program.into_iter().chain(args), &env) {
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
        control_file = config.control_file.as_ref().map(|p| p.display().to_string()),
        listen = %config.listen,
        admin_listen = %config.admin_listen,
        "lockroute starting"
    );
    log_fd_limit(raise_fd_limit());
    lockroute::app::main(config)
}

/// The file descriptor limit, soft and hard, after trying to raise the soft one.
struct FdLimit {
    /// The soft limit the process started with.
    started: u64,
    soft: u64,
    hard: u64,
    error: Option<std::io::Error>,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Each client costs two descriptors (its
/// socket and its pooler upstream), and systemd, `runuser` and most shells start a process with
/// a soft limit of 1024, which 500 clients would exhaust. The hard limit is the operator's
/// ceiling and is never touched; Go's runtime (since 1.19) and many servers do the same at start.
fn raise_fd_limit() -> FdLimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        let error = Some(std::io::Error::last_os_error());
        return FdLimit {
            started: 0,
            soft: 0,
            hard: 0,
            error,
        };
    }
    let (started, hard) = (limit.rlim_cur, limit.rlim_max);
    let mut result = FdLimit {
        started,
        soft: started,
        hard,
        error: None,
    };
    if started < hard {
        let raised = libc::rlimit {
            rlim_cur: hard,
            rlim_max: hard,
        };
        // SAFETY: `raised` is a valid rlimit; setrlimit only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            result.soft = hard;
        } else {
            result.error = Some(std::io::Error::last_os_error());
        }
    }
    result
}

/// One line either way, so an operator can see how many clients the process can hold.
fn log_fd_limit(limit: FdLimit) {
    let FdLimit {
        started,
        soft,
        hard,
        error,
    } = limit;
    match error {
        None => tracing::info!(
            fd_limit = soft,
            fd_limit_hard = hard,
            fd_limit_at_start = started,
            "file descriptor limit"
        ),
        Some(e) => tracing::warn!(
            fd_limit = soft,
            fd_limit_hard = hard,
            fd_limit_at_start = started,
            error = %e,
            "could not raise the file descriptor limit; each client needs two"
        ),
    }
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
