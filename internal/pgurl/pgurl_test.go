package pgurl

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, dsn, want string
		wantErr         bool
	}{
		{name: "url", dsn: "postgres://bob:s3cret@db.example:6543/ledger?sslmode=disable", want: "db.example:6543/ledger"},
		{name: "url no port", dsn: "postgresql://bob@localhost/ledger", want: "localhost/ledger"},
		{name: "key value", dsn: "host=h port=1 dbname=d user=u password='s3cret x'", want: "h:1/d"},
		{name: "malformed url", dsn: "postgres://bob:s3cret@[bad/ledger", wantErr: true},
		{name: "malformed kv", dsn: "host=h password='s3cret", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			info, err := Parse(tt.dsn)
			if tt.wantErr {
				require.ErrorIs(t, err, ErrMalformed)
				require.NotContains(t, err.Error(), "s3cret")
				require.Equal(t, "(malformed connection string)", Describe(tt.dsn))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, info.String())
			require.NotContains(t, Describe(tt.dsn), "s3cret")
		})
	}
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	got, err := WithDatabase("postgres://u:p@h:1/old?sslmode=disable", "new")
	require.NoError(t, err)
	require.Equal(t, "postgres://u:p@h:1/new?sslmode=disable", got)

	got, err = WithDatabase("host=h dbname=old password='a b'", "new")
	require.NoError(t, err)
	info, err := Parse(got)
	require.NoError(t, err)
	require.Equal(t, "new", info.Database)
	require.Contains(t, got, "password='a b'")
}
