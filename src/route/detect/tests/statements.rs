//! gbrain's real statements, verbatim from the reference, and the cases around them.
pub(crate) const TAG: &str = "lockroute:direct";

/// `MinionQueue.claim()` at gbrain v0.46.28.0 (6 parameters), verbatim.
pub(crate) const CLAIM_NEW: &str = "UPDATE minion_jobs SET
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
   RETURNING *";

/// `claim()` at the fix commit (4 parameters, plain `$2` lease).
pub(crate) const CLAIM_OLD: &str = "UPDATE minion_jobs SET
    status = 'active',
    lock_token = $1,
    lock_until = now() + ($2::double precision * interval '1 millisecond'),
    timeout_at = CASE WHEN timeout_ms IS NOT NULL
                      THEN now() + (timeout_ms::double precision * interval '1 millisecond')
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
   RETURNING *";

/// `MinionQueue.renewLock()`, verbatim.
pub(crate) const RENEW_LOCK: &str = "UPDATE minion_jobs SET lock_until = now() + ($1::double precision * interval '1 millisecond'), updated_at = now()
   WHERE id = $2 AND lock_token = $3 AND status = 'active'
   RETURNING id";

/// `db-lock.ts` `refresh()`, verbatim.
pub(crate) const CYCLE_LOCK_REFRESH: &str = "UPDATE gbrain_cycle_locks SET ttl_expires_at = NOW() + ($1)::interval, last_refreshed_at = NOW() WHERE id = $2 AND holder_pid = $3 AND extract(epoch from acquired_at)::text = $4 RETURNING id";

