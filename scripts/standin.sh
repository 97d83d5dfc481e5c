#!/usr/bin/env bash
# The local Supabase stand-in: PostgreSQL 15 plays the direct endpoint (:5432) and PgBouncer in
# transaction mode plays the pooler (:6543). Both run as the `postgres` OS user on free loopback
# ports, inside one directory that `stop` removes again. See DESIGN.md, "Test topology".
#
#   scripts/standin.sh start DIR [--owner-pid PID]   PostgreSQL + one PgBouncer; writes DIR/env
#   scripts/standin.sh pgbouncer DIR NAME [--owner-pid PID] [--pool-mode MODE] [--upstream-port PORT]
#                                                    a private PgBouncer; writes DIR/NAME.env.
#                                                    --upstream-port chains it in front of
#                                                    another PgBouncer (logging in as app)
#   scripts/standin.sh restart-pgbouncer DIR NAME [SECONDS]
#                                                    stops it, waits, starts it on the same port
#   scripts/standin.sh stop-pgbouncer DIR NAME       stops that private PgBouncer
#   scripts/standin.sh stop DIR                      stops everything started in DIR, removes DIR
#   scripts/standin.sh install-deps                  apt-get installs what is missing
#
# Roles: clients log in as `app` (password app-secret) on both endpoints. PgBouncer logs in to
# PostgreSQL as `pooler`, so `select current_user` tells a test which lane ran a statement. An
# event trigger hands every new table, view, sequence, schema, function and type to the group
# role `app_rw`, of which both are members: whatever one lane creates, the other can use, alter
# and drop. `standin_super` is a superuser for fault injection (pg_terminate_backend).
#
# Processes are stopped by the pid in their pidfile, after checking that the pid's command line
# names this DIR; nothing is ever killed by name.
set -euo pipefail

# PostgreSQL 15 is Debian 12's; another installed major version works as well.
pick_pgbin() {
    local newest
    newest=$(printf '%s\n' /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n 1)
    if [[ -x /usr/lib/postgresql/15/bin/postgres || ! -x $newest ]]; then
        echo /usr/lib/postgresql/15/bin
    else
        dirname "$newest"
    fi
}
PGBIN=${STANDIN_PGBIN:-$(pick_pgbin)}
PGBOUNCER=${STANDIN_PGBOUNCER:-/usr/sbin/pgbouncer}
SELF=$(readlink -f "${BASH_SOURCE[0]}")
MARKER=.lockroute-standin
# Names inside DIR that a private PgBouncer must not take.
RESERVED_NAMES=" pg s pgbouncer env "

die() { echo "standin: $*" >&2; exit 1; }
log() { echo "standin: $*" >&2; }

usage() {
    sed -n '6,15p' "$SELF" >&2
    exit 64
}

# Runs a command as the server user. initdb refuses root, so root drops to `postgres`; any other
# user runs the servers as itself.
as_server() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

server_owns() {
    if [[ $EUID -eq 0 ]]; then chown postgres:postgres "$@"; fi
}

# A port nobody listens on now. Another process may still take it before our server binds, so
# the callers retry on "address in use".
free_port() {
    local port
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
        return
    fi
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 40000))
        if [[ -z $(ss -Htln "sport = :$port") ]]; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}

# True while PID runs. A zombie counts as gone: PID 1 in a container may never reap it.
alive() {
    local pid=$1 state
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z ]]
}

