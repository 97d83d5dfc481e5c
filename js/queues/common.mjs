// What the three queue runners share (pgboss.mjs, graphile.mjs; py/procrastinate_run.py does the
// same in Python): the settings, the run tally the handler keeps on the server, the audit table,
// the error tally, the count of NOTIFYs that reach the library's own pg clients, and the idle
// wake-up probe. The tally and the audit live on COUNT_URL (PostgreSQL itself, never the path
// under test), so a reaped pooler cannot lose the evidence.
import pg from "pg";

const env = process.env;
const num = (key, dflt) => (env[key] === undefined ? dflt : Number(env[key]));

export const settings = {
  url: env.DATABASE_URL,
  countUrl: env.COUNT_URL,
  run: env.RUN,
  mode: env.MODE ?? "run",
  seconds: num("SECONDS", 30),
  jobs: num("JOBS", 40),
  wakeups: num("WAKEUPS", 10),
  jobMsMin: num("JOB_MS_MIN", 2000),
  jobMsMax: num("JOB_MS_MAX", 4000),
  concurrency: num("CONCURRENCY", 8),
  // Far longer than a wake-up may take, so a fast pickup can only be the queue's LISTEN.
  pollSeconds: num("POLL_SECONDS", 10),
  wakeMs: num("WAKE_MS", 1000),
};
for (const key of ["url", "countUrl", "run"]) {
  if (!settings[key]) {
    console.error(`queues: ${key === "url" ? "DATABASE_URL" : key === "countUrl" ? "COUNT_URL" : "RUN"} is required`);
    process.exit(64);
  }
}

// The tally and audit tables, shared by every run (rows carry the run id).
export const TALLY_SQL = `
CREATE TABLE IF NOT EXISTS queue_runs (
  run text NOT NULL, job text NOT NULL, started timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished timestamptz);
CREATE INDEX IF NOT EXISTS queue_runs_run ON queue_runs (run, job);
CREATE TABLE IF NOT EXISTS queue_audit (
  run text NOT NULL, op text NOT NULL, role text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE INDEX IF NOT EXISTS queue_audit_run ON queue_audit (run);
`;

/** A small pool on PostgreSQL itself, for the tally and the audit. */
export async function countClient() {
  const pool = new pg.Pool({ connectionString: settings.countUrl, max: 4 });
  pool.on("error", (e) => tally(e, "count"));
  return pool;
}

/** Runs setup SQL once across parallel runs (a session advisory lock on PostgreSQL itself). */
export async function installShared(pool, sql) {
  const client = await pool.connect();
  try {
    await client.query("SELECT pg_advisory_lock(hashtext('lockroute-queues'))");
    await client.query(sql);
  } finally {
    await client.query("SELECT pg_advisory_unlock(hashtext('lockroute-queues'))");
    client.release();
  }
}

// Errors the library raised toward the application: events, rejections, handler failures.
export const errors = {};
export function tally(err, where) {
  const code = err?.code ?? err?.name ?? "Error";
  const key = `${where}:${code}`;
  errors[key] = (errors[key] ?? 0) + 1;
  if (process.env.QUEUES_DEBUG) console.error(key, err?.message ?? err);
}
process.on("unhandledRejection", (e) => tally(e, "unhandled_rejection"));
process.on("uncaughtException", (e) => tally(e, "uncaught_exception"));

// Every NOTIFY delivered to any node-postgres client in this process, by channel: pg-boss and
// graphile-worker both LISTEN through pg.Client.
export const notifications = {};
const emit = pg.Client.prototype.emit;
pg.Client.prototype.emit = function (event, ...args) {
  if (event === "notification") {
    const channel = args[0]?.channel ?? "?";
    notifications[channel] = (notifications[channel] ?? 0) + 1;
  }
  return emit.call(this, event, ...args);
};

/** The job's length: JOB_MS_MIN..JOB_MS_MAX for the main jobs, 100 ms for a wake-up probe. */
export function jobMs(job) {
  if (job.startsWith("wake")) return 100;
  return settings.jobMsMin + Math.floor(Math.random() * (settings.jobMsMax - settings.jobMsMin + 1));
}

