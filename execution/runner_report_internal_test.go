package execution

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFlushWait(t *testing.T) {
	t.Parallel()
	def := RunnerOptions{}.withDefaults()
	for _, tc := range []struct {
		name     string
		opts     RunnerOptions
		previous int
		want     time.Duration
	}{
		{"first batch", def, 0, 5 * time.Millisecond},
		{"quiet: the last flush was small", def, busyFlush - 1, 5 * time.Millisecond},
		{"busy: the last flush was large", def, busyFlush, 50 * time.Millisecond},
		{"busy: the last flush was full", def, def.FlushSize, 50 * time.Millisecond},
		{"custom interval", RunnerOptions{FlushInterval: 2 * time.Millisecond}.withDefaults(), 500, 20 * time.Millisecond},
		{"small FlushSize never counts as busy", RunnerOptions{FlushSize: 10}.withDefaults(), 10, 5 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, flushWait(tc.opts, tc.previous))
		})
	}
}
