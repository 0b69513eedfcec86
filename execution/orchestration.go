package execution

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/ent"
)

// Engine types MapState and SyncInstance know (matched case-insensitively).
const (
	EngineArgo     = "argo"
	EngineJenkins  = "jenkins"
	EngineTemporal = "temporal"
)

// Keys SyncInstance writes into orchestration_instance.instance_metadata.
const (
	MetadataState   = "state"    // the engine's own word, as given
	MetadataStateAt = "state_at" // when the engine reported it, RFC 3339
)

// engineWords maps each engine's own state words (lower-cased) to an
// ExecutionStatus: the "External engines" table of DESIGN.md. Jenkins'
// UNSTABLE is handled in MapState, since it depends on configuration.
var engineWords = map[string]map[string]runledger.ExecutionStatus{
	EngineArgo: {
		// workflow phase
		"pending":   runledger.StatusQueued,
		"running":   runledger.StatusRunning,
		"succeeded": runledger.StatusSucceeded,
		"failed":    runledger.StatusFailed,
		"error":     runledger.StatusFailed,
		// node phase
		"skipped": runledger.StatusSkipped,
		"omitted": runledger.StatusSkipped,
	},
	EngineJenkins: {
		"in queue": runledger.StatusQueued,
		"building": runledger.StatusRunning,
		// build result
		"success":   runledger.StatusSucceeded,
		"unstable":  runledger.StatusSucceeded,
		"failure":   runledger.StatusFailed,
		"aborted":   runledger.StatusCancelled,
		"not_built": runledger.StatusSkipped,
	},
	EngineTemporal: {
		"running":        runledger.StatusRunning,
		"completed":      runledger.StatusSucceeded,
		"failed":         runledger.StatusFailed,
		"canceled":       runledger.StatusCancelled,
		"terminated":     runledger.StatusCancelled,
		"timedout":       runledger.StatusTimedOut,
		"continuedasnew": runledger.StatusRunning,
	},
}

// MapState maps an external engine's own state word to an ExecutionStatus,
// following the "External engines" table of DESIGN.md:
//
//   - argo: workflow phases Pending, Running, Succeeded, Failed, Error and
//     node phases Skipped, Omitted;
//   - jenkins: "in queue", "building" and the build results SUCCESS,
//     UNSTABLE, FAILURE, ABORTED, NOT_BUILT (UNSTABLE is succeeded, or
//     failed when unstableFails);
//   - temporal: Running, Completed, Failed, Canceled, Terminated, TimedOut,
//     ContinuedAsNew.
//
// The engine type and the word are matched case-insensitively, ignoring
// surrounding spaces. An unknown engine type or word returns false.
func MapState(engineType, word string, unstableFails bool) (runledger.ExecutionStatus, bool) {
	engineType = strings.ToLower(strings.TrimSpace(engineType))
	word = strings.ToLower(strings.TrimSpace(word))
	status, ok := engineWords[engineType][word]
	if !ok {
		return "", false
	}
	if engineType == EngineJenkins && word == "unstable" && unstableFails {
		return runledger.StatusFailed, true
	}
	return status, true
}

// validLen checks that s has 1 to max characters.
func validLen(field, s string, max int) error {
	if s == "" || utf8.RuneCountInString(s) > max {
		return &runledger.InvalidError{Field: field, Reason: fmt.Sprintf("1 to %d characters are required", max)}
	}
	return nil
}

