package main

import (
	"fmt"
	"io"
	"time"

	"github.com/runledger/runledger/bench/internal/table"
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
	table.Write(w, cols, rows, markdown)
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
