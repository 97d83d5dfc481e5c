//! Driver bootstrap statements that belong with the lock path. Pure.
//!
//! postgres.js (`fetch_types`, on by default; gbrain uses it) runs one `pg_catalog.pg_type`
//! query as the first unit of every new connection, before the statement that made the pool
//! open it. When that statement is a lease renewal and the bootstrap goes to the pooler, the
//! pooler's outage or restart reaches the lock path after all: postgres.js fails the renewal
//! with the bootstrap's error (issue 14, seen as renewals failing `08001`/`08006` while the
//! pool grew during a PgBouncer restart). The bootstrap is a read of the catalog, the same on
//! both lanes, and runs once per connection, so it runs on the direct lane.

/// postgres.js 3.4's array-type query (`src/connection.js` `fetchArrayTypes`), as tokens.
const POSTGRES_JS_TYPE_FETCH: &str = "select b.oid, b.typarray from pg_catalog.pg_type a \
     left join pg_catalog.pg_type b on b.oid = a.typelem where a.typcategory = 'A' \
     group by b.oid, b.typarray order by b.oid";

/// Whether `text` (a statement, leading comments already skipped) is a known driver bootstrap.
/// Whitespace between tokens may differ; nothing else may.
pub fn is_driver_bootstrap(text: &[u8]) -> bool {
    // Cheap first: every other statement is rejected by its first bytes.
    if !text.starts_with(b"select b.oid") {
        return false;
    }
    let tokens = text
        .split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty());
    tokens.eq(POSTGRES_JS_TYPE_FETCH
        .split_ascii_whitespace()
        .map(str::as_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_js_type_fetch_is_a_bootstrap_and_lookalikes_are_not() {
        // Byte for byte as postgres.js 3.4.9 sends it (after its leading newline).
        let sent = "select b.oid, b.typarray\n      from pg_catalog.pg_type a\n      left join pg_catalog.pg_type b on b.oid = a.typelem\n      where a.typcategory = 'A'\n      group by b.oid, b.typarray\n      order by b.oid\n    ";
        assert!(is_driver_bootstrap(sent.as_bytes()));
        for other in [
            "select b.oid from pg_catalog.pg_type b",
            "select b.oid, b.typarray from pg_catalog.pg_type a; delete from jobs",
            "select 1",
            "",
        ] {
            assert!(!is_driver_bootstrap(other.as_bytes()), "{other}");
        }
        let longer = format!("{sent}; update minion_jobs set status = 'x'");
        assert!(!is_driver_bootstrap(longer.as_bytes()));
    }
}
