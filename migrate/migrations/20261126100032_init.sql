-- Create "automation" table
CREATE TABLE "automation" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "created_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "updated_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "created_by" character varying(100) NULL, "updated_by" character varying(100) NULL, "version" integer NOT NULL DEFAULT 1, "is_active" boolean NOT NULL DEFAULT true, "name" character varying(200) NOT NULL, "description" text NULL, "batch_schema" jsonb NULL, "item_schema" jsonb NULL, PRIMARY KEY ("id"));
-- Create index "automation_is_active" to table: "automation"
CREATE INDEX "automation_is_active" ON "automation" ("is_active");
-- Create index "automation_name" to table: "automation"
CREATE INDEX "automation_name" ON "automation" ("name");
-- Create index "ix_automation_name_active" to table: "automation"
CREATE UNIQUE INDEX "ix_automation_name_active" ON "automation" ("name") WHERE (is_active = true);
-- Create "batch" table
CREATE TABLE "batch" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "created_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "updated_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "created_by" character varying(100) NULL, "updated_by" character varying(100) NULL, "version" integer NOT NULL DEFAULT 1, "is_active" boolean NOT NULL DEFAULT true, "name" character varying(200) NOT NULL, "payload" jsonb NULL, "automation_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "batch_automation_batches" FOREIGN KEY ("automation_id") REFERENCES "automation" ("id") ON UPDATE NO ACTION ON DELETE CASCADE);
-- Create index "batch_automation_id_name" to table: "batch"
CREATE UNIQUE INDEX "batch_automation_id_name" ON "batch" ("automation_id", "name");
-- Create index "batch_is_active" to table: "batch"
CREATE INDEX "batch_is_active" ON "batch" ("is_active");
-- Create "run" table
CREATE TABLE "run" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "created_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "updated_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "created_by" character varying(100) NULL, "updated_by" character varying(100) NULL, "version" integer NOT NULL DEFAULT 1, "is_active" boolean NOT NULL DEFAULT true, "status" character varying NOT NULL DEFAULT 'pending', "started_at" timestamptz NULL, "finished_at" timestamptz NULL, "correlation_id" character varying(100) NULL, "cancellation_reason" text NULL, "error_summary" text NULL, "automation_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "run_automation_runs" FOREIGN KEY ("automation_id") REFERENCES "automation" ("id") ON UPDATE NO ACTION ON DELETE CASCADE, CONSTRAINT "ck_finished_after_started" CHECK ((finished_at IS NULL) OR (started_at IS NULL) OR (finished_at >= started_at)), CONSTRAINT "ck_status_valid" CHECK ((status)::text = ANY ((ARRAY['pending'::character varying, 'queued'::character varying, 'scheduled'::character varying, 'running'::character varying, 'retrying'::character varying, 'succeeded'::character varying, 'failed'::character varying, 'cancelled'::character varying, 'timed_out'::character varying, 'skipped'::character varying])::text[])));
-- Create index "run_automation_id" to table: "run"
CREATE INDEX "run_automation_id" ON "run" ("automation_id");
-- Create index "run_correlation_id" to table: "run"
CREATE INDEX "run_correlation_id" ON "run" ("correlation_id");
-- Create index "run_is_active" to table: "run"
CREATE INDEX "run_is_active" ON "run" ("is_active");
-- Create index "run_started_at_status" to table: "run"
CREATE INDEX "run_started_at_status" ON "run" ("started_at", "status");
-- Create index "run_status" to table: "run"
CREATE INDEX "run_status" ON "run" ("status");
-- Create "batch_execution" table
CREATE TABLE "batch_execution" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "created_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "updated_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "created_by" character varying(100) NULL, "updated_by" character varying(100) NULL, "version" integer NOT NULL DEFAULT 1, "is_active" boolean NOT NULL DEFAULT true, "status" character varying NOT NULL DEFAULT 'pending', "started_at" timestamptz NULL, "finished_at" timestamptz NULL, "batch_id" uuid NOT NULL, "run_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "batch_execution_batch_executions" FOREIGN KEY ("batch_id") REFERENCES "batch" ("id") ON UPDATE NO ACTION ON DELETE CASCADE, CONSTRAINT "batch_execution_run_batch_executions" FOREIGN KEY ("run_id") REFERENCES "run" ("id") ON UPDATE NO ACTION ON DELETE CASCADE, CONSTRAINT "ck_finished_after_started" CHECK ((finished_at IS NULL) OR (started_at IS NULL) OR (finished_at >= started_at)), CONSTRAINT "ck_status_valid" CHECK ((status)::text = ANY ((ARRAY['pending'::character varying, 'queued'::character varying, 'scheduled'::character varying, 'running'::character varying, 'retrying'::character varying, 'succeeded'::character varying, 'failed'::character varying, 'cancelled'::character varying, 'timed_out'::character varying, 'skipped'::character varying])::text[])));
-- Create index "batchexecution_batch_id" to table: "batch_execution"
CREATE INDEX "batchexecution_batch_id" ON "batch_execution" ("batch_id");
-- Create index "batchexecution_is_active" to table: "batch_execution"
CREATE INDEX "batchexecution_is_active" ON "batch_execution" ("is_active");
-- Create index "batchexecution_run_id_batch_id" to table: "batch_execution"
CREATE UNIQUE INDEX "batchexecution_run_id_batch_id" ON "batch_execution" ("run_id", "batch_id");
-- Create index "batchexecution_status" to table: "batch_execution"
CREATE INDEX "batchexecution_status" ON "batch_execution" ("status");
-- Create "item" table
CREATE TABLE "item" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "created_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "updated_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "created_by" character varying(100) NULL, "updated_by" character varying(100) NULL, "version" integer NOT NULL DEFAULT 1, "is_active" boolean NOT NULL DEFAULT true, "sequence_number" integer NOT NULL, "payload" jsonb NULL, "batch_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "item_batch_items" FOREIGN KEY ("batch_id") REFERENCES "batch" ("id") ON UPDATE NO ACTION ON DELETE CASCADE, CONSTRAINT "ck_sequence_number_nonnegative" CHECK (sequence_number >= 0));
-- Create index "item_batch_id_sequence_number" to table: "item"
CREATE UNIQUE INDEX "item_batch_id_sequence_number" ON "item" ("batch_id", "sequence_number");
-- Create index "item_is_active" to table: "item"
CREATE INDEX "item_is_active" ON "item" ("is_active");
-- Create "item_execution" table
CREATE TABLE "item_execution" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "created_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "updated_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "created_by" character varying(100) NULL, "updated_by" character varying(100) NULL, "version" integer NOT NULL DEFAULT 1, "is_active" boolean NOT NULL DEFAULT true, "status" character varying NOT NULL DEFAULT 'pending', "started_at" timestamptz NULL, "finished_at" timestamptz NULL, "attempt_count" integer NOT NULL DEFAULT 0, "max_attempts" integer NULL, "result_payload" jsonb NULL, "error_message" text NULL, "retryable" boolean NOT NULL DEFAULT true, "batch_execution_id" uuid NOT NULL, "item_id" uuid NOT NULL, "run_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "item_execution_batch_execution_item_executions" FOREIGN KEY ("batch_execution_id") REFERENCES "batch_execution" ("id") ON UPDATE NO ACTION ON DELETE CASCADE, CONSTRAINT "item_execution_item_executions" FOREIGN KEY ("item_id") REFERENCES "item" ("id") ON UPDATE NO ACTION ON DELETE CASCADE, CONSTRAINT "item_execution_run_item_executions" FOREIGN KEY ("run_id") REFERENCES "run" ("id") ON UPDATE NO ACTION ON DELETE CASCADE, CONSTRAINT "ck_attempt_count_nonnegative" CHECK (attempt_count >= 0), CONSTRAINT "ck_finished_after_started" CHECK ((finished_at IS NULL) OR (started_at IS NULL) OR (finished_at >= started_at)), CONSTRAINT "ck_max_attempts_positive" CHECK ((max_attempts IS NULL) OR (max_attempts >= 1)), CONSTRAINT "ck_status_valid" CHECK ((status)::text = ANY ((ARRAY['pending'::character varying, 'queued'::character varying, 'scheduled'::character varying, 'running'::character varying, 'retrying'::character varying, 'succeeded'::character varying, 'failed'::character varying, 'cancelled'::character varying, 'timed_out'::character varying, 'skipped'::character varying])::text[])));
-- Create index "itemexecution_batch_execution_id" to table: "item_execution"
CREATE INDEX "itemexecution_batch_execution_id" ON "item_execution" ("batch_execution_id");
-- Create index "itemexecution_is_active" to table: "item_execution"
CREATE INDEX "itemexecution_is_active" ON "item_execution" ("is_active");
-- Create index "itemexecution_item_id" to table: "item_execution"
CREATE INDEX "itemexecution_item_id" ON "item_execution" ("item_id");
-- Create index "itemexecution_run_id_item_id" to table: "item_execution"
CREATE UNIQUE INDEX "itemexecution_run_id_item_id" ON "item_execution" ("run_id", "item_id");
-- Create index "itemexecution_status" to table: "item_execution"
CREATE INDEX "itemexecution_status" ON "item_execution" ("status");
-- Create "item_state_history" table
CREATE TABLE "item_state_history" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "previous_status" character varying NULL, "new_status" character varying NOT NULL, "changed_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "created_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "created_by" character varying(100) NULL, "item_execution_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "item_state_history_item_execution_history" FOREIGN KEY ("item_execution_id") REFERENCES "item_execution" ("id") ON UPDATE NO ACTION ON DELETE CASCADE, CONSTRAINT "ck_new_status_valid" CHECK ((new_status)::text = ANY ((ARRAY['pending'::character varying, 'queued'::character varying, 'scheduled'::character varying, 'running'::character varying, 'retrying'::character varying, 'succeeded'::character varying, 'failed'::character varying, 'cancelled'::character varying, 'timed_out'::character varying, 'skipped'::character varying])::text[])), CONSTRAINT "ck_previous_status_valid" CHECK ((previous_status)::text = ANY ((ARRAY['pending'::character varying, 'queued'::character varying, 'scheduled'::character varying, 'running'::character varying, 'retrying'::character varying, 'succeeded'::character varying, 'failed'::character varying, 'cancelled'::character varying, 'timed_out'::character varying, 'skipped'::character varying])::text[])));
-- Create index "itemstatehistory_item_execution_id_changed_at" to table: "item_state_history"
CREATE INDEX "itemstatehistory_item_execution_id_changed_at" ON "item_state_history" ("item_execution_id", "changed_at");
-- Create "engine" table
CREATE TABLE "engine" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "created_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "updated_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "created_by" character varying(100) NULL, "updated_by" character varying(100) NULL, "version" integer NOT NULL DEFAULT 1, "is_active" boolean NOT NULL DEFAULT true, "name" character varying(100) NOT NULL, "type" character varying(50) NOT NULL, PRIMARY KEY ("id"));
-- Create index "engine_is_active" to table: "engine"
CREATE INDEX "engine_is_active" ON "engine" ("is_active");
-- Create index "engine_name_key" to table: "engine"
CREATE UNIQUE INDEX "engine_name_key" ON "engine" ("name");
-- Create "orchestration_instance" table
CREATE TABLE "orchestration_instance" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "created_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "updated_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "created_by" character varying(100) NULL, "updated_by" character varying(100) NULL, "version" integer NOT NULL DEFAULT 1, "is_active" boolean NOT NULL DEFAULT true, "status" character varying NOT NULL DEFAULT 'pending', "started_at" timestamptz NULL, "finished_at" timestamptz NULL, "external_id" character varying(200) NOT NULL, "duration_seconds" integer NULL, "instance_metadata" jsonb NULL, "engine_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "orchestration_instance_engine_instances" FOREIGN KEY ("engine_id") REFERENCES "engine" ("id") ON UPDATE NO ACTION ON DELETE CASCADE, CONSTRAINT "ck_duration_seconds_nonnegative" CHECK ((duration_seconds IS NULL) OR (duration_seconds >= 0)), CONSTRAINT "ck_finished_after_started" CHECK ((finished_at IS NULL) OR (started_at IS NULL) OR (finished_at >= started_at)), CONSTRAINT "ck_status_valid" CHECK ((status)::text = ANY ((ARRAY['pending'::character varying, 'queued'::character varying, 'scheduled'::character varying, 'running'::character varying, 'retrying'::character varying, 'succeeded'::character varying, 'failed'::character varying, 'cancelled'::character varying, 'timed_out'::character varying, 'skipped'::character varying])::text[])));
-- Create index "orchestrationinstance_engine_id_external_id" to table: "orchestration_instance"
CREATE UNIQUE INDEX "orchestrationinstance_engine_id_external_id" ON "orchestration_instance" ("engine_id", "external_id");
-- Create index "orchestrationinstance_is_active" to table: "orchestration_instance"
CREATE INDEX "orchestrationinstance_is_active" ON "orchestration_instance" ("is_active");
-- Create index "orchestrationinstance_status" to table: "orchestration_instance"
CREATE INDEX "orchestrationinstance_status" ON "orchestration_instance" ("status");
-- Create index "orchestrationinstance_status_started_at" to table: "orchestration_instance"
CREATE INDEX "orchestrationinstance_status_started_at" ON "orchestration_instance" ("status", "started_at");
-- Create "run_orchestration" table
CREATE TABLE "run_orchestration" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "created_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "updated_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "created_by" character varying(100) NULL, "updated_by" character varying(100) NULL, "version" integer NOT NULL DEFAULT 1, "is_active" boolean NOT NULL DEFAULT true, "attached_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, "orchestration_instance_id" uuid NOT NULL, "run_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "run_orchestration_orchestration_instance_runs" FOREIGN KEY ("orchestration_instance_id") REFERENCES "orchestration_instance" ("id") ON UPDATE NO ACTION ON DELETE CASCADE, CONSTRAINT "run_orchestration_run_orchestrations" FOREIGN KEY ("run_id") REFERENCES "run" ("id") ON UPDATE NO ACTION ON DELETE CASCADE);
-- Create index "runorchestration_is_active" to table: "run_orchestration"
CREATE INDEX "runorchestration_is_active" ON "run_orchestration" ("is_active");
-- Create index "runorchestration_orchestration_instance_id" to table: "run_orchestration"
CREATE INDEX "runorchestration_orchestration_instance_id" ON "run_orchestration" ("orchestration_instance_id");
-- Create index "runorchestration_run_id_orchestration_instance_id" to table: "run_orchestration"
CREATE UNIQUE INDEX "runorchestration_run_id_orchestration_instance_id" ON "run_orchestration" ("run_id", "orchestration_instance_id");
