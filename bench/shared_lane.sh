#!/usr/bin/env bash
# The ceiling of lockroute's shared direct lane: how many lock-path statements per second the
# `--direct-pool-size` shared sticky connections carry, and what a unit waits for one, next to
# the same statement sent straight to PostgreSQL, one at a time and pipelined on one connection.
#
#   bench/shared_lane.sh STANDIN_DIR [BINARY]
#   SECONDS=3 ROUNDS=1 bench/shared_lane.sh STANDIN_DIR     a smoke run
#
# STANDIN_DIR is a running stand-in (scripts/standin.sh start DIR). The script drops and
# re-creates the table minion_jobs in its database (as app, through the direct URL): gbrain's
# lock columns, its partial index on lock_until, ROWS rows with status 'active'. BINARY
# defaults to the release build (built with `nice cargo build --release` when missing); it is
# copied first, so that a rebuild during the run does not change what is measured.
#
# The statement is gbrain's renewLock (reference/gbrain-lock-path.md §1.2), byte for byte:
#
#   UPDATE minion_jobs SET lock_until = now() + ($1::double precision * interval '1 millisecond'),
#     updated_at = now() WHERE id = $2 AND lock_token = $3 AND status = 'active' RETURNING id
#
# (on one line), sent by pgbench -M extended as an unnamed Parse/Bind/Describe/Execute/Sync,
# with id random in 1..ROWS. pgbench's \set makes numbers only, so a row's lock_token is its id
# as text and the script binds :id twice ($2 and $3): the text stays gbrain's, and the gbrain
# preset (on by default) matches it. Configurations, SECONDS each, ROUNDS rounds round-robin
# (the starting one rotating every round), median over the rounds reported:
#
#   lockroute      pgbench -> lockroute --mode split --direct-pool-size P -> PostgreSQL, at
#                  LR_CLIENTS clients with P=1, and at POOL_CLIENTS clients with P in POOL_SIZES
#   direct         pgbench -> PostgreSQL, one statement per round trip, at DIRECT_CLIENTS clients,
#                  -M in DIRECT_MODES
#   pipeline       the reference: pgbench -c 1, a script of BATCH copies of the statement between
#                  \startpipeline and \endpipeline. One pgbench transaction is one script run, so
#                  statements/s = tps x BATCH, and the latency is per batch. NB: pgbench 15 sends
#                  one Sync per pipeline, so the BATCH statements run as ONE implicit
#                  transaction (one commit per batch).
#   pipeline-sync  the same pipeline with a Sync after every statement, as postgres.js pipelines
#                  and as a proxy multiplexing clients' units would have to: every statement its
#                  own transaction. pgbench 15 has no \syncpipeline, so this is a small libpq
#                  client compiled here (needs cc and libpq-dev; skipped with a note otherwise).
#                  It corks the socket while it writes a batch (one flush per Sync otherwise),
#                  and checks that every statement returned its one row.
#
# Both pipelines run with -M in PIPE_MODES. `prepared` matters: on a shared direct connection
# lockroute prepares each distinct statement once under its own name (src/upstream/names.rs),
# so PostgreSQL does not parse and plan the unnamed Parse that arrives every time, while
# `-M extended` straight to PostgreSQL does. The first ratio column is to the reference the
# brief asked for (pipeline, extended); the second is to pipeline-sync, prepared: the same
# server-side work per statement as lockroute's lane, without the round trip per unit.
#
# After every lockroute run the script reads lockroute's /metrics and fails unless
# lockroute_routed_total{lane="direct",reason="pattern"} and the gbrain heartbeat counter grew
# by at least the statements pgbench completed and nothing went to the pooler lane. It fails on
# any failed transaction, aborted client or non-zero pgbench exit, and when no row was updated.
#
# Reports a markdown table (units/s, p50/p99 from pgbench's per-transaction log, ratio to the
# pipelined references), and a second one on where the time goes: lockroute's mean wait for a
# shared connection (lockroute_direct_wait_seconds) and mean time holding it
# (lockroute_request_duration_seconds, direct lane), and the CPU of lockroute and of the
# stand-in's PostgreSQL (all backends), per second and per statement, of the client (pgbench or
# the libpq client, with /usr/bin/time) and of the whole machine.
#
# Knobs (environment): SECONDS (10; DURATION is the same), ROUNDS (3), ROWS (1000), BATCH (64),
# LR_CLIENTS ("1 8 64"), POOL_SIZES ("2 4"), POOL_CLIENTS (64), DIRECT_CLIENTS ("1 64"),
# DIRECT_MODES ("extended prepared"), PIPE_MODES ("extended prepared"), PIPE_SYNC (1; 0 skips
# pipeline-sync), JOBS (pgbench threads when clients > 1; 2), WARMUP (1 s per configuration
# before round 1), OUT (also write the report to this file), KEEP (keep the raw per-run results
# in this file). An empty list skips those runs. LOCKROUTE_* variables in the environment reach
# lockroute: LOCKROUTE_PASSTHROUGH=1 or LOCKROUTE_PRESETS=none make the routing check fail.
set -euo pipefail
# bash's own SECONDS counts up from whatever the environment set it to: read the knob from the
# environment this process started with.
DURATION=${DURATION:-$(tr '\0' '\n' </proc/$$/environ | sed -n 's/^SECONDS=//p')}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
ROWS=${ROWS:-1000}
BATCH=${BATCH:-64}
LR_CLIENTS=${LR_CLIENTS-1 8 64}
POOL_SIZES=${POOL_SIZES-2 4}
POOL_CLIENTS=${POOL_CLIENTS:-64}
DIRECT_CLIENTS=${DIRECT_CLIENTS-1 64}
DIRECT_MODES=${DIRECT_MODES-extended prepared}
PIPE_MODES=${PIPE_MODES-extended prepared}
PIPE_SYNC=${PIPE_SYNC:-1}
JOBS=${JOBS:-2}
WARMUP=${WARMUP:-1}
for v in DURATION ROUNDS ROWS BATCH POOL_CLIENTS JOBS WARMUP; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 || ($v == WARMUP && ${!v} == 0) ]] ||
        { echo "shared_lane.sh: $v must be a positive integer" >&2; exit 64; }
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STANDIN=$(cd "${1:?usage: bench/shared_lane.sh STANDIN_DIR [BINARY]}" && pwd)
BIN=${2:-${CARGO_TARGET_DIR:-$ROOT/target}/release/lockroute}
# shellcheck source=/dev/null
source "$STANDIN/env"
log() { echo "shared_lane.sh: $*" >&2; }
die() { log "FAILED: $*"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PM_PID=$(head -n 1 "$STANDIN/pg/postmaster.pid")
[[ -e /proc/$PM_PID ]] || die "PostgreSQL of $STANDIN is not running (postmaster.pid says $PM_PID)"

if [[ ! -x $BIN && -z ${2:-} ]]; then
    log "no release binary: building it"
    (cd "$ROOT" && nice cargo build --release -q --bin lockroute)
fi
[[ -x $BIN ]] || die "no binary at $BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lockroute-shared-lane.XXXXXX")
LR_PIDS=()
cleanup() {
    local pid
    for pid in "${LR_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${LR_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cp "$BIN" "$WORK/lockroute"
BIN_DESC="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), binary built $(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC')"

# --- the table and the statement ------------------------------------------------------------

log "creating minion_jobs ($ROWS active rows)"
psql -X -q -v ON_ERROR_STOP=1 "$STANDIN_DIRECT_URL" >/dev/null <<SQL
DROP TABLE IF EXISTS minion_jobs;
CREATE TABLE minion_jobs (
    id bigint PRIMARY KEY,
    name text NOT NULL DEFAULT 'bench',
    queue text NOT NULL DEFAULT 'default',
    status text NOT NULL DEFAULT 'waiting',
    lock_token text,
    lock_until timestamptz,
    lock_duration_ms integer,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- gbrain's (src/schema.sql): every renewal moves lock_until, so no update is HOT.
CREATE INDEX idx_minion_jobs_stalled ON minion_jobs (lock_until) WHERE status = 'active';
INSERT INTO minion_jobs (id, status, lock_token, lock_until)
    SELECT g, 'active', g::text, now() + interval '30 seconds' FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE minion_jobs;
SQL

STMT="UPDATE minion_jobs SET lock_until = now() + (:lease::double precision * interval '1 millisecond'), updated_at = now() WHERE id = :id AND lock_token = :id AND status = 'active' RETURNING id"
WIRE="UPDATE minion_jobs SET lock_until = now() + (\$1::double precision * interval '1 millisecond'), updated_at = now() WHERE id = \$2 AND lock_token = \$3 AND status = 'active' RETURNING id"
# One statement per transaction: no semicolon, so the text on the wire is gbrain's exactly.
printf '\\set id random(1, %d)\n\\set lease 30000\n%s\n' "$ROWS" "$STMT" >"$WORK/renew.sql"
{
    printf '\\set lease 30000\n'
    for i in $(seq "$BATCH"); do printf '\\set id%d random(1, %d)\n' "$i" "$ROWS"; done
    echo '\startpipeline'
    for i in $(seq "$BATCH"); do echo "${STMT//:id/:id$i};"; done
    echo '\endpipeline'
} >"$WORK/pipeline.sql"
sent=$(pgbench -n -M extended -t 1 -d -f "$WORK/renew.sql" "$STANDIN_DIRECT_URL" 2>&1 | sed -n 's/^pgbench: client 0 sending //p')
[[ $sent == "$WIRE" ]] || die "pgbench does not send gbrain's renewLock text: $sent"
one=$(psql -X -q -At -v ON_ERROR_STOP=1 "$STANDIN_DIRECT_URL" \
    -c "UPDATE minion_jobs SET lock_until = now() + (30000::double precision * interval '1 millisecond'), updated_at = now() WHERE id = 1 AND lock_token = '1' AND status = 'active' RETURNING id")
[[ $one == 1 ]] || die "renewLock of row 1 with its token returned '$one', not 1"

# The pipelined reference with a Sync after every statement (see the header).
if [[ -n $PIPE_MODES && $PIPE_SYNC == 1 ]]; then
    cat >"$WORK/pipesync.c" <<'C'
/* pipesync CONNINFO SECONDS BATCH ROWS SQL LOG MODE: BATCH statements pipelined on one
 * connection, each followed by a Sync (its own implicit transaction), then all BATCH replies
 * read; repeated for SECONDS. MODE extended sends Parse/Bind/Describe/Execute (unnamed) for each
 * statement, as pgbench -M extended does; prepared prepares SQL once and sends Bind/Describe/
 * Execute. libpq flushes at every Sync: the socket is corked while a batch is written, so the
 * server gets it in as few segments as pgbench's pipeline. LOG gets one line per batch in
 * pgbench's per-transaction log format (latency in microseconds, third field). Prints
 * "statements N batches B failed F seconds S". */
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
static void cork(PGconn *c, int on) {
    setsockopt(PQsocket(c), IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}
int main(int argc, char **argv) {
    if (argc != 8) { fprintf(stderr, "usage: pipesync CONNINFO SECONDS BATCH ROWS SQL LOG extended|prepared\n"); return 64; }
    double seconds = atof(argv[2]);
    int batch = atoi(argv[3]), rows = atoi(argv[4]);
    const char *sql = argv[5];
    int prepared = strcmp(argv[7], "prepared") == 0;
    FILE *log = fopen(argv[6], "w");
    PGconn *c = PQconnectdb(argv[1]);
    if (!log || PQstatus(c) != CONNECTION_OK) { fprintf(stderr, "pipesync: %s", PQerrorMessage(c)); return 2; }
    if (prepared) {
        PGresult *r = PQprepare(c, "renew", sql, 3, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) { fprintf(stderr, "pipesync: prepare: %s", PQerrorMessage(c)); return 2; }
        PQclear(r);
    }
    if (!PQenterPipelineMode(c)) { fprintf(stderr, "pipesync: %s", PQerrorMessage(c)); return 2; }
    char (*ids)[24] = calloc(batch, 24);
    unsigned seed = 12345;
    long statements = 0, batches = 0, failed = 0;
    double start = now(), t;
    while ((t = now()) - start < seconds) {
        cork(c, 1);
        for (int i = 0; i < batch; i++) {
            snprintf(ids[i], 24, "%d", 1 + (int) (rand_r(&seed) % rows));
            const char *values[3] = {"30000", ids[i], ids[i]};
            int ok = prepared ? PQsendQueryPrepared(c, "renew", 3, values, NULL, NULL, 0)
                              : PQsendQueryParams(c, sql, 3, NULL, values, NULL, NULL, 0);
            if (!ok || !PQpipelineSync(c)) {
                fprintf(stderr, "pipesync: send: %s", PQerrorMessage(c));
                return 2;
            }
        }
        cork(c, 0);
        for (int i = 0; i < batch; i++) {
            PGresult *r = PQgetResult(c);
            if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
                if (failed++ == 0)
                    fprintf(stderr, "pipesync: statement failed: %s %s", r ? PQresStatus(PQresultStatus(r)) : "no result",
                            r ? PQresultErrorMessage(r) : PQerrorMessage(c));
            }
            PQclear(r);
            if (r && (r = PQgetResult(c)) != NULL) { PQclear(r); fprintf(stderr, "pipesync: extra result\n"); return 2; }
            r = PQgetResult(c);
            if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC) { fprintf(stderr, "pipesync: no Sync result\n"); return 2; }
            PQclear(r);
        }
        double done = now();
        fprintf(log, "0 %ld %.0f 0 %ld %ld\n", batches, (done - t) * 1e6, (long) time(NULL), 0L);
        statements += batch;
        batches++;
    }
    printf("statements %ld batches %ld failed %ld seconds %.6f\n", statements, batches, failed, now() - start);
    fclose(log);
    PQfinish(c);
    return failed ? 1 : 0;
}
C
    if cc -O2 -o "$WORK/pipesync" "$WORK/pipesync.c" $(pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql) -lpq 2>"$WORK/cc.log"; then
        :
    else
        log "cannot compile the Sync-per-statement client (cc, libpq-dev?); skipping pipeline-sync"
        sed 's/^/    /' "$WORK/cc.log" >&2
        PIPE_SYNC=0
    fi
fi

# --- helpers: metrics, CPU, percentiles ---------------------------------------------------------

cat >"$WORK/metrics.py" <<'PY'
# metrics.py BEFORE AFTER: the deltas the checks and the report need, from two /metrics scrapes.
import re, sys
def read(path):
    out = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out
a, b = read(sys.argv[1]), read(sys.argv[2])
d = lambda k: b.get(k, 0.0) - a.get(k, 0.0)
pooler = sum(b[k] - a.get(k, 0.0) for k in b if k.startswith('lockroute_routed_total{lane="pooler"'))
print(int(d('lockroute_routed_total{lane="direct",reason="pattern"}')),
      int(d('lockroute_lock_path_total{preset="gbrain",kind="heartbeat"}')), int(pooler),
      d("lockroute_direct_wait_seconds_sum"), int(d("lockroute_direct_wait_seconds_count")),
      d('lockroute_request_duration_seconds_sum{lane="direct"}'),
      int(d('lockroute_request_duration_seconds_count{lane="direct"}')))
PY
cat >"$WORK/cpu.py" <<'PY'
# cpu.py POSTMASTER [PID]: CPU clock ticks used so far by PostgreSQL (the postmaster, its live
# children, and its reaped children), by PID (0 when not given), and by the whole machine
# (every core, not idle or iowait).
import os, sys
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()  # fields from 3 (state) on
pm = sys.argv[1]
f = stat(pm)
pg = sum(int(x) for x in f[11:15])  # utime stime cutime cstime of the postmaster
for pid in os.listdir("/proc"):
    if pid.isdigit() and pid != pm:
        try:
            f = stat(pid)
        except OSError:
            continue
        if f[1] == pm:
            pg += int(f[11]) + int(f[12])
other = 0
if len(sys.argv) > 2 and sys.argv[2] != "0":
    f = stat(sys.argv[2])
    other = int(f[11]) + int(f[12])
with open("/proc/stat") as f:
    t = [int(x) for x in f.readline().split()[1:]]
print(pg, other, sum(t[:8]) - t[3] - t[4])
PY
cat >"$WORK/pct.py" <<'PY'
# pct.py FILE...: p50 and p99 (ms, nearest rank) of the latencies (us, third field) in
# pgbench's per-transaction logs.
import math, sys
lat = sorted(float(l.split()[2]) for p in sys.argv[1:] for l in open(p) if l.strip())
if not lat:
    print("nan nan")
else:
    q = lambda p: lat[max(0, math.ceil(p * len(lat)) - 1)] / 1000
    print(f"{q(0.50):.3f} {q(0.99):.3f}")
PY
TICK=$(getconf CLK_TCK)

# --- lockroute, one per pool size ----------------------------------------------------------------

declare -A LR_URL LR_ADMIN LR_PID
start_lockroute() {
    local pool=$1 port admin
    port=$(free_port)
    admin=$(free_port)
    RUST_LOG=warn "$WORK/lockroute" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" --mode split \
        --direct-pool-size "$pool" --pooler-url "$STANDIN_POOLER_URL" --direct-url "$STANDIN_DIRECT_URL" \
        2>>"$WORK/lockroute-$pool.log" &
    LR_PIDS+=($!)
    LR_PID[$pool]=$!
    for _ in $(seq 1 100); do
        pg_isready -q -h 127.0.0.1 -p "$port" && break
        sleep 0.1
    done
    pg_isready -q -h 127.0.0.1 -p "$port" || { cat "$WORK/lockroute-$pool.log" >&2; die "lockroute --direct-pool-size $pool did not start"; }
    LR_URL[$pool]="postgres://app:app-secret@127.0.0.1:$port/app?sslmode=disable"
    LR_ADMIN[$pool]="127.0.0.1:$admin"
}

# The runs: config:clients:pool:mode. The pool is '-' straight to PostgreSQL.
SPECS=()
for c in $LR_CLIENTS; do SPECS+=("lockroute:$c:1:extended"); done
for p in $POOL_SIZES; do SPECS+=("lockroute:$POOL_CLIENTS:$p:extended"); done
for m in $DIRECT_MODES; do
    for c in $DIRECT_CLIENTS; do SPECS+=("direct:$c:-:$m"); done
done
for m in $PIPE_MODES; do
    SPECS+=("pipeline:1:-:$m")
    [[ $PIPE_SYNC == 0 ]] || SPECS+=("pipeline-sync:1:-:$m")
done
for spec in "${SPECS[@]}"; do
    IFS=: read -r config clients pool _ <<<"$spec"
    if [[ $config == lockroute && -z ${LR_URL[$pool]:-} ]]; then
        log "starting lockroute --direct-pool-size $pool"
        start_lockroute "$pool"
    fi
done

# --- one run -------------------------------------------------------------------------------------

RESULTS=$WORK/results.tsv
: >"$RESULTS"
TIME=
[[ ! -x /usr/bin/time ]] || TIME=/usr/bin/time
# Runs SPEC for SECS seconds; with RECORD=1 checks it and appends a line to RESULTS.
run() {
    local spec=$1 secs=$2 record=$3 round=${4:-0}
    local config clients pool mode url units=1 jobs rc=0 out tps processed failed aborted
    IFS=: read -r config clients pool mode <<<"$spec"
    jobs=$((clients > JOBS ? JOBS : clients))
    local prefix=$WORK/log/$config.$mode.$clients.$pool.$round
    mkdir -p "$WORK/log"
    rm -f "$prefix".*
    if [[ $config == lockroute ]]; then url=${LR_URL[$pool]}; else url=$STANDIN_DIRECT_URL; fi
    # The client's CPU, when /usr/bin/time is there.
    local timed=()
    [[ -z $TIME ]] || timed=("$TIME" -o "$WORK/time.out" -f '%U %S')
    rm -f "$WORK/time.out"
    psql -X -q "$STANDIN_DIRECT_URL" -c "VACUUM minion_jobs" >/dev/null
    local t0 cpu0 cpu1 lrpid=0
    if [[ $config == lockroute ]]; then
        lrpid=${LR_PID[$pool]}
        curl -sf "http://${LR_ADMIN[$pool]}/metrics" >"$WORK/m.before" || die "cannot read lockroute's /metrics"
    fi
    t0=$(psql -X -At "$STANDIN_DIRECT_URL" -c "SELECT clock_timestamp()")
    cpu0=$(python3 "$WORK/cpu.py" "$PM_PID" "$lrpid")
    case $config in
    lockroute | direct)
        out=$("${timed[@]}" pgbench -n -M "$mode" -c "$clients" -j "$jobs" -T "$secs" -f "$WORK/renew.sql" \
            -l --log-prefix="$prefix" --failures-detailed "$url" 2>&1) || rc=$?
        ;;
    pipeline)
        units=$BATCH
        out=$("${timed[@]}" pgbench -n -M "$mode" -c 1 -j 1 -T "$secs" -f "$WORK/pipeline.sql" \
            -l --log-prefix="$prefix" --failures-detailed "$url" 2>&1) || rc=$?
        ;;
    pipeline-sync)
        units=$BATCH
        out=$("${timed[@]}" "$WORK/pipesync" "$url" "$secs" "$BATCH" "$ROWS" "$WIRE" "$prefix.0" "$mode" 2>&1) || rc=$?
        ;;
    esac
    cpu1=$(python3 "$WORK/cpu.py" "$PM_PID" "$lrpid")
    if [[ $config == pipeline-sync ]]; then
        local stmts batches elapsed
        read -r _ stmts _ batches _ failed _ elapsed < <(grep '^statements ' <<<"$out") || true
        processed=${batches:-0}
        tps=$(awk -v b="${batches:-0}" -v s="${elapsed:-0}" 'BEGIN {if (s > 0) printf "%.3f", b / s}')
        aborted=0
    else
        tps=$(awk '/^tps = .*without initial connection time/ {print $3}' <<<"$out")
        processed=$(awk -F': ' '/^number of transactions actually processed/ {split($2, a, "/"); print a[1]}' <<<"$out")
        failed=$(awk -F': ' '/^number of failed transactions/ {split($2, a, " "); print a[1]}' <<<"$out")
        aborted=$(grep -c "aborted in command" <<<"$out" || true)
    fi
    local what="$config -M $mode, $clients clients, pool $pool"
    if ((rc != 0)) || [[ ${failed:-?} != 0 || $aborted != 0 || -z $tps ]]; then
        sed 's/^/    /' <<<"$out" >&2
        die "$what: exit $rc, ${failed:-?} failed transactions, $aborted aborted clients"
    fi
    local updated
    updated=$(psql -X -At "$STANDIN_DIRECT_URL" -c "SELECT count(*) FROM minion_jobs WHERE updated_at >= '$t0'")
    ((updated > 0)) || die "$what: no row of minion_jobs was renewed"
    local direct=- heartbeat=- pooler=- wait_sum=0 wait_n=0 held_sum=0 held_n=0
    if [[ $config == lockroute ]]; then
        curl -sf "http://${LR_ADMIN[$pool]}/metrics" >"$WORK/m.after" || die "cannot read lockroute's /metrics"
        read -r direct heartbeat pooler wait_sum wait_n held_sum held_n < <(python3 "$WORK/metrics.py" "$WORK/m.before" "$WORK/m.after")
        if ((direct < processed || heartbeat < processed || pooler != 0)); then
            die "$what: pgbench completed $processed statements, but lockroute routed $direct to the direct lane by pattern ($heartbeat matched gbrain's renewLock) and $pooler to the pooler lane"
        fi
    fi
    [[ $record == 1 ]] || { rm -f "$prefix".*; return 0; }
    local p50 p99 pg0 lr0 mc0 pg1 lr1 mc1 client=-
    read -r p50 p99 < <(python3 "$WORK/pct.py" "$prefix".*)
    rm -f "$prefix".*
    read -r pg0 lr0 mc0 <<<"$cpu0"
    read -r pg1 lr1 mc1 <<<"$cpu1"
    [[ ! -s $WORK/time.out ]] || client=$(awk 'END {printf "%.3f", $1 + $2}' "$WORK/time.out")
    printf '%s\n' "$round $config $mode $clients $pool $units $tps $processed $p50 $p99 $direct $pooler $wait_sum $wait_n $held_sum $held_n $((pg1 - pg0)) $((lr1 - lr0)) $((mc1 - mc0)) $client $secs" >>"$RESULTS"
    log "  $what: $(awk -v t="$tps" -v u="$units" 'BEGIN {printf "%.0f", t * u}') statements/s, p50 $p50 ms, p99 $p99 ms$([[ $direct == - ]] || echo ", $direct routed direct by pattern, $pooler to the pooler")"
}

