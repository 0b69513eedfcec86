package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// printTable prints one row per primary and a total.
func printTable(w io.Writer, header string, s *sim, res *result, markdown bool) {
	cols := []string{"primary", "automations", "items", "attempts handled", "burn-down", "items/s", "server CPU µs/item", "maintenance leader"}
	var rows [][]string
	items, attempts, autos := 0, int64(0), 0
	var cpu time.Duration
	for i, c := range s.clusters {
		n := c.items(s.cfg.items)
		st := res.stats[i]
		items += n
		attempts += st.Claimed
		autos += len(c.autos)
		cpu += res.serverCPU[i]
		rows = append(rows, []string{c.name, fmt.Sprint(len(c.autos)), fmt.Sprint(n), fmt.Sprint(st.Claimed),
			res.took[i].Round(time.Millisecond).String(), rate(n, res.took[i]), perItem(res.serverCPU[i], n), fmt.Sprint(st.Leader)})
	}
	rows = append(rows, []string{"all", fmt.Sprint(autos), fmt.Sprint(items), fmt.Sprint(attempts),
		res.total.Round(time.Millisecond).String(), rate(items, res.total), perItem(cpu, items), "one per primary"})
	fmt.Fprintln(w, header)
	fmt.Fprintf(w, "client CPU (every runner and handler, this process): %s µs/item\n\n", perItem(res.clientCPU, items))
	if markdown {
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(cols, " | "), strings.Repeat(" --- |", len(cols)))
		for _, r := range rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
		}
		return
	}
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = len(c)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	for _, r := range append([][]string{cols}, rows...) {
		for i, c := range r {
			fmt.Fprintf(w, "%-*s  ", widths[i], c)
		}
		fmt.Fprintln(w)
	}
}

func rate(n int, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(n)/d.Seconds())
}

func perItem(d time.Duration, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(d.Microseconds())/float64(n))
}
