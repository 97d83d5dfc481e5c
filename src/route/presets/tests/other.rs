//! The non-lock corpus: statements of the same queues that are not on their lock path, from
//! `reference/job-queues.md` §2 and §3 (sources as in `lock.rs`). No preset may match any of
//! them. Several are near misses of a rule on purpose: the same table with another SET list,
//! the same CTE head with another body, a session-lock claim that must never share a
//! connection.

/// (queue and statement, statement name, SQL).
pub(super) const NOT_LOCK: &[(&str, &str, &str)] = &[
    // pg-boss 12.27.0
    (
        "pg-boss locked() maintenance",
        "",
        "BEGIN; SET LOCAL lock_timeout = 30000; SET LOCAL idle_in_transaction_session_timeout = 30000; SELECT pg_advisory_xact_lock(('x' || encode(sha224((current_database() || '.pgboss.pgbossmaintenance')::bytea), 'hex'))::bit(64)::bigint); DELETE FROM pgboss.job_common WHERE state = 'completed'; COMMIT;",
    ),
    ("pg-boss LISTEN", "", r#"LISTEN "pgboss_insert""#),
    (
        "pg-boss listener heartbeat",
        "",
        "SELECT EXISTS (SELECT 1 FROM pg_listening_channels() AS active(channel) WHERE channel = $1) AS listening",
    ),
    (
        "pg-boss failJobs",
        "",
        "WITH results AS (UPDATE pgboss.job_common SET state = CASE WHEN retry_count < retry_limit THEN 'retry'::pgboss.job_state ELSE 'failed'::pgboss.job_state END, completed_on = now(), output = $3::jsonb WHERE name = $1 AND id = ANY($2::uuid[]) AND state < 'completed' RETURNING 1) SELECT COUNT(*) FROM results",
    ),
    (
        "pg-boss cancelJobs",
        "",
        "WITH results as (UPDATE pgboss.job_common SET completed_on = now(), state = 'cancelled' WHERE name = $1 AND id IN (SELECT UNNEST($2::uuid[])) AND state < 'completed' RETURNING 1) SELECT COUNT(*) from results",
    ),
    (
        "pg-boss insertJobs",
        "",
        "INSERT INTO pgboss.job_common (id, name, data, priority, start_after) SELECT COALESCE(id, gen_random_uuid()), $1, data, priority, now() FROM json_to_recordset($2) as x(id uuid, data jsonb, priority integer)",
    ),
    (
        "pg-boss getQueues",
        "",
        "SELECT q.name, q.policy, q.retry_limit FROM pgboss.queue q WHERE q.name = ANY($1::text[])",
    ),
    (
        "pg-boss version read",
        "",
        "SELECT version from pgboss.version",
    ),
    // graphile-worker main @ abfb4cff
    (
        "graphile LISTEN",
        "",
        r#"LISTEN "jobs:insert"; LISTEN "worker:migrate";"#,
    ),
    (
        "graphile UNLISTEN",
        "",
        r#"UNLISTEN "jobs:insert"; UNLISTEN "worker:migrate";"#,
    ),
    (
        "graphile resetLockedAt",
        "",
        r#"with j as (update "graphile_worker"._private_jobs as jobs set locked_at = null, locked_by = null, run_at = greatest(run_at, now()) where locked_at < now() - interval '4 hours') update "graphile_worker"._private_job_queues as job_queues set locked_at = null, locked_by = null where locked_at < now() - interval '4 hours'"#,
    ),
    (
        "graphile failJobs",
        "fail_job/graphile_worker",
        r#"with j as (update "graphile_worker"._private_jobs as jobs set last_error = $2::text, run_at = greatest(now(), run_at) + (exp(least(attempts, 10)) * interval '1 second'), locked_by = null, locked_at = null where id = $1::bigint and locked_by = $3::text returning *) update "graphile_worker"._private_job_queues as job_queues set locked_by = null, locked_at = null from j where job_queues.id = j.job_queue_id and job_queues.locked_by = $3::text"#,
    ),
    (
        "graphile add_job",
        "",
        r#"select * from "graphile_worker".add_job(identifier => $1::text, payload => $2::json)"#,
    ),
    (
        "graphile migrate",
        "",
        r#"select current_setting('server_version_num') as server_version_num, (select id from "graphile_worker".migrations order by id desc limit 1) as id"#,
    ),
    // procrastinate 3.9.0-11
    (
        "procrastinate LISTEN",
        "",
        r#"LISTEN "procrastinate_any_queue_v1""#,
    ),
    (
        "procrastinate defer_jobs",
        "",
        "SELECT procrastinate_defer_jobs_v1($1::procrastinate_job_to_defer_v1[]) AS ids",
    ),
    (
        "procrastinate defer_periodic",
        "",
        "SELECT procrastinate_defer_periodic_job_v2($1, $2, $3, $4, $5, $6, $7) AS id",
    ),
    (
        "procrastinate prune_stalled_workers",
        "",
        "SELECT * FROM procrastinate_prune_stalled_workers_v1($1)",
    ),
    (
        "procrastinate register_worker",
        "",
        "SELECT procrastinate_register_worker_v1() AS worker_id",
    ),
    (
        "procrastinate stalled jobs",
        "",
        "SELECT id, status, task_name, priority, lock, queueing_lock, args, scheduled_at, queue_name, attempts, worker_id FROM procrastinate_jobs WHERE status = 'doing' AND worker_id IS NULL",
    ),
    ("procrastinate listen probe", "", "SELECT 1"),
    // pgqueuer 1.3.2-13
    ("pgqueuer LISTEN", "", "LISTEN ch_pgqueuer"),
    (
        "pgqueuer enqueue",
        "",
        "INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, dedupe_key, status) SELECT UNNEST($1::int[]), UNNEST($2::text[]), UNNEST($3::bytea[]), UNNEST($4::interval[]) + NOW(), UNNEST($5::text[]), 'queued' RETURNING id",
    ),
    (
        "pgqueuer statistics",
        "",
        "WITH lock AS (SELECT pg_try_advisory_xact_lock(hashtext('pgqueuer_statistics')) AS acquired), deleted AS (DELETE FROM pgqueuer_log WHERE (SELECT acquired FROM lock) RETURNING *) INSERT INTO pgqueuer_statistics SELECT * FROM deleted",
    ),
    (
        "pgqueuer queue size",
        "",
        "SELECT count(*) AS count, priority, entrypoint, status FROM pgqueuer GROUP BY entrypoint, priority, status ORDER BY count, entrypoint, priority, status",
    ),
    (
        "pgqueuer mark failed",
        "",
        "UPDATE pgqueuer SET status = 'failed', updated = NOW() WHERE id = ANY($1::bigint[])",
    ),
    // River @ fdf6cdf1
    (
        "River JobCancel",
        "",
        "-- name: JobCancel :one\nWITH locked_job AS (\n    SELECT id, queue, state, finalized_at FROM river_job WHERE id = $1 FOR UPDATE\n), notification AS (\n    SELECT id, pg_notify(concat(current_schema(), '.', $2::text), json_build_object('action', 'cancel', 'job_id', id, 'queue', queue)::text) FROM locked_job WHERE state NOT IN ('cancelled', 'completed', 'discarded') AND finalized_at IS NULL\n), updated_job AS (\n    UPDATE river_job SET state = 'cancelled' FROM notification WHERE river_job.id = notification.id RETURNING river_job.*\n)\nSELECT * FROM updated_job",
    ),
    (
        "River LeaderInsert (test helper)",
        "",
        "-- name: LeaderInsert :one\nINSERT INTO river_leader(\n    elected_at,\n    expires_at,\n    leader_id\n) VALUES (\n    coalesce($1::timestamptz, now()),\n    coalesce($2::timestamptz, coalesce($1::timestamptz, now()) + make_interval(secs => $3)),\n    $4\n) RETURNING *",
    ),
    (
        "River LeaderInsert, no comment",
        "",
        "INSERT INTO river_leader(elected_at, expires_at, leader_id) VALUES (now(), now() + make_interval(secs => $1), $2) RETURNING *",
    ),
    (
        "River LeaderResign",
        "",
        "-- name: LeaderResign :execrows\nWITH currently_held_leaders AS (\n  SELECT elected_at, expires_at, leader_id FROM river_leader WHERE leader_id = $1::text FOR UPDATE\n),\nnotified_resignations AS (\n    SELECT pg_notify(concat(current_schema(), '.', $2::text), json_build_object('leader_id', leader_id, 'action', 'resigned')::text) FROM currently_held_leaders\n)\nDELETE FROM river_leader USING notified_resignations",
    ),
    (
        "River JobInsertFastMany",
        "",
        "-- name: JobInsertFastMany :many\nINSERT INTO river_job(args, created_at, kind, max_attempts, metadata, priority, queue, scheduled_at, state, tags) SELECT unnest($1::jsonb[]), unnest($2::timestamptz[]), unnest($3::text[]), unnest($4::smallint[]), unnest($5::jsonb[]), unnest($6::smallint[]), unnest($7::text[]), unnest($8::timestamptz[]), unnest($9::river_job_state[]), string_to_array(unnest($10::text[]), ',') ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO UPDATE SET kind = EXCLUDED.kind RETURNING river_job.*, (xmax != 0) AS unique_skipped_as_duplicate",
    ),
    (
        "River JobGetStuck",
        "",
        "-- name: JobGetStuck :many\nSELECT * FROM river_job WHERE state = 'running' AND attempted_at < $1::timestamptz ORDER BY id LIMIT $2",
    ),
    (
        "River PGAdvisoryXactLock",
        "",
        "-- name: PGAdvisoryXactLock :exec\nSELECT pg_advisory_xact_lock($1)",
    ),
    (
        "River QueueUpdate",
        "",
        "-- name: QueueUpdate :one\nUPDATE river_queue SET metadata = CASE WHEN $1::boolean THEN $2::jsonb ELSE metadata END, updated_at = CASE WHEN $1::boolean THEN now() ELSE updated_at END WHERE name = $3 RETURNING river_queue.*",
    ),
    (
        "River listener schema",
        "",
        "SELECT coalesce(current_schema(), '');",
    ),
    ("River LISTEN", "", r#"LISTEN "public.river_insert""#),
    // Oban 2.23.0
    (
        "Oban LISTEN",
        "",
        "LISTEN \"public.oban_insert\";\nLISTEN \"public.oban_signal\";",
    ),
    (
        "Oban unique lock",
        "",
        "SELECT pg_try_advisory_xact_lock($1)",
    ),
    (
        "Oban insert",
        "",
        r#"INSERT INTO "public"."oban_jobs" AS o0 ("args","meta","queue","state","worker") VALUES ($1,$2,$3,$4,$5) RETURNING "id""#,
    ),
    (
        "Oban discard",
        "",
        r#"UPDATE "public"."oban_jobs" AS o0 SET "state" = $1, "discarded_at" = $2, "errors" = array_append(o0."errors", $3) WHERE (o0."id" = $4)"#,
    ),
    (
        "Oban stager",
        "",
        r#"UPDATE "public"."oban_jobs" AS o0 SET "state" = $1 FROM (SELECT so0."id" AS "id" FROM "public"."oban_jobs" AS so0 WHERE (so0."state" IN ('scheduled','retryable')) AND (so0."scheduled_at" <= $2) LIMIT $3) AS s1 WHERE (o0."id" = s1."id")"#,
    ),
    (
        "Oban pruner",
        "",
        r#"DELETE FROM "public"."oban_jobs" AS o0 WHERE o0."id" IN (SELECT so0."id" FROM "public"."oban_jobs" AS so0 WHERE (so0."state" IN ('completed','cancelled','discarded')) LIMIT $1)"#,
    ),
    (
        "Oban peers leader read",
        "",
        r#"SELECT o0."node" FROM "public"."oban_peers" AS o0 WHERE (o0."name" = $1)"#,
    ),
    // Solid Queue 1.5.0 and ActiveRecord
    (
        "Solid Queue claimed insert",
        "",
        r#"INSERT INTO "solid_queue_claimed_executions" ("job_id","process_id","created_at") VALUES ($1, $2, CURRENT_TIMESTAMP) ON CONFLICT  DO NOTHING RETURNING "id""#,
    ),
    (
        "Solid Queue ready delete",
        "",
        r#"DELETE FROM "solid_queue_ready_executions" WHERE "solid_queue_ready_executions"."id" IN ($1, $2)"#,
    ),
    (
        "Solid Queue prune",
        "",
        r#"SELECT "solid_queue_processes".* FROM "solid_queue_processes" WHERE "solid_queue_processes"."last_heartbeat_at" <= $1 ORDER BY "solid_queue_processes"."id" ASC LIMIT $2 FOR UPDATE SKIP LOCKED"#,
    ),
    (
        "Solid Queue process find",
        "",
        r#"SELECT "solid_queue_processes".* FROM "solid_queue_processes" WHERE "solid_queue_processes"."id" = $1 LIMIT $2"#,
    ),
    (
        "Solid Queue ready count",
        "",
        r#"SELECT "solid_queue_ready_executions"."id", "solid_queue_ready_executions"."job_id" FROM "solid_queue_ready_executions" WHERE "solid_queue_ready_executions"."queue_name" = $1 LIMIT $2"#,
    ),
    ("Rails connect SET", "", "SET intervalstyle = iso_8601"),
    (
        "Rails connect SET strings",
        "",
        "SET standard_conforming_strings = on",
    ),
    // good_job 4.19.2
    (
        "good_job advisory claim",
        "",
        "SELECT \"good_jobs\".*\nFROM \"good_jobs\"\nWHERE \"good_jobs\".\"id\" IN (\n  WITH \"rows\" AS MATERIALIZED (\n    SELECT \"good_jobs\".\"id\"\n    FROM \"good_jobs\"\n    WHERE \"good_jobs\".\"priority\" = 99\n    ORDER BY \"good_jobs\".\"priority\" DESC\n  )\n  SELECT \"rows\".\"id\"\n  FROM \"rows\"\n  WHERE pg_try_advisory_lock(('x' || substr(md5('good_jobs' || '-' || \"rows\".\"id\"::text), 1, 16))::bit(64)::bigint)\n  LIMIT 2\n)\nORDER BY \"good_jobs\".\"priority\" DESC",
    ),
    (
        "good_job hybrid claim",
        "",
        "WITH candidate AS MATERIALIZED (SELECT \"good_jobs\".\"id\" FROM \"good_jobs\" WHERE \"good_jobs\".\"finished_at\" IS NULL ORDER BY priority ASC LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED)\nUPDATE \"good_jobs\"\nSET locked_by_id = '5f1c2b8e-6d7a-4c1e-9b2f-3a4d5e6f7a8b',\n    locked_at = '2026-08-01 10:00:00',\n    lock_type = 2\nFROM (SELECT id FROM candidate WHERE pg_try_advisory_lock(('x' || substr(md5('good_jobs' || '-' || candidate.id::text), 1, 16))::bit(64)::bigint)) AS locked\nWHERE \"good_jobs\".id = locked.id\nRETURNING \"good_jobs\".*",
    ),
    (
        "good_job unlock",
        "",
        "SELECT pg_advisory_unlock(('x' || substr(md5($1::text), 1, 16))::bit(64)::bigint) AS unlocked",
    ),
    (
        "good_job unlock all",
        "",
        "SELECT pg_advisory_unlock_all()::text AS unlocked",
    ),
    (
        "good_job notifier SET",
        "",
        "SET application_name = 'GoodJob::Notifier'",
    ),
    ("good_job LISTEN", "", "LISTEN good_job"),
    (
        "good_job NOTIFY",
        "",
        r#"NOTIFY good_job, '{"queue_name":"default"}'"#,
    ),
    (
        "good_job release",
        "",
        r#"UPDATE "good_jobs" SET "locked_by_id" = $1, "locked_at" = $2, "lock_type" = $3 WHERE "good_jobs"."id" = $4"#,
    ),
    // Que 2.4.1
    (
        "Que set_config",
        "",
        "SELECT set_config('application_name', $1, false)",
    ),
    (
        "Que poller setup",
        "",
        "CREATE TYPE pg_temp.que_query_result AS (locked boolean, remaining_priorities jsonb); CREATE FUNCTION pg_temp.lock_and_update_priorities(priorities jsonb, job que_jobs) RETURNS pg_temp.que_query_result AS $$ SELECT pg_try_advisory_lock((job).id) AS taken $$ LANGUAGE SQL;",
    ),
    ("Que LISTEN", "", "LISTEN que_listener_4242"),
    (
        "Que clean_lockers",
        "",
        "DELETE FROM public.que_lockers WHERE pid = pg_backend_pid() OR NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = public.que_lockers.pid)",
    ),
    (
        "Que register_locker",
        "",
        "INSERT INTO public.que_lockers (pid, worker_count, worker_priorities, ruby_pid, ruby_hostname, listening, queues, job_schema_version) VALUES (pg_backend_pid(), $1::integer, $2::integer[], $3::integer, $4::text, $5::boolean, $6::text[], $7::integer)",
    ),
    (
        "Que poll_jobs",
        "que_poll_jobs",
        "WITH RECURSIVE jobs AS (SELECT (j).*, l.locked, l.remaining_priorities FROM (SELECT j FROM public.que_jobs AS j WHERE queue = $1::text AND job_schema_version = 2 AND NOT id = ANY($2::bigint[]) AND priority <= pg_temp.que_highest_remaining_priority($3::jsonb) ORDER BY priority, run_at, id LIMIT 1) AS t1 JOIN LATERAL (SELECT * FROM pg_temp.lock_and_update_priorities($3::jsonb, j)) AS l ON true) SELECT * FROM jobs WHERE locked",
    ),
    (
        "Que lock_jobs",
        "",
        "WITH jobs AS MATERIALIZED (SELECT * FROM que_jobs WHERE id IN (1, 2, 3)) SELECT * FROM jobs WHERE pg_try_advisory_lock(id)",
    ),
    (
        "Que unlock_jobs",
        "",
        "SELECT pg_advisory_unlock(v.i) FROM (VALUES (1), (2)) v (i)",
    ),
    (
        "Que set error",
        "",
        "UPDATE public.que_jobs SET error_count = error_count + 1, run_at = now() + $1::float * '1 second'::interval, last_error_message = left($2::text, 500) WHERE id = $3::bigint",
    ),
    (
        "Que expire",
        "",
        "UPDATE public.que_jobs SET error_count = error_count + 1, expired_at = now() WHERE id = $1::bigint",
    ),
    // gbrain initSchema: a session lock, pinned, never shared.
    (
        "gbrain initSchema lock",
        "",
        "SELECT pg_try_advisory_lock(42) AS locked",
    ),
    // Client and driver plumbing around every queue.
    (
        "psycopg auto-prepared read",
        "_pg3_3",
        "SELECT id, status FROM procrastinate_jobs WHERE id = $1",
    ),
    (
        "pgx cached read",
        "stmtcache_9a8b7c",
        "SELECT * FROM river_job WHERE id = $1",
    ),
    (
        "asyncpg introspection",
        "__asyncpg_stmt_1__",
        "SELECT t.oid, t.typelem AS elemtype, t.typtype AS kind FROM pg_catalog.pg_type AS t WHERE t.oid = any($1::oid[])",
    ),
    ("plain begin", "", "BEGIN"),
    ("keepalive", "", ";"),
];
