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
//   ENRICH    "enrich" transactions (reads, on the pooler) per renewal tick              (1)
//   SWEEP_MS  stall-sweeper interval; 0 turns it off. It requeues active jobs whose lease
//             expired more than GRACE_MS ago, as gbrain's handleStalled does             (0)
//   GRACE_MS  stall-reclaim grace                                                         (0)
//   SETUP_ONLY "1" creates the schema and exits (tests install their audit trigger next)
//
// Prints one JSON summary line on stdout and exits 0 only when every operation succeeded, no
// lease was lost or evicted, nothing was claimed twice and at least one job completed. Errors are
// counted per operation (`errors_by_op`), so a fault test can tell the lock path (claim, renew)
// from the pooler's work (promote, enrich, complete, sweep).
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
    enrich: intEnv('ENRICH', 1),
    sweepMs: intEnv('SWEEP_MS', 0),
    graceMs: intEnv('GRACE_MS', 0),
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Counters for the summary. Errors are keyed by postgres.js's code: a SQLSTATE for server errors,
// CONNECTION_CLOSED and friends for socket trouble; `errors_by_op` splits them per operation.
const stats = {
  claims: 0,
  renewals: 0,
  renewals_lost: 0,
  completions: 0,
  completions_fenced: 0,
  promotes: 0,
  enriches: 0,
  sweeps: 0,
  evictions: 0,
  evicted_held: 0,
  max_lease_gap_ms: 0,
  errors: {},
  errors_by_op: {},
  // The slowest call of each operation, in ms, successful or not.
  max_ms: {},
}

// Runs `fn` and records its latency under `op`.
async function timed(op, fn) {
  const started = Date.now()
  try {
    return await fn()
  } finally {
    const ms = Date.now() - started
    if (ms > (stats.max_ms[op] || 0)) stats.max_ms[op] = ms
  }
}

// Jobs a live worker of this process holds right now: evicting one of them is the wedge.
const held = new Set()

function countError(op, err) {
  const code = err?.code || err?.name || 'unknown'
  stats.errors[code] = (stats.errors[code] || 0) + 1
  const byOp = (stats.errors_by_op[op] ||= {})
  byOp[code] = (byOp[code] || 0) + 1
  if (stats.errors[code] <= 3) console.error(`worker: ${op} failed: ${code}: ${err?.message}`)
}

// The longest time a job went without a renewal the server accepted (claim to first renewal,
// renewal to renewal), measured from when each was sent: how close the fleet came to eviction.
function leaseGap(ms) {
  if (ms > stats.max_lease_gap_ms) stats.max_lease_gap_ms = ms
}

// One lease renewal: true when the server extended the lease, false when it matched no row (the
// lease is lost), null when the call failed (the socket dropped mid-flight). A failure is counted
// and the next tick tries again, as gbrain's renewal timer does.
async function renew(sql, cfg, job, token) {
  let renewed
  try {
    renewed = await timed('renew', () => sql.unsafe(RENEW_SQL, [cfg.lockMs, job.id, token]))
  } catch (err) {
    countError('renew', err)
    return null
  }
  stats.renewals++
  return renewed.length === 1
}

// gbrain's handlers "enrich" a job with reads in a transaction, through the pooler.
async function enrich(sql, job) {
  try {
    await timed('enrich', () =>
      sql.begin(async (tx) => {
        await tx`SELECT id, attempts_started FROM minion_jobs WHERE id = ${job.id}`
        await tx`SELECT count(*) FROM (SELECT md5(g::text) FROM generate_series(1, 200) g) s`
      }),
    )
    stats.enriches++
  } catch (err) {
    countError('enrich', err)
  }
}

// Runs one job: "works" for jobMs, running `enrich` transactions, then completes it, while a
// timer renews the lease every renewMs on its own, as gbrain's lock-renewal tick does, until the
// job is completed (a completion may be retried through a pooler outage).
async function runJob(sql, cfg, job, token) {
  const until = Date.now() + cfg.jobMs
  let lost = false
  let done = false
  let leased = Date.now()
  const renewals = (async () => {
    while (!lost && !done) {
      await sleep(cfg.renewMs)
      if (done) break
      const sent = Date.now()
      const renewed = await renew(sql, cfg, job, token)
      if (renewed === false) lost = true
      if (renewed === true) {
        leaseGap(sent - leased)
        leased = sent
      }
    }
  })()
  while (!lost && Date.now() < until) {
    for (let i = 0; i < cfg.enrich; i++) await enrich(sql, job)
    await sleep(Math.min(cfg.renewMs, Math.max(0, until - Date.now())))
  }
  const completed = !lost && (await complete(sql, job, token, () => lost))
  done = true
  await renewals
  // A renewal that crossed the completing COMMIT matches no row and is not a lost lease.
  if (lost && !completed) stats.renewals_lost++
}

