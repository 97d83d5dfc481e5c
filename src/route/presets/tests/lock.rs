//! Every queue's lock-path statements, as the library sends them, with the rule each must hit.
//! Texts are from `reference/job-queues.md` §2 at the source version named in each preset's
//! `source` (pg-boss 12.27.0, graphile-worker main @ abfb4cff, procrastinate 3.9.0-11, pgqueuer
//! 1.3.2-13, River @ fdf6cdf1, Oban 2.23.0, Solid Queue 1.5.0, good_job 4.19.2, Que 2.4.1):
//! verbatim where the reference quotes them, otherwise rendered from the quoted template, with
//! the schema and table-name variants each queue generates.

use crate::route::detect::tests::statements::{
    CLAIM_NEW, CLAIM_OLD, CYCLE_LOCK_REFRESH, RENEW_LOCK,
};
use crate::route::presets::Kind::{self, Claim, Complete, Elect, Heartbeat};
use crate::route::presets::PresetId::{self, *};

/// One statement and the rule it must match: preset, the rule's statement label and kind.
pub(super) struct Lock {
    pub preset: PresetId,
    pub rule: &'static str,
    pub kind: Kind,
    /// The extended-protocol statement name the library uses; empty for unnamed.
    pub name: &'static str,
    pub sql: &'static str,
}

const fn lock(
    preset: PresetId,
    rule: &'static str,
    kind: Kind,
    name: &'static str,
    sql: &'static str,
) -> Lock {
    Lock {
        preset,
        rule,
        kind,
        name,
        sql,
    }
}

