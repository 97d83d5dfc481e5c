// Client matrix, stage "real clients": postgres.js 3.4.9 (the client gbrain uses) runs a list of
// named scenarios through lockroute and checks every result, values and lanes alike. The lane is
// proven by asking the server: current_user is `pooler` through PgBouncer and `app` on the
// direct endpoint. See shared/reference/gbrain-lock-path.md §2 for the wire shapes each
// postgres.js call produces.
//
//   DATABASE_URL=postgres://app:app-secret@127.0.0.1:6432/app?sslmode=disable PREPARE=true node js/matrix.mjs
//
// Environment:
//   DATABASE_URL  lockroute's client URL (required)
//   PREPARE       "false" turns off named prepared statements for tagged templates   (true)
//   ONLY          comma-separated scenario names to run (all by default)
//
// Prints one JSON line {ok, prepare, scenarios: {name: {ok, ms, error?}}} on stdout and exits 1
// if any scenario failed.
import { randomBytes } from 'node:crypto'
import postgres from 'postgres'

const TAG = '/* lockroute:direct */ '
const POOLER = 'pooler'
const DIRECT = 'app'
// Each scenario is bounded, so that a hang shows up as a named failure instead of a test-runner
// timeout with no detail.
const SCENARIO_TIMEOUT_MS = 20_000

const url = process.env.DATABASE_URL
if (!url) {
  console.error('DATABASE_URL is required')
  process.exit(2)
}
const prepare = process.env.PREPARE !== 'false'
const only = (process.env.ONLY || '').split(',').filter(Boolean)

// Every pool this run opens, so that they are all ended at the end.
const pools = []
function pool(options = {}) {
  const sql = postgres(url, {
    prepare,
    onnotice: () => {},
    connect_timeout: 10,
    idle_timeout: 20,
    ...options,
  })
  pools.push(sql)
  return sql
}

const sql = pool({ max: 4 })

class Mismatch extends Error {}

function expect(cond, what) {
  if (!cond) throw new Mismatch(what)
}

function expectRow(row, n, user, what) {
  expect(row !== undefined, `${what}: no row`)
  expect(Number(row.n) === n, `${what}: n = ${row.n}, want ${n}`)
  expect(row.u === user, `${what}: current_user = ${row.u}, want ${user}`)
}

// Awaits a query and checks that postgres.js did not hide a failure: on 26000 "prepared statement
// does not exist" (routine FetchPreparedStatement) it silently re-prepares and retries once,
// which would mask exactly the failure lockroute's pooler lane exists to remove.
async function run(q, what) {
  const result = await q
  expect(!q.retried, `${what}: postgres.js re-prepared after ${q.retried?.code} ${q.retried?.message}`)
  return result
}

async function expectRejects(promise, code, what) {
  try {
    await promise
  } catch (err) {
    expect(err.code === code, `${what}: rejected with ${err.code} (${err.message}), want ${code}`)
    return err
  }
  throw new Mismatch(`${what}: resolved, want a rejection with ${code}`)
}