machine() {
    local cpu
    cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
    echo "- CPU: ${cpu:-unknown}, $(nproc) cores; $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM; kernel $(uname -r)"
    echo "- PostgreSQL $(psql -X -At "$STANDIN_DIRECT_URL" -c 'show server_version'), $(pgbench --version)"
    echo "- lockroute $BIN_DESC"
}

if ((WARMUP > 0)); then
    log "warm-up: ${WARMUP}s per configuration (opens the direct lanes)"
    for spec in "${SPECS[@]}"; do run "$spec" "$WARMUP" 0; done
fi
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "${#SPECS[@]} configurations x $ROUNDS rounds x ${DURATION}s; load average now $LOAD_BEFORE"
for round in $(seq "$ROUNDS"); do
    log "round $round"
    for i in "${!SPECS[@]}"; do
        run "${SPECS[$(((i + round - 1) % ${#SPECS[@]}))]}" "$DURATION" 1 "$round"
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
[[ -z ${KEEP:-} ]] || cp "$RESULTS" "$KEEP"


report() {
    echo "Command: \`SECONDS=$DURATION ROUNDS=$ROUNDS bench/shared_lane.sh\` — gbrain's renewLock, pgbench"
    echo "(\`-j $JOBS\` above $JOBS clients), $ROWS active rows, $ROUNDS round(s) of ${DURATION} s per configuration,"
    echo "round-robin; medians over the rounds. Load average before / after: $LOAD_BEFORE / $LOAD_AFTER."
    echo
    machine
    echo
    python3 - "$RESULTS" "$TICK" "$BATCH" "$(nproc)" <<'PY'
import statistics, sys
tick, batch, cores = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cells = {}
for line in open(sys.argv[1]):
    (rnd, config, mode, clients, pool, units, tps, processed, p50, p99, direct, pooler, wait_sum, wait_n,
     held_sum, held_n, pg_ticks, lr_ticks, machine_ticks, client, secs) = line.split()
    c = cells.setdefault((config, mode, int(clients), pool), {k: [] for k in
        ("ups", "p50", "p99", "wait", "held", "lr_cpu", "lr_us", "pg_cpu", "pg_us", "cl_cpu", "cl_us", "box")})
    secs = float(secs)
    ups = float(tps) * int(units)
    stmts = max(int(processed) * int(units), 1)
    c["ups"].append(ups)
    c["p50"].append(float(p50))
    c["p99"].append(float(p99))
    if int(wait_n):
        c["wait"].append(float(wait_sum) / int(wait_n) * 1e3)
    if int(held_n):
        c["held"].append(float(held_sum) / int(held_n) * 1e6)
    for key, seconds in (("pg", int(pg_ticks) / tick), ("lr", int(lr_ticks) / tick if config == "lockroute" else None),
                         ("cl", float(client) if client != "-" else None)):
        if seconds is not None:
            c[key + "_cpu"].append(seconds / secs * 100)
            c[key + "_us"].append(seconds / stmts * 1e6)
    c["box"].append(int(machine_ticks) / tick / secs * 100)
med = lambda xs: statistics.median(xs) if xs else None
order = {"lockroute": 0, "direct": 1, "pipeline": 2, "pipeline-sync": 3}
keys = sorted(cells, key=lambda k: (order[k[0]], k[1], k[3], k[2]))
def ref(key):
    return med(cells[key]["ups"]) if key in cells else None
ref_brief, ref_fair = ref(("pipeline", "extended", 1, "-")), ref(("pipeline-sync", "prepared", 1, "-"))
def name(k):
    config, mode = k[0], k[1]
    return {"lockroute": "lockroute split, shared lane (-M extended)",
            "direct": f"PostgreSQL direct, -M {mode}",
            "pipeline": f"PostgreSQL pipelined ×{batch}, -M {mode}, one Sync per batch (pgbench)",
            "pipeline-sync": f"PostgreSQL pipelined ×{batch}, {mode}, Sync per statement"}[config]
def spread(xs):
    m = statistics.median(xs)
    return f" ±{(max(xs) - min(xs)) / m * 50:.0f}%" if len(xs) > 1 and m else ""
def fmt(x, p=2):
    return "—" if x is None else f"{x:,.{p}f}"
print("| config | clients | pool size | units/s | p50 ms | p99 ms | ratio to pipelined reference | ratio to pipelined, prepared, Sync per statement |")
print("|---|---|---|---|---|---|---|---|")
for k in keys:
    c = cells[k]
    ups = med(c["ups"])
    per_batch = " per batch" if k[0].startswith("pipeline") else ""
    print(f"| {name(k)} | {k[2]} | {k[3]} | {ups:,.0f}{spread(c['ups'])} | {fmt(med(c['p50']), 3)}{per_batch} "
          f"| {fmt(med(c['p99']), 3)}{per_batch} | {fmt(ups / ref_brief if ref_brief else None)} "
          f"| {fmt(ups / ref_fair if ref_fair else None)} |")
print()
print(f"Units are statements (renewLock calls). ±N% is half the spread (max − min) over the median, when "
      f"there is more than one round. p50/p99: nearest rank over every transaction logged in a run (pgbench "
      f"-l), median over the rounds; in the pipelined rows a transaction is a batch of {batch}. The pipelined "
      f"reference is pgbench -M extended with one Sync per batch: {batch} statements in one implicit "
      f"transaction, each parsed and planned anew.")
print()
print("Where the time goes (medians over the rounds). Wait: lockroute_direct_wait_seconds, the mean time a "
      "unit waits in line for a shared direct connection. Held: lockroute_request_duration_seconds "
      "(direct lane), the mean time a unit has its connection. CPU: % of one core over the run and µs per "
      f"statement, for lockroute, the stand-in's PostgreSQL (every server process) and the client; machine: "
      f"every process on all {cores} cores ({cores * 100}% is all of them), other load on the machine included.")
print()
print("| config | clients | pool size | mean wait ms | mean held µs | lockroute CPU % | lockroute µs/stmt | PostgreSQL CPU % | PostgreSQL µs/stmt | client CPU % | client µs/stmt | machine CPU % |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for k in keys:
    c = cells[k]
    print(f"| {name(k)} | {k[2]} | {k[3]} | {fmt(med(c['wait']), 3)} | {fmt(med(c['held']), 0)} | "
          f"{fmt(med(c['lr_cpu']), 0)} | {fmt(med(c['lr_us']), 1)} | {fmt(med(c['pg_cpu']), 0)} | {fmt(med(c['pg_us']), 1)} | "
          f"{fmt(med(c['cl_cpu']), 0)} | {fmt(med(c['cl_us']), 1)} | {fmt(med(c['box']), 0)} |")
print()
print("Every run: zero failed transactions and exit 0; every lockroute run routed all its statements "
      "to the direct lane by gbrain's renewLock pattern, none to the pooler.")
PY
}
echo
if [[ -n ${OUT:-} ]]; then
    report | tee "$OUT"
else
    report
fi
