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
  -- One join of the transition tables feeds both inserts.
  WITH changed AS MATERIALIZED (
    SELECT n.id, n.run_id, n.batch_execution_id, o.status AS old_status, n.status AS new_status, n.updated_by
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status IS DISTINCT FROM o.status
  ), history AS (
    INSERT INTO item_state_history (item_execution_id, previous_status, new_status, changed_at, created_at, created_by)
    SELECT c.id, c.old_status, c.new_status, clock_timestamp(), now(), c.updated_by FROM changed c
  )
  INSERT INTO status_count (run_id, batch_execution_id, status, delta)
  SELECT c.run_id, c.batch_execution_id, v.status, sum(v.delta)
  FROM changed c CROSS JOIN LATERAL (VALUES (c.new_status, 1), (c.old_status, -1)) AS v(status, delta)
  GROUP BY c.run_id, c.batch_execution_id, v.status
  HAVING sum(v.delta) <> 0;
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
