#!/usr/bin/env bash
# The load test (tests/load.rs) for as long as you like, printing its figures: baseline, peak and
# after for RSS, descriptors and tokio tasks; pgbench's throughput and latency; the worker's
# summary. It fails, as the test does, on any client error or on growth after the clients left.
#
#   bench/load.sh [SECONDS] [PGBENCH_CLIENTS] [WORKERS]     defaults: 300 s, 480, 32
#
# PROFILE=dev runs the debug build the test suite uses (default: release). The warm-up round
# lasts LOCKROUTE_LOAD_WARMUP_SECONDS (default 15). With LOCKROUTE_STANDIN_DIR set it uses that
# stand-in; otherwise the test starts and stops its own.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/standin.sh install-deps
if [[ ! -d js/node_modules ]]; then
    (cd js && npm ci --no-audit --no-fund)
fi
export LOCKROUTE_LOAD_SECONDS=${1:-300}
export LOCKROUTE_LOAD_PGBENCH_CLIENTS=${2:-480}
export LOCKROUTE_LOAD_WORKERS=${3:-32}
profile=(--release)
[[ ${PROFILE:-release} == dev ]] && profile=()

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "build: ${PROFILE:-release}; $LOCKROUTE_LOAD_SECONDS s, $LOCKROUTE_LOAD_PGBENCH_CLIENTS pgbench clients, $LOCKROUTE_LOAD_WORKERS workers"
# The test prints its figures on stderr, one "load:" line each; the whole output is kept.
out=$(mktemp "${TMPDIR:-/tmp}/lockroute-load.XXXXXX")
status=0
cargo test "${profile[@]}" --test load -- --nocapture >"$out" 2>&1 || status=$?
grep '^load:' "$out" || true
if [[ $status -ne 0 ]]; then
    tail -n 60 "$out"
    echo "bench/load.sh: the load test failed (status $status); full output in $out" >&2
    exit "$status"
fi
rm -f "$out"
