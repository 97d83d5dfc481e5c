#!/usr/bin/env bash
# The hop benchmark (issue 8): what one lockroute hop costs next to one PgBouncer hop.
#
#   bench/ab.sh                           5 rounds x 10 s per run (about 25 minutes)
#   ROUNDS=3 SECONDS=5 bench/ab.sh        shorter
#
# Self-contained: builds the release binary, starts its own stand-in (PostgreSQL 15 + PgBouncer
# in transaction mode, scripts/standin.sh) on free ports, stops everything by pid at the end.
# pgbench -n -S (select-only) runs against four configurations, in one run:
#
#   straight     pgbench -> PgBouncer (transaction mode) -> PostgreSQL
#   lockroute    pgbench -> lockroute (split mode, release build) -> PgBouncer -> PostgreSQL
#   chain        pgbench -> a second PgBouncer (session mode) -> PgBouncer -> PostgreSQL:
#                the reference cost of one extra hop written in C
#   passthrough  pgbench -> lockroute --mode passthrough (the kill switch) -> PgBouncer -> ...
#
# for each of -M simple, extended and prepared at 1 and 8 clients. The four configurations
# alternate run by run (round-robin, the starting one rotating every round), so that other load
# on the machine hits all of them alike; the report gives the median TPS per cell over the
# rounds, the spread (max-min over median) as a noise figure, the ratios, and every failed
# transaction or non-zero pgbench exit (PgBouncer 1.18 in transaction mode does not keep named
# prepared statements, so -M prepared straight to it may fail; that is reported, not hidden).
#
# Knobs (environment): ROUNDS (5), SECONDS (10; DURATION is the same), CLIENTS ("1 8"),
# PROTOCOLS ("simple extended prepared"), CONFIGS ("straight lockroute chain passthrough"),
# OUT (also write the markdown report to this file), BUILD (1; 0 skips cargo build).
set -euo pipefail
# bash's own SECONDS counts up from whatever the environment set it to: read the knob from the
# environment this process started with.
DURATION=${DURATION:-$(tr '\0' '\n' </proc/$$/environ | sed -n 's/^SECONDS=//p')}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
CLIENTS=${CLIENTS:-1 8}
PROTOCOLS=${PROTOCOLS:-simple extended prepared}
CONFIGS=${CONFIGS:-straight lockroute chain passthrough}
BUILD=${BUILD:-1}
[[ $DURATION =~ ^[0-9]+$ && $ROUNDS =~ ^[0-9]+$ ]] || { echo "ab.sh: SECONDS and ROUNDS must be integers" >&2; exit 64; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/lockroute
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
log() { echo "ab.sh: $*" >&2; }

bash scripts/standin.sh install-deps
if [[ $BUILD == 1 ]]; then
    log "building the release binary"
    cargo build --release -q --bin lockroute
fi
[[ -x $BIN ]] || { log "no binary at $BIN"; exit 1; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/lockroute-ab.XXXXXX")
chmod 755 "$DIR"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    bash scripts/standin.sh stop "$DIR/standin" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting the stand-in"
bash scripts/standin.sh start "$DIR/standin" --owner-pid $$ 2>/dev/null
# shellcheck source=/dev/null
source "$DIR/standin/env"
STRAIGHT_URL=$STANDIN_POOLER_URL
bash scripts/standin.sh pgbouncer "$DIR/standin" chain --owner-pid $$ \
    --pool-mode session --upstream-port "$STANDIN_PGB_PORT" 2>/dev/null
CHAIN_URL=$(sed -n 's/^STANDIN_POOLER_URL=//p' "$DIR/standin/chain.env")

# Starts lockroute in MODE on free ports; prints the client URL.
start_lockroute() {
    local mode=$1 port admin
    port=$(free_port)
    admin=$(free_port)
    RUST_LOG=warn "$BIN" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" --mode "$mode" \
        --pooler-url "$STANDIN_POOLER_URL" --direct-url "$STANDIN_DIRECT_URL" 2>>"$DIR/lockroute-$mode.log" &
    PIDS+=($!)
    for _ in $(seq 1 100); do
        pg_isready -q -h 127.0.0.1 -p "$port" && break
        sleep 0.1
    done
    pg_isready -q -h 127.0.0.1 -p "$port" || { log "lockroute --mode $mode did not start"; cat "$DIR/lockroute-$mode.log" >&2; exit 1; }
    LR_URL="postgres://app:app-secret@127.0.0.1:$port/app?sslmode=disable"
}
start_lockroute split
SPLIT_URL=$LR_URL
start_lockroute passthrough
PASSTHROUGH_URL=$LR_URL

log "pgbench -i -s 1"
pgbench -i -s 1 -q "$STANDIN_DIRECT_URL" >/dev/null 2>&1

url_of() {
    case $1 in
    straight) echo "$STRAIGHT_URL" ;;
    lockroute) echo "$SPLIT_URL" ;;
    chain) echo "$CHAIN_URL" ;;
    passthrough) echo "$PASSTHROUGH_URL" ;;
    *) log "unknown configuration $1"; exit 64 ;;
    esac
}

# Describes the machine: the same lines go into the report.
machine() {
    local cpu
    cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
    echo "- CPU: ${cpu:-unknown}, $(nproc) cores; $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM"
    echo "- OS: $(sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '"'), kernel $(uname -r)"
    echo "- PostgreSQL $(psql -X -At "$STANDIN_DIRECT_URL" -c 'show server_version'), $("${STANDIN_PGBOUNCER:-/usr/sbin/pgbouncer}" --version | head -n 1), $(pgbench --version)"
    echo "- lockroute $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), $(rustc --version)"
}