# True when PID's command line contains NEEDLE: guards against a recycled pid.
cmdline_has() {
    local pid=$1 needle=$2
    [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$needle"
}

# Sends SIGNAL to PID if it is still the process we started (its command line names NEEDLE),
# waits up to 30s, then escalates to SIGKILL.
stop_pid() {
    local pid=$1 signal=$2 needle=$3
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    alive "$pid" && cmdline_has "$pid" "$needle" || return 0
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
        alive "$pid" || return 0
        sleep 0.1
    done
    log "pid $pid ignored SIG$signal for 30s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        alive "$pid" || return 0
        sleep 0.1
    done
    log "pid $pid is still alive"
}

# Atomically writes stdin to FILE, so a reader never sees half an env file.
write_atomic() {
    local file=$1
    cat >"$file.tmp"
    mv -f "$file.tmp" "$file"
}

psql_super() {
    local dir=$1 port=$2 db=$3
    shift 3
    as_server "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/s" -p "$port" -U postgres -d "$db" "$@"
}

# Polls CMD... until it succeeds, for at most SECONDS.
wait_until() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

make_certs() {
    local dir=$1
    # A separate CA: rustls rejects a self-signed CA certificate used as the end-entity.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=lockroute stand-in test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 3650 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
    rm -f "$dir/server.csr" "$dir/server.ext" "$dir/ca.srl"
    chmod 600 "$dir/ca.key" "$dir/server.key"
    chmod 644 "$dir/ca.crt" "$dir/server.crt"
    server_owns "$dir/ca.key" "$dir/ca.crt" "$dir/server.key" "$dir/server.crt"
}

init_cluster() {
    local dir=$1
    as_server "$PGBIN/initdb" -D "$dir/pg" -U postgres -E UTF8 --locale=C --no-sync \
        --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    # The unix socket lives in a 0700 directory of the server user, so `trust` on it admits only
    # that user (and root). Every TCP login needs SCRAM.
    write_atomic "$dir/pg/pg_hba.conf" <<EOF
local all all trust
host  all all 127.0.0.1/32 scram-sha-256
EOF
    cat >>"$dir/pg/postgresql.conf" <<EOF

# lockroute stand-in
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/s'
password_encryption = 'scram-sha-256'
ssl = on
ssl_cert_file = '$dir/server.crt'
ssl_key_file = '$dir/server.key'
max_connections = 400
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
EOF
    server_owns "$dir/pg/pg_hba.conf"
}

# Starts PostgreSQL on a free port, retrying when another process takes the port first.
start_postgres() {
    local dir=$1 port
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        if as_server "$PGBIN/pg_ctl" start -w -t 60 -D "$dir/pg" -l "$dir/pg.log" -o "-p $port" >>"$dir/pg_ctl.out" 2>&1; then
            echo "$port"
            return
        fi
        grep -q "could not bind" "$dir/pg.log" 2>/dev/null || { tail -n 20 "$dir/pg.log" >&2; die "postgres failed to start"; }
        log "port $port was taken; retrying"
    done
    die "postgres could not bind a port"
}

create_roles() {
    local dir=$1 port=$2
    psql_super "$dir" "$port" postgres <<'SQL'
CREATE ROLE app_rw NOLOGIN;
CREATE ROLE app LOGIN PASSWORD 'app-secret' IN ROLE app_rw;
CREATE ROLE pooler LOGIN PASSWORD 'pooler-secret' IN ROLE app_rw;
CREATE ROLE standin_super LOGIN SUPERUSER PASSWORD 'standin-super-secret';
CREATE DATABASE app OWNER app;
GRANT ALL ON DATABASE app TO app_rw;
SQL
    psql_super "$dir" "$port" app <<'SQL'
ALTER SCHEMA public OWNER TO app_rw;
-- Hands each new object to app_rw so that both lanes' roles own it. Sequences owned by a column
-- follow their table, and indexes follow theirs, so both are skipped.
CREATE FUNCTION standin_share_new_objects() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
  obj record;
  kind text;
BEGIN
  FOR obj IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    kind := CASE obj.object_type
      WHEN 'table' THEN 'TABLE'
      WHEN 'view' THEN 'VIEW'
      WHEN 'materialized view' THEN 'MATERIALIZED VIEW'
      WHEN 'sequence' THEN 'SEQUENCE'
      WHEN 'schema' THEN 'SCHEMA'
      WHEN 'function' THEN 'FUNCTION'
      WHEN 'procedure' THEN 'PROCEDURE'
      WHEN 'type' THEN 'TYPE'
      END;
    CONTINUE WHEN kind IS NULL OR obj.in_extension;
    CONTINUE WHEN kind = 'SEQUENCE' AND EXISTS (
      SELECT 1 FROM pg_depend d
      WHERE d.classid = 'pg_class'::regclass AND d.objid = obj.objid AND d.deptype IN ('a', 'i'));
    -- Types made implicitly for tables and arrays follow their owner.
    CONTINUE WHEN kind = 'TYPE' AND EXISTS (
      SELECT 1 FROM pg_type t WHERE t.oid = obj.objid AND (t.typrelid <> 0 OR t.typelem <> 0));
    EXECUTE format('ALTER %s %s OWNER TO app_rw', kind, obj.object_identity);
  END LOOP;
END
$$;
CREATE EVENT TRIGGER standin_share_new_objects ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'CREATE VIEW',
               'CREATE MATERIALIZED VIEW', 'CREATE SEQUENCE', 'CREATE SCHEMA', 'CREATE FUNCTION',
               'CREATE PROCEDURE', 'CREATE TYPE')
  EXECUTE FUNCTION standin_share_new_objects();
SQL
}

