-- status_counts: the item_execution statement triggers also keep
-- status_count, an append-only ledger of count changes per (batch
-- execution, status). Progress sums it instead of scanning items, and no
-- completion locks a shared counter row: each statement inserts its own
-- aggregated deltas (one INSERT ... SELECT ... GROUP BY per statement).

CREATE OR REPLACE FUNCTION runledger_history_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO item_state_history (item_execution_id, previous_status, new_status, changed_at, created_at, created_by)
  SELECT n.id, NULL, n.status, clock_timestamp(), now(), n.updated_by FROM new_rows n;
  INSERT INTO status_count (run_id, batch_execution_id, status, delta)
  SELECT n.run_id, n.batch_execution_id, n.status, count(*) FROM new_rows n
  GROUP BY n.run_id, n.batch_execution_id, n.status;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION runledger_history_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO item_state_history (item_execution_id, previous_status, new_status, changed_at, created_at, created_by)
  SELECT n.id, o.status, n.status, clock_timestamp(), now(), n.updated_by
  FROM new_rows n JOIN old_rows o ON o.id = n.id
  WHERE n.status IS DISTINCT FROM o.status;
  INSERT INTO status_count (run_id, batch_execution_id, status, delta)
  SELECT c.run_id, c.batch_execution_id, c.status, sum(c.delta) FROM (
    SELECT n.run_id, n.batch_execution_id, n.status, 1 AS delta
    FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE n.status IS DISTINCT FROM o.status
    UNION ALL
    SELECT o.run_id, o.batch_execution_id, o.status, -1
    FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE n.status IS DISTINCT FROM o.status
  ) c
  GROUP BY c.run_id, c.batch_execution_id, c.status
  HAVING sum(c.delta) <> 0;
  RETURN NULL;
END
$$;

-- A deleted item execution leaves the count of its batch execution, unless
-- that batch execution went in the same statement (a cascade from its run).
CREATE OR REPLACE FUNCTION runledger_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO status_count (run_id, batch_execution_id, status, delta)
  SELECT o.run_id, o.batch_execution_id, o.status, -count(*) FROM old_rows o
  WHERE EXISTS (SELECT 1 FROM batch_execution be WHERE be.id = o.batch_execution_id)
  GROUP BY o.run_id, o.batch_execution_id, o.status;
  RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER item_execution_count_delete AFTER DELETE ON item_execution
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION runledger_count_delete();
