// A lease-renewal fleet on postgres.js 3.4.9 for the live kill-switch tests (tests/control.rs):
// WORKERS loops share one pool and each renews its lease every EVERY_MS for SECONDS. Each renewal
// is an extended-protocol UPDATE that lockroute's lock pattern matches, and it returns the
// current_user that ran it, so the test can tell the lane of every renewal from the server's
// own answer (the pooler logs in to PostgreSQL as a different role). Each tick also runs a
// tagged template, a named prepared statement, which must survive every flip.
//
//   DATABASE_URL=postgres://app:app-secret@127.0.0.1:6432/app?sslmode=disable \
//   TABLE=renew_x ADMIN=127.0.0.1:9465 node js/renew.mjs
//
// Before it ends the pool, it reads lockroute's /metrics: `lockroute_client_connections_total`
// equal to `lockroute_client_connections` means no client connection was ever closed, so no
// reconnect happened. Prints one JSON line: renewals [epoch ms, current_user], error codes,
// and the two metric values.
import postgres from 'postgres'

const url = process.env.DATABASE_URL
const table = process.env.TABLE
const admin = process.env.ADMIN
const seconds = Number(process.env.SECONDS ?? 13)
const everyMs = Number(process.env.EVERY_MS ?? 200)
const workers = Number(process.env.WORKERS ?? 3)

const sql = postgres(url, { max: workers, idle_timeout: 0, max_lifetime: 0, onnotice: () => {} })
const renewals = []
let probes = 0
const errors = {}
const end = Date.now() + seconds * 1000
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function worker(id) {
  while (Date.now() < end) {
    const started = Date.now()
    try {
      const rows = await sql.unsafe(
        `UPDATE ${table} SET lock_until = now() + ($1::double precision * interval '1 millisecond') WHERE id = $2 RETURNING current_user AS who`,
        [30000, id],
      )
      if (rows.length !== 1) throw Object.assign(new Error('lease row missing'), { code: 'NO_ROW' })
      renewals.push([started, rows[0].who])
      // A tagged template: a named prepared statement (postgres.js prepares by default), which
      // must keep working across every flip, on whichever lane runs it.
      const [probe] = await sql`select ${id}::int as id`
      if (probe.id !== id) throw Object.assign(new Error('probe mismatch'), { code: 'PROBE' })
      probes += 1
    } catch (e) {
      const code = e.code ?? 'UNKNOWN'
      errors[code] = (errors[code] ?? 0) + 1
      console.error(`renewal ${id}: ${code}: ${e.message}`)
    }
    await sleep(Math.max(0, everyMs - (Date.now() - started)))
  }
}

async function metric(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '))
  return line ? Number(line.split(' ')[1]) : null
}

await Promise.all(Array.from({ length: workers }, (_, i) => worker(i + 1)))
const text = await (await fetch(`http://${admin}/metrics`)).text()
const summary = {
  renewals,
  probes,
  errors,
  client_connections_total: await metric(text, 'lockroute_client_connections_total'),
  client_connections: await metric(text, 'lockroute_client_connections'),
}
await sql.end({ timeout: 5 })
console.log(JSON.stringify(summary))
process.exit(Object.keys(errors).length === 0 ? 0 : 1)
