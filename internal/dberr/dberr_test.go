package dberr_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"testing"

	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/internal/dberr"
)

func TestTranslate(t *testing.T) {
	t.Parallel()
	secretDetail := "Key (name)=(top-secret-value) already exists."
	tests := []struct {
		name  string
		in    *pq.Error
		want  error
		field string // InvalidError.Field or ConflictError.Constraint
	}{
		{"unique", &pq.Error{Code: "23505", Constraint: "ix_automation_name_active", Detail: secretDetail}, runledger.ErrConflict, "ix_automation_name_active"},
		{"foreign key", &pq.Error{Code: "23503", Constraint: "batch_automation_batches", Detail: secretDetail}, runledger.ErrInvalid, "batch_automation_batches"},
		{"check", &pq.Error{Code: "23514", Constraint: "ck_attempt_count_nonnegative", Detail: secretDetail}, runledger.ErrInvalid, "ck_attempt_count_nonnegative"},
		{"not null", &pq.Error{Code: "23502", Table: "run", Column: "automation_id"}, runledger.ErrInvalid, "run.automation_id"},
		{"bad syntax", &pq.Error{Code: "22P02", Message: `invalid input syntax for type uuid: "top-secret-value"`}, runledger.ErrInvalid, ""},
		{"untranslatable", &pq.Error{Code: "22P05"}, runledger.ErrInvalid, ""},
		{"too long", &pq.Error{Code: "22001", Message: "value too long for type character varying(200)"}, runledger.ErrInvalid, ""},
		{"bad encoding", &pq.Error{Code: "22021"}, runledger.ErrInvalid, ""},
		{"transition", &pq.Error{Code: "P0001", Constraint: dberr.TransitionConstraint, Table: "run", Detail: "succeeded -> running"}, runledger.ErrIllegalTransition, ""},
		{"immutable", &pq.Error{Code: "P0001", Constraint: dberr.ImmutableConstraint, Table: "item_state_history", Message: "item_state_history is immutable: UPDATE refused"}, runledger.ErrImmutable, ""},
		{"serialization", &pq.Error{Code: "40001"}, runledger.ErrTransient, ""},
		{"deadlock", &pq.Error{Code: "40P01"}, runledger.ErrTransient, ""},
		{"lock not available", &pq.Error{Code: "55P03"}, runledger.ErrTransient, ""},
		{"statement timeout", &pq.Error{Code: "57014"}, runledger.ErrTransient, ""},
		{"admin shutdown", &pq.Error{Code: "57P01"}, runledger.ErrUnavailable, ""},
		{"connection failure", &pq.Error{Code: "08006"}, runledger.ErrUnavailable, ""},
		{"connection does not exist", &pq.Error{Code: "08003"}, runledger.ErrUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wrapped := fmt.Errorf("ent: constraint failed: %w", tt.in)
			got := dberr.Translate(context.Background(), wrapped)
			require.ErrorIs(t, got, tt.want)
			var pqErr *pq.Error
			require.ErrorAs(t, got, &pqErr, "still unwraps to the driver error")
			require.Same(t, tt.in, pqErr)
			require.NotContains(t, got.Error(), "top-secret-value")
			var ie *runledger.InvalidError
			if tt.field != "" && errors.As(got, &ie) {
				require.Equal(t, tt.field, ie.Field)
			}
			var ce *runledger.ConflictError
			if tt.field != "" && errors.As(got, &ce) {
				require.Equal(t, tt.field, ce.Constraint)
				require.Contains(t, got.Error(), tt.field)
			}
			require.True(t, dberr.Translated(got))
			transient := errors.Is(tt.want, runledger.ErrTransient)
			require.Equal(t, transient, errors.Is(got, runledger.ErrTransient), "ErrTransient exactly for what a retry may cure")
			require.NotErrorIs(t, got, runledger.ErrLeaseLost)
			require.Same(t, got, dberr.Translate(context.Background(), got), "translating twice changes nothing")
		})
	}
}

func TestTranslateTransitionCarriesStatuses(t *testing.T) {
	t.Parallel()
	err := dberr.Translate(context.Background(), &pq.Error{Code: "P0001", Constraint: dberr.TransitionConstraint, Table: "item_execution", Detail: "failed -> running"})
	var te *runledger.TransitionError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "item_execution", te.Table)
	require.Equal(t, runledger.StatusFailed, te.From)
	require.Equal(t, runledger.StatusRunning, te.To)
}

func TestTranslateContextAndConnection(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := dberr.Translate(ctx, &pq.Error{Code: "57014", Message: "canceling statement due to user request"})
	require.ErrorIs(t, got, context.Canceled, "a cancelled call returns the context's error")
	var pqErr *pq.Error
	require.ErrorAs(t, got, &pqErr)

	require.ErrorIs(t, dberr.Translate(context.Background(), driver.ErrBadConn), runledger.ErrUnavailable)
	require.ErrorIs(t, dberr.Translate(context.Background(), fmt.Errorf("x: %w", driver.ErrBadConn)), driver.ErrBadConn)
	other := errors.New("something else")
	require.Same(t, other, dberr.Translate(context.Background(), other))
	require.NoError(t, dberr.Translate(context.Background(), nil))
}

// TestTransientVocabulary: the worker-facing sentinels. Conflicts of
// concurrent transactions are transient (and still ErrStale, as before);
// a statement timeout is transient but the database is not unavailable;
// every ErrUnavailable is transient.
func TestTransientVocabulary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, in := range []*pq.Error{{Code: "40001"}, {Code: "40P01"}, {Code: "55P03"}} {
		code := string(in.Code)
		got := dberr.Translate(ctx, in)
		require.ErrorIs(t, got, runledger.ErrTransient, code)
		require.ErrorIs(t, got, runledger.ErrStale, code)
		require.NotErrorIs(t, got, runledger.ErrUnavailable, code)
		require.Contains(t, got.Error(), code)
	}
	timeout := dberr.Translate(ctx, &pq.Error{Code: "57014"})
	require.ErrorIs(t, timeout, runledger.ErrTransient)
	require.NotErrorIs(t, timeout, runledger.ErrUnavailable)
	require.NotErrorIs(t, timeout, runledger.ErrStale)
	require.ErrorIs(t, runledger.ErrUnavailable, runledger.ErrTransient)
	require.ErrorIs(t, fmt.Errorf("x: %w", runledger.ErrUnavailable), runledger.ErrTransient)
	require.NotErrorIs(t, runledger.ErrTransient, runledger.ErrUnavailable)
	require.NotErrorIs(t, runledger.ErrLeaseLost, runledger.ErrStale)
}
