# The Atlas CLI on runledger's migrations (README: "Using the Atlas CLI").
#
#   atlas migrate status   --env runledger --url "$DATABASE_URL"
#   atlas migrate apply    --env runledger --url "$DATABASE_URL"
#   atlas migrate validate --env runledger
#   atlas migrate lint     --env runledger --latest 1
#
# runledger records its revisions in runledger.atlas_schema_revisions, apart
# from an application's own Atlas revisions (public.atlas_schema_revisions by
# default). Without revisions_schema = "runledger" the CLI looks in the wrong
# table and refuses the database as "not clean".

variable "dev_url" {
  type        = string
  description = "an empty database Atlas may use and wipe (dev database)"
  default     = "postgres://root@127.0.0.1:5432/runledger_atlas_dev?search_path=public&sslmode=disable"
}

env "runledger" {
  # The desired schema: ent/schema. Needs an Atlas build with the ent
  # provider; the hand-written SQL (guards, triggers) lives only in the
  # migration directory, so plan with `runledger migrate diff` instead.
  src = "ent://ent/schema"
  dev = var.dev_url

  migration {
    dir              = "file://migrate/migrations"
    revisions_schema = "runledger"
  }
}
