#!/usr/bin/env bash
# Per-transaction cost of lockroute's hop, in counts that do not depend on how busy the machine
# is: instructions (valgrind --tool=callgrind) and syscalls (strace -c -f), both measured on
# the lockroute process only, for pgbench -S (1 client unless CLIENTS says otherwise). For
# reference, the same for the C hop of bench/ab.sh: a second PgBouncer in session mode chained
# in front of the stand-in's (LR_MODES=chain).
#
#   bench/profile.sh STANDIN_DIR [BINARY]
#
# STANDIN_DIR is a running stand-in (scripts/standin.sh start DIR) with pgbench's tables in it
# (pgbench -i -s 1). BINARY defaults to the release build. Knobs (environment):
#   MODES="simple extended prepared"   pgbench -M values
#   LR_MODES="split passthrough chain" lockroute --mode values, and chain: the PgBouncer hop
#   TOOLS="callgrind strace"           what to count
#   KEEP=DIR                           keep both runs' callgrind profiles in DIR
#   CLIENTS=1                          pgbench clients (-j 2 when more than one)
#   SCRIPT=FILE                        a pgbench script instead of -S (bench/shared_lane.sh's
#                                      renew.sql drives gbrain's renewLock on the direct lane)
#   SHORT=500 LONG=2500                transactions per client in the two runs whose difference
#                                      is divided: connection setup (SCRAM) cancels out
# Prints one line per (tool, lockroute mode, pgbench mode): cost per transaction.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STANDIN=${1:?usage: bench/profile.sh STANDIN_DIR [BINARY]}
BIN=${2:-${CARGO_TARGET_DIR:-$ROOT/target}/release/lockroute}
MODES=${MODES:-simple extended prepared}
LR_MODES=${LR_MODES:-split passthrough chain}
TOOLS=${TOOLS:-callgrind strace}
SHORT=${SHORT:-500}
LONG=${LONG:-2500}
CLIENTS=${CLIENTS:-1}
TXNS=$(((LONG - SHORT) * CLIENTS))
# shellcheck source=/dev/null
source "$STANDIN/env"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lockroute-profile.XXXXXX")
# The chained PgBouncer runs as the stand-in's server user, and writes here too.
chmod 755 "$WORK"
LR_PID=
stop_lockroute() {
    if [[ -n $LR_PID ]]; then
        kill -TERM "$LR_PID" 2>/dev/null || true
        # A PgBouncer is not this shell's child: wait for its pid to go.
        for _ in $(seq 1 100); do
            [[ -e /proc/$LR_PID ]] || break
            sleep 0.1
        done
        wait 2>/dev/null || true
        LR_PID=
    fi
}
trap 'stop_lockroute; rm -rf "$WORK"' EXIT

# As the owner of LR_PID (callgrind_control talks to valgrind through files of its user).
as_owner() {
    local owner
    owner=$(stat -c %U "/proc/$LR_PID")
    if [[ $owner == "$(id -un)" ]]; then "$@"; else runuser -u "$owner" -- "$@"; fi
}

# The stand-in's PgBouncer setup, in session mode in front of the stand-in's PgBouncer: the
# config scripts/standin.sh writes, kept as a template with its own pid and log file.
prepare_chain() {
    [[ -f $WORK/chain/pgbouncer.ini.in ]] && return 0
    local name=profile$$
    bash "$ROOT/scripts/standin.sh" pgbouncer "$STANDIN" "$name" \
        --pool-mode session --upstream-port "$STANDIN_PGB_PORT" 2>/dev/null
    mkdir -p "$WORK/chain"
    sed -e "s|^pidfile = .*|pidfile = $WORK/chain/pgbouncer.pid|" \
        -e "s|^logfile = .*|logfile = $WORK/chain/pgbouncer.log|" \
        -e "s|^listen_port = .*|listen_port = @PORT@|" \
        "$STANDIN/$name/pgbouncer.ini" >"$WORK/chain/pgbouncer.ini.in"
    bash "$ROOT/scripts/standin.sh" stop-pgbouncer "$STANDIN" "$name"
    [[ $EUID -ne 0 ]] || chown -R postgres "$WORK/chain"
}

# Starts the chained PgBouncer (under WRAP..., if given) on a free port; sets LR_PID and
# PROXY_URL. Valgrind takes a while to bring PgBouncer up.
start_chain() {
    local port
    prepare_chain
    port=$(free_port)
    sed "s/@PORT@/$port/" "$WORK/chain/pgbouncer.ini.in" >"$WORK/chain/pgbouncer.ini"
    rm -f "$WORK/chain/pgbouncer.pid"
    if [[ $EUID -eq 0 ]]; then
        (cd "$WORK/chain" && runuser -u postgres -- "$@" /usr/sbin/pgbouncer -q "$WORK/chain/pgbouncer.ini") 2>>"$WORK/chain.log" &
    else
        (cd "$WORK/chain" && "$@" /usr/sbin/pgbouncer -q "$WORK/chain/pgbouncer.ini") 2>>"$WORK/chain.log" &
    fi
    PROXY_URL="postgres://app:app-secret@127.0.0.1:$port/app?sslmode=disable"
    for _ in $(seq 1 1800); do
        if pg_isready -q -h 127.0.0.1 -p "$port" && [[ -s $WORK/chain/pgbouncer.pid ]]; then
            LR_PID=$(cat "$WORK/chain/pgbouncer.pid")
            return 0
        fi
        sleep 0.1
    done
    echo "the chained PgBouncer did not start" >&2
    cat "$WORK/chain.log" "$WORK/chain/pgbouncer.log" >&2
    exit 1
}

