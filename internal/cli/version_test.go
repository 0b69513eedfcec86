package cli

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVersionOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		info debug.BuildInfo
		want string
	}{
		{"go run", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "(devel) revision unknown"},
		{"no version", debug.BuildInfo{}, "(devel) revision unknown"},
		{"go install", debug.BuildInfo{Main: debug.Module{Version: "v0.3.0"}}, "v0.3.0 revision unknown"},
		{"go build in a checkout", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "dc6d6861"}, {Key: "vcs.time", Value: "2026-12-06T09:00:00Z"}, {Key: "vcs.modified", Value: "true"},
		}}, "(devel) revision dc6d6861 (2026-12-06T09:00:00Z) modified"},
		{"clean", debug.BuildInfo{Main: debug.Module{Version: "v1.0.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"},
		}}, "v1.0.0 revision abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, versionOf(&tc.info))
		})
	}
}
