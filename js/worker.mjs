// A gbrain-like Minions worker on postgres.js 3.4.9, the client and version gbrain uses. It sends
// lockroute the traffic lockroute exists for: claim and renewLock (the lock path, sent with
// sql.unsafe as unnamed describe-first extended queries, exact gbrain text), promoteDelayed
// (a simple Query) and completion inside sql.begin with tagged templates (named prepared
// statements unless PREPARE=false). See shared/reference/gbrain-lock-path.md §1-2.
//
//   DATABASE_URL=postgres://app:app-secret@127.0.0.1:6432/app?sslmode=disable node js/worker.mjs
//
// Environment (all optional but DATABASE_URL):
//   WORKERS   concurrent worker loops sharing one pool, like gbrain's --concurrency   (3)
//   SECONDS   how long to run                                                          (20)
//   JOBS      jobs seeded into this run's queue                       (WORKERS*SECONDS*2)
//   JOB_MS    how long each job's handler "works"                                      (1000)
//   RENEW_MS  renewLock cadence while a job runs (gbrain: lease/2; faster to stress)   (300)
//   LOCK_MS   lease length                                                             (30000)
//   POLL_MS   claim poll interval when the queue is empty                              (100)
//   POOL_MAX  postgres.js pool size                                                    (10)
//   PREPARE   "false" turns off named prepared statements (gbrain on :6543)           (true)
//   QUEUE     queue name; unique per run by default, so runs can share a database
//   KEEP      "1" keeps this run's rows instead of deleting them at the end
//   SETUP_ONLY "1" creates the schema and exits (tests install their audit trigger next)
//
// Prints one JSON summary line on stdout and exits 0 only when every operation succeeded, no
// lease was lost, nothing was claimed twice and at least one job completed.
import { createHash, randomUUID } from 'node:crypto'
import postgres from 'postgres'

// gbrain's claim() at 01aab110 (6 params), byte for byte: lockroute's default pattern must match
// this text, so the checksum below guards it against an editor's "tidying".
const CLAIM_SQL = `UPDATE minion_jobs SET
        status = 'active',
        lock_token = $1,
        lock_until = now() + ((CASE WHEN COALESCE(lock_duration_ms, ($6::jsonb ->> name)::int) IS NULL THEN $2
                                    ELSE LEAST(GREATEST(COALESCE(lock_duration_ms, ($6::jsonb ->> name)::int), 5000), 3600000) END)::double precision * interval '1 millisecond'),
        lock_duration_ms = CASE WHEN COALESCE(lock_duration_ms, ($6::jsonb ->> name)::int) IS NULL THEN NULL
                                ELSE LEAST(GREATEST(COALESCE(lock_duration_ms, ($6::jsonb ->> name)::int), 5000), 3600000) END,
        timeout_ms = COALESCE(timeout_ms, ($5::jsonb ->> name)::int),
        timeout_at = CASE WHEN COALESCE(timeout_ms, ($5::jsonb ->> name)::int) IS NOT NULL
                          THEN now() + (COALESCE(timeout_ms, ($5::jsonb ->> name)::int)::double precision * interval '1 millisecond')
                          ELSE NULL END,
        attempts_started = attempts_started + 1,
        started_at = COALESCE(started_at, now()),
        updated_at = now()
       WHERE id = (
         SELECT id FROM minion_jobs
         WHERE queue = $3 AND status = 'waiting' AND name = ANY($4)
         ORDER BY priority ASC, created_at ASC
         FOR UPDATE SKIP LOCKED
         LIMIT 1
       )
       RETURNING *`

// gbrain's renewLock(), byte for byte.
const RENEW_SQL = `UPDATE minion_jobs SET lock_until = now() + ($1::double precision * interval '1 millisecond'), updated_at = now()
       WHERE id = $2 AND lock_token = $3 AND status = 'active'
       RETURNING id`

// gbrain's promoteDelayed(): no params, so postgres.js sends it as a simple Query.
const PROMOTE_SQL = `UPDATE minion_jobs SET status = 'waiting', delay_until = NULL, started_at = NULL, lock_token = NULL, lock_until = NULL, updated_at = now() WHERE status = 'delayed' AND delay_until <= now() RETURNING *`

