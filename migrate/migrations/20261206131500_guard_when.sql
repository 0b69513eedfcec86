-- guard_when: the status guards call their function only when it has
-- something to do. Hand-written (triggers are not inspected by Atlas):
-- CREATE OR REPLACE, so a replay on a dev database never collides.
--
-- runledger_guard_status (20261126100414_guards.sql) refuses an illegal
-- transition and sets version = OLD.version + 1 and updated_at = now(). A
-- statement that already sets both, and changes the status legally (or not
-- at all), leaves it nothing to do; the WHEN clause below says exactly that,
-- and PostgreSQL evaluates it in the executor, without entering PL/pgSQL
-- (runledger_can_transition is an inlinable SQL function). Every other
-- update still calls the function, with the same effect as before: a writer
-- that sets nothing, or sets version or updated_at to anything else, is
-- corrected; an illegal transition is refused. The hot statements of the
-- execution package (claim, report, heartbeat, rescue, release) set both
-- themselves, which saves a PL/pgSQL call per updated row (about 4% of the
-- server time of a burn-down, measured with perf).

CREATE OR REPLACE TRIGGER run_guard BEFORE UPDATE ON run FOR EACH ROW
  WHEN (NEW.version IS DISTINCT FROM OLD.version + 1
        OR NEW.updated_at IS DISTINCT FROM now()
        OR (NEW.status IS DISTINCT FROM OLD.status AND NOT runledger_can_transition(OLD.status, NEW.status)))
  EXECUTE FUNCTION runledger_guard_status();
CREATE OR REPLACE TRIGGER batch_execution_guard BEFORE UPDATE ON batch_execution FOR EACH ROW
  WHEN (NEW.version IS DISTINCT FROM OLD.version + 1
        OR NEW.updated_at IS DISTINCT FROM now()
        OR (NEW.status IS DISTINCT FROM OLD.status AND NOT runledger_can_transition(OLD.status, NEW.status)))
  EXECUTE FUNCTION runledger_guard_status();
CREATE OR REPLACE TRIGGER item_execution_guard BEFORE UPDATE ON item_execution FOR EACH ROW
  WHEN (NEW.version IS DISTINCT FROM OLD.version + 1
        OR NEW.updated_at IS DISTINCT FROM now()
        OR (NEW.status IS DISTINCT FROM OLD.status AND NOT runledger_can_transition(OLD.status, NEW.status)))
  EXECUTE FUNCTION runledger_guard_status();
CREATE OR REPLACE TRIGGER orchestration_instance_guard BEFORE UPDATE ON orchestration_instance FOR EACH ROW
  WHEN (NEW.version IS DISTINCT FROM OLD.version + 1
        OR NEW.updated_at IS DISTINCT FROM now()
        OR (NEW.status IS DISTINCT FROM OLD.status AND NOT runledger_can_transition(OLD.status, NEW.status)))
  EXECUTE FUNCTION runledger_guard_status();
