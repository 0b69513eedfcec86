package payload_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runledger/runledger/internal/payload"
)

func TestAllValid(t *testing.T) {
	t.Parallel()
	schema, err := payload.Compile("item_schema", map[string]any{
		"type":       "object",
		"properties": map[string]any{"n": map[string]any{"type": "integer", "minimum": 0}},
		"required":   []any{"n"},
	})
	require.NoError(t, err)
	deep := strings.Repeat("[", payload.MaxDepth+1) + strings.Repeat("]", payload.MaxDepth+1)
	for _, tc := range []struct {
		name   string
		schema *payload.Schema
		raws   []string
		want   bool
	}{
		{name: "none", schema: schema, want: true},
		{name: "all valid", schema: schema, raws: []string{`{"n":1}`, `{"n": 2, "x": [1, {"y": null}]}`, `{"n":0}`}, want: true},
		{name: "one fails the schema", schema: schema, raws: []string{`{"n":1}`, `{"n":-1}`, `{"n":3}`}, want: false},
		{name: "one is not JSON", schema: schema, raws: []string{`{"n":1}`, `{"n":`}, want: false},
		{name: "two halves that would make one element", schema: schema, raws: []string{`[{"n":1}`, `{"n":2}]`}, want: false},
		{name: "one that would make two elements", schema: schema, raws: []string{`{"n":1},{"n":2}`}, want: false},
		{name: "nested too deep", schema: nil, raws: []string{deep}, want: false},
		{name: "no schema: well-formed is enough", schema: nil, raws: []string{`{"n":"x"}`, `[]`, `3`}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raws := make([][]byte, len(tc.raws))
			for i, r := range tc.raws {
				raws[i] = []byte(r)
			}
			require.Equal(t, tc.want, tc.schema.AllValid(raws))
			// AllValid agrees with validating one by one.
			each := true
			for _, r := range raws {
				if tc.schema.ValidateRawFunc(func() string { return "x" }, r) != nil || payload.CheckRaw(func() string { return "x" }, r) != nil {
					each = false
				}
			}
			require.Equal(t, tc.want, each)
		})
	}
}
