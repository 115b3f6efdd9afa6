// Package httpauth reads the bearer token every hpcml HTTP surface (the
// API, the dashboard, the endpoint gateway, `hpcml serve`) checks.
package httpauth

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// BearerToken is the token of r's "Authorization: Bearer <token>" header.
// The scheme is matched without regard to case, as RFC 9110 has it
// ("bearer x" is the same credential).
func BearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// Valid reports whether r carries want as its bearer token, comparing in
// constant time. An empty want admits no one.
func Valid(r *http.Request, want string) bool {
	tok, ok := BearerToken(r)
	return ok && want != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
}