pub(super) const LOCK: &[Lock] = &[
    // gbrain v0.46.28.0: the statements of src/route/detect/tests/statements.rs.
    lock(Gbrain, "MinionQueue.claim()", Claim, "", CLAIM_NEW),
    lock(Gbrain, "MinionQueue.claim()", Claim, "", CLAIM_OLD),
    lock(Gbrain, "MinionQueue.renewLock()", Heartbeat, "", RENEW_LOCK),
    lock(Gbrain, "db-lock refresh()", Elect, "", CYCLE_LOCK_REFRESH),
    // pg-boss 12.27.0, src/plans.ts.
    lock(
        PgBoss,
        "fetchNextJob()",
        Claim,
        "",
        r#"
      WITH
      next AS (
        SELECT id
        FROM pgboss.job_common j
        WHERE j.name = 'email-send' AND j.state < 'active' AND NOT j.blocked AND j.start_after <= now()
        ORDER BY j.priority desc, j.created_on, j.id
        LIMIT 5
        FOR UPDATE OF j SKIP LOCKED
      )
      UPDATE pgboss.job_common j SET
        state = 'active',
        started_on = now(),
        heartbeat_on = now(),
        retry_count = CASE WHEN started_on IS NOT NULL THEN retry_count + 1 ELSE retry_count END
      FROM next
      WHERE name = 'email-send' AND j.id = next.id
      RETURNING j.id, name, data, expire_seconds as "expireInSeconds""#,
    ),
    lock(
        PgBoss,
        "fetchNextJob()",
        Claim,
        "",
        r#"
      WITH
      active_group_count_map AS MATERIALIZED (
        SELECT group_id, count(*) AS active_count FROM "My-Schema".j0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
        WHERE name = 'reports' AND state = 'active' AND group_id IS NOT NULL GROUP BY group_id
      ),
      next AS (
        SELECT j.id, j.group_id
        FROM "My-Schema".j0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0 j
        WHERE j.name = 'reports' AND j.state < 'active' AND NOT j.blocked AND j.start_after <= now()
        ORDER BY j.id
        LIMIT 1
        FOR UPDATE OF j SKIP LOCKED
      )
      UPDATE "My-Schema".j0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0 j SET
        state = 'active',
        started_on = now(),
        heartbeat_on = now(),
        retry_count = CASE WHEN started_on IS NOT NULL THEN retry_count + 1 ELSE retry_count END
      FROM next
      WHERE name = 'reports' AND j.id = next.id
      RETURNING j.*"#,
    ),
    lock(
        PgBoss,
        "touchJobs()",
        Heartbeat,
        "",
        r#"
    WITH results AS (
      UPDATE pgboss.job_common
      SET heartbeat_on = now()
      WHERE name = $1
        AND id = ANY($2::uuid[])
        AND state = 'active'
      RETURNING 1
    )
    SELECT COUNT(*) FROM results"#,
    ),
    lock(
        PgBoss,
        "trySetTimestamp()",
        Elect,
        "",
        r#"
    UPDATE pgboss.version
    SET maintained_on = now()
    WHERE EXTRACT( EPOCH FROM (now() - COALESCE(maintained_on, now() - interval '1 week') ) ) > 120
    RETURNING true"#,
    ),
    lock(
        PgBoss,
        "trySetTimestamp()",
        Elect,
        "",
        r#"UPDATE "My-Schema".queue SET monitor_on = now() WHERE name = ANY($1::text[]) AND EXTRACT( EPOCH FROM (now() - COALESCE(monitor_on, now() - interval '1 week') ) ) > 60 RETURNING name"#,
    ),
    lock(
        PgBoss,
        "completeJobs()",
        Complete,
        "",
        r#"WITH results AS (UPDATE pgboss.job_common SET completed_on = now(), state = 'completed', output = $3::jsonb WHERE name = $1 AND id = ANY($2::uuid[]) AND state = 'active' RETURNING 1) SELECT COUNT(*) FROM results"#,
    ),
    // pg-boss 12.38.0 from npm (dist/plans.js), rendered for queue `q` in schema `pgboss`.
    lock(
        PgBoss,
        "fetchNextJob()",
        Claim,
        "",
        "\n      WITH\n      \n      \n      \n      next AS (\n        SELECT j.id\n        FROM pgboss.job_common j\n        WHERE j.name = 'q'\n          AND j.state < 'active'\n          AND NOT j.blocked\n          AND j.start_after <= pgboss.job_now()\n        ORDER BY j.priority desc, j.created_on\n        LIMIT 1\n        FOR UPDATE OF j SKIP LOCKED\n      )\n      \n      \n      UPDATE pgboss.job_common j SET\n        state = 'active',\n        started_on = pgboss.job_now(),\n        heartbeat_on = pgboss.job_now(),\n        retry_count = CASE WHEN started_on IS NOT NULL THEN retry_count + 1 ELSE retry_count END\n      FROM next\n      WHERE name = 'q' AND j.id = next.id\n      \n      \n      RETURNING j.id, name, data, retry_count as \"retryCount\", expire_seconds as \"expireInSeconds\", heartbeat_seconds as \"heartbeatSeconds\", group_id as \"groupId\", group_tier as \"groupTier\"\n    ",
    ),
    lock(
        PgBoss,
        "touchJobs()",
        Heartbeat,
        "",
        "\n    WITH results AS (\n      UPDATE pgboss.job_common\n      SET heartbeat_on = pgboss.job_now()\n      WHERE name = $1\n        AND id = ANY($2::uuid[])\n        AND state = 'active'\n        \n      RETURNING id\n    )\n    SELECT COUNT(*), COALESCE(array_agg(id), '{}'::uuid[]) AS ids FROM results\n  ",
    ),
    lock(
        PgBoss,
        "completeJobs()",
        Complete,
        "",
        "\n    WITH results AS (\n      UPDATE pgboss.job_common\n      SET completed_on = pgboss.job_now(),\n        state = 'completed',\n        output = $3::jsonb,\n        blocked = blocked,\n        pending_dependencies = pending_dependencies\n      WHERE name = $1\n        AND id = ANY($2::uuid[])\n        AND state = 'active'\n        \n      RETURNING id\n    )\n    SELECT COUNT(*), COALESCE(array_agg(id), '{}'::uuid[]) AS ids FROM results\n  ",
    ),
    lock(
        PgBoss,
        "trySetTimestamp()",
        Elect,
        "",
        "\n    UPDATE pgboss.version\n    SET bam_on = pgboss.job_now()\n    WHERE EXTRACT( EPOCH FROM (pgboss.job_now() - COALESCE(bam_on, pgboss.job_now() - interval '1 week') ) ) >= 60\n    RETURNING true\n  ",
    ),
    lock(
        PgBoss,
        "trySetTimestamp()",
        Elect,
        "",
        "\n    WITH due AS (\n      SELECT name\n      FROM pgboss.queue\n      WHERE name = ANY($1::text[])\n        AND EXTRACT( EPOCH FROM (pgboss.job_now() - COALESCE(monitor_claim_on, monitor_on, pgboss.job_now() - interval '1 week') ) ) >= 60\n      FOR UPDATE SKIP LOCKED\n    )\n    UPDATE pgboss.queue\n    SET monitor_claim_on = pgboss.job_now()\n    FROM due\n    WHERE queue.name = due.name\n    RETURNING queue.name\n  ",
    ),
    lock(
        PgBoss,
        "trySetTimestamp()",
        Elect,
        "",
        "\n    WITH prior AS (\n      SELECT cron_on, EXTRACT( EPOCH FROM (pgboss.job_now() - cron_on) ) as elapsed FROM pgboss.version\n    ), claim AS (\n      UPDATE pgboss.version SET cron_on = pgboss.job_now() WHERE true RETURNING true\n    )\n    SELECT prior.cron_on FROM prior\n  ",
    ),
    // graphile-worker main @ abfb4cff, src/sql/getJobs.ts, cron.ts, completeJobs.ts.
    lock(
        GraphileWorker,
        "batchGetJobs()",
        Claim,
        "get_job/graphile_worker",
        r#"with j as (
  select jobs.job_queue_id, jobs.priority, jobs.run_at, jobs.id
    from "graphile_worker"._private_jobs as jobs
    where jobs.is_available = true
    and run_at <= now()
    and task_id = any($2::int[])
    order by priority asc, run_at asc
    limit 1
    for update
    skip locked
)
  update "graphile_worker"._private_jobs as jobs
    set
      attempts = jobs.attempts + 1,
      locked_by = $1::text,
      locked_at = now()
    from j
    where jobs.id = j.id
    returning *"#,
    ),
    lock(
        GraphileWorker,
        "batchGetJobs()",
        Claim,
        "",
        r#"with j as (
  select jobs.job_queue_id, jobs.priority, jobs.run_at, jobs.id
    from "my ""odd"" schema"._private_jobs as jobs
    where jobs.is_available = true
    and run_at <= $3::timestamptz
    and task_id = any($2::int[])
    and (jobs.job_queue_id is null or jobs.job_queue_id in (select id from "my ""odd"" schema"._private_job_queues as job_queues where job_queues.is_available = true for update skip locked))
    and (jobs.flags ?| $4::text[]) is not true
    order by priority asc, run_at asc
    limit 10
    for update
    skip locked
),q as (update "my ""odd"" schema"._private_job_queues as job_queues set locked_by = $1::text, locked_at = $3::timestamptz from j where job_queues.id = j.job_queue_id)
  update "my ""odd"" schema"._private_jobs as jobs
    set attempts = jobs.attempts + 1, locked_by = $1::text, locked_at = $3::timestamptz
    from j where jobs.id = j.id returning *"#,
    ),
    // With `noPreparedStatements` the text is all there is (above); with names, the name is
    // matched even when the client sends only `Bind` and lockroute has no text for it.
    lock(
        GraphileWorker,
        "batchGetJobs()",
        Claim,
        "get_job10FN/my \"odd\" schema",
        "select 1",
    ),
    lock(
        GraphileWorker,
        "batchGetJobs()",
        Claim,
        "get_job/graphile_worker",
        "select 1",
    ),
    lock(
        GraphileWorker,
        "scheduleCronJobs()",
        Elect,
        "",
        r#"with specs as (select index, (json->>'identifier')::text as identifier, ((json->'job')->>'task')::text as task from json_array_elements($1::json) with ordinality t(json, index)), locks as (insert into "graphile_worker"._private_known_crontabs as known_crontabs (identifier, known_since, last_execution) select specs.identifier, $2 as known_since, $2 as last_execution from specs on conflict (identifier) do update set last_execution = excluded.last_execution where (known_crontabs.last_execution is null or known_crontabs.last_execution < excluded.last_execution) returning known_crontabs.identifier) select "graphile_worker".add_job(specs.task) from specs inner join locks on (locks.identifier = specs.identifier) order by specs.index asc"#,
    ),
    lock(
        GraphileWorker,
        "batchCompleteJobs()",
        Complete,
        "complete_job/graphile_worker",
        "delete from \"graphile_worker\"._private_jobs as jobs\nwhere id = $1::bigint",
    ),
    lock(
        GraphileWorker,
        "batchCompleteJobs()",
        Complete,
        "",
        "delete from \"graphile_worker\"._private_jobs as jobs\nwhere id = $1::bigint",
    ),
    lock(
        GraphileWorker,
        "batchCompleteJobs()",
        Complete,
        "",
        r#"delete from "graphile_worker"._private_jobs as jobs using unnest($1::bigint[]) n(n) where id = n"#,
    ),
    lock(
        GraphileWorker,
        "batchCompleteJobs()",
        Complete,
        "",
        r#"with j as (delete from "graphile_worker"._private_jobs as jobs where id = $1::bigint returning *) update "graphile_worker"._private_job_queues as job_queues set locked_by = null, locked_at = null from j where job_queues.id = j.job_queue_id and job_queues.locked_by = $2::text"#,
    ),
    // procrastinate 3.9.0-11, procrastinate/sql/queries.sql: psycopg 3 ($n) and psycopg2
    // (inlined) renderings.
    lock(
        Procrastinate,
        "fetch_job",
        Claim,
        "",
        "SELECT id, status, task_name, priority, lock, queueing_lock, args, scheduled_at, queue_name, attempts, worker_id\n    FROM procrastinate_fetch_job_v2($1::varchar[], $2);",
    ),
    lock(
        Procrastinate,
        "fetch_job",
        Claim,
        "_pg3_0",
        "SELECT id, status, task_name, priority, lock, queueing_lock, args, scheduled_at, queue_name, attempts, worker_id\n    FROM procrastinate_fetch_job_v2(ARRAY['default','emails']::varchar[], 17);",
    ),
    lock(
        Procrastinate,
        "update_heartbeat",
        Heartbeat,
        "",
        "SELECT procrastinate_update_heartbeat_v1($1);",
    ),
    lock(
        Procrastinate,
        "finish_job",
        Complete,
        "",
        "SELECT procrastinate_finish_job_v1($1, $2, $3);",
    ),
    lock(
        Procrastinate,
        "finish_job",
        Complete,
        "",
        "SELECT procrastinate_retry_job_v2($1, $2, $3, $4, $5);",
    ),
    // pgqueuer 1.3.2-13, adapters/persistence/qb.py (dequeue abridged after its head).
    lock(
        Pgqueuer,
        "build_dequeue_query()",
        Claim,
        "__asyncpg_stmt_3__",
        "WITH\n-- Unpack per-entrypoint parameters; concurrency_limit 0 means unlimited.\nparams AS (\n    SELECT\n        UNNEST($2::text[])   AS entrypoint,\n        UNNEST($3::bigint[]) AS concurrency_limit\n),\nnext_queued AS (\n    SELECT id FROM pgqueuer q WHERE q.status = 'queued' AND q.entrypoint = ANY($2) ORDER BY q.priority DESC, q.id ASC FOR UPDATE SKIP LOCKED LIMIT $1\n),\nclaimed AS (\n    UPDATE pgqueuer\n    SET status = 'picked',\n        updated   = NOW(),\n        heartbeat = NOW(),\n        queue_manager_id = $4\n    WHERE id IN (SELECT id FROM next_queued)\n    RETURNING *\n)\nSELECT * FROM claimed ORDER BY priority DESC, id ASC;",
    ),
    lock(
        Pgqueuer,
        "build_fetch_schedule_query()",
        Claim,
        "",
        "WITH params AS (SELECT UNNEST($1::text[]) AS expression, UNNEST($2::text[]) AS entrypoint, UNNEST($3::interval[]) AS delay), picked_jobs AS (SELECT id, expression, entrypoint FROM pgqueuer_schedules WHERE (entrypoint, expression) IN (SELECT entrypoint, expression FROM params) AND (next_run <= NOW() OR status = 'picked' AND heartbeat < NOW() - interval '30 seconds') FOR UPDATE SKIP LOCKED) UPDATE pgqueuer_schedules SET status = 'picked', updated = NOW(), heartbeat = NOW(), next_run = NOW() + params.delay FROM params WHERE pgqueuer_schedules.id IN (SELECT id FROM picked_jobs) RETURNING *;",
    ),
    lock(
        Pgqueuer,
        "build_update_heartbeat_query()",
        Heartbeat,
        "",
        "UPDATE pgqueuer SET heartbeat = NOW() WHERE id = ANY($1::bigint[])",
    ),
    lock(
        Pgqueuer,
        "build_update_heartbeat_query()",
        Heartbeat,
        "",
        "UPDATE jobs_schema.acme_pgqueuer SET heartbeat = NOW() WHERE id = ANY($1::bigint[])",
    ),
    lock(
        Pgqueuer,
        "build_update_heartbeat_query()",
        Heartbeat,
        "",
        "UPDATE pgqueuer_schedules SET heartbeat = NOW(), updated = NOW() WHERE id = ANY($1);",
    ),
    lock(
        Pgqueuer,
        "build_log_job_query()",
        Complete,
        "",
        "WITH job_status AS (SELECT UNNEST($1::bigint[]) AS id, UNNEST($2::pgqueuer_status[]) AS status, UNNEST($3::jsonb[]) AS traceback), deleted AS (DELETE FROM pgqueuer WHERE id IN (SELECT id FROM job_status) RETURNING *) INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority, traceback) SELECT deleted.id, job_status.status, deleted.entrypoint, deleted.priority, job_status.traceback FROM deleted JOIN job_status ON job_status.id = deleted.id",
    ),
    // River @ fdf6cdf1, riverdriver/riverpgxv5/internal/dbsqlc/*.sql.go (sqlc output).
    lock(
        River,
        "JobGetAvailable",
        Claim,
        "stmtcache_5b1e",
        "-- name: JobGetAvailable :many\nWITH locked_jobs AS (\n    SELECT\n        id, args, attempt, attempted_at, attempted_by, created_at, errors, finalized_at, kind, max_attempts, metadata, priority, queue, state, scheduled_at, tags, unique_key, unique_states\n    FROM\n        river_job\n    WHERE\n        state = 'available'\n        AND queue = $2::text\n        AND scheduled_at <= coalesce($3::timestamptz, now())\n    ORDER BY\n        priority ASC,\n        scheduled_at ASC,\n        id ASC\n    LIMIT $4::integer\n    FOR UPDATE\n    SKIP LOCKED\n)\nUPDATE\n    river_job\nSET\n    state = 'running',\n    attempt = river_job.attempt + 1,\n    attempted_at = coalesce($3::timestamptz, now()),\n    -- +2 instead of +1 because it's in addition to the current attempt\n    attempted_by = array_append(\n        CASE WHEN array_length(river_job.attempted_by, 1) >= $5::int THEN river_job.attempted_by[array_length(river_job.attempted_by, 1) + 2 - $5:] ELSE river_job.attempted_by END,\n        $1::text\n    )\nFROM\n    locked_jobs\nWHERE\n    river_job.id = locked_jobs.id\nRETURNING\n    river_job.*",
    ),
    lock(
        River,
        "JobGetAvailable",
        Claim,
        "",
        "WITH locked_jobs AS (\n    SELECT * FROM \"river \"\"prod\"\"\".river_job WHERE state = 'available' AND queue = $2::text ORDER BY priority ASC, scheduled_at ASC, id ASC LIMIT $4::integer FOR UPDATE SKIP LOCKED\n)\nUPDATE\n    \"river \"\"prod\"\"\".river_job\nSET\n    state = 'running',\n    attempt = river_job.attempt + 1\nFROM locked_jobs WHERE river_job.id = locked_jobs.id RETURNING river_job.*",
    ),
    lock(
        River,
        "LeaderAttemptElect",
        Elect,
        "",
        "-- name: LeaderAttemptElect :execrows\nINSERT INTO river_leader (leader_id, elected_at, expires_at)\n    VALUES ($1, coalesce($2::timestamptz, now()), coalesce($2::timestamptz, now()) + make_interval(secs => $3))\nON CONFLICT (name)\n    DO NOTHING",
    ),
    lock(
        River,
        "LeaderAttemptElect",
        Elect,
        "",
        "INSERT INTO \"river\".river_leader (leader_id, elected_at, expires_at) VALUES ($1, coalesce($2::timestamptz, now()), coalesce($2::timestamptz, now()) + make_interval(secs => $3)) ON CONFLICT (name) DO NOTHING",
    ),
    lock(
        River,
        "LeaderAttemptReelect",
        Elect,
        "",
        "-- name: LeaderAttemptReelect :execrows\nUPDATE river_leader\nSET expires_at = coalesce($1::timestamptz, now()) + make_interval(secs => $2)\nWHERE\n    elected_at = $3::timestamptz\n    AND expires_at >= coalesce($1::timestamptz, now())\n    AND leader_id = $4",
    ),
    lock(
        River,
        "LeaderAttemptReelect",
        Elect,
        "",
        "UPDATE \"river\".river_leader SET expires_at = coalesce($1::timestamptz, now()) + make_interval(secs => $2) WHERE elected_at = $3::timestamptz AND leader_id = $4",
    ),
    lock(
        River,
        "LeaderDeleteExpired",
        Elect,
        "",
        "-- name: LeaderDeleteExpired :execrows\nDELETE FROM river_leader\nWHERE expires_at < coalesce($1::timestamptz, now())",
    ),
    lock(
        River,
        "QueueCreateOrSetUpdatedAt",
        Heartbeat,
        "",
        "-- name: QueueCreateOrSetUpdatedAt :one\nINSERT INTO river_queue(\n    created_at,\n    metadata,\n    name,\n    paused_at,\n    updated_at\n) VALUES (\n    now(),\n    coalesce($1::jsonb, '{}'::jsonb),\n    $2::text,\n    coalesce($3::timestamptz, NULL),\n    coalesce($4::timestamptz, now())\n) ON CONFLICT (name) DO UPDATE\nSET\n    updated_at = EXCLUDED.updated_at\nRETURNING name, created_at, metadata, paused_at, updated_at",
    ),
    lock(
        River,
        "QueueCreateOrSetUpdatedAt",
        Heartbeat,
        "",
        "INSERT INTO \"river\".river_queue(created_at, metadata, name, paused_at, updated_at) VALUES (now(), coalesce($1::jsonb, '{}'::jsonb), $2::text, coalesce($3::timestamptz, NULL), coalesce($4::timestamptz, now())) ON CONFLICT (name) DO UPDATE SET updated_at = EXCLUDED.updated_at RETURNING *",
    ),
    lock(
        River,
        "JobSetStateIfRunningMany",
        Complete,
        "",
        "-- name: JobSetStateIfRunningMany :many\nWITH job_input AS (\n    SELECT\n        unnest($1::bigint[]) AS id,\n        unnest($2::boolean[]) AS attempt_do_update\n), updated AS (UPDATE river_job SET state = job_input.state FROM job_input WHERE river_job.id = job_input.id AND river_job.state = 'running' RETURNING river_job.*) SELECT * FROM updated",
    ),
    // Oban 2.23.0, lib/oban/engines/basic.ex and lib/oban/peers/database.ex.
    lock(
        Oban,
        "fetch_jobs/3",
        Claim,
        "",
        r#"WITH "subset" AS (SELECT so0."id" AS "id" FROM "public"."oban_jobs" AS so0 WHERE ((so0."state" = 'available') AND (so0."queue" = $1)) ORDER BY so0."priority", so0."scheduled_at", so0."id" LIMIT $2 FOR UPDATE SKIP LOCKED) UPDATE "public"."oban_jobs" AS o0 SET "state" = $3, "attempted_at" = $4, "attempted_by" = $5, "attempt" = o0."attempt" + $6 FROM "subset" AS f1 WHERE (o0."id" = f1."id") AND (o0."attempt" < o0."max_attempts") RETURNING o0."id", o0."state", o0."queue", o0."worker""#,
    ),
    lock(
        Oban,
        "fetch_jobs/3",
        Claim,
        "",
        r#"UPDATE "public"."oban_jobs" AS o0 SET "state" = $1, "attempted_at" = $2, "attempted_by" = $3, "attempt" = o0."attempt" + $4 WHERE (o0."id" IN (SELECT so0."id" FROM "public"."oban_jobs" AS so0 WHERE ((so0."state" = 'available') AND (so0."queue" = $5)) ORDER BY so0."priority", so0."scheduled_at", so0."id" LIMIT $6 FOR UPDATE SKIP LOCKED)) RETURNING o0."id", o0."state""#,
    ),
    lock(
        Oban,
        "fetch_jobs/3",
        Claim,
        "",
        r#"WITH "subset" AS (SELECT so0."id" AS "id" FROM "private"."oban_jobs" AS so0 WHERE (so0."state" = 'available') LIMIT $1 FOR UPDATE SKIP LOCKED) UPDATE "private"."oban_jobs" AS o0 SET "state" = $2 FROM "subset" AS f1 WHERE o0."id" = f1."id" RETURNING o0."id""#,
    ),
    lock(
        Oban,
        "delete_expired_peers",
        Elect,
        "",
        r#"DELETE FROM "public"."oban_peers" AS o0 WHERE (o0."name" = $1) AND (o0."expires_at" < $2)"#,
    ),
    lock(
        Oban,
        "regular_upsert",
        Elect,
        "",
        r#"INSERT INTO "public"."oban_peers" AS o0 ("expires_at","name","node","started_at") VALUES ($1,$2,$3,$4) ON CONFLICT ("name") DO UPDATE SET "expires_at" = $5"#,
    ),
    lock(
        Oban,
        "complete_job/2",
        Complete,
        "",
        r#"UPDATE "public"."oban_jobs" AS o0 SET "state" = $1, "completed_at" = $2 WHERE (o0."id" = $3)"#,
    ),
    // Solid Queue 1.5.0, rendered from the ActiveRecord models.
    lock(
        SolidQueue,
        "ReadyExecution.select_and_lock",
        Claim,
        "a3",
        r#"SELECT "solid_queue_ready_executions"."id", "solid_queue_ready_executions"."job_id" FROM "solid_queue_ready_executions" WHERE "solid_queue_ready_executions"."queue_name" = $1 ORDER BY "solid_queue_ready_executions"."priority" ASC, "solid_queue_ready_executions"."job_id" ASC LIMIT $2 FOR UPDATE SKIP LOCKED"#,
    ),
    lock(
        SolidQueue,
        "ReadyExecution.select_and_lock",
        Claim,
        "",
        r#"SELECT "app_solid_queue_ready_executions"."id", "app_solid_queue_ready_executions"."job_id" FROM "app_solid_queue_ready_executions" ORDER BY "app_solid_queue_ready_executions"."priority" ASC LIMIT $1 FOR UPDATE SKIP LOCKED /*application='Shop'*/"#,
    ),
    lock(
        SolidQueue,
        "Process#heartbeat",
        Heartbeat,
        "",
        r#"SELECT "solid_queue_processes".* FROM "solid_queue_processes" WHERE "solid_queue_processes"."id" = $1 LIMIT $2 FOR UPDATE"#,
    ),
    lock(
        SolidQueue,
        "Process#heartbeat",
        Heartbeat,
        "",
        r#"SELECT "solid_queue_processes".* FROM "solid_queue_processes" WHERE "solid_queue_processes"."id" = $1 LIMIT $2 FOR UPDATE /*application='Shop'*/"#,
    ),
    lock(
        SolidQueue,
        "Process#heartbeat",
        Heartbeat,
        "",
        r#"UPDATE "solid_queue_processes" SET "last_heartbeat_at" = $1 WHERE "solid_queue_processes"."id" = $2"#,
    ),
    lock(
        SolidQueue,
        "ClaimedExecution#finished",
        Complete,
        "",
        r#"DELETE FROM "solid_queue_claimed_executions" WHERE "solid_queue_claimed_executions"."id" = $1"#,
    ),
    // good_job 4.19.2, app/models/good_job/job/lockable.rb (`:skiplocked`, literals inlined).
    lock(
        GoodJob,
        "with_skip_locked_claim",
        Claim,
        "",
        r#"WITH candidate AS MATERIALIZED (SELECT "good_jobs"."id" FROM "good_jobs" WHERE "good_jobs"."finished_at" IS NULL AND "good_jobs"."locked_by_id" IS NULL AND ("good_jobs"."scheduled_at" <= '2026-08-01 10:00:00') ORDER BY priority ASC NULLS LAST, "good_jobs"."created_at" ASC LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED)
UPDATE "good_jobs"
SET locked_by_id = '5f1c2b8e-6d7a-4c1e-9b2f-3a4d5e6f7a8b',
    locked_at = '2026-08-01 10:00:00.123456',
    lock_type = 1
FROM candidate
WHERE "good_jobs".id = candidate.id
RETURNING "good_jobs".*"#,
    ),
    lock(
        GoodJob,
        "Process#refresh",
        Heartbeat,
        "",
        r#"UPDATE "good_job_processes" SET "state" = $1, "updated_at" = $2 WHERE "good_job_processes"."id" = $3"#,
    ),
    // Que 2.4.1, lib/que/job_methods.rb.
    lock(
        Que,
        "finish_job",
        Complete,
        "",
        "UPDATE public.que_jobs SET finished_at = now() WHERE id = $1::bigint",
    ),
    lock(
        Que,
        "destroy_job",
        Complete,
        "",
        "DELETE FROM public.que_jobs WHERE id = $1::bigint",
    ),
];
