#!/usr/bin/env bash
# The Python venv that tests/queues.rs runs procrastinate from: py/requirements-queues.txt, every
# version pinned, installed with pip into .venv-queues/ at the repo root (or $LOCKROUTE_QUEUES_VENV).
# Re-running is cheap: nothing is installed when the venv already matches the requirements file.
#
#   scripts/queues-venv.sh          create or update the venv; prints its python
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${LOCKROUTE_QUEUES_VENV:-$ROOT/.venv-queues}
REQS=$ROOT/py/requirements-queues.txt
STAMP=$VENV/.requirements-queues.txt

if [[ -x $VENV/bin/python ]] && cmp -s "$REQS" "$STAMP"; then
    echo "$VENV/bin/python"
    exit 0
fi
command -v python3 >/dev/null || { echo "queues-venv: python3 is not installed" >&2; exit 1; }
# Debian's python3 needs python3-venv for ensurepip; scripts/standin.sh install-deps installs it.
python3 -m venv "$VENV" >&2 || { echo "queues-venv: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-virtualenv -r "$REQS" >&2
cp "$REQS" "$STAMP"
echo "$VENV/bin/python"