# Writes the auth_file. app's password is stored in plain text, not as the SCRAM verifier from
# pg_authid: with a verifier, PgBouncer (1.18 here, and later releases) saves the client's SCRAM
# keys into the forced server user's credentials and then fails to log in as `pooler`
# (pgbouncer issues #944 and #1461). Clients still authenticate with SCRAM-SHA-256.
write_userlist() {
    local dir=$1
    printf '"app" "app-secret"\n"pgbadmin" "pgbadmin-secret"\n' | write_atomic "$dir/userlist.txt"
    chmod 600 "$dir/userlist.txt"
    server_owns "$dir/userlist.txt"
}

# The [databases] line: PostgreSQL as `pooler`, or (UPSTREAM_PORT set) another PgBouncer as
# `app`, for a chain of two.
database_line() {
    local pg_port=$1
    if [[ -n ${UPSTREAM_PORT:-} ]]; then
        echo "app = host=127.0.0.1 port=$UPSTREAM_PORT dbname=app user=app password=app-secret"
    else
        echo "app = host=127.0.0.1 port=$pg_port dbname=app user=pooler password=pooler-secret"
    fi
}

write_pgbouncer_ini() {
    local dir=$1 name=$2 pg_port=$3 port=$4
    write_atomic "$dir/$name/pgbouncer.ini" <<EOF
[databases]
$(database_line "$pg_port")

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
admin_users = pgbadmin
pool_mode = ${POOL_MODE:-transaction}
max_client_conn = 2000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,statement_timeout,idle_in_transaction_session_timeout,search_path,options
client_tls_sslmode = allow
client_tls_cert_file = $dir/server.crt
client_tls_key_file = $dir/server.key
server_tls_sslmode = disable
; after a KILL or a lost server, log in again at once instead of after the default 15s
server_login_retry = 1
pidfile = $dir/$name/pgbouncer.pid
logfile = $dir/$name/pgbouncer.log
EOF
    server_owns "$dir/$name/pgbouncer.ini"
}

admin_url() { echo "postgres://pgbadmin:pgbadmin-secret@127.0.0.1:$1/pgbouncer?sslmode=disable"; }

pgbouncer_answers() {
    "$PGBIN/psql" -X -q -At "$(admin_url "$1")" -c "SHOW VERSION"
}

# Succeeds once the instance in DIR/NAME answers on PORT, or once it has died (so a failed bind
# does not wait out the timeout); the caller tells the two apart.
pgbouncer_up() {
    local inst=$1 port=$2 pid
    pgbouncer_answers "$port" && return 0
    # A failed bind logs FATAL and exits without leaving a pidfile.
    grep -q FATAL "$inst/pgbouncer.log" 2>/dev/null && return 0
    pid=$(cat "$inst/pgbouncer.pid" 2>/dev/null) || return 1
    ! alive "$pid"
}

# Runs PgBouncer instance NAME from DIR/NAME/pgbouncer.ini as a daemon; dies if it exits at once.
launch_pgbouncer() {
    local dir=$1 name=$2
    # runuser resets the soft fd limit to 1024, too few for max_client_conn = 2000: raise it to
    # the hard limit first.
    # shellcheck disable=SC2016 # the inner shell expands these
    as_server sh -c 'ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; exec "$0" "$@"' \
        "$PGBOUNCER" -d -q "$dir/$name/pgbouncer.ini" >>"$dir/$name/pgbouncer.out" 2>&1 ||
        { cat "$dir/$name/pgbouncer.out" >&2; die "pgbouncer $name exited at once"; }
}

