#!/usr/bin/env bash
# The long pooler-reaping run (issue 5): the gbrain-like postgres.js fleet through lockroute and,
# for comparison, straight at the same PgBouncer, while PgBouncer KILLs and RESUMEs every client
# every 1 to 2 s. Prints one REAP line per path: KILLs, lock-path (claim + renew) errors, socket
# errors, evictions by the stall sweeper, lost leases, and the slowest call of each operation.
#
#   scripts/reap.sh [SECONDS] [-E 'test(through)']
#       SECONDS per path, default 300; the paths run side by side unless a nextest filter
#       picks one
#
# It runs tests/faults_pooler.rs's two reaping tests with LOCKROUTE_REAP_SECONDS, so the same
# assertions hold: through lockroute zero lock-path and socket errors and no eviction; straight
# at PgBouncer the failures show.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

export LOCKROUTE_REAP_SECONDS=${1:-300}
[[ $LOCKROUTE_REAP_SECONDS =~ ^[0-9]+$ ]] || { echo "usage: scripts/reap.sh [SECONDS] [NEXTEST ARGS...]" >&2; exit 64; }
shift || true
filter=("$@")
[[ ${#filter[@]} -gt 0 ]] || filter=(-E 'test(reaping)')
out=$(mktemp "${TMPDIR:-/tmp}/lockroute-reap.XXXXXX")
echo "machine: $(nproc) cores, $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
bash scripts/test.sh --test faults_pooler "${filter[@]}" --no-capture >"$out" 2>&1 || status=$?
grep -E '^REAP ' "$out" || true
if ((status != 0)); then
    echo "reaping tests failed (status $status); full output in $out" >&2
    exit "$status"
fi
rm -f "$out"
