package pgurl

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// EnvVars are the environment variables whose connection strings and
// passwords the tools read; NewRedactor's callers pass their values.
var EnvVars = []string{"DATABASE_URL", "DATABASE_READ_URL", "TEST_DATABASE_URL", "PGPASSWORD"}

// Redactor removes passwords from text. It is built from everything a
// program was given that may hold one (its arguments, the values of
// EnvVars) and applied to everything the program prints: it is the one
// redaction path, so a message that quotes a connection string (a driver's
// parse error, say) never shows its password, whether or not the string was
// well formed.
type Redactor struct {
	secrets []string // longest first
	short   []string // passwords too short to replace everywhere: only in context
}

// Mask replaces a password.
const Mask = "xxxxx"

// minSecret is the shortest password replaced wherever it appears; shorter
// ones are replaced only where they follow ':' or "password=".
const minSecret = 4

// NewRedactor returns a Redactor for the passwords in values: each value is
// read as a connection string (URL or key=value form, well formed or not)
// and, for a --flag=value argument, so is the part after the first '='.
func NewRedactor(values ...string) *Redactor {
	r := &Redactor{}
	for _, v := range values {
		for _, pw := range passwords(v) {
			r.AddPassword(pw)
		}
		if _, after, ok := strings.Cut(v, "="); ok && strings.HasPrefix(v, "-") {
			for _, pw := range passwords(after) {
				r.AddPassword(pw)
			}
		}
	}
	return r
}

// AddPassword adds a bare password (PGPASSWORD's value, say), in every form
// it may be printed.
func (r *Redactor) AddPassword(pw string) {
	for _, f := range forms(pw) {
		if f == "" || slices.Contains(r.secrets, f) || slices.Contains(r.short, f) {
			continue
		}
		if len(f) >= minSecret {
			r.secrets = append(r.secrets, f)
		} else {
			r.short = append(r.short, f)
		}
	}
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
}

// passwords returns the candidate passwords in a connection string, read as
// loosely as possible: the userinfo of a URL between the first ':' and the
// last (or first) '@', and every password= parameter of a URL query or a
// key=value string, quoted or not.
func passwords(s string) []string {
	var out []string
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		for _, at := range []int{strings.LastIndex(rest, "@"), strings.Index(rest, "@")} {
			if at < 0 {
				continue
			}
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				out = append(out, pw)
			}
		}
	}
	for rest := s; ; {
		i := strings.Index(rest, "password=")
		if i < 0 {
			break
		}
		rest = rest[i+len("password="):]
		if strings.HasPrefix(rest, "'") {
			var b strings.Builder
			j := 1
			for ; j < len(rest) && rest[j] != '\''; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
				}
				b.WriteByte(rest[j])
			}
			out = append(out, b.String(), rest[1:j])
			continue
		}
		end := strings.IndexAny(rest, " &#")
		if end < 0 {
			end = len(rest)
		}
		out = append(out, rest[:end])
	}
	return out
}

// forms returns pw as written and as it may be printed: unescaped, and
// escaped the ways net/url escapes.
func forms(pw string) []string {
	out := []string{pw}
	if u, err := url.PathUnescape(pw); err == nil {
		out = append(out, u)
	}
	if u, err := url.QueryUnescape(pw); err == nil {
		out = append(out, u)
	}
	for _, p := range append([]string(nil), out...) {
		out = append(out, url.PathEscape(p), url.QueryEscape(p),
			strings.TrimPrefix(url.UserPassword("u", p).String(), "u:"))
	}
	return out
}

// Redact returns s with every password replaced by Mask.
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	for _, pw := range r.secrets {
		if strings.Contains(s, pw) {
			s = strings.ReplaceAll(s, pw, Mask)
		}
	}
	for _, pw := range r.short {
		for _, ctx := range []string{":", "password=", "password='"} {
			s = strings.ReplaceAll(s, ctx+pw+"@", ctx+Mask+"@")
			s = strings.ReplaceAll(s, ctx+pw+" ", ctx+Mask+" ")
			s = strings.ReplaceAll(s, ctx+pw+"'", ctx+Mask+"'")
			s = strings.ReplaceAll(s, ctx+pw+"&", ctx+Mask+"&")
			if strings.HasSuffix(s, ctx+pw) {
				s = strings.TrimSuffix(s, pw) + Mask
			}
		}
	}
	return s
}

// Writer returns w with every write redacted. Each Write is redacted on its
// own: write whole lines or messages (fmt.Fprintf, slog handlers do).
func (r *Redactor) Writer(w io.Writer) io.Writer { return &writer{r: r, w: w} }

type writer struct {
	r *Redactor
	w io.Writer
}

// Unwrap returns the writer behind the redaction.
func (w *writer) Unwrap() io.Writer { return w.w }

func (w *writer) Write(p []byte) (int, error) {
	if _, err := io.WriteString(w.w, w.r.Redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Error returns err with its message redacted (nil for nil). errors.Is and
// errors.As still see the original chain.
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := r.Redact(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// Handler returns h with the message and every string, error and other
// value of each record redacted.
func (r *Redactor) Handler(h slog.Handler) slog.Handler { return &handler{r: r, h: h} }

type handler struct {
	r *Redactor
	h slog.Handler
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.Redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		attrs := v.Group()
		red := make([]any, len(attrs))
		for i, g := range attrs {
			red[i] = h.attr(g)
		}
		return slog.Group(a.Key, red...)
	}
	if v.Kind() == slog.KindString || v.Kind() == slog.KindAny {
		return slog.String(a.Key, h.r.Redact(v.String()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.attr(a)
	}
	return &handler{r: h.r, h: h.h.WithAttrs(red)}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{r: h.r, h: h.h.WithGroup(name)}
}