# Starts PgBouncer instance NAME (files in DIR/NAME) on a free port; prints the port.
start_pgbouncer() {
    local dir=$1 name=$2 pg_port=$3 port pid
    mkdir -p "$dir/$name"
    server_owns "$dir/$name"
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        write_pgbouncer_ini "$dir" "$name" "$pg_port" "$port"
        rm -f "$dir/$name/pgbouncer.pid" "$dir/$name/pgbouncer.log"
        launch_pgbouncer "$dir" "$name"
        if wait_until 30 pgbouncer_up "$dir/$name" "$port"; then
            if pgbouncer_answers "$port" >/dev/null 2>&1; then
                echo "$port"
                return
            fi
        fi
        pid=$(cat "$dir/$name/pgbouncer.pid" 2>/dev/null || true)
        [[ -n $pid ]] && stop_pid "$pid" TERM "$dir/$name/pgbouncer.ini"
        grep -qi "address already in use" "$dir/$name/pgbouncer.log" "$dir/$name/pgbouncer.out" 2>/dev/null ||
            { tail -n 20 "$dir/$name/pgbouncer.log" "$dir/$name/pgbouncer.out" >&2 2>/dev/null || true; die "pgbouncer $name failed to start"; }
        log "port $port was taken; retrying"
    done
    die "pgbouncer $name could not bind a port"
}

# A detached process that runs CMD... (a `stop`) once OWNER has exited or TARGET is gone. A test
# binary that crashes therefore never leaks servers.
start_watchdog() {
    local owner=$1 target=$2 pidfile=$3
    shift 3
    setsid bash "$SELF" _watch "$owner" "$target" "$@" </dev/null >/dev/null 2>&1 &
    echo $! >"$pidfile"
}

cmd_watch() {
    local owner=$1 target=$2
    shift 2
    while kill -0 "$owner" 2>/dev/null && [[ -e $target ]]; do
        sleep 1
    done
    if [[ -e $target ]]; then
        STANDIN_FROM_WATCHDOG=1 bash "$SELF" "$@"
    fi
}

stop_watchdog() {
    local pidfile=$1 pid
    [[ -z ${STANDIN_FROM_WATCHDOG:-} && -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    stop_pid "$pid" TERM "$SELF _watch"
}

# An EXIT trap while starting: undoes a half-done start, keeping the failing status.
cleanup_on_failure() {
    local status=$?
    log "start failed; cleaning up"
    bash "$SELF" "$@" || true
    exit "$status"
}

parse_owner() {
    OWNER_PID=
    POOL_MODE=
    UPSTREAM_PORT=
    while (($#)); do
        case $1 in
        --owner-pid)
            [[ ${2:-} =~ ^[0-9]+$ ]] || die "--owner-pid needs a pid"
            OWNER_PID=$2
            shift 2
            ;;
        --pool-mode)
            [[ ${2:-} =~ ^(session|transaction|statement)$ ]] || die "--pool-mode needs session, transaction or statement"
            POOL_MODE=$2
            shift 2
            ;;
        --upstream-port)
            [[ ${2:-} =~ ^[0-9]+$ ]] || die "--upstream-port needs a port"
            UPSTREAM_PORT=$2
            shift 2
            ;;
        *) die "unknown argument: $1" ;;
        esac
    done
}

ensure_binaries() {
    [[ -x $PGBIN/initdb && -x $PGBIN/postgres ]] || die "PostgreSQL 15 is not installed ($PGBIN); apt-get install postgresql"
    [[ -x $PGBOUNCER ]] || die "PgBouncer is not installed ($PGBOUNCER); apt-get install pgbouncer"
    command -v openssl >/dev/null || die "openssl is not installed"
}

