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

// Valid reports whether r carries want as its bearer token (SameToken).
func Valid(r *http.Request, want string) bool {
	tok, ok := BearerToken(r)
	return ok && SameToken(tok, want)
}

// SameToken compares a presented token with the expected one in constant
// time. An empty expected token admits no one.
func SameToken(presented, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(want)) == 1
}