// gbrain's completeJob(): a token-fenced release inside a transaction, as tagged templates;
// true when this call completed the job. A
// failed attempt is counted and retried for as long as a pooler outage may last (a minute), while
// the lease keeps being renewed: a worker that is alive keeps its job. The token fence makes a
// retry after a lost COMMIT reply harmless.
async function complete(sql, job, token, leaseLost) {
  const giveUp = Date.now() + 60000
  for (;;) {
    try {
      const done = await timed('complete', () => sql.begin(async (tx) => {
        await tx`SELECT id FROM minion_jobs WHERE id = ${job.id} FOR UPDATE`
        return tx`UPDATE minion_jobs SET status = 'completed', result = ${JSON.stringify({ ok: true })}::jsonb,
          finished_at = now(), lock_token = NULL, lock_until = NULL, updated_at = now()
          WHERE id = ${job.id} AND status = 'active' AND lock_token = ${token} RETURNING id`
      }))
      if (done.length === 1) stats.completions++
      else stats.completions_fenced++
      return done.length === 1
    } catch (err) {
      countError('complete', err)
      if (Date.now() > giveUp || leaseLost()) return false
      await sleep(100)
    }
  }
}

// gbrain's handleStalled(), reduced to this queue: requeue active jobs whose lease expired more
// than graceMs ago. Every eviction in a run where no worker dies is a wedge in the making.
const SWEEP_SQL = `UPDATE minion_jobs SET status = 'waiting', stalled_counter = stalled_counter + 1,
         started_at = NULL, lock_token = NULL, lock_until = NULL, updated_at = now()
       WHERE id IN (SELECT id FROM minion_jobs WHERE queue = $1 AND status = 'active'
                      AND lock_until < now() - ($2::double precision * interval '1 millisecond')
                    FOR UPDATE SKIP LOCKED)
       RETURNING id`

async function sweeperLoop(sql, cfg, deadline, stopping) {
  while (Date.now() < deadline && !stopping.now) {
    await sleep(cfg.sweepMs)
    try {
      const evicted = await timed('sweep', () => sql.begin((tx) => tx.unsafe(SWEEP_SQL, [cfg.queue, cfg.graceMs])))
      stats.sweeps++
      for (const row of evicted) {
        stats.evictions++
        if (held.has(BigInt(row.id))) stats.evicted_held++
        console.error(`worker: stall sweeper evicted job ${row.id}`)
      }
    } catch (err) {
      countError('sweep', err)
    }
  }
}

async function workerLoop(sql, cfg, deadline, stopping) {
  const workerId = randomUUID()
  while (Date.now() < deadline && !stopping.now) {
    try {
      await timed('promote', () => sql.unsafe(PROMOTE_SQL))
      stats.promotes++
    } catch (err) {
      countError('promote', err)
    }
    const token = `${workerId}:${Date.now()}`
    let claimed
    try {
      claimed = await timed('claim', () => sql.unsafe(CLAIM_SQL, [token, cfg.lockMs, cfg.queue, ['echo'], {}, {}]))
    } catch (err) {
      countError('claim', err)
      await sleep(cfg.pollMs)
      continue
    }
    if (claimed.length === 0) {
      await sleep(cfg.pollMs)
      continue
    }
    stats.claims++
    const job = claimed[0]
    held.add(job.id)
    try {
      await runJob(sql, cfg, job, token)
    } finally {
      held.delete(job.id)
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

// Prints the one-line JSON summary; returns whether the run succeeded.
function report(cfg, rows, started, crashed) {
  const errorCount = Object.values(stats.errors).reduce((a, b) => a + b, 0)
  const ok =
    !crashed &&
    rows !== null &&
    errorCount === 0 &&
    stats.renewals_lost === 0 &&
    stats.evictions === 0 &&
    rows.double_claims === 0 &&
    stats.completions > 0
  const summary = {
    ok,
    crashed,
    queue: cfg.queue,
    workers: cfg.workers,
    prepare: cfg.prepare,
    elapsed_ms: Date.now() - started,
    ...stats,
    ...(rows || {}),
  }
  console.log(JSON.stringify(summary))
  return ok
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
  const started = Date.now()
  // postgres.js itself can throw when a socket dies under a write (seen straight at PgBouncer
  // under KILL: "Cannot read properties of null (reading 'write')"). The process dies, as a real
  // worker would, but says what it had done first.
  process.on('uncaughtException', (err) => {
    countError('crash', err)
    console.error(`worker: crashed: ${err?.stack}`)
    report(cfg, null, started, true)
    process.exit(1)
  })
  // postgres.js can reject a promise nobody holds (seen once through lockroute's 08006 inside a
  // transaction). Counted as an error of its own, not a crash.
  process.on('unhandledRejection', (err) => {
    countError('unhandled', err)
    console.error(`worker: unhandled rejection: ${err?.stack} query=${JSON.stringify(err?.query)}`)
  })
  const stopping = { now: false }
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => (stopping.now = true))
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
    const loops = Array.from({ length: cfg.workers }, () => workerLoop(sql, cfg, deadline, stopping))
    if (cfg.sweepMs > 0) loops.push(sweeperLoop(sql, cfg, deadline, stopping))
    await Promise.all(loops)
    rows = await tally(sql, cfg)
  } catch (err) {
    countError('setup', err)
  } finally {
    await sql.end({ timeout: 5 })
  }
  const ok = report(cfg, rows, started, false)
  process.exitCode = ok ? 0 : 1
}

await main()