cmd_start() {
    local dir=${1:-}
    [[ -n $dir ]] || usage
    shift
    parse_owner "$@"
    ensure_binaries
    mkdir -p "$dir"
    dir=$(readlink -f "$dir")
    [[ -z $(ls -A "$dir") ]] || die "$dir is not empty"
    touch "$dir/$MARKER"
    chmod 700 "$dir"
    server_owns "$dir"
    as_server test -w "$dir" || die "$dir is not writable by the server user (check its parents' permissions)"
    # From here on a failure tears down whatever was started.
    # shellcheck disable=SC2064 # expand now: the trap runs after `local dir` is gone
    trap "cleanup_on_failure stop $(printf %q "$dir")" EXIT
    [[ -z $OWNER_PID ]] || start_watchdog "$OWNER_PID" "$dir/$MARKER" "$dir/watchdog.pid" stop "$dir"
    make_certs "$dir"
    mkdir -p "$dir/s"
    server_owns "$dir/s"
    chmod 700 "$dir/s"
    init_cluster "$dir"
    local pg_port pgb_port
    pg_port=$(start_postgres "$dir")
    create_roles "$dir" "$pg_port"
    write_userlist "$dir"
    pgb_port=$(start_pgbouncer "$dir" pgbouncer "$pg_port")
    write_atomic "$dir/env" <<EOF
STANDIN_DIR=$dir
STANDIN_PG_PORT=$pg_port
STANDIN_PGB_PORT=$pgb_port
STANDIN_CA=$dir/ca.crt
STANDIN_PG_SOCKET_DIR=$dir/s
STANDIN_DIRECT_URL=postgres://app:app-secret@127.0.0.1:$pg_port/app?sslmode=disable
STANDIN_POOLER_URL=postgres://app:app-secret@127.0.0.1:$pgb_port/app?sslmode=disable
STANDIN_PGB_ADMIN_URL=$(admin_url "$pgb_port")
STANDIN_SUPER_URL=postgres://standin_super:standin-super-secret@127.0.0.1:$pg_port/app?sslmode=disable
EOF
    trap - EXIT
    log "PostgreSQL on 127.0.0.1:$pg_port, PgBouncer on 127.0.0.1:$pgb_port; settings in $dir/env"
}

# Reads one KEY from DIR/env.
env_value() {
    local dir=$1 key=$2
    sed -n "s/^$key=//p" "$dir/env"
}

