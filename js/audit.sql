-- The server's own record of which lane ran each lock-path step: a trigger stores current_user
-- for every claim, lease renewal, completion and stall eviction. Through the stand-in, `app` is
-- the direct lane and `pooler` is PgBouncer. Used by tests/worker.rs, tests/faults.rs and
-- scripts/demo.sh.
CREATE TABLE IF NOT EXISTS lockroute_audit (
    id bigserial PRIMARY KEY,
    queue text NOT NULL,
    op text NOT NULL,
    role text NOT NULL
);
CREATE OR REPLACE FUNCTION lockroute_audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'waiting' AND NEW.status = 'active' THEN
        INSERT INTO lockroute_audit (queue, op, role) VALUES (NEW.queue, 'claim', current_user);
    ELSIF OLD.status = 'active' AND NEW.status = 'active' AND NEW.lock_until IS DISTINCT FROM OLD.lock_until THEN
        INSERT INTO lockroute_audit (queue, op, role) VALUES (NEW.queue, 'renew', current_user);
    ELSIF OLD.status = 'active' AND NEW.status = 'completed' THEN
        INSERT INTO lockroute_audit (queue, op, role) VALUES (NEW.queue, 'complete', current_user);
    ELSIF OLD.status = 'active' AND NEW.status = 'waiting' THEN
        INSERT INTO lockroute_audit (queue, op, role) VALUES (NEW.queue, 'evict', current_user);
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER lockroute_audit_trg BEFORE UPDATE ON minion_jobs
    FOR EACH ROW EXECUTE FUNCTION lockroute_audit_fn();
