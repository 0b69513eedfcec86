package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
)

// sessionCookie holds a page session: a random nonce and its signature.
const sessionCookie = "runledger_session"

// csrfField is the form field that carries the CSRF token.
const csrfField = "csrf"

// maxForm bounds a form or JSON body.
const maxForm = 64 << 10

// contentSecurityPolicy allows only the embedded script and stylesheet: no
// inline script or style, no framing, forms posting only here.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// secure wraps the routes with the security headers and the checks of
// Config: loopback Host, the ?token= exchange for a session cookie, the token
// for actions (and for reads off loopback), cross-origin and CSRF checks.
func (s *Server) secure(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.deny(w, r, http.StatusForbidden, "cross-site request refused")
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if s.cfg.Loopback && !loopbackHost(r.Host) {
			// A page on another site that resolves its name to 127.0.0.1
			// (DNS rebinding) must not read the dashboard.
			s.deny(w, r, http.StatusForbidden, "host not allowed: the dashboard answers only to a loopback host name")
			return
		}
		api := strings.HasPrefix(r.URL.Path, "/api/")
		safe := r.Method == http.MethodGet || r.Method == http.MethodHead
		if safe && !api && r.URL.Query().Has("token") {
			s.login(w, r)
			return
		}
		if safe {
			if s.cfg.Loopback || strings.HasPrefix(r.URL.Path, "/static/") || s.session(r) != "" || (api && s.bearerOK(r)) {
				next.ServeHTTP(w, r)
				return
			}
			s.deny(w, r, http.StatusUnauthorized, "a token is required: open the URL printed at start (with ?token=), or send Authorization: Bearer")
			return
		}
		if err := cop.Check(r); err != nil {
			s.deny(w, r, http.StatusForbidden, "cross-site request refused")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if api {
			if !s.bearerOK(r) {
				s.deny(w, r, http.StatusUnauthorized, "actions need the token: Authorization: Bearer TOKEN")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		nonce := s.session(r)
		if nonce == "" {
			s.deny(w, r, http.StatusUnauthorized, "actions need a session: open the URL printed at start (with ?token=) first")
			return
		}
		if err := r.ParseForm(); err != nil {
			s.deny(w, r, http.StatusBadRequest, "unreadable form")
			return
		}
		if !hmac.Equal([]byte(r.PostForm.Get(csrfField)), []byte(s.csrf(nonce))) {
			s.deny(w, r, http.StatusForbidden, "missing or wrong CSRF token: reload the page and try again")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// login exchanges ?token= for a session cookie and redirects to the same
// URL without the token, so that it stays out of the history and logs.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !s.tokenOK(r.URL.Query().Get("token")) {
		s.deny(w, r, http.StatusUnauthorized, "wrong token")
		return
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		s.deny(w, r, http.StatusServiceUnavailable, "no randomness for a session")
		return
	}
	n := hex.EncodeToString(nonce)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: n + "." + s.sign("session", n), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	u := *r.URL
	q := u.Query()
	q.Del("token")
	u.RawQuery = q.Encode()
	u.Scheme, u.Host = "", ""
	http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
}

// session returns the nonce of the request's valid session cookie, or "".
func (s *Server) session(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	n, sig, ok := strings.Cut(c.Value, ".")
	if !ok || n == "" || !hmac.Equal([]byte(sig), []byte(s.sign("session", n))) {
		return ""
	}
	return n
}

// csrf is the CSRF token of a session.
func (s *Server) csrf(nonce string) string { return s.sign("csrf", nonce) }

// csrfFor returns the CSRF token for the request's session, or "" without
// one (the page then shows how to get one instead of forms).
func (s *Server) csrfFor(r *http.Request) string {
	if n := s.session(r); n != "" {
		return s.csrf(n)
	}
	return ""
}

func (s *Server) sign(purpose, nonce string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(purpose + "|" + nonce))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Server) bearerOK(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && s.tokenOK(strings.TrimSpace(tok))
}

// deny answers a refused request: JSON under /api/, a page elsewhere.
func (s *Server) deny(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="runledger"`)
		}
		writeError(w, code, msg)
		return
	}
	s.pageError(w, r, code, msg)
}

// loopbackHost reports whether a Host header names a loopback host:
// localhost or a loopback IP address, with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