// Waits (bounded) until the server reports `marker`'s statement as running, seen from `observer`,
// which must log in as the same role as the statement's lane (other roles' query text is hidden).
async function waitActive(observer, marker) {
  const deadline = Date.now() + 5_000
  while (Date.now() < deadline) {
    const rows = await observer.unsafe(
      `select count(*)::int as c from pg_stat_activity
        where state = 'active' and query like '%' || $1 || '%' and pid <> pg_backend_pid()
          and query not like '%pg_stat_activity%'`,
      [marker],
    )
    if (rows[0].c > 0) return
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Mismatch(`statement ${marker} never became active`)
}

const scenarios = {
  // Tagged templates with parameters: with PREPARE=true, a named statement parsed once per
  // postgres.js connection and then sent as Bind(name) only, which lockroute must keep working
  // although each transaction may land on a different PgBouncer server connection. Four loops
  // at once keep four client connections busy, so that PgBouncer does shuffle its servers
  // (straight against PgBouncer this fails with 26000 "prepared statement does not exist").
  async tagged_templates_on_the_pooler() {
    const loop = async (k) => {
      for (let i = 0; i < 50; i++) {
        const n = k * 1000 + i
        const [row] = await run(sql`select ${n}::int as n, ${'v' + n}::text as s, current_user::text as u`, `template ${k}#${i}`)
        expectRow(row, n, POOLER, `template ${k}#${i}`)
        expect(row.s === 'v' + n, `template ${k}#${i}: s = ${row.s}`)
      }
    }
    await Promise.all([0, 1, 2, 3].map(loop))
  },

  // sql.unsafe with parameters: unnamed describe-first Parse+Describe+Flush, then Bind+Execute+
  // Sync after ParameterDescription. Plain text runs on the pooler, tagged text on the direct lane.
  async unsafe_describe_first_both_lanes() {
    for (let i = 0; i < 50; i++) {
      const [p] = await sql.unsafe('select $1::int as n, current_user::text as u', [i])
      expectRow(p, i, POOLER, `plain unsafe #${i}`)
      const [d] = await sql.unsafe(`${TAG}select $1::int as n, current_user::text as u`, [i])
      expectRow(d, i, DIRECT, `tagged unsafe #${i}`)
    }
  },

  // 100 queries in flight on one connection (max: 1, postgres.js pipelines up to 100), mixing
  // simple Queries, extended templates and five direct-tagged units: every reply must come back
  // to its own query, in order, from its own lane.
  //
  // Describe-first units (Parse+Describe+Flush, then Bind+Execute+Sync after the reply) appear
  // only on the direct lane here, where lockroute switches lanes after the pooler's outstanding
  // units are answered. A describe-first unit on the pooler right behind another pooler unit in
  // flight hangs: PgBouncer 1.18 in transaction mode unlinks the server at the earlier unit's
  // ReadyForQuery and drops the describe replies ("got packet '1' from server when not linked").
  // That happens straight against PgBouncer too, without lockroute; it is reported separately.
  async pipelined_mixed_lanes() {
    const one = pool({ max: 1 })
    // With PREPARE=true, warm up, so that the pooler template with a parameter is already
    // described and goes out as Bind/Execute/Sync only.
    if (prepare) {
      const [row] = await run(one`select ${-1}::int as n, current_user::text as u`, 'warm-up')
      expectRow(row, -1, POOLER, 'warm-up')
    }
    const inline = (i) => one.unsafe(String(i))
    const pooler = [
      (i) => one.unsafe(`select ${i}::int as n, current_user::text as u`),
      // Extended without parameters: Parse+Describe+Bind+Execute+Sync in one write.
      (i) => one`select ${inline(i)}::int as n, current_user::text as u`,
      prepare
        ? (i) => one`select ${i}::int as n, current_user::text as u`
        : (i) => one`select ${inline(i)}::int as n, current_user::text as u`,
    ]
    const direct = new Map([
      [7, (i) => one.unsafe(`${TAG}select ${i}::int as n, current_user::text as u`)],
      // Describe-first with PREPARE=false and on first use with PREPARE=true.
      [23, (i) => one`${one.unsafe(TAG)}select ${i}::int as n, current_user::text as u`],
      // sql.unsafe with parameters: always describe-first.
      [50, (i) => one.unsafe(`${TAG}select $1::int as n, current_user::text as u`, [i])],
      [51, (i) => one`${one.unsafe(TAG)}select ${inline(i)}::int as n, current_user::text as u`],
      [96, (i) => one`${one.unsafe(TAG)}select ${i}::int as n, current_user::text as u`],
    ])
    const queries = []
    for (let i = 0; i < 100; i++) {
      queries.push(direct.has(i) ? direct.get(i)(i) : pooler[i % 3](i))
    }
    const results = await Promise.all(queries.map((q, i) => run(q, `pipelined #${i}`)))
    results.forEach(([row], i) => expectRow(row, i, direct.has(i) ? DIRECT : POOLER, `pipelined #${i}`))
  },

  // sql.begin: BEGIN as a simple Query, statements on the reserved connection, COMMIT/ROLLBACK as
  // templates. A transaction never spans lanes: a tagged statement inside it stays on the pooler.
  async transactions_stay_on_their_lane() {
    const table = `lockroute_matrix_${process.pid}_${Date.now()}_${prepare ? 'p' : 'u'}`
    await sql.unsafe(`create table ${table} (v text not null)`)
    try {
      const inside = await sql.begin(async (tx) => {
        await tx`insert into ${tx(table)} (v) values (${'committed'})`
        const rows = await tx`select v, current_user::text as u from ${tx(table)}`
        const [tagged] = await tx.unsafe(`${TAG}select 1 as n, current_user::text as u`)
        const [taggedTemplate] = await tx`${tx.unsafe(TAG)}select ${2}::int as n, current_user::text as u`
        return { rows, tagged, taggedTemplate }
      })
      expect(inside.rows.length === 1 && inside.rows[0].v === 'committed', `in-transaction select: ${JSON.stringify(inside.rows)}`)
      expect(inside.rows[0].u === POOLER, `in-transaction select ran as ${inside.rows[0].u}`)
      expectRow(inside.tagged, 1, POOLER, 'tagged unsafe inside sql.begin')
      expectRow(inside.taggedTemplate, 2, POOLER, 'tagged template inside sql.begin')

      const after = await sql`select v, current_user::text as u from ${sql(table)}`
      expect(after.length === 1 && after[0].v === 'committed', `after commit: ${JSON.stringify(after)}`)
      expect(after[0].u === POOLER, `after commit ran as ${after[0].u}`)

      const boom = new Error('matrix rollback')
      try {
        await sql.begin(async (tx) => {
          await tx`insert into ${tx(table)} (v) values (${'rolled back'})`
          const [row] = await tx`select count(*)::int as n, current_user::text as u from ${tx(table)}`
          expectRow(row, 2, POOLER, 'before rollback')
          throw boom
        })
        throw new Mismatch('sql.begin resolved although its callback threw')
      } catch (err) {
        if (err !== boom) throw err
      }
      const [left] = await sql`select count(*)::int as n, current_user::text as u from ${sql(table)} where v = ${'rolled back'}`
      expectRow(left, 0, POOLER, 'after rollback')
      // Outside the transaction the tag routes again.
      const [again] = await sql.unsafe(`${TAG}select $1::int as n, current_user::text as u`, [3])
      expectRow(again, 3, DIRECT, 'tagged after the transactions')
    } finally {
      await sql.unsafe(`drop table if exists ${table}`)
    }
  },

  // q.cancel() opens a new connection and sends CancelRequest with the BackendKeyData lockroute
  // gave this client; lockroute must forward it to the upstream running the unit. Both lanes.
  async cancel_then_reuse_connection() {
    // A session-tagged observer runs as `app`, so it can see the direct lane's statement text
    // even while the one shared direct connection is busy with the sleep.
    const observers = {
      [POOLER]: sql,
      [DIRECT]: pool({ max: 1, connection: { application_name: 'matrix lockroute:direct' } }),
    }
    // The sleep is cancelled once the server shows it running (not after a guessed delay), so a
    // cancel can never land before the statement starts and be ignored.
    const forms = {
      simple: (one, prefix, marker) => one.unsafe(`${prefix}select pg_sleep(10) /* ${marker} */`),
      template: (one, prefix, marker) => one`${one.unsafe(prefix)}select pg_sleep(${10}) /* ${one.unsafe(marker)} */`,
    }
    for (const [lane, prefix] of [[POOLER, ''], [DIRECT, TAG]]) {
      for (const [form, make] of Object.entries(forms)) {
        const what = `${form} sleep on ${lane}`
        const one = pool({ max: 1 })
        const marker = `matrix_cancel_${randomBytes(6).toString('hex')}`
        const started = Date.now()
        const q = make(one, prefix, marker)
        const rejected = expectRejects(q, '57014', what)
        await waitActive(observers[lane], marker)
        q.cancel()
        await rejected
        expect(Date.now() - started < 8_000, `${what}: cancel took ${Date.now() - started} ms`)
        const [row] = await one.unsafe(`${prefix}select $1::int as n, current_user::text as u`, [5])
        expectRow(row, 5, lane, `${what}: same connection afterwards`)
        const [tpl] = await run(one`select ${6}::int as n, current_user::text as u`, what)
        expectRow(tpl, 6, POOLER, `${what}: template afterwards`)
      }
    }
  },

  // One postgres.js connection whose prepared statements are used on both lanes, alternately:
  // each lane switch must leave the other lane's named statements working.
  async prepared_statements_across_lane_switches() {
    const one = pool({ max: 1 })
    for (let i = 0; i < 20; i++) {
      const [p] = await run(one`select ${i}::int as n, current_user::text as u`, `pooler template #${i}`)
      expectRow(p, i, POOLER, `pooler template #${i}`)
      const [d] = await run(one`${one.unsafe(TAG)}select ${i}::int as n, current_user::text as u`, `direct template #${i}`)
      expectRow(d, i, DIRECT, `direct template #${i}`)
    }
  },

  // A 1 MiB text parameter (and result) crosses both lanes intact, as a template and via unsafe.
  async large_values_both_lanes() {
    // Varied content, so that a dropped or repeated chunk cannot compare equal.
    const big = randomBytes(768 * 1024).toString('base64').slice(0, 1 << 20)
    expect(big.length === 1 << 20, `built ${big.length} chars`)
    const cases = [
      [POOLER, () => sql`select ${big}::text as v, length(${big}::text) as n, current_user::text as u`],
      [DIRECT, () => sql`${sql.unsafe(TAG)}select ${big}::text as v, length(${big}::text) as n, current_user::text as u`],
      [POOLER, () => sql.unsafe('select $1::text as v, length($1::text) as n, current_user::text as u', [big])],
      [DIRECT, () => sql.unsafe(`${TAG}select $1::text as v, length($1::text) as n, current_user::text as u`, [big])],
    ]
    for (const [i, [lane, make]] of cases.entries()) {
      const [row] = await run(make(), `large value case ${i}`)
      expectRow(row, big.length, lane, `large value case ${i}`)
      expect(row.v === big, `large value case ${i}: value differs (${row.v.length} chars back)`)
    }
  },
}

async function runOne(name, fn) {
  const started = Date.now()
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Mismatch(`timed out after ${SCENARIO_TIMEOUT_MS} ms`)), SCENARIO_TIMEOUT_MS)
  })
  try {
    await Promise.race([fn(), timeout])
    return { ok: true, ms: Date.now() - started }
  } catch (err) {
    const error = err instanceof Mismatch ? err.message : `${err.code || err.name}: ${err.message}`
    return { ok: false, ms: Date.now() - started, error }
  } finally {
    clearTimeout(timer)
  }
}

const results = {}
for (const [name, fn] of Object.entries(scenarios)) {
  if (only.length && !only.includes(name)) continue
  results[name] = await runOne(name, fn)
}
await Promise.all(pools.map((p) => p.end({ timeout: 2 })))
const ok = Object.keys(results).length > 0 && Object.values(results).every((r) => r.ok)
console.log(JSON.stringify({ ok, prepare, scenarios: results }))
process.exit(ok ? 0 : 1)
