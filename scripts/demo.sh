#!/usr/bin/env bash
# The lockroute demo: a gbrain-like worker fleet (js/worker.mjs, postgres.js 3.4.9, gbrain's exact
# lock-path SQL) runs through lockroute in front of a local Supabase stand-in, while PgBouncer's
# console drops every pooler socket every two seconds. At the end it prints the worker's summary,
# the server's own record of which lane ran each claim, renewal and completion, and lockroute's
# routing metrics.
#
#   scripts/demo.sh            DEMO_SECONDS=N (run time, default 20) and WORKERS=N are honoured
#
# It installs what is missing, builds lockroute, starts the stand-in and lockroute on free ports,
# and stops everything by pid when it ends.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

step "prerequisites: PostgreSQL, PgBouncer, postgres.js"
bash scripts/standin.sh install-deps
if [[ ! -d js/node_modules ]]; then
    (cd js && npm ci --no-audit --no-fund)
fi

step "build lockroute (release)"
cargo build --release
LOCKROUTE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/lockroute
[[ -x $LOCKROUTE_BIN ]] || { echo "demo: $LOCKROUTE_BIN was not built" >&2; exit 1; }

step "start the stand-in: PostgreSQL as :5432, PgBouncer (transaction mode) as :6543"
STANDIN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/lockroute-demo.XXXXXX")
LOCKROUTE_PID=
KILLER_PID=
cleanup() {
    [[ -n $KILLER_PID ]] && kill "$KILLER_PID" 2>/dev/null || true
    if [[ -n $LOCKROUTE_PID ]]; then
        kill -TERM "$LOCKROUTE_PID" 2>/dev/null || true
        wait "$LOCKROUTE_PID" 2>/dev/null || true
    fi
    bash "$ROOT/scripts/standin.sh" stop "$STANDIN_DIR"
}
trap cleanup EXIT
bash scripts/standin.sh start "$STANDIN_DIR" --owner-pid $$
# shellcheck source=/dev/null
source "$STANDIN_DIR/env"
echo "direct endpoint: 127.0.0.1:$STANDIN_PG_PORT (server role app)"
echo "pooler endpoint: 127.0.0.1:$STANDIN_PGB_PORT (server role pooler)"

# Not SECONDS: that is bash's own clock.
export WORKERS=${WORKERS:-4}
DEMO_SECONDS=${DEMO_SECONDS:-20}
psql_direct() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$STANDIN_DIRECT_URL" "$@"; }

step "schema and the server-side audit trigger (records current_user per claim/renew/complete)"
DATABASE_URL=$STANDIN_DIRECT_URL SETUP_ONLY=1 node js/worker.mjs >/dev/null
psql_direct -f js/audit.sql

step "start lockroute: clients -> 127.0.0.1:PORT, lock path -> direct, the rest -> pooler"
PORT=$(free_port)
ADMIN_PORT=$(free_port)
"$LOCKROUTE_BIN" --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
    --pooler-url "$STANDIN_POOLER_URL" --direct-url "$STANDIN_DIRECT_URL" &
LOCKROUTE_PID=$!
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null || { echo "demo: lockroute did not become ready" >&2; exit 1; }
echo "lockroute pid $LOCKROUTE_PID on 127.0.0.1:$PORT, metrics on http://127.0.0.1:$ADMIN_PORT/metrics"

step "reap the pooler's sockets every 2s (PgBouncer KILL + RESUME), as Supavisor does"
(
    while true; do
        sleep 2
        psql -X -q "$STANDIN_PGB_ADMIN_URL" -c 'KILL app' -c 'RESUME app' >/dev/null 2>&1 || true
    done
) &
KILLER_PID=$!

step "run $WORKERS gbrain-like workers through lockroute for ${DEMO_SECONDS}s"
QUEUE=demo-$$
set +e
DATABASE_URL="postgres://app:app-secret@127.0.0.1:$PORT/app?sslmode=disable" \
    SECONDS=$DEMO_SECONDS QUEUE=$QUEUE KEEP=1 node js/worker.mjs
worker_status=$?
set -e
kill "$KILLER_PID" 2>/dev/null || true
KILLER_PID=

step "the server's own record: which role ran each step (app = direct lane, pooler = PgBouncer)"
psql_direct -c "select op, role, count(*) from lockroute_audit where queue = '$QUEUE' group by 1, 2 order by 1, 2" \
    | sed 's/|/  /g'

step "lockroute's routing metrics"
curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" |
    grep -E '^lockroute_(routed_total|upstream_lost_total|upstream_connects_total|errors_total)' | grep -v ' 0$' || true

exit "$worker_status"