// Local record of when each job's handler first started, for the wake-up latency.
const startedAt = new Map();

/** The handler body every queue runs: one row per run on the server, then the work. */
export async function handle(count, job) {
  if (!startedAt.has(job)) startedAt.set(job, Date.now());
  const { rows } = await count.query(
    "INSERT INTO queue_runs (run, job) VALUES ($1, $2) RETURNING ctid::text",
    [settings.run, job],
  );
  await new Promise((r) => setTimeout(r, jobMs(job)));
  await count.query("UPDATE queue_runs SET finished = clock_timestamp() WHERE run = $1 AND ctid = $2::tid", [
    settings.run,
    rows[0].ctid,
  ]);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Main job names and wake-up probe names. */
export const mainJobs = () => Array.from({ length: settings.jobs }, (_, i) => `job${i}`);

/**
 * The worker runs for SECONDS. Once no main job is left to run (or when only the wake-up window
 * remains), it sends WAKEUPS probes one at a time while the worker is idle, each through
 * `enqueue` on PostgreSQL itself, and measures how long the worker takes to start it.
 */
export async function wakeupPhase(count, enqueue, idle, started) {
  const window = settings.wakeups * (settings.wakeMs + 300) + 1000;
  const deadline = started + settings.seconds * 1000;
  while (Date.now() < deadline - window && !(await idle())) await sleep(250);
  const latencies = [];
  for (let i = 0; i < settings.wakeups; i++) {
    await sleep(300);
    const job = `wake${i}`;
    const sent = Date.now();
    await enqueue(job);
    while (!startedAt.has(job) && Date.now() - sent < settings.wakeMs) await sleep(10);
    latencies.push(startedAt.has(job) ? startedAt.get(job) - sent : null);
  }
  while (Date.now() < deadline) await sleep(100);
  return latencies;
}

/** Whether every main job has started at least once here (the worker is idle after that). */
export function allStarted() {
  return mainJobs().every((j) => startedAt.has(j));
}

/** The server's tally for this run: per job, its runs and finished runs; audit by op and role. */
export async function serverTally(count) {
  const runs = await count.query(
    "SELECT job, count(*)::int AS runs, count(finished)::int AS finished FROM queue_runs WHERE run = $1 GROUP BY job",
    [settings.run],
  );
  const audit = await count.query(
    "SELECT op, role, count(*)::int AS n FROM queue_audit WHERE run = $1 GROUP BY 1, 2 ORDER BY 1, 2",
    [settings.run],
  );
  const lanes = {};
  for (const { op, role, n } of audit.rows) (lanes[op] ??= {})[role] = n;
  const main = runs.rows.filter((r) => r.job.startsWith("job"));
  return {
    handler_runs: runs.rows.reduce((s, r) => s + r.runs, 0),
    run_twice: runs.rows.filter((r) => r.runs > 1).map((r) => r.job),
    main_started: main.length,
    lanes,
  };
}

/** The one JSON line each runner ends with. */
export function summary(fields, latencies) {
  const fast = latencies.filter((l) => l !== null && l < settings.wakeMs).length;
  const out = {
    queue: fields.queue,
    run: settings.run,
    jobs: settings.jobs,
    ...fields,
    wakeups_sent: latencies.length,
    wakeups_fast: fast,
    wakeup_ms: latencies,
    notifications,
    errors,
    error_total: Object.values(errors).reduce((a, b) => a + b, 0),
  };
  console.log(JSON.stringify(out));
}

/**
 * Runs the runner's body. A library that hangs or throws out of it still ends the process: after
 * SECONDS + 60 s a line with `hung: true` is printed, and a throw prints `failed`; both exit 2.
 */
export async function main(body) {
  const limit = setTimeout(() => {
    console.log(JSON.stringify({ run: settings.run, hung: true, errors, notifications }));
    process.exit(2);
  }, (settings.seconds + 60) * 1000);
  try {
    await body();
  } catch (e) {
    console.log(JSON.stringify({ run: settings.run, failed: String(e?.stack ?? e), errors, notifications }));
    process.exit(2);
  }
  clearTimeout(limit);
  process.exit(0);
}
