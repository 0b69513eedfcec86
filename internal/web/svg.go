package web

import (
	"fmt"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/execution"
	"github.com/runledger/runledger/internal/report"
)

// The charts and progress bars are SVG drawn on the server: geometry is
// computed here and the templates only print numbers and class names (the
// stylesheet colours them; no inline style, which the CSP forbids).

// segment is a part of a stacked bar, in percent of the bar's width.
type segment struct {
	Class string
	X, W  float64
	Label string
}

// barView is a progress bar: one segment per status, in lifecycle order.
type barView struct {
	Segments []segment
	Title    string
}

func progressBar(c execution.Counts) barView {
	b := barView{Title: report.CountsLine(c)}
	total := c.Total()
	if total == 0 {
		return b
	}
	x := 0.0
	for _, s := range runledger.AllStatuses {
		n := c[s]
		if n <= 0 {
			continue
		}
		w := float64(n) * 100 / float64(total)
		b.Segments = append(b.Segments, segment{Class: "st-" + string(s), X: x, W: w, Label: fmt.Sprintf("%d %s", n, s)})
		x += w
	}
	return b
}

// rect is a bar of a chart, in the chart's viewBox units.
type rect struct {
	X, Y, W, H float64
	Class      string
	Label      string
}

// chartView is a bar chart.
type chartView struct {
	Width, Height float64
	Bars          []rect
	Top           string // the value of the top of the y axis
	Left, Right   string // labels under the x axis
	Caption       string
	Empty         bool
}

const (
	chartW = 600
	chartH = 160
)

// throughputChart stacks, per interval, the items that succeeded, failed
// and ended otherwise.
func throughputChart(ch *execution.Charts) *chartView {
	v := &chartView{Width: chartW, Height: chartH, Caption: fmt.Sprintf("items finished per %s", roundDuration(ch.Interval))}
	var top int64
	for _, b := range ch.Throughput {
		top = max(top, b.Total())
	}
	if top == 0 || len(ch.Throughput) == 0 {
		v.Empty = true
		return v
	}
	v.Top = fmt.Sprint(top)
	w := float64(chartW) / float64(len(ch.Throughput))
	for i, b := range ch.Throughput {
		x := float64(i) * w
		y := float64(chartH)
		for _, part := range []struct {
			n     int64
			class string
			what  string
		}{{b.Succeeded, "st-succeeded", "succeeded"}, {b.Failed, "st-failed", "failed"}, {b.Other, "st-cancelled", "cancelled or skipped"}} {
			if part.n == 0 {
				continue
			}
			h := float64(part.n) * chartH / float64(top)
			y -= h
			v.Bars = append(v.Bars, rect{X: x, Y: y, W: max(w-1, 0.5), H: h, Class: part.class,
				Label: fmt.Sprintf("%s: %d %s", b.Start.UTC().Format("15:04:05.0"), part.n, part.what)})
		}
	}
	first, last := ch.Throughput[0].Start, ch.Throughput[len(ch.Throughput)-1].Start.Add(ch.Interval)
	v.Left, v.Right = first.UTC().Format("15:04:05"), last.UTC().Format("15:04:05")
	return v
}

// durationChart is the histogram of succeeded items' durations.
func durationChart(ch *execution.Charts) *chartView {
	v := &chartView{Width: chartW, Height: chartH, Caption: "succeeded items by duration"}
	var top int64
	for _, b := range ch.Durations {
		top = max(top, b.Count)
	}
	if top == 0 {
		v.Empty = true
		return v
	}
	v.Top = fmt.Sprint(top)
	w := float64(chartW) / float64(len(ch.Durations))
	for i, b := range ch.Durations {
		h := float64(b.Count) * chartH / float64(top)
		v.Bars = append(v.Bars, rect{X: float64(i) * w, Y: chartH - h, W: max(w-1, 0.5), H: h, Class: "st-succeeded",
			Label: fmt.Sprintf("%s – %s: %d items", roundDuration(b.From), roundDuration(b.To), b.Count)})
	}
	v.Left, v.Right = roundDuration(ch.Durations[0].From), roundDuration(ch.Durations[len(ch.Durations)-1].To)
	return v
}