check_name() {
    local name=$1
    [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || die "bad pooler name: $name"
    [[ $RESERVED_NAMES != *" $name "* ]] || die "reserved pooler name: $name"
}

cmd_pgbouncer() {
    local dir=${1:-} name=${2:-}
    [[ -n $dir && -n $name ]] || usage
    shift 2
    parse_owner "$@"
    check_name "$name"
    [[ -f $dir/env ]] || die "no stand-in running in $dir"
    dir=$(readlink -f "$dir")
    [[ ! -e $dir/$name ]] || die "pooler $name already exists in $dir"
    local pg_port port
    pg_port=$(env_value "$dir" STANDIN_PG_PORT)
    # shellcheck disable=SC2064 # expand now: the trap runs after the locals are gone
    trap "cleanup_on_failure stop-pgbouncer $(printf %q "$dir") $(printf %q "$name")" EXIT
    mkdir -p "$dir/$name"
    [[ -z $OWNER_PID ]] || start_watchdog "$OWNER_PID" "$dir/$name" "$dir/$name/watchdog.pid" stop-pgbouncer "$dir" "$name"
    port=$(start_pgbouncer "$dir" "$name" "$pg_port")
    write_atomic "$dir/$name.env" <<EOF
STANDIN_PGB_PORT=$port
STANDIN_POOLER_URL=postgres://app:app-secret@127.0.0.1:$port/app?sslmode=disable
STANDIN_PGB_ADMIN_URL=$(admin_url "$port")
EOF
    trap - EXIT
    log "PgBouncer $name on 127.0.0.1:$port"
}

stop_one_pgbouncer() {
    local dir=$1 name=$2
    stop_watchdog "$dir/$name/watchdog.pid"
    if [[ -f $dir/$name/pgbouncer.pid ]]; then
        # SIGTERM is PgBouncer's immediate shutdown; SIGINT would wait for clients to leave.
        stop_pid "$(cat "$dir/$name/pgbouncer.pid")" TERM "$dir/$name/pgbouncer.ini"
    fi
}

# A pooler restart as a deploy or a crash makes it: stops private PgBouncer NAME by pid (SIGTERM
# is its immediate shutdown, which closes every client), stays down for SECONDS, then starts it
# again from the same config, so it listens on the same port.
cmd_restart_pgbouncer() {
    local dir=${1:-} name=${2:-} down=${3:-0} port
    [[ -n $dir && -n $name && $down =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage
    check_name "$name"
    dir=$(readlink -f "$dir")
    [[ -f $dir/$name/pgbouncer.ini ]] || die "no pooler $name in $dir"
    port=$(sed -n 's/^listen_port = //p' "$dir/$name/pgbouncer.ini")
    stop_pid "$(cat "$dir/$name/pgbouncer.pid" 2>/dev/null)" TERM "$dir/$name/pgbouncer.ini"
    sleep "$down"
    rm -f "$dir/$name/pgbouncer.pid"
    launch_pgbouncer "$dir" "$name"
    wait_until 30 pgbouncer_answers "$port" || die "pgbouncer $name did not come back on port $port"
    log "PgBouncer $name restarted on 127.0.0.1:$port"
}

cmd_stop_pgbouncer() {
    local dir=${1:-} name=${2:-}
    [[ -n $dir && -n $name ]] || usage
    check_name "$name"
    [[ -d $dir ]] || return 0
    dir=$(readlink -f "$dir")
    stop_one_pgbouncer "$dir" "$name"
    rm -rf "${dir:?}/$name" "$dir/$name.env"
}

cmd_stop() {
    local dir=${1:-} ini name
    [[ -n $dir ]] || usage
    [[ -d $dir ]] || return 0
    dir=$(readlink -f "$dir")
    # Only ever delete a directory this script created.
    [[ -f $dir/$MARKER ]] || die "$dir is not a stand-in directory; not touching it"
    for ini in "$dir"/*/pgbouncer.ini; do
        [[ -f $ini ]] || continue
        name=$(basename "$(dirname "$ini")")
        stop_one_pgbouncer "$dir" "$name"
    done
    if [[ -f $dir/pg/postmaster.pid ]]; then
        # SIGINT is PostgreSQL's fast shutdown: it ends sessions and exits cleanly.
        stop_pid "$(head -n 1 "$dir/pg/postmaster.pid")" INT "$dir/pg"
    fi
    stop_watchdog "$dir/watchdog.pid"
    rm -rf "$dir"
}

# Installs PostgreSQL, PgBouncer and openssl through apt-get when they are missing; a machine
# that has them is left alone (no apt-get update, no network).
cmd_install_deps() {
    local missing=()
    [[ -x $PGBIN/postgres && -x $PGBIN/initdb ]] || missing+=(postgresql)
    command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
    [[ -x $PGBOUNCER ]] || missing+=(pgbouncer)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    # promtool lints lockroute's /metrics in the suite.
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    # systemd-analyze verifies the shipped unit file in the suite.
    command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
    # tests/queues.rs runs procrastinate from a venv (scripts/queues-venv.sh); Debian's python3
    # makes one only with python3-venv (ensurepip).
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    local sudo=()
    if [[ $EUID -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to apt-get install ${missing[*]}"
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Try without a refresh first; a fresh machine's package lists may be empty or stale.
    "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" ||
        { "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; }
}

main() {
    local cmd=${1:-}
    (($#)) && shift
    case $cmd in
    start) cmd_start "$@" ;;
    pgbouncer) cmd_pgbouncer "$@" ;;
    restart-pgbouncer) cmd_restart_pgbouncer "$@" ;;
    stop-pgbouncer) cmd_stop_pgbouncer "$@" ;;
    stop) cmd_stop "$@" ;;
    install-deps) cmd_install_deps ;;
    _watch) cmd_watch "$@" ;;
    *) usage ;;
    esac
}

main "$@"