// RegisterEngine creates the engine named name of type engineType, or
// returns the one that already has that name: calling it again is harmless.
// An existing engine of another type (compared case-insensitively) is an
// *runledger.InvalidError. Engine names are unique whether the engine is
// active or not, so a soft-deleted engine of the same name and type is made
// active again.
func (c *Client) RegisterEngine(ctx context.Context, name, engineType string) (*ent.Engine, error) {
	if err := validLen("engine.name", name, 100); err != nil {
		return nil, err
	}
	if err := validLen("engine.type", engineType, 50); err != nil {
		return nil, err
	}
	actor := nullString(actorOf(ctx))
	var id uuid.UUID
	err := c.tx(ctx, func(tx *sql.Tx) error {
		// DO NOTHING waits for a concurrent insert of the same name to
		// finish, so the SELECT below (a fresh snapshot) sees its row.
		err := tx.QueryRowContext(ctx, `INSERT INTO engine (name, type, created_by, updated_by) VALUES ($1, $2, $3, $3)
			ON CONFLICT (name) DO NOTHING RETURNING id`, name, engineType, actor).Scan(&id)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var (
			existing string
			active   bool
		)
		if err := tx.QueryRowContext(ctx, `SELECT id, type, is_active FROM engine WHERE name = $1 FOR UPDATE`, name).
			Scan(&id, &existing, &active); err != nil {
			return err
		}
		if !strings.EqualFold(existing, engineType) {
			return &runledger.InvalidError{Field: "engine.type",
				Reason: fmt.Sprintf("engine %q is already registered with type %q, not %q", name, existing, engineType)}
		}
		if active {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE engine SET is_active = true, updated_by = $2 WHERE id = $1`, id, actor)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("execution: register engine %q: %w", name, err)
	}
	e, err := c.db.Engine.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("execution: register engine %q: %w", name, translate(ctx, err))
	}
	return e, nil
}

// metadataJSON encodes m for a jsonb parameter; an empty map is NULL.
func metadataJSON(m map[string]any) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, &runledger.InvalidError{Field: "instance_metadata", Reason: "cannot be encoded as JSON", Err: err}
	}
	return string(b), nil
}

// attachSQL upserts the instance by (engine_id, external_id). On conflict it
// merges the new metadata's top-level keys into the stored ones and makes a
// soft-deleted instance active again; it only updates (and so bumps the
// version) when one of these changes something.
const attachSQL = `
INSERT INTO orchestration_instance AS oi (engine_id, external_id, status, instance_metadata, created_by, updated_by)
VALUES ($1, $2, 'pending', $3::jsonb, $4, $4)
ON CONFLICT (engine_id, external_id) DO UPDATE SET
	instance_metadata = CASE WHEN EXCLUDED.instance_metadata IS NULL THEN oi.instance_metadata
		ELSE coalesce(oi.instance_metadata, '{}'::jsonb) || EXCLUDED.instance_metadata END,
	is_active = true,
	updated_by = EXCLUDED.updated_by
WHERE NOT oi.is_active
	OR (EXCLUDED.instance_metadata IS NOT NULL
		AND coalesce(oi.instance_metadata, '{}'::jsonb) || EXCLUDED.instance_metadata IS DISTINCT FROM oi.instance_metadata)
RETURNING oi.id`

// AttachInstance records that run runID is orchestrated by the instance
// externalID of engine engineID: it creates the orchestration instance
// (status pending) or, when it exists, merges metadata's top-level keys into
// its instance_metadata; and it links it to the run (run_orchestration,
// attached_at now). Attaching the same instance to the same run again adds
// no instance and no link. An unknown or inactive run or engine is
// runledger.ErrNotFound.
func (c *Client) AttachInstance(ctx context.Context, runID, engineID uuid.UUID, externalID string, metadata map[string]any) (*ent.OrchestrationInstance, error) {
	if err := validLen("orchestration_instance.external_id", externalID, 200); err != nil {
		return nil, err
	}
	md, err := metadataJSON(metadata)
	if err != nil {
		return nil, err
	}
	actor := nullString(actorOf(ctx))
	var id uuid.UUID
	err = c.tx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM run WHERE id = $1 AND is_active FOR KEY SHARE`, runID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("run %s: %w", runID, runledger.ErrNotFound)
		}
		if err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM engine WHERE id = $1 AND is_active FOR KEY SHARE`, engineID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("engine %s: %w", engineID, runledger.ErrNotFound)
		}
		if err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, attachSQL, engineID, externalID, md, actor).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			// It exists and the upsert had nothing to change.
			err = tx.QueryRowContext(ctx, `SELECT id FROM orchestration_instance WHERE engine_id = $1 AND external_id = $2`,
				engineID, externalID).Scan(&id)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO run_orchestration AS ro (run_id, orchestration_instance_id, attached_at, created_by, updated_by)
			VALUES ($1, $2, now(), $3, $3)
			ON CONFLICT (run_id, orchestration_instance_id) DO UPDATE SET is_active = true, attached_at = now(), updated_by = EXCLUDED.updated_by
			WHERE NOT ro.is_active`, runID, id, actor)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("execution: attach instance %q to run %s: %w", externalID, runID, err)
	}
	inst, err := c.db.OrchestrationInstance.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("execution: attach instance %q to run %s: %w", externalID, runID, translate(ctx, err))
	}
	return inst, nil
}

