//! Help text and units of every metric, given to the recorder once at start.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

use super::*;

pub(super) fn describe_all() {
    describe_gauge!(CLIENT_CONNECTIONS, Unit::Count, "Clients connected now.");
    describe_counter!(
        CLIENT_CONNECTIONS_TOTAL,
        Unit::Count,
        "Clients accepted since start."
    );
    describe_counter!(
        ROUTED_TOTAL,
        Unit::Count,
        "Units routed, by lane and the reason for it."
    );
    describe_gauge!(
        UPSTREAM_CONNECTIONS,
        Unit::Count,
        "Upstream connections open now, by lane."
    );
    describe_counter!(
        UPSTREAM_CONNECTS_TOTAL,
        Unit::Count,
        "Upstream connect attempts, by lane and result."
    );
    describe_counter!(
        UPSTREAM_LOST_TOTAL,
        Unit::Count,
        "Upstream connections that dropped, by lane and whether a unit was in flight."
    );
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time from a unit's first message to its final ReadyForQuery, by lane."
    );
    describe_histogram!(
        DIRECT_WAIT_SECONDS,
        Unit::Seconds,
        "Time a unit waited in the FIFO queue for a shared direct connection."
    );
    describe_counter!(ERRORS_TOTAL, Unit::Count, "Errors, by kind.");
    describe_counter!(
        BYTES_TOTAL,
        Unit::Bytes,
        "Bytes relayed, by lane and direction."
    );
    describe_gauge!(
        MODE,
        Unit::Count,
        "1 for the active mode (split, passthrough, shadow), 0 for the others."
    );
    describe_counter!(
        CONFIG_RELOADS_TOTAL,
        Unit::Count,
        "Control-file reloads (SIGHUP, POST /reload, a changed file), by result: ok, or error when the file was refused and the old settings kept serving."
    );
    describe_gauge!(
        CONFIG_LAST_RELOAD_SUCCESS,
        Unit::Seconds,
        "Unix time the settings in force were loaded: at start, then at each applied reload."
    );
    describe_gauge!(
        BUILD_INFO,
        Unit::Count,
        "Always 1; the version label names the running build."
    );
    describe_gauge!(
        DRAINING,
        Unit::Count,
        "1 once a shutdown signal has started the drain."
    );
    describe_counter!(
        LOCK_PATH_TOTAL,
        Unit::Count,
        "Units routed because a lock rule matched, by preset (a built-in queue or custom) and kind."
    );
    describe_gauge!(
        RUNTIME_TASKS,
        Unit::Count,
        "Tokio tasks alive at the last scrape; back to its idle value once clients leave."
    );
    describe_counter!(
        LOCK_PATH_RETRIES_TOTAL,
        Unit::Count,
        "Retry-safe lock statements run again on a fresh direct connection after theirs was lost before the reply reached the client, by preset and kind."
    );
    super::pins::describe();
}
