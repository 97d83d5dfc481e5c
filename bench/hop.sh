#!/usr/bin/env bash
# A first hop benchmark: pgbench -S straight to PgBouncer against through lockroute, alternating,
# on the local stand-in. (The full A/B matrix with the PgBouncer chain and passthrough is
# issue 8's bench/.)
#
#   bench/hop.sh [SECONDS] [ROUNDS]      defaults: 10 s per run, 2 rounds
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DURATION=${1:-10}
ROUNDS=${2:-2}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

bash scripts/standin.sh install-deps
cargo build --release -q
DIR=$(mktemp -d "${TMPDIR:-/tmp}/lockroute-bench.XXXXXX")
LR_PID=
cleanup() {
    [[ -n $LR_PID ]] && { kill -TERM "$LR_PID" 2>/dev/null || true; wait "$LR_PID" 2>/dev/null || true; }
    bash scripts/standin.sh stop "$DIR"
}
trap cleanup EXIT
bash scripts/standin.sh start "$DIR" --owner-pid $$ >/dev/null
# shellcheck source=/dev/null
source "$DIR/env"
PORT=$(free_port)
ADMIN=$(free_port)
RUST_LOG=warn target/release/lockroute --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" \
    --pooler-url "$STANDIN_POOLER_URL" --direct-url "$STANDIN_DIRECT_URL" &
LR_PID=$!
pgbench -i -s 1 -q "$STANDIN_DIRECT_URL" >/dev/null 2>&1
PROXY_URL="postgres://app:app-secret@127.0.0.1:$PORT/app?sslmode=disable"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
printf '%-10s %-8s %-8s %-12s %s\n' round clients mode target tps
for round in $(seq "$ROUNDS"); do
    for clients in 1 8; do
        for mode in simple extended prepared; do
            for target in pgbouncer lockroute; do
                url=$STANDIN_POOLER_URL
                [[ $target == lockroute ]] && url=$PROXY_URL
                # pgbouncer straight, prepared: PgBouncer 1.18 cannot keep named statements in
                # transaction mode, which is the very thing lockroute fixes; measure it anyway
                # and report its failures.
                out=$(pgbench -n -S -M "$mode" -c "$clients" -j "$(( clients > 1 ? 2 : 1 ))" -T "$DURATION" "$url" 2>&1 || true)
                tps=$(awk '/^tps/ {print $3}' <<<"$out")
                failed=$(awk -F': ' '/number of failed transactions/ {print $2}' <<<"$out")
                printf '%-10s %-8s %-8s %-12s %s %s\n' "$round" "$clients" "$mode" "$target" "${tps:-error}" "${failed:+failed=$failed}"
            done
        done
    done
done
