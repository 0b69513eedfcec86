package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// figure is the measured values of one quantity, one per repetition.
type figure []float64

func (f figure) median() float64 {
	if len(f) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(f))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// String is "median (min–max)".
func (f figure) String() string {
	if len(f) == 0 {
		return "—"
	}
	if len(f) == 1 {
		return human(f[0])
	}
	return fmt.Sprintf("%s (%s–%s)", human(f.median()), human(slices.Min(f)), human(slices.Max(f)))
}

// target is what a row must meet.
type target struct {
	kind  targetKind
	limit float64
}

type targetKind int

const (
	noTarget     targetKind = iota
	ratioAtLeast            // runledger / baseline >= limit (throughputs)
	ratioAtMost             // runledger / baseline <= limit (times)
	valueBelow              // runledger < limit, in the row's unit
)

func (t target) String() string {
	switch t.kind {
	case ratioAtLeast:
		return fmt.Sprintf(">= %.2gx", t.limit)
	case ratioAtMost:
		return fmt.Sprintf("<= %.2gx", t.limit)
	case valueBelow:
		return fmt.Sprintf("< %g", t.limit)
	}
	return "—"
}

// row is one line of the table.
type row struct {
	workload string
	ours     figure // runledger
	base     figure // the baseline (nil when there is none)
	unit     string
	target   target
}

func (r row) ratio() float64 {
	if len(r.base) == 0 {
		return math.NaN()
	}
	return r.ours.median() / r.base.median()
}

// ok is "yes", "NO" or "—" (no target).
func (r row) ok() string {
	var pass bool
	switch r.target.kind {
	case ratioAtLeast:
		pass = r.ratio() >= r.target.limit
	case ratioAtMost:
		pass = r.ratio() <= r.target.limit
	case valueBelow:
		pass = r.ours.median() < r.target.limit
	default:
		return "—"
	}
	if pass {
		return "yes"
	}
	return "NO"
}

func (r row) cells() []string {
	ratio := "—"
	if v := r.ratio(); !math.IsNaN(v) {
		ratio = fmt.Sprintf("%.2fx", v)
		if v < 0.1 {
			ratio = fmt.Sprintf("%.3fx", v)
		}
	}
	target := r.target.String()
	if r.target.kind == valueBelow {
		target += " " + r.unit
	}
	return []string{r.workload, r.ours.String(), r.base.String(), ratio, r.unit, target, r.ok()}
}

var columns = []string{"workload", "runledger", "baseline", "ratio", "unit", "target", "ok?"}

// printTable writes the header lines and the rows, aligned or as Markdown.
func printTable(w io.Writer, header string, rows []row, markdown bool) {
	if markdown {
		for _, l := range strings.Split(header, "\n") {
			fmt.Fprintf(w, "    %s\n", l)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "| %s |\n", strings.Join(columns, " | "))
		fmt.Fprintf(w, "|%s\n", strings.Repeat(" --- |", len(columns)))
		for _, r := range rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(r.cells(), " | "))
		}
		return
	}
	fmt.Fprintln(w, header)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(columns, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r.cells(), "\t"))
	}
	tw.Flush()
}

// human prints a number with three significant digits and a k/M suffix.
func human(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v):
		return "—"
	case a >= 1e6:
		return sig(v/1e6) + "M"
	case a >= 1e4:
		return sig(v/1e3) + "k"
	default:
		return sig(v)
	}
}

func sig(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
