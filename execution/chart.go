package execution

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/runledger/runledger"
)

// Defaults of Options.ChartSampleAbove and Options.ChartSampleTarget.
const (
	DefaultChartSampleAbove  = 2000
	DefaultChartSampleTarget = 1000
)

// ThroughputBucket counts the items that finished in one interval, by
// outcome (estimates when the chart is sampled).
type ThroughputBucket struct {
	Start     time.Time `json:"start"`
	Succeeded int64     `json:"succeeded"`
	Failed    int64     `json:"failed"` // failed or timed out
	Other     int64     `json:"other"`  // cancelled or skipped
}

// Total is the number of items finished in the bucket.
func (b ThroughputBucket) Total() int64 { return b.Succeeded + b.Failed + b.Other }

// DurationBin counts succeeded items whose duration (finished_at -
// started_at) lies in [From, To).
type DurationBin struct {
	From  time.Duration `json:"from_ns"`
	To    time.Duration `json:"to_ns"`
	Count int64         `json:"count"`
}

// Charts are a run's throughput over its life and the duration histogram of
// its succeeded items, aggregated in the database.
type Charts struct {
	RunID uuid.UUID `json:"run_id"`
	// Interval is the width of a throughput bucket.
	Interval   time.Duration      `json:"interval_ns"`
	Throughput []ThroughputBucket `json:"throughput"`
	Durations  []DurationBin      `json:"durations"`
	// Sampled tells that the charts were drawn from SampleItems of
	// TotalItems items and scaled up.
	Sampled     bool  `json:"sampled"`
	SampleItems int64 `json:"sample_items"`
	TotalItems  int64 `json:"total_items"`
}

// histogramBins is the number of bins of the duration histogram.
const histogramBins = 20

