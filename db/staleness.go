package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/runledger/runledger/internal/dberr"
)

// Staleness tells how far what a server returns may lag its primary. On a
// primary Standby is false and the rest is zero.
type Staleness struct {
	// Standby is set when the server is in recovery (a standby).
	Standby bool
	// LastReplayedAt is the commit time, on the primary, of the last
	// transaction the standby replayed; zero if it replayed none since it
	// started.
	LastReplayedAt time.Time
	// CaughtUp is set when the standby has replayed all the WAL it has
	// received. It cannot know of WAL not yet received: that is a network or
	// primary-side delay that only the primary's pg_stat_replication shows.
	CaughtUp bool
	// Lag is 0 when CaughtUp, else how long ago LastReplayedAt was: an
	// upper bound of how old the data is, as PostgreSQL's documentation
	// suggests measuring it (an idle primary makes LastReplayedAt old
	// without any lag, which is why CaughtUp counts as none).
	Lag time.Duration
}

// stalenessSQL reads a server's replay position in one statement; on a
// primary the replay functions return NULL.
const stalenessSQL = `SELECT pg_is_in_recovery(),
	pg_last_xact_replay_timestamp(),
	coalesce(pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn(), true),
	coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)::float8`

// Staleness reads how far d's server lags its primary. It writes nothing, so
// it works on a standby and on a read-only session.
func (d *DB) Staleness(ctx context.Context) (*Staleness, error) {
	var (
		s     Staleness
		at    sql.NullTime
		age   float64
		ready bool
	)
	if err := d.sql.QueryRowContext(ctx, stalenessSQL).Scan(&s.Standby, &at, &ready, &age); err != nil {
		return nil, fmt.Errorf("db: read replay position: %w", dberr.Translate(ctx, err))
	}
	if !s.Standby {
		return &Staleness{}, nil
	}
	s.CaughtUp = ready
	if at.Valid {
		s.LastReplayedAt = at.Time
		if !ready {
			s.Lag = max(time.Duration(age*float64(time.Second)), 0)
		}
	}
	return &s, nil
}

// String renders s for people: "primary", or "standby, caught up (last
// replayed transaction 10:41:02.123 UTC)", or "standby, replay lag 1.2s
// (...)".
func (s *Staleness) String() string {
	if s == nil || !s.Standby {
		return "primary"
	}
	state := "caught up"
	if !s.CaughtUp {
		state = "replay lag " + s.Lag.Round(time.Millisecond).String()
	}
	last := "no transaction replayed yet"
	if !s.LastReplayedAt.IsZero() {
		last = "last replayed transaction " + s.LastReplayedAt.UTC().Format("2006-01-02 15:04:05.000 UTC")
	}
	return fmt.Sprintf("standby, %s (%s)", state, last)
}

// stalenessJSON is the stable JSON shape of Staleness.
type stalenessJSON struct {
	Standby        bool       `json:"standby"`
	CaughtUp       bool       `json:"caught_up"`
	LagSeconds     float64    `json:"lag_seconds"`
	LastReplayedAt *time.Time `json:"last_replayed_at,omitempty"`
}

// MarshalJSON renders {"standby", "caught_up", "lag_seconds",
// "last_replayed_at" (RFC 3339, omitted when none)}.
func (s Staleness) MarshalJSON() ([]byte, error) {
	j := stalenessJSON{Standby: s.Standby, CaughtUp: s.CaughtUp, LagSeconds: s.Lag.Seconds()}
	if !s.LastReplayedAt.IsZero() {
		t := s.LastReplayedAt.UTC()
		j.LastReplayedAt = &t
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Staleness) UnmarshalJSON(b []byte) error {
	var j stalenessJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Staleness{Standby: j.Standby, CaughtUp: j.CaughtUp, Lag: time.Duration(j.LagSeconds * float64(time.Second))}
	if j.LastReplayedAt != nil {
		s.LastReplayedAt = *j.LastReplayedAt
	}
	return nil
}
