-- Drop index "itemexecution_status" from table: "item_execution"
DROP INDEX "itemexecution_status";
-- Create index "itemexecution_status" to table: "item_execution"
CREATE INDEX "itemexecution_status" ON "item_execution" ("status") WHERE ((status)::text = ANY ('{pending,failed,cancelled,timed_out,skipped}'::text[]));