// niceIntervals are the throughput bucket widths Charts picks from: the
// smallest that gives at most maxBuckets buckets over the run's life.
var niceIntervals = []time.Duration{
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

const maxBuckets = 60

func pickInterval(life time.Duration) time.Duration {
	for _, iv := range niceIntervals {
		if life/iv < maxBuckets {
			return iv
		}
	}
	days := life/(maxBuckets*24*time.Hour) + 1
	return days * 24 * time.Hour
}

// Charts returns the run's throughput (items that reached a terminal status
// per interval, from item_state_history) and the duration histogram of its
// succeeded items. Both are aggregated in SQL; no per-item row leaves the
// database. A run with more than Options.ChartSampleAbove items is charted
// from a sample of about Options.ChartSampleTarget of them (TABLESAMPLE
// SYSTEM over item_execution, with a fixed seed so that a chart redrawn a
// second later draws from the same pages), and the counts are scaled up.
func (c *Client) Charts(ctx context.Context, runID uuid.UUID) (*Charts, error) {
	var (
		created       time.Time
		started, done sql.NullTime
		total         int64
		now           time.Time
	)
	err := c.read.SQL().QueryRowContext(ctx, `SELECT r.created_at, r.started_at, r.finished_at, now(),
			(SELECT coalesce(sum(delta), 0) FROM status_count WHERE run_id = r.id)
		FROM run r WHERE r.id = $1`, runID).Scan(&created, &started, &done, &now, &total)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("execution: run %s: %w", runID, runledger.ErrNotFound)
	}
	if err != nil {
		return nil, translate(ctx, err)
	}
	origin := created
	if started.Valid {
		origin = started.Time
	}
	end := now
	if done.Valid {
		end = done.Time
	}
	ch := &Charts{RunID: runID, Interval: pickInterval(end.Sub(origin)), TotalItems: total,
		Throughput: []ThroughputBucket{}, Durations: []DurationBin{}}

	// items is the run's item executions, or a sample of them.
	items := `SELECT id, status, started_at, finished_at FROM item_execution WHERE run_id = $1 AND $2::float4 >= 0`
	percent := float32(100)
	if total > c.opts.ChartSampleAbove {
		ch.Sampled = true
		percent = float32(100 * float64(c.opts.ChartSampleTarget) / float64(total))
		items = `SELECT id, status, started_at, finished_at FROM item_execution TABLESAMPLE SYSTEM ($2::float4) REPEATABLE (42) WHERE run_id = $1`
	}
	var sampled int64
	rows, err := c.read.SQL().QueryContext(ctx, `
		WITH s AS MATERIALIZED (`+items+`)
		SELECT NULL::timestamptz, 0::bigint, 0::bigint, 0::bigint, count(*) FROM s
		UNION ALL
		SELECT date_bin($3 * interval '1 microsecond', h.changed_at, $4::timestamptz),
			count(*) FILTER (WHERE h.new_status = 'succeeded'),
			count(*) FILTER (WHERE h.new_status IN ('failed', 'timed_out')),
			count(*) FILTER (WHERE h.new_status IN ('cancelled', 'skipped')),
			0
		FROM s CROSS JOIN LATERAL (
			-- OFFSET 0 keeps this a lookup per item through the history's
			-- (item_execution_id, changed_at) index, never a hash join over
			-- the whole history table.
			SELECT h.changed_at, h.new_status FROM item_state_history h
			WHERE h.item_execution_id = s.id
				AND h.new_status IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')
			OFFSET 0) h
		GROUP BY 1
		ORDER BY 1 NULLS FIRST`, runID, percent, ch.Interval.Microseconds(), origin)
	var raw []ThroughputBucket
	if err := each(ctx, rows, err, func(rows *sql.Rows) error {
		var (
			at sql.NullTime
			b  ThroughputBucket
			n  int64
		)
		if err := rows.Scan(&at, &b.Succeeded, &b.Failed, &b.Other, &n); err != nil {
			return err
		}
		if !at.Valid {
			sampled = n
			return nil
		}
		b.Start = at.Time
		raw = append(raw, b)
		return nil
	}); err != nil {
		return nil, err
	}
	ch.SampleItems = sampled
	scale := 1.0
	if ch.Sampled && sampled > 0 {
		scale = float64(total) / float64(sampled)
	}
	up := func(n int64) int64 { return int64(math.Round(float64(n) * scale)) }
	// Every interval from the run's start to its end gets a bucket, empty
	// ones too, so the chart's time axis is even.
	next := 0
	for t := origin.Truncate(0); !t.After(end); t = t.Add(ch.Interval) {
		b := ThroughputBucket{Start: t}
		for next < len(raw) && raw[next].Start.Before(t.Add(ch.Interval)) {
			b.Succeeded += up(raw[next].Succeeded)
			b.Failed += up(raw[next].Failed)
			b.Other += up(raw[next].Other)
			next++
		}
		ch.Throughput = append(ch.Throughput, b)
		if len(ch.Throughput) > 2*maxBuckets {
			break
		}
	}

	rows, err = c.read.SQL().QueryContext(ctx, `
		WITH s AS MATERIALIZED (`+items+`),
		d AS (SELECT extract(epoch FROM finished_at - started_at) * 1e6 AS us FROM s
			WHERE status = 'succeeded' AND started_at IS NOT NULL AND finished_at IS NOT NULL),
		r AS (SELECT min(us) AS lo, max(us) AS hi FROM d)
		SELECT r.lo, r.hi, CASE WHEN r.hi > r.lo THEN least(width_bucket(d.us, r.lo, r.hi, $3), $3) ELSE 1 END AS bin, count(*)
		FROM d CROSS JOIN r
		GROUP BY r.lo, r.hi, bin
		ORDER BY bin`, runID, percent, histogramBins)
	var lo, hi float64
	counts := map[int]int64{}
	if err := each(ctx, rows, err, func(rows *sql.Rows) error {
		var (
			bin int
			n   int64
		)
		if err := rows.Scan(&lo, &hi, &bin, &n); err != nil {
			return err
		}
		counts[bin] = up(n)
		return nil
	}); err != nil {
		return nil, err
	}
	if len(counts) > 0 {
		bins := histogramBins
		if hi <= lo {
			bins = 1
		}
		width := (hi - lo) / float64(bins)
		for i := 1; i <= bins; i++ {
			from := lo + float64(i-1)*width
			to := from + width
			if bins == 1 {
				to = hi + 1
			}
			ch.Durations = append(ch.Durations, DurationBin{
				From: time.Duration(from) * time.Microsecond, To: time.Duration(to) * time.Microsecond, Count: counts[i]})
		}
	}
	return ch, nil
}
