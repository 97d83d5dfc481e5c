#!/usr/bin/env bash
# THE command that runs lockroute's whole test suite:
#
#   scripts/test.sh [ARGS...]     ARGS go to the test runner, e.g. `scripts/test.sh standin`
#
# It installs what is missing (PostgreSQL, PgBouncer, the js/ packages), starts one local
# Supabase stand-in for the whole run (scripts/standin.sh) and exports LOCKROUTE_STANDIN_DIR so
# that every test process shares it, runs the tests with cargo-nextest (or cargo test), stops the
# stand-in, and exits with the tests' status.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/standin.sh install-deps
# Again whenever package-lock.json differs from the one the last `npm ci` here installed.
if ! cmp -s js/package-lock.json js/node_modules/.lockroute-installed-lock.json; then
    (cd js && npm ci --no-audit --no-fund && cp package-lock.json node_modules/.lockroute-installed-lock.json)
fi
# procrastinate for tests/queues.rs, pinned, in .venv-queues/ (a no-op when up to date).
bash scripts/queues-venv.sh >/dev/null

STANDIN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/lockroute-standin.XXXXXX")
# The stand-in also stops itself if this script dies without running the trap (--owner-pid).
trap 'bash "$ROOT/scripts/standin.sh" stop "$STANDIN_DIR"' EXIT
bash scripts/standin.sh start "$STANDIN_DIR" --owner-pid $$
export LOCKROUTE_STANDIN_DIR=$STANDIN_DIR
# The deployment checks need kubectl and systemd-analyze; in the suite a missing tool fails.
export LOCKROUTE_DEPLOY_TOOLS=required

status=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@" || status=$?
    # nextest does not run doctests.
    if [[ $# -eq 0 ]]; then
        cargo test --workspace --doc || status=$?
    fi
else
    cargo test --workspace --no-fail-fast "$@" || status=$?
fi
exit "$status"