RESULTS=$DIR/results.tsv
: >"$RESULTS"
read -r -a configs <<<"$CONFIGS"
total=$((ROUNDS * $(wc -w <<<"$CLIENTS") * $(wc -w <<<"$PROTOCOLS") * ${#configs[@]}))
log "$total runs of ${DURATION}s; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
run=0
for round in $(seq "$ROUNDS"); do
    for clients in $CLIENTS; do
        for protocol in $PROTOCOLS; do
            for i in "${!configs[@]}"; do
                # Rotate the order every round, so that no configuration always runs first.
                config=${configs[$(((i + round - 1) % ${#configs[@]}))]}
                run=$((run + 1))
                rc=0
                out=$(pgbench -n -S -M "$protocol" -c "$clients" -j "$((clients > 1 ? 2 : 1))" -T "$DURATION" \
                    --failures-detailed "$(url_of "$config")" 2>&1) || rc=$?
                tps=$(awk '/^tps = .*without initial connection time/ {print $3}' <<<"$out")
                failed=$(awk -F': ' '/^number of failed transactions/ {split($2, a, " "); print a[1]}' <<<"$out")
                aborted=$(grep -c "aborted in command" <<<"$out" || true)
                # The first server error, for the report (e.g. a missing prepared statement).
                error=$(grep -m 1 -oE '(ERROR|FATAL): .*' <<<"$out" | tr '\t' ' ' | cut -c1-100 || true)
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$clients" "$protocol" "$config" \
                    "${tps:-0}" "${failed:-?}" "$rc" "$aborted" "$error" >>"$RESULTS"
                log "[$run/$total] round $round, $clients clients, $protocol, $config: tps=${tps:-none} failed=${failed:-?} exit=$rc"
                if ((rc != 0)); then
                    grep -m 3 -E "error|ERROR|FATAL" <<<"$out" | sed 's/^/    /' >&2 || true
                fi
            done
        done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

report() {
    echo "Command: \`ROUNDS=$ROUNDS SECONDS=$DURATION bench/ab.sh\` — pgbench \`-n -S\` (select-only, scale 1),"
    echo "\`-j 2\` at 8 clients; $ROUNDS rounds of ${DURATION} s per run, configurations interleaved round-robin."
    echo "Load average before / after: $LOAD_BEFORE / $LOAD_AFTER."
    echo
    machine
    echo
    python3 - "$RESULTS" "$CONFIGS" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
configs = sys.argv[2].split()
cells = {}
for rnd, clients, proto, config, tps, failed, rc, aborted, error in rows:
    c = cells.setdefault((int(clients), proto, config),
                         {"tps": [], "failed": 0, "aborted": 0, "bad": 0, "runs": 0, "errors": set()})
    c["runs"] += 1
    c["tps"].append(float(tps))
    c["failed"] += int(failed) if failed.isdigit() else 0
    c["aborted"] += int(aborted)
    if rc != "0" or failed != "0" or aborted != "0":
        c["bad"] += 1
        if error:
            c["errors"].add(error)
names = {"straight": "PgBouncer", "lockroute": "lockroute split", "chain": "PgBouncer chain",
         "passthrough": "lockroute passthrough"}
notes = []
def med(key):
    c = cells.get(key)
    return statistics.median(c["tps"]) if c and c["tps"] else None
def cell(key):
    c = cells.get(key)
    if not c:
        return "—"
    m = statistics.median(c["tps"])
    spread = (max(c["tps"]) - min(c["tps"])) / m * 100 if m else 0
    text = f"{m:,.0f} ±{spread / 2:.0f}%"
    if c["bad"]:
        errors = "; ".join(sorted(c["errors"])[:2]) or "no server error printed"
        notes.append(f"{names[key[2]]}, {key[0]} client(s), -M {key[1]}: {c['bad']} of {c['runs']} runs "
                     f"not clean ({c['failed']} failed transactions, {c['aborted']} clients aborted; "
                     f"{errors}); its TPS counts only what completed")
        text += f" ⚠{len(notes)}"
    return text
def ratio(x, y, clients, proto):
    a, b = med((clients, proto, x)), med((clients, proto, y))
    if not a or not b:
        return "—"
    # A ratio against a run whose clients aborted compares nothing useful: say so.
    bad = any(cells.get((clients, proto, k), {}).get("bad") for k in (x, y))
    return f"{a / b:.2f}" + (" ⚠" if bad else "")
head = ["clients", "-M"] + [names[c] for c in configs] + ["lockroute/chain", "lockroute/straight", "passthrough/split"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for clients in sorted({k[0] for k in cells}):
    for proto in ["simple", "extended", "prepared"]:
        if not any(k[:2] == (clients, proto) for k in cells):
            continue
        row = [str(clients), proto] + [cell((clients, proto, c)) for c in configs]
        row += [ratio("lockroute", "chain", clients, proto), ratio("lockroute", "straight", clients, proto),
                ratio("passthrough", "lockroute", clients, proto)]
        print("| " + " | ".join(row) + " |")
print()
print("TPS is the median over the rounds; ±N% is half the spread (max − min) over the median, a "
      "noise figure. Ratios are of medians.")
if notes:
    print()
    for i, n in enumerate(notes, 1):
        print(f"- ⚠{i} {n}.")
else:
    print("Every run: zero failed transactions, pgbench exit 0.")
PY
}
echo
if [[ -n ${OUT:-} ]]; then
    report | tee "$OUT"
else
    report
fi
echo
log "raw results: one line per run (round, clients, protocol, configuration, tps, failed, exit, aborted clients, first error)"
sed 's/^/    /' "$RESULTS" >&2
