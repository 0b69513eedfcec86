-- Drop index "automation_is_active" from table: "automation"
DROP INDEX "automation_is_active";
-- Create index "automation_is_active" to table: "automation"
CREATE INDEX "automation_is_active" ON "automation" ("is_active") WHERE (NOT is_active);
-- Drop index "batch_is_active" from table: "batch"
DROP INDEX "batch_is_active";
-- Create index "batch_is_active" to table: "batch"
CREATE INDEX "batch_is_active" ON "batch" ("is_active") WHERE (NOT is_active);
-- Drop index "batchexecution_is_active" from table: "batch_execution"
DROP INDEX "batchexecution_is_active";
-- Create index "batchexecution_is_active" to table: "batch_execution"
CREATE INDEX "batchexecution_is_active" ON "batch_execution" ("is_active") WHERE (NOT is_active);
-- Drop index "engine_is_active" from table: "engine"
DROP INDEX "engine_is_active";
-- Create index "engine_is_active" to table: "engine"
CREATE INDEX "engine_is_active" ON "engine" ("is_active") WHERE (NOT is_active);
-- Drop index "item_is_active" from table: "item"
DROP INDEX "item_is_active";
-- Modify "item" table
ALTER TABLE "item" ALTER COLUMN "id" SET DEFAULT runledger_uuidv7();
-- Create index "item_is_active" to table: "item"
CREATE INDEX "item_is_active" ON "item" ("is_active") WHERE (NOT is_active);
-- Drop index "itemexecution_is_active" from table: "item_execution"
DROP INDEX "itemexecution_is_active";
-- Modify "item_execution" table
ALTER TABLE "item_execution" ALTER COLUMN "id" SET DEFAULT runledger_uuidv7();
-- Create index "itemexecution_is_active" to table: "item_execution"
CREATE INDEX "itemexecution_is_active" ON "item_execution" ("is_active") WHERE (NOT is_active);
-- Modify "item_state_history" table
ALTER TABLE "item_state_history" ALTER COLUMN "id" SET DEFAULT runledger_uuidv7();
-- Drop index "orchestrationinstance_is_active" from table: "orchestration_instance"
DROP INDEX "orchestrationinstance_is_active";
-- Create index "orchestrationinstance_is_active" to table: "orchestration_instance"
CREATE INDEX "orchestrationinstance_is_active" ON "orchestration_instance" ("is_active") WHERE (NOT is_active);
-- Drop index "run_is_active" from table: "run"
DROP INDEX "run_is_active";
-- Create index "run_is_active" to table: "run"
CREATE INDEX "run_is_active" ON "run" ("is_active") WHERE (NOT is_active);
-- Drop index "runorchestration_is_active" from table: "run_orchestration"
DROP INDEX "runorchestration_is_active";
-- Create index "runorchestration_is_active" to table: "run_orchestration"
CREATE INDEX "runorchestration_is_active" ON "run_orchestration" ("is_active") WHERE (NOT is_active);
