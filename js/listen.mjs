// An untagged postgres.js LISTEN client: the wake-up every Postgres job queue but gbrain relies on.
// Behind a transaction pooler its LISTEN is lost; through lockroute the client is pinned to a
// dedicated direct session and every NOTIFY arrives.
//
//   DATABASE_URL=postgres://app:app-secret@127.0.0.1:6432/app?sslmode=disable \
//     CHANNEL=jobs COUNT=10 SECONDS=20 node js/listen.mjs
//
// Prints "listening" once the LISTEN is in place, then one JSON line when COUNT payloads have
// arrived or SECONDS have passed: {"received": n, "payloads": [...], "errors": [...]}.
// Exits 0 only when all COUNT arrived.
import postgres from 'postgres'

const url = process.env.DATABASE_URL
const channel = process.env.CHANNEL ?? 'lockroute_listen'
const count = Number(process.env.COUNT ?? 10)
const seconds = Number(process.env.SECONDS ?? 20)

const errors = []
const payloads = new Set()
const sql = postgres(url, { max: 2, onnotice: () => {} })
let done
const finished = new Promise((resolve) => { done = resolve })

await sql.listen(channel, (payload) => {
  payloads.add(payload)
  if (payloads.size >= count) done()
}, () => console.log('listening'))

// Ordinary queries on the same client keep going while it listens, as a worker's would.
const ticker = setInterval(() => {
  sql`select 1`.catch((e) => errors.push(e.code ?? e.message))
}, 200)

await Promise.race([finished, new Promise((resolve) => setTimeout(resolve, seconds * 1000))])
clearInterval(ticker)
console.log(JSON.stringify({ received: payloads.size, payloads: [...payloads], errors }))
await sql.end({ timeout: 1 })
process.exit(payloads.size >= count ? 0 : 1)
