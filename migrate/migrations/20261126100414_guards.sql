-- guards: the database keeps the model's invariants whoever writes (the ent
-- client, raw SQL, a worker in another language). Hand-written, hence
-- CREATE OR REPLACE everywhere: a replay on a dev database never collides.
-- CHECK constraints live in ent/schema (Atlas inspects and diffs them);
-- triggers and functions, which Atlas does not inspect, live here.

-- The transition table of runledger.CanTransition (status.go). A Go test
-- compares all 100 pairs with this function: the two cannot diverge.
CREATE OR REPLACE FUNCTION runledger_can_transition(from_status text, to_status text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE from_status
    WHEN 'pending'   THEN to_status IN ('pending', 'queued', 'scheduled', 'running', 'retrying', 'succeeded', 'failed', 'cancelled', 'timed_out', 'skipped')
    WHEN 'queued'    THEN to_status IN ('queued', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out', 'skipped')
    WHEN 'scheduled' THEN to_status IN ('scheduled', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out', 'skipped')
    WHEN 'running'   THEN to_status IN ('running', 'retrying', 'scheduled', 'succeeded', 'failed', 'cancelled', 'timed_out', 'skipped')
    WHEN 'retrying'  THEN to_status IN ('retrying', 'queued', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out', 'skipped')
    WHEN 'failed'    THEN to_status IN ('failed', 'queued')
    WHEN 'timed_out' THEN to_status IN ('timed_out', 'queued')
    WHEN 'cancelled' THEN to_status IN ('cancelled', 'queued')
    WHEN 'succeeded' THEN to_status = 'succeeded'
    WHEN 'skipped'   THEN to_status = 'skipped'
    ELSE false
  END
$$;

-- Every UPDATE of a versioned table bumps version by one and refreshes
-- updated_at, bulk updates and upserts included.
CREATE OR REPLACE FUNCTION runledger_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.version := OLD.version + 1;
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

-- The same for the status-tracking tables, which also refuse an illegal
-- transition. The error carries the table (TABLE), a constraint name that
-- the Go layer translates (CONSTRAINT) and "from -> to" (DETAIL). A value
-- outside ExecutionStatus is left to the ck_status_valid CHECK (23514).
CREATE OR REPLACE FUNCTION runledger_guard_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IS DISTINCT FROM OLD.status
     AND runledger_can_transition(NEW.status, NEW.status)
     AND NOT runledger_can_transition(OLD.status, NEW.status) THEN
    RAISE EXCEPTION 'illegal status transition on %: % -> %', TG_TABLE_NAME, OLD.status, NEW.status
      USING ERRCODE = 'P0001', TABLE = TG_TABLE_NAME, CONSTRAINT = 'runledger_status_transition',
            DETAIL = OLD.status || ' -> ' || NEW.status;
  END IF;
  NEW.version := OLD.version + 1;
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER automation_touch BEFORE UPDATE ON automation FOR EACH ROW EXECUTE FUNCTION runledger_touch();
CREATE OR REPLACE TRIGGER batch_touch BEFORE UPDATE ON batch FOR EACH ROW EXECUTE FUNCTION runledger_touch();
CREATE OR REPLACE TRIGGER item_touch BEFORE UPDATE ON item FOR EACH ROW EXECUTE FUNCTION runledger_touch();
CREATE OR REPLACE TRIGGER engine_touch BEFORE UPDATE ON engine FOR EACH ROW EXECUTE FUNCTION runledger_touch();
CREATE OR REPLACE TRIGGER run_orchestration_touch BEFORE UPDATE ON run_orchestration FOR EACH ROW EXECUTE FUNCTION runledger_touch();
CREATE OR REPLACE TRIGGER run_guard BEFORE UPDATE ON run FOR EACH ROW EXECUTE FUNCTION runledger_guard_status();
CREATE OR REPLACE TRIGGER batch_execution_guard BEFORE UPDATE ON batch_execution FOR EACH ROW EXECUTE FUNCTION runledger_guard_status();
CREATE OR REPLACE TRIGGER item_execution_guard BEFORE UPDATE ON item_execution FOR EACH ROW EXECUTE FUNCTION runledger_guard_status();
CREATE OR REPLACE TRIGGER orchestration_instance_guard BEFORE UPDATE ON orchestration_instance FOR EACH ROW EXECUTE FUNCTION runledger_guard_status();

-- History: one row per inserted item execution and one per status change,
-- in the same transaction, set-based (statement triggers over transition
-- tables: a statement that changes 100k rows runs one INSERT ... SELECT).
-- created_by is the row's updated_by: who made the change.
CREATE OR REPLACE FUNCTION runledger_history_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO item_state_history (item_execution_id, previous_status, new_status, changed_at, created_at, created_by)
  SELECT n.id, NULL, n.status, clock_timestamp(), now(), n.updated_by FROM new_rows n;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION runledger_history_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO item_state_history (item_execution_id, previous_status, new_status, changed_at, created_at, created_by)
  SELECT n.id, o.status, n.status, clock_timestamp(), now(), n.updated_by
  FROM new_rows n JOIN old_rows o ON o.id = n.id
  WHERE n.status IS DISTINCT FROM o.status;
  RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER item_execution_history_insert AFTER INSERT ON item_execution
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION runledger_history_insert();
CREATE OR REPLACE TRIGGER item_execution_history_update AFTER UPDATE ON item_execution
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION runledger_history_update();

-- History is immutable: no UPDATE, no TRUNCATE, and no DELETE except the
-- cascade from its item execution (which runs inside the foreign key's own
-- trigger, so pg_trigger_depth() > 1).
CREATE OR REPLACE FUNCTION runledger_history_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND pg_trigger_depth() > 1 THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION 'item_state_history is immutable: % refused', TG_OP
    USING ERRCODE = 'P0001', TABLE = TG_TABLE_NAME, CONSTRAINT = 'runledger_history_immutable';
END
$$;

CREATE OR REPLACE TRIGGER item_state_history_immutable BEFORE UPDATE OR DELETE ON item_state_history
  FOR EACH STATEMENT EXECUTE FUNCTION runledger_history_immutable();
CREATE OR REPLACE TRIGGER item_state_history_no_truncate BEFORE TRUNCATE ON item_state_history
  FOR EACH STATEMENT EXECUTE FUNCTION runledger_history_immutable();
