"""Real procrastinate 3 (psycopg 3, its pool, auto-prepared statements) as a worker sees it.

Runs from the venv of scripts/queues-venv.sh. The environment is js/queues/common.mjs's:
DATABASE_URL (the path under test), COUNT_URL (PostgreSQL itself, for the tally and audit), RUN,
MODE, SECONDS, JOBS, WAKEUPS, JOB_MS_MIN, JOB_MS_MAX, CONCURRENCY, POLL_SECONDS, WAKE_MS.

  MODE=setup  applies procrastinate's schema once (`schema --apply`; it lives in `public`, so
              runs are told apart by queue name, which is RUN), installs the audit triggers,
              enqueues JOBS jobs
  MODE=run    one worker (CONCURRENCY at a time, LISTEN on, polling every POLL_SECONDS, worker
              heartbeat every second) for SECONDS, with the idle wake-up probe; prints the JSON
              summary

The audit triggers record the role of every claim (todo -> doing), completion, failure, and
worker heartbeat (while the worker holds one of this run's jobs).
"""

import asyncio
import json
import logging
import os
import random
import sys
import time

import procrastinate
import psycopg
from psycopg_pool import AsyncConnectionPool

ENV = os.environ
RUN = ENV.get("RUN", "")
URL = ENV.get("DATABASE_URL", "")
COUNT_URL = ENV.get("COUNT_URL", "")
for key, value in (("DATABASE_URL", URL), ("COUNT_URL", COUNT_URL), ("RUN", RUN)):
    if not value:
        print(f"queues: {key} is required", file=sys.stderr)
        sys.exit(64)
MODE = ENV.get("MODE", "run")
SECONDS = float(ENV.get("SECONDS", "30"))
JOBS = int(ENV.get("JOBS", "40"))
WAKEUPS = int(ENV.get("WAKEUPS", "10"))
JOB_MS = (int(ENV.get("JOB_MS_MIN", "2000")), int(ENV.get("JOB_MS_MAX", "4000")))
CONCURRENCY = int(ENV.get("CONCURRENCY", "8"))
POLL_SECONDS = float(ENV.get("POLL_SECONDS", "10"))
WAKE_MS = int(ENV.get("WAKE_MS", "1000"))

AUDIT = """
CREATE OR REPLACE FUNCTION lockroute_procrastinate_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE op text; run text;
BEGIN
  IF TG_TABLE_NAME = 'procrastinate_workers' THEN
    op := 'heartbeat';
    SELECT queue_name INTO run FROM procrastinate_jobs WHERE worker_id = NEW.id LIMIT 1;
  ELSE
    run := NEW.queue_name;
    IF OLD.status = 'todo' AND NEW.status = 'doing' THEN op := 'claim';
    ELSIF OLD.status = 'doing' AND NEW.status = 'succeeded' THEN op := 'complete';
    ELSIF NEW.status = 'failed' AND OLD.status <> 'failed' THEN op := 'fail';
    END IF;
  END IF;
  IF op IS NOT NULL AND run IS NOT NULL THEN
    INSERT INTO public.queue_audit (run, op, role) VALUES (run, op, current_user);
  END IF;
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER lockroute_audit AFTER UPDATE ON procrastinate_jobs
  FOR EACH ROW EXECUTE FUNCTION lockroute_procrastinate_audit();
CREATE OR REPLACE TRIGGER lockroute_audit AFTER UPDATE OF last_heartbeat ON procrastinate_workers
  FOR EACH ROW EXECUTE FUNCTION lockroute_procrastinate_audit();
"""

# The same tables as js/queues/common.mjs's TALLY_SQL.
TALLY_SQL = """
CREATE TABLE IF NOT EXISTS queue_runs (
  run text NOT NULL, job text NOT NULL, started timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished timestamptz);
CREATE INDEX IF NOT EXISTS queue_runs_run ON queue_runs (run, job);
CREATE TABLE IF NOT EXISTS queue_audit (
  run text NOT NULL, op text NOT NULL, role text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE INDEX IF NOT EXISTS queue_audit_run ON queue_audit (run);
"""

errors: dict[str, int] = {}
notifications: dict[str, int] = {}
started_at: dict[str, float] = {}


def tally(key: str) -> None:
    errors[key] = errors.get(key, 0) + 1
    if ENV.get("QUEUES_DEBUG"):
        print(key, file=sys.stderr)


class Tally(logging.Handler):
    """procrastinate's own warnings and errors, by logger and action."""

    def emit(self, record: logging.LogRecord) -> None:
        action = getattr(record, "action", record.getMessage()[:40])
        # The task module being __main__ is this script's shape, not a fault.
        if record.levelno >= logging.WARNING and action != "app_defined_in___main__":
            tally(f"log:{record.levelname.lower()}:{action}")


class CountingConnector(procrastinate.PsycopgConnector):
    """Counts every NOTIFY that reaches procrastinate's own LISTEN connection."""

    async def listen_notify(self, on_notification, channels):
        async def counted(*, channel: str, payload: str) -> None:
            notifications[channel] = notifications.get(channel, 0) + 1
            await on_notification(channel=channel, payload=payload)

        await super().listen_notify(counted, channels)


def make_app(url: str) -> procrastinate.App:
    return procrastinate.App(connector=CountingConnector(conninfo=url))


async def count_pool() -> AsyncConnectionPool:
    pool = AsyncConnectionPool(COUNT_URL, min_size=1, max_size=4, open=False, kwargs={"autocommit": True})
    await pool.open()
    return pool


def main_jobs() -> list[str]:
    return [f"job{i}" for i in range(JOBS)]


