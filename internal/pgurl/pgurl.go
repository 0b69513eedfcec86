// Package pgurl reads and rewrites PostgreSQL connection strings (URLs such as
// postgres://user:pass@host:5432/db?sslmode=disable, or lib/pq's key=value
// form) without ever putting the password in an error or a description.
package pgurl

import (
	"errors"
	"net/url"
	"strings"
)

// DefaultServer is the local server the tools use when no URL is given.
const DefaultServer = "postgres://root@127.0.0.1:5432/postgres?sslmode=disable"

// ErrMalformed is returned for a connection string that cannot be read. The
// error never includes the string itself, which may hold a password.
var ErrMalformed = errors.New("pgurl: malformed connection string (expected postgres://user@host:port/database?sslmode=...)")

// Info is the part of a connection string that is safe to show.
type Info struct {
	Host     string
	Port     string
	Database string
	User     string
}

// String returns host:port/database, with no user and no password.
func (i Info) String() string {
	host := i.Host
	if host == "" {
		host = "localhost"
	}
	if i.Port != "" {
		host += ":" + i.Port
	}
	return host + "/" + i.Database
}

// Parse returns the safe parts of dsn.
func Parse(dsn string) (Info, error) {
	if isURL(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			return Info{}, ErrMalformed
		}
		info := Info{Host: u.Hostname(), Port: u.Port(), Database: strings.TrimPrefix(u.Path, "/")}
		if h := u.Query().Get("host"); h != "" && info.Host == "" {
			info.Host = h
		}
		if u.User != nil {
			info.User = u.User.Username()
		}
		return info, nil
	}
	kv, err := parseKV(dsn)
	if err != nil {
		return Info{}, err
	}
	return Info{Host: kv["host"], Port: kv["port"], Database: kv["dbname"], User: kv["user"]}, nil
}

// Describe returns host:port/database for dsn, or "(malformed connection
// string)"; it is safe to log.
func Describe(dsn string) string {
	info, err := Parse(dsn)
	if err != nil {
		return "(malformed connection string)"
	}
	return info.String()
}

// WithDatabase returns dsn pointed at database name, everything else kept.
func WithDatabase(dsn, name string) (string, error) {
	if isURL(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", ErrMalformed
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	kv, err := parseKV(dsn)
	if err != nil {
		return "", err
	}
	kv["dbname"] = name
	var b strings.Builder
	for k, v := range kv {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'")
	}
	return b.String(), nil
}

func isURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// parseKV reads lib/pq's key=value form: space-separated pairs, values
// optionally single-quoted with backslash escapes.
func parseKV(dsn string) (map[string]string, error) {
	out := map[string]string{}
	s := strings.TrimSpace(dsn)
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, ErrMalformed
		}
		key := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " ")
		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			s = s[1:]
			closed := false
			for i := 0; i < len(s); i++ {
				switch s[i] {
				case '\\':
					if i+1 < len(s) {
						i++
						val.WriteByte(s[i])
					}
				case '\'':
					closed = true
					s = s[i+1:]
				default:
					val.WriteByte(s[i])
				}
				if closed {
					break
				}
			}
			if !closed {
				return nil, ErrMalformed
			}
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			val.WriteString(s[:end])
			s = s[end:]
		}
		out[key] = val.String()
		s = strings.TrimLeft(s, " ")
	}
	return out, nil
}
