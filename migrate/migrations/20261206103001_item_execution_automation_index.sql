-- Modify "item_execution" table
-- lint:ignore MF104 20261206103000_item_execution_automation.sql filled every row from its run, and its trigger fills new ones
ALTER TABLE "item_execution" ALTER COLUMN "automation_id" SET NOT NULL;
-- Create index "ix_item_execution_claim_automation" to table: "item_execution"
CREATE INDEX "ix_item_execution_claim_automation" ON "item_execution" ("automation_id", "priority", "not_before", "id") WHERE ((status)::text = ANY ('{queued,retrying,scheduled}'::text[]));
