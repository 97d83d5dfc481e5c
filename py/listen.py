"""An untagged psycopg 3 LISTEN client: procrastinate's wake-up path, without procrastinate.

Behind a transaction pooler its LISTEN is lost; through lockroute the client is pinned to a
dedicated direct session and every NOTIFY arrives.

    DATABASE_URL=postgres://app:app-secret@127.0.0.1:6432/app?sslmode=disable \\
        CHANNEL=jobs COUNT=10 SECONDS=20 .venv-queues/bin/python py/listen.py

Prints "listening" once the LISTEN is in place, then one JSON line when COUNT payloads have
arrived or SECONDS have passed: {"received": n, "payloads": [...], "errors": [...]}.
Exits 0 only when all COUNT arrived.
"""

import json
import os
import sys
import time

import psycopg

url = os.environ["DATABASE_URL"]
channel = os.environ.get("CHANNEL", "lockroute_listen")
count = int(os.environ.get("COUNT", "10"))
seconds = float(os.environ.get("SECONDS", "20"))

payloads = set()
errors = []
with psycopg.connect(url, autocommit=True) as conn:
    conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
    print("listening", flush=True)
    deadline = time.monotonic() + seconds
    while len(payloads) < count and time.monotonic() < deadline:
        # Ordinary queries on the same connection keep going while it listens.
        try:
            conn.execute("select 1")
        except psycopg.Error as e:
            errors.append(e.sqlstate or str(e))
        for note in conn.notifies(timeout=0.2, stop_after=count):
            payloads.add(note.payload)
print(json.dumps({"received": len(payloads), "payloads": sorted(payloads), "errors": errors}), flush=True)
sys.exit(0 if len(payloads) >= count else 1)