// SyncInstance records the state word the instance's engine reported at
// time at (zero means now) and, when MapState knows the word for the
// engine's type, moves the instance to the status it maps to, all in one
// transaction:
//
//   - instance_metadata always gets "state" = word and "state_at" = at
//     (RFC 3339, UTC); its other keys are kept;
//   - the status is set when it differs; a change the transition table
//     forbids is refused by the database with a *runledger.TransitionError
//     and nothing is recorded;
//   - entering running sets started_at to at, unless it is set;
//   - entering a terminal status sets finished_at to at (never before
//     started_at) and duration_seconds to finished_at - started_at in whole
//     seconds when started_at is known; leaving one (a manual retry) clears
//     them.
//
// Reporting the status the instance already has changes only the metadata.
// An unknown word is still recorded (and committed) and the status left as
// it was, but SyncInstance returns the updated instance together with an
// *runledger.InvalidError naming the word (errors.Is runledger.ErrInvalid).
// The JenkinsUnstableFails option decides Jenkins' UNSTABLE. updated_by is
// the context's actor (runledger.WithActor).
func (c *Client) SyncInstance(ctx context.Context, instanceID uuid.UUID, word string, at time.Time) (*ent.OrchestrationInstance, error) {
	if strings.TrimSpace(word) == "" {
		return nil, &runledger.InvalidError{Field: "word", Reason: "an engine state word is required"}
	}
	if at.IsZero() {
		at = time.Now()
	}
	at = at.UTC()
	actor := nullString(actorOf(ctx))
	var unknown error
	err := c.tx(ctx, func(tx *sql.Tx) error {
		var (
			engineType string
			current    string
			started    sql.NullTime
		)
		err := tx.QueryRowContext(ctx, `SELECT e.type, oi.status, oi.started_at
			FROM orchestration_instance oi JOIN engine e ON e.id = oi.engine_id
			WHERE oi.id = $1 AND oi.is_active FOR UPDATE OF oi`, instanceID).Scan(&engineType, &current, &started)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("orchestration instance %s: %w", instanceID, runledger.ErrNotFound)
		}
		if err != nil {
			return err
		}
		md, err := json.Marshal(map[string]string{MetadataState: word, MetadataStateAt: at.Format(time.RFC3339)})
		if err != nil {
			return err
		}
		status, ok := MapState(engineType, word, c.opts.JenkinsUnstableFails)
		from := runledger.ExecutionStatus(current)
		if !ok || status == from {
			if !ok {
				unknown = &runledger.InvalidError{Field: "word",
					Reason: fmt.Sprintf("unknown state %q for engine type %q; recorded in instance_metadata, status left %s", word, engineType, current)}
			}
			_, err := tx.ExecContext(ctx, `UPDATE orchestration_instance
				SET instance_metadata = coalesce(instance_metadata, '{}'::jsonb) || $2::jsonb, updated_by = $3
				WHERE id = $1`, instanceID, string(md), actor)
			return err
		}
		startedAt := started
		if status == runledger.StatusRunning && !started.Valid {
			startedAt = sql.NullTime{Time: at, Valid: true}
		}
		var (
			finishedAt sql.NullTime
			duration   sql.NullInt32
		)
		if status.Terminal() {
			finished := at
			if startedAt.Valid && finished.Before(startedAt.Time) {
				finished = startedAt.Time // an event that arrived out of order
			}
			finishedAt = sql.NullTime{Time: finished, Valid: true}
			if startedAt.Valid {
				secs := finished.Sub(startedAt.Time) / time.Second
				duration = sql.NullInt32{Int32: int32(min(secs, math.MaxInt32)), Valid: true}
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE orchestration_instance
			SET instance_metadata = coalesce(instance_metadata, '{}'::jsonb) || $2::jsonb,
				status = $3, started_at = $4, finished_at = $5, duration_seconds = $6, updated_by = $7
			WHERE id = $1`, instanceID, string(md), string(status), startedAt, finishedAt, duration, actor)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("execution: sync instance %s with %q: %w", instanceID, word, err)
	}
	inst, err := c.db.OrchestrationInstance.Get(ctx, instanceID)
	if err != nil {
		return nil, fmt.Errorf("execution: sync instance %s with %q: %w", instanceID, word, translate(ctx, err))
	}
	return inst, unknown
}
