// Package table prints the benchmark programs' result tables: as Markdown
// (for bench/RESULTS.md and the docs) or as aligned plain text.
package table

import (
	"fmt"
	"io"
	"strings"
)

// Write prints cols and rows to w, as a Markdown table when markdown is
// set, else as columns padded to their widest cell.
func Write(w io.Writer, cols []string, rows [][]string, markdown bool) {
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