// The lock-relevant columns of gbrain's src/schema.sql (§1.1), plus what this worker reads.
const SCHEMA_SQL = `CREATE TABLE IF NOT EXISTS minion_jobs (
  id               BIGSERIAL PRIMARY KEY,
  name             TEXT NOT NULL,
  queue            TEXT NOT NULL DEFAULT 'default',
  status           TEXT NOT NULL DEFAULT 'waiting',
  priority         INTEGER NOT NULL DEFAULT 0,
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  lock_token       TEXT,
  lock_until       TIMESTAMPTZ,
  lock_duration_ms INTEGER CHECK (lock_duration_ms IS NULL OR lock_duration_ms BETWEEN 5000 AND 3600000),
  delay_until      TIMESTAMPTZ,
  timeout_ms       INTEGER,
  timeout_at       TIMESTAMPTZ,
  attempts_started INTEGER NOT NULL DEFAULT 0,
  started_at       TIMESTAMPTZ,
  updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  finished_at      TIMESTAMPTZ,
  result           JSONB,
  stalled_counter  INTEGER NOT NULL DEFAULT 0,
  max_stalled      INTEGER NOT NULL DEFAULT 5
);
CREATE INDEX IF NOT EXISTS idx_minion_jobs_claim ON minion_jobs (queue, priority ASC, created_at ASC) WHERE status = 'waiting';
CREATE INDEX IF NOT EXISTS idx_minion_jobs_stalled ON minion_jobs (lock_until) WHERE status = 'active'`

const EXPECTED_SHA256 = { claim: 'f11542cd41172024', renew: '2addef246bbb2606' }

function sha256Prefix(text) {
  return createHash('sha256').update(text).digest('hex').slice(0, 16)
}

function intEnv(name, fallback) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 0) {
    console.error(`worker: ${name} must be a non-negative integer, got ${JSON.stringify(raw)}`)
    process.exit(64)
  }
  return value
}