# Starts what MODE names (under WRAP..., if given).
start_target() {
    local mode=$1
    shift
    if [[ $mode == chain ]]; then start_chain "$@"; else start_lockroute "$mode" "$@"; fi
}

# Starts lockroute (under WRAP..., if given) on free ports; sets LR_PID and PROXY_URL.
start_lockroute() {
    local mode=$1
    shift
    local port admin
    port=$(free_port)
    admin=$(free_port)
    RUST_LOG=warn "$@" "$BIN" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
        --mode "$mode" --pooler-url "$STANDIN_POOLER_URL" --direct-url "$STANDIN_DIRECT_URL" \
        --client-auth trust --client-tls off 2>>"$WORK/lockroute.log" &
    LR_PID=$!
    PROXY_URL="postgres://app@127.0.0.1:$port/app?sslmode=disable"
    for _ in $(seq 1 600); do
        pg_isready -q -h 127.0.0.1 -p "$port" && return 0
        sleep 0.1
    done
    echo "lockroute did not start" >&2
    cat "$WORK/lockroute.log" >&2
    exit 1
}

bench_run() {
    local mode=$1 txns=$2
    local what=(-S)
    [[ -z ${SCRIPT:-} ]] || what=(-f "$SCRIPT")
    pgbench -n "${what[@]}" -M "$mode" -c "$CLIENTS" -j "$((CLIENTS > 1 ? 2 : 1))" -t "$txns" "$PROXY_URL" >"$WORK/pgbench.out" 2>&1 ||
        { cat "$WORK/pgbench.out" >&2; echo "pgbench failed" >&2; exit 1; }
}

# Total instructions callgrind counted since its last zeroing, once dumped.
callgrind_total() {
    local out=$1
    as_owner callgrind_control -d "$LR_PID" >/dev/null 2>&1
    sleep 0.5
    # Every dump file of this pid after the zeroing; the totals line of each.
    awk '/^totals:/ {s += $2} END {print s}' "$out".*
}

measure_callgrind() {
    local lr_mode=$1 mode=$2 a b
    local out=$WORK/cg.$lr_mode.$mode
    [[ $lr_mode != chain ]] || { prepare_chain; out=$WORK/chain/cg.$mode; }
    start_target "$lr_mode" valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no
    bench_run "$mode" 20
    for n in "$SHORT" "$LONG"; do
        as_owner callgrind_control -z "$LR_PID" >/dev/null 2>&1
        rm -f "$out".*
        bench_run "$mode" "$n"
        total=$(callgrind_total "$out")
        [[ -z ${KEEP:-} ]] || cat "$out".* >"$KEEP/callgrind.$lr_mode.$mode.$n"
        if [[ $n == "$SHORT" ]]; then a=$total; else b=$total; fi
    done
    stop_lockroute
    awk -v a="$a" -v b="$b" -v n="$TXNS" -v m="$mode" -v l="$lr_mode" \
        'BEGIN {printf "callgrind %-11s %-8s %8.0f instructions/txn\n", l, m, (b - a) / n}'
}

# Syscalls the lockroute process (all threads) made during one pgbench run.
strace_run() {
    local mode=$1 txns=$2 out=$3 spid
    strace -c -f -p "$LR_PID" -o "$out" 2>/dev/null &
    spid=$!
    sleep 1
    bench_run "$mode" "$txns"
    kill -INT "$spid"
    wait "$spid" 2>/dev/null || true
}

measure_strace() {
    local lr_mode=$1 mode=$2
    start_target "$lr_mode"
    bench_run "$mode" 20
    strace_run "$mode" "$SHORT" "$WORK/st.short"
    strace_run "$mode" "$LONG" "$WORK/st.long"
    stop_lockroute
    python3 - "$WORK/st.short" "$WORK/st.long" "$TXNS" "$lr_mode" "$mode" <<'PY'
import sys
def calls(path):
    out = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            out[f[-1]] = int(f[3])
    return out
a, b, n = calls(sys.argv[1]), calls(sys.argv[2]), int(sys.argv[3])
per = {k: (b.get(k, 0) - a.get(k, 0)) / n for k in set(a) | set(b)}
per = {k: v for k, v in per.items() if abs(v) >= 0.05}
detail = " ".join(f"{k}={v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
print(f"strace    {sys.argv[4]:<11} {sys.argv[5]:<8} {sum(per.values()):8.2f} syscalls/txn  ({detail})")
PY
}

for tool in $TOOLS; do
    for lr_mode in $LR_MODES; do
        for mode in $MODES; do
            "measure_$tool" "$lr_mode" "$mode"
        done
    done
done
