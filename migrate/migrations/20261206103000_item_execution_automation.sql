-- item_execution_automation: item_execution.automation_id, a documented
-- denormalisation of run.automation_id that lets ClaimFor reach one
-- automation's claimable items through ix_item_execution_claim_automation.
-- This file adds the column nullable and fills it on existing rows; the next
-- file (planned by `migrate diff` from ent/schema) sets it NOT NULL and adds
-- the index. Hand-written, so re-runnable on a dev database (IF NOT EXISTS,
-- CREATE OR REPLACE).

ALTER TABLE item_execution ADD COLUMN IF NOT EXISTS automation_id uuid NULL;

-- Existing rows take their run's automation. The guard trigger would bump
-- version and updated_at: this is a fill-in of a new column, not a change of
-- the row, so it is disabled for the statement (the history triggers fire
-- on status changes only and stay quiet).
ALTER TABLE item_execution DISABLE TRIGGER item_execution_guard;
UPDATE item_execution ie SET automation_id = r.automation_id
FROM run r WHERE r.id = ie.run_id AND ie.automation_id IS DISTINCT FROM r.automation_id;
ALTER TABLE item_execution ENABLE TRIGGER item_execution_guard;

-- A writer that leaves automation_id out (raw SQL, a worker's tooling) gets
-- its run's. The WHEN clause keeps the function out of inserts that set it,
-- as StartRun does.
CREATE OR REPLACE FUNCTION runledger_item_execution_automation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  SELECT r.automation_id INTO NEW.automation_id FROM run r WHERE r.id = NEW.run_id;
  RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER item_execution_automation BEFORE INSERT ON item_execution
  FOR EACH ROW WHEN (NEW.automation_id IS NULL) EXECUTE FUNCTION runledger_item_execution_automation();

-- A value that is not the run's automation is refused, once per statement
-- (one join over the inserted rows), as a check violation naming
-- ck_item_execution_automation.
CREATE OR REPLACE FUNCTION runledger_item_execution_automation_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad uuid;
BEGIN
  SELECT n.id INTO bad FROM new_rows n JOIN run r ON r.id = n.run_id
  WHERE n.automation_id IS DISTINCT FROM r.automation_id LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'item_execution.automation_id must be the automation of the item''s run'
      USING ERRCODE = '23514', TABLE = TG_TABLE_NAME, COLUMN = 'automation_id',
            CONSTRAINT = 'ck_item_execution_automation';
  END IF;
  RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER item_execution_automation_check AFTER INSERT ON item_execution
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION runledger_item_execution_automation_check();

-- automation_id never changes after insert (ent/schema marks it immutable;
-- this holds raw SQL to the same rule).
CREATE OR REPLACE FUNCTION runledger_item_execution_automation_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'item_execution.automation_id cannot be changed'
    USING ERRCODE = '23514', TABLE = TG_TABLE_NAME, COLUMN = 'automation_id',
          CONSTRAINT = 'ck_item_execution_automation';
END
$$;

CREATE OR REPLACE TRIGGER item_execution_automation_fixed BEFORE UPDATE OF automation_id ON item_execution
  FOR EACH ROW WHEN (OLD.automation_id IS DISTINCT FROM NEW.automation_id) EXECUTE FUNCTION runledger_item_execution_automation_fixed();