function readConfig() {
  const url = process.env.DATABASE_URL
  if (!url) {
    console.error('worker: DATABASE_URL is required, e.g. postgres://app:app-secret@127.0.0.1:6432/app?sslmode=disable')
    process.exit(64)
  }
  const workers = Math.max(1, intEnv('WORKERS', 3))
  const seconds = intEnv('SECONDS', 20)
  return {
    url,
    workers,
    seconds,
    jobs: intEnv('JOBS', workers * Math.max(seconds, 1) * 2),
    jobMs: intEnv('JOB_MS', 1000),
    renewMs: Math.max(1, intEnv('RENEW_MS', 300)),
    lockMs: intEnv('LOCK_MS', 30000),
    pollMs: intEnv('POLL_MS', 100),
    poolMax: Math.max(1, intEnv('POOL_MAX', 10)),
    prepare: !['false', '0'].includes((process.env.PREPARE || '').toLowerCase()),
    queue: process.env.QUEUE || `lockroute-${randomUUID().slice(0, 8)}`,
    keep: process.env.KEEP === '1',
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Counters for the summary. Errors are keyed by postgres.js's code: a SQLSTATE for server errors,
// CONNECTION_CLOSED and friends for socket trouble.
const stats = { claims: 0, renewals: 0, renewals_lost: 0, completions: 0, completions_fenced: 0, promotes: 0, errors: {} }

function countError(op, err) {
  const code = err?.code || err?.name || 'unknown'
  stats.errors[code] = (stats.errors[code] || 0) + 1
  if (stats.errors[code] <= 3) console.error(`worker: ${op} failed: ${code}: ${err?.message}`)
}

// Runs one job: "works" for jobMs while renewing the lease every renewMs, as gbrain's
// lock-renewal tick does. Returns false when the lease was lost (renewLock matched no row).
async function runHandler(sql, cfg, job, token) {
  const until = Date.now() + cfg.jobMs
  while (Date.now() < until) {
    await sleep(Math.min(cfg.renewMs, Math.max(0, until - Date.now())))
    const renewed = await sql.unsafe(RENEW_SQL, [cfg.lockMs, job.id, token])
    stats.renewals++
    if (renewed.length !== 1) {
      stats.renewals_lost++
      return false
    }
  }
  return true
}

// gbrain's completeJob(): a token-fenced release inside a transaction, as tagged templates.
async function complete(sql, job, token) {
  const done = await sql.begin(async (tx) => {
    await tx`SELECT id FROM minion_jobs WHERE id = ${job.id} FOR UPDATE`
    return tx`UPDATE minion_jobs SET status = 'completed', result = ${JSON.stringify({ ok: true })}::jsonb,
      finished_at = now(), lock_token = NULL, lock_until = NULL, updated_at = now()
      WHERE id = ${job.id} AND status = 'active' AND lock_token = ${token} RETURNING id`
  })
  if (done.length === 1) stats.completions++
  else stats.completions_fenced++
}

async function workerLoop(sql, cfg, deadline, stopping) {
  const workerId = randomUUID()
  while (Date.now() < deadline && !stopping.now) {
    try {
      await sql.unsafe(PROMOTE_SQL)
      stats.promotes++
      const token = `${workerId}:${Date.now()}`
      const claimed = await sql.unsafe(CLAIM_SQL, [token, cfg.lockMs, cfg.queue, ['echo'], {}, {}])
      if (claimed.length === 0) {
        await sleep(cfg.pollMs)
        continue
      }
      stats.claims++
      if (await runHandler(sql, cfg, claimed[0], token)) await complete(sql, claimed[0], token)
    } catch (err) {
      countError('loop', err)
      await sleep(cfg.pollMs)
    }
  }
}

async function setUp(sql, cfg) {
  // Concurrent runs may create the table at once; the advisory lock serialises them.
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(hashtext('lockroute-minion-jobs-schema'))`
    await tx.unsafe(SCHEMA_SQL)
  })
  if (cfg.jobs > 0) {
    await sql`INSERT INTO minion_jobs (name, queue, priority)
      SELECT 'echo', ${cfg.queue}, g % 3 FROM generate_series(1, ${cfg.jobs}::int) g`
  }
}

async function tally(sql, cfg) {
  const [row] = await sql`SELECT
      count(*) FILTER (WHERE attempts_started > 1)::int AS double_claims,
      count(*) FILTER (WHERE status = 'completed')::int AS completed_rows,
      count(*) FILTER (WHERE status = 'active')::int AS active_rows,
      count(*) FILTER (WHERE status = 'waiting')::int AS waiting_rows
    FROM minion_jobs WHERE queue = ${cfg.queue}`
  if (!cfg.keep) await sql`DELETE FROM minion_jobs WHERE queue = ${cfg.queue}`
  return row
}

async function main() {
  const cfg = readConfig()
  const actual = { claim: sha256Prefix(CLAIM_SQL), renew: sha256Prefix(RENEW_SQL) }
  if (actual.claim !== EXPECTED_SHA256.claim || actual.renew !== EXPECTED_SHA256.renew) {
    console.error(`worker: lock-path SQL drifted from gbrain's text: ${JSON.stringify(actual)}`)
    process.exit(70)
  }
  // gbrain's pool options (§2.2): bigint as BigInt, quiet notices, the session timeouts it sends
  // as startup parameters.
  const sql = postgres(cfg.url, {
    max: cfg.poolMax,
    idle_timeout: 20,
    connect_timeout: 10,
    prepare: cfg.prepare,
    types: { bigint: postgres.BigInt },
    onnotice: () => {},
    connection: { statement_timeout: 300000, idle_in_transaction_session_timeout: 300000 },
  })
  const stopping = { now: false }
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => (stopping.now = true))
  const started = Date.now()
  let rows = null
  try {
    if (process.env.SETUP_ONLY === '1') {
      await setUp(sql, { ...cfg, jobs: 0 })
      await sql.end({ timeout: 5 })
      console.log(JSON.stringify({ ok: true, setup_only: true }))
      return
    }
    await setUp(sql, cfg)
    const deadline = Date.now() + cfg.seconds * 1000
    await Promise.all(Array.from({ length: cfg.workers }, () => workerLoop(sql, cfg, deadline, stopping)))
    rows = await tally(sql, cfg)
  } catch (err) {
    countError('setup', err)
  } finally {
    await sql.end({ timeout: 5 })
  }
  const errorCount = Object.values(stats.errors).reduce((a, b) => a + b, 0)
  const ok = rows !== null && errorCount === 0 && stats.renewals_lost === 0 && rows.double_claims === 0 && stats.completions > 0
  const summary = {
    ok,
    queue: cfg.queue,
    workers: cfg.workers,
    prepare: cfg.prepare,
    elapsed_ms: Date.now() - started,
    ...stats,
    ...(rows || {}),
  }
  console.log(JSON.stringify(summary))
  process.exitCode = ok ? 0 : 1
}

await main()
