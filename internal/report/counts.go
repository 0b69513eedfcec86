package report

import (
	"fmt"
	"strings"

	"github.com/runledger/runledger"
)

// CountsLine says counts by status in one line, the way the CLI and the
// dashboard print them: "120 items: 115 succeeded, 5 failed" ("0 items"
// when empty), statuses in runledger.AllStatuses order.
func CountsLine[C ~map[runledger.ExecutionStatus]int64](c C) string {
	var parts []string
	var total int64
	for _, s := range runledger.AllStatuses {
		if n := c[s]; n != 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
			total += n
		}
	}
	if len(parts) == 0 {
		return "0 items"
	}
	return fmt.Sprintf("%d items: %s", total, strings.Join(parts, ", "))
}