/// gbrain's other queue and lock statements (reference §1.3, §1.4). None is on the lock path.
pub(crate) const NOT_LOCK_PATH: &[(&str, &str)] = &[
    (
        "promoteDelayed",
        "UPDATE minion_jobs SET status = 'waiting', delay_until = NULL, started_at = NULL, lock_token = NULL, lock_until = NULL, updated_at = now() WHERE status = 'delayed' AND delay_until <= now() RETURNING *",
    ),
    (
        "handleStalled candidates",
        "SELECT id, parent_job_id, stalled_counter, max_stalled FROM minion_jobs WHERE status = 'active' AND lock_until < now() - ($1::double precision * interval '1 millisecond')",
    ),
    (
        "handleStalled parents",
        "SELECT id FROM minion_jobs WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
    ),
    (
        "handleStalled requeue",
        "UPDATE minion_jobs SET status = 'waiting', stalled_counter = stalled_counter + 1, started_at = NULL, lock_token = NULL, lock_until = NULL, updated_at = now()\n WHERE id IN (SELECT id FROM minion_jobs WHERE status = 'active' AND lock_until < now() - ($2::double precision * interval '1 millisecond') AND stalled_counter + 1 < max_stalled FOR UPDATE SKIP LOCKED) RETURNING *",
    ),
    (
        "handleStalled dead-letter",
        "UPDATE minion_jobs SET status = 'dead', stalled_counter = stalled_counter + 1, finished_at = now(), lock_token = NULL, lock_until = NULL, updated_at = now()\n WHERE id IN (SELECT id FROM minion_jobs WHERE status = 'active' AND lock_until < now() - ($2::double precision * interval '1 millisecond') AND stalled_counter + 1 >= max_stalled FOR UPDATE SKIP LOCKED) RETURNING *",
    ),
    (
        "handleStalled inbox",
        "INSERT INTO minion_inbox (job_id, sender, payload)\n SELECT $1, 'minions', $2::jsonb\n WHERE EXISTS (SELECT 1 FROM minion_jobs WHERE id = $1 AND status NOT IN ('completed','failed','dead','cancelled'))",
    ),
    (
        "handleStalled unblock parent",
        "UPDATE minion_jobs SET status = 'waiting', updated_at = now()\n WHERE id = $1 AND status = 'waiting-children'\n AND NOT EXISTS (SELECT 1 FROM minion_jobs WHERE parent_job_id = $1 AND status NOT IN ('completed', 'failed', 'dead', 'cancelled'))",
    ),
    (
        "handleStalled self-heal",
        "UPDATE minion_jobs SET status = 'waiting', updated_at = now() WHERE status = 'waiting-children' AND NOT EXISTS (SELECT 1 FROM minion_jobs c WHERE c.parent_job_id = minion_jobs.id AND c.status NOT IN ('completed', 'failed', 'dead', 'cancelled'))",
    ),
    (
        "handleTimeouts candidates",
        "SELECT id, parent_job_id FROM minion_jobs WHERE status = 'active' AND timeout_at IS NOT NULL AND timeout_at < now() AND lock_until > now()",
    ),
    (
        "handleTimeouts dead-letter",
        "UPDATE minion_jobs SET\n  status = 'dead',\n  error_text = 'timeout exceeded',\n  lock_token = NULL,\n  lock_until = NULL,\n  finished_at = now(),\n  updated_at = now()\n WHERE id IN (SELECT id FROM minion_jobs WHERE id = ANY($1::bigint[]) FOR UPDATE SKIP LOCKED)\n RETURNING *",
    ),
    (
        "handleWallClockTimeouts",
        "UPDATE minion_jobs SET\n  status = 'dead',\n  error_text = 'wall-clock timeout exceeded',\n  attempts_made = attempts_made + 1,\n  lock_token = NULL,\n  lock_until = NULL,\n  finished_at = now(),\n  updated_at = now()\n WHERE id IN (SELECT id FROM minion_jobs WHERE status = 'active' AND started_at IS NOT NULL AND EXTRACT(EPOCH FROM (now() - started_at)) * 1000 > CASE WHEN timeout_ms IS NOT NULL THEN timeout_ms * 2 ELSE $1::double precision * 2 * GREATEST(max_stalled, 1) END FOR UPDATE SKIP LOCKED)\n RETURNING *",
    ),
    (
        "completeJob peek",
        "SELECT parent_job_id FROM minion_jobs WHERE id = $1",
    ),
    (
        "completeJob lock parent",
        "SELECT id FROM minion_jobs WHERE id = $1 FOR UPDATE",
    ),
    (
        "completeJob",
        "UPDATE minion_jobs SET status = 'completed', result = $1::jsonb, finished_at = now(), lock_token = NULL, lock_until = NULL, updated_at = now() WHERE id = $2 AND status = 'active' AND lock_token = $3 RETURNING *",
    ),
    (
        "failJob",
        "UPDATE minion_jobs SET status = $1, error_text = $2, attempts_made = attempts_made + 1, stacktrace = COALESCE(stacktrace, '[]'::jsonb) || $3::jsonb, delay_until = $4, finished_at = CASE WHEN $1 IN ('failed','dead') THEN now() ELSE NULL END, lock_token = NULL, lock_until = NULL, updated_at = now() WHERE id = $5 AND status = 'active' AND lock_token = $6 RETURNING *",
    ),
    (
        "releaseLeaseFullJob",
        "UPDATE minion_jobs SET status = 'delayed', delay_until = now() + ($1::double precision * interval '1 millisecond'), error_text = $2, lock_token = NULL, lock_until = NULL, updated_at = now() WHERE id = $3 AND status = 'active' AND lock_token = $4 RETURNING *",
    ),
    (
        "cancelJobs",
        "WITH RECURSIVE descendants AS (\n  SELECT id, 0 AS d FROM minion_jobs WHERE id = $1\n  UNION ALL\n  SELECT m.id, descendants.d + 1 FROM minion_jobs m JOIN descendants ON m.parent_job_id = descendants.id WHERE descendants.d < 100\n)\nUPDATE minion_jobs SET\n  status = 'cancelled',\n  lock_token = NULL,\n  lock_until = NULL, -- Reason stamps ROOT ids only\n  finished_at = now(),\n  updated_at = now()\n WHERE id IN (SELECT id FROM descendants)\n RETURNING *",
    ),
    (
        "retryJob",
        "UPDATE minion_jobs SET status = 'waiting', error_text = NULL,\n  lock_token = NULL, lock_until = NULL, delay_until = NULL,\n  started_at = NULL, timeout_at = NULL,\n  finished_at = NULL, updated_at = now()\n WHERE id = $1 AND status IN ('failed', 'dead')\n RETURNING *",
    ),
    (
        "pauseJob",
        "UPDATE minion_jobs SET status = 'paused', lock_token = NULL, lock_until = NULL, updated_at = now() WHERE id = $1 AND status IN ('waiting', 'active', 'delayed') RETURNING *",
    ),
    (
        "resumeJob",
        "UPDATE minion_jobs SET status = 'waiting', lock_token = NULL, lock_until = NULL, updated_at = now() WHERE id = $1 AND status = 'paused' RETURNING *",
    ),
    (
        "updateProgress",
        "UPDATE minion_jobs SET progress = $1::jsonb, updated_at = now() WHERE id = $2 AND status = 'active' AND lock_token = $3 RETURNING id",
    ),
    (
        "updateTokens",
        "UPDATE minion_jobs SET tokens_input = tokens_input + $1, tokens_output = tokens_output + $2, tokens_cache_read = tokens_cache_read + $3, updated_at = now() WHERE id = $4 AND status = 'active' AND lock_token = $5 RETURNING id",
    ),
    (
        "readInbox",
        "SELECT id FROM minion_jobs WHERE id = $1 AND lock_token = $2 AND status = 'active'",
    ),
    (
        "ctx.log",
        "UPDATE minion_jobs SET stacktrace = COALESCE(stacktrace, '[]'::jsonb) || $1::jsonb, updated_at = now() WHERE id = $2 AND status = 'active' AND lock_token = $3",
    ),
    (
        "ctx.isActive",
        "SELECT id FROM minion_jobs WHERE id = $1 AND lock_token = $2 AND status = 'active'",
    ),
    (
        "releaseClaimForPause",
        "UPDATE minion_jobs SET status = 'delayed', lock_token = NULL, lock_until = NULL, delay_until = now() + interval '1 minute', updated_at = now() WHERE id = $1 AND lock_token = $2",
    ),
    (
        "renewPrivateQueueLease",
        "UPDATE minion_jobs SET private_queue_lease_until = GREATEST(COALESCE(private_queue_lease_until, now()), now() + ($3::double precision * interval '1 millisecond')) WHERE queue = $1 AND private_queue_owner_token = $2 AND status IN ('waiting', 'active')",
    ),
    (
        "lease-health read",
        "SELECT count(*) FILTER (WHERE status = 'active' AND lock_until > now())::text AS active_healthy FROM minion_jobs WHERE queue = $1",
    ),
    (
        "jobs smoke fixture",
        "UPDATE minion_jobs SET status='active', lock_token='smoke-4f1c', lock_until = now() + interval '30 seconds' WHERE id = $1",
    ),
    (
        "expired-lease test fixture",
        "UPDATE minion_jobs SET lock_until = now() - interval '1 minute' WHERE id = $1",
    ),
    (
        "db-lock acquire",
        "INSERT INTO gbrain_cycle_locks (id, holder_pid, holder_host, acquired_at, ttl_expires_at, last_refreshed_at)\n VALUES ($1, $2, $3, NOW(), NOW() + $4::interval, NOW())\n ON CONFLICT (id) DO UPDATE SET holder_pid = EXCLUDED.holder_pid, holder_host = EXCLUDED.holder_host, acquired_at = NOW(), ttl_expires_at = EXCLUDED.ttl_expires_at, last_refreshed_at = NOW()\n WHERE gbrain_cycle_locks.ttl_expires_at < NOW()\n RETURNING id",
    ),
    (
        "db-lock release",
        "DELETE FROM gbrain_cycle_locks WHERE id = $1 AND holder_pid = $2",
    ),
    ("transaction begin", "begin "),
    ("transaction commit", "commit"),
    ("health probe", "SELECT 1"),
];