async def setup() -> None:
    pool = await count_pool()
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_advisory_lock(hashtext('lockroute-queues'))")
        try:
            await conn.execute(TALLY_SQL)
            exists = await (await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).fetchone()
            if not exists[0]:
                app = make_app(URL)
                async with app.open_async():
                    await app.schema_manager.apply_schema_async()
            await conn.execute(AUDIT)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext('lockroute-queues'))")
    producer = make_app(COUNT_URL)
    async with producer.open_async():
        task = producer.configure_task("lr", queue=RUN)
        for name in main_jobs():
            await task.defer_async(name=name)
    await pool.close()
    print(json.dumps({"queue": "procrastinate", "setup": "ok", "queue_name": RUN}))


async def run() -> None:
    pool = await count_pool()
    app = make_app(URL)
    producer = make_app(COUNT_URL)
    active = 0

    @app.task(name="lr", queue=RUN)
    async def lr(name: str) -> None:
        nonlocal active
        active += 1
        started_at.setdefault(name, time.monotonic())
        try:
            async with pool.connection() as conn:
                cur = await conn.execute(
                    "INSERT INTO queue_runs (run, job) VALUES (%s, %s) RETURNING ctid::text", (RUN, name)
                )
                ctid = (await cur.fetchone())[0]
            ms = 100 if name.startswith("wake") else random.randint(*JOB_MS)
            await asyncio.sleep(ms / 1000)
            async with pool.connection() as conn:
                await conn.execute(
                    "UPDATE queue_runs SET finished = clock_timestamp() WHERE run = %s AND ctid = %s::tid",
                    (RUN, ctid),
                )
        finally:
            active -= 1

    started = time.monotonic()
    latencies: list[int | None] = []
    async with app.open_async(), producer.open_async():
        worker = asyncio.create_task(
            app.run_worker_async(
                queues=[RUN],
                concurrency=CONCURRENCY,
                fetch_job_polling_interval=POLL_SECONDS,
                listen_notify=True,
                update_heartbeat_interval=1.0,
                stalled_worker_timeout=5.0,
                delete_jobs="never",
                install_signal_handlers=False,
            )
        )
        deadline = started + SECONDS
        window = WAKEUPS * (WAKE_MS + 300) / 1000 + 1
        while time.monotonic() < deadline - window and not (
            all(j in started_at for j in main_jobs()) and active == 0
        ):
            await asyncio.sleep(0.25)
        task = producer.configure_task("lr", queue=RUN)
        for i in range(WAKEUPS):
            await asyncio.sleep(0.3)
            name = f"wake{i}"
            sent = time.monotonic()
            await task.defer_async(name=name)
            while name not in started_at and time.monotonic() - sent < WAKE_MS / 1000:
                await asyncio.sleep(0.01)
            latencies.append(round((started_at[name] - sent) * 1000) if name in started_at else None)
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if worker.done():
            # The worker gave up before the end of the run: its exception is tallied below.
            tally("worker:exited_early")
        worker.cancel()
        try:
            await asyncio.wait_for(worker, timeout=8)
        except asyncio.CancelledError:
            pass
        except asyncio.TimeoutError:
            tally("worker:stop_timeout")
        except Exception as e:  # noqa: BLE001 - the worker's own failure is a result
            tally(f"worker:{type(e).__name__}")
    print(json.dumps(await summary(pool, latencies)))
    await pool.close()


async def summary(pool: AsyncConnectionPool, latencies: list) -> dict:
    async with pool.connection() as conn:
        jobs = await (
            await conn.execute(
                "SELECT args->>'name', status::text, attempts FROM procrastinate_jobs WHERE queue_name = %s", (RUN,)
            )
        ).fetchall()
        runs = await (
            await conn.execute(
                "SELECT job, count(*), count(finished) FROM queue_runs WHERE run = %s GROUP BY job", (RUN,)
            )
        ).fetchall()
        audit = await (
            await conn.execute("SELECT op, role, count(*) FROM queue_audit WHERE run = %s GROUP BY 1, 2", (RUN,))
        ).fetchall()
    main = [j for j in jobs if j[0].startswith("job")]
    lanes: dict = {}
    for op, role, n in audit:
        lanes.setdefault(op, {})[role] = n
    fast = sum(1 for lat in latencies if lat is not None and lat < WAKE_MS)
    return {
        "queue": "procrastinate",
        "run": RUN,
        "jobs": JOBS,
        "done": sum(1 for j in main if j[1] == "succeeded"),
        "not_done": [f"{j[0]}:{j[1]}" for j in main if j[1] != "succeeded"],
        "expired": sum(1 for j in jobs if j[1] == "failed"),
        "stalled": sum(1 for j in jobs if j[1] == "doing"),
        "listen_channel_notifications": sum(n for ch, n in notifications.items() if ch.startswith("procrastinate")),
        "handler_runs": sum(r[1] for r in runs),
        "run_twice": [r[0] for r in runs if r[1] > 1],
        "main_started": sum(1 for r in runs if r[0].startswith("job")),
        "lanes": lanes,
        "wakeups_sent": len(latencies),
        "wakeups_fast": fast,
        "wakeup_ms": latencies,
        "notifications": notifications,
        "errors": errors,
        "error_total": sum(errors.values()),
    }


def main() -> None:
    logging.getLogger("procrastinate").addHandler(Tally())
    logging.getLogger("procrastinate").setLevel(logging.INFO)
    body = setup() if MODE == "setup" else run()
    try:
        asyncio.run(asyncio.wait_for(body, timeout=SECONDS + 60))
    except asyncio.TimeoutError:
        print(json.dumps({"run": RUN, "hung": True, "errors": errors, "notifications": notifications}))
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        print(json.dumps({"run": RUN, "failed": repr(e), "errors": errors, "notifications": notifications}))
        sys.exit(2)


if __name__ == "__main__":
    main()
