package dashboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"

	"github.com/hpcml/hpcml/internal/httpauth"
)

const (
	cookieName = "hpcml_session"
	// sessionLabel is what the session cookie MACs. The cookie is the same
	// for every browser and valid as long as the session key is; it proves
	// that its holder once knew the token without being the token.
	sessionLabel  = "hpcml-dashboard-session"
	sessionMaxAge = 30 * 24 * 60 * 60
	maxLoginForm  = 16 << 10
)

// SessionCookie is the cookie that logs a browser in to the dashboard:
// HMAC-SHA256(a.SessionKey(), "hpcml-dashboard-session"), hex-encoded.
// Tests and the server use it to log in without the form.
func SessionCookie(a Authenticator) *http.Cookie {
	return &http.Cookie{
		Name:     cookieName,
		Value:    hex.EncodeToString(sessionMAC(a.SessionKey())),
		Path:     "/",
		MaxAge:   sessionMaxAge,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	}
}

func sessionMAC(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sessionLabel))
	return m.Sum(nil)
}

// validSession reports whether a cookie value is the session MAC. An empty
// key would make the MAC a public constant, so it validates nothing.
func (h *handler) validSession(value string) bool {
	key := h.auth.SessionKey()
	if len(key) == 0 {
		return false
	}
	got, err := hex.DecodeString(value)
	if err != nil {
		return false
	}
	return hmac.Equal(got, sessionMAC(key))
}

// authenticated reports whether the request carries a valid session cookie
// or, as API clients do, a valid bearer token.
func (h *handler) authenticated(r *http.Request) bool {
	for _, c := range r.CookiesNamed(cookieName) {
		if h.validSession(c.Value) {
			return true
		}
	}
	if tok, ok := httpauth.BearerToken(r); ok {
		return h.auth.ValidToken(tok)
	}
	return false
}

func (h *handler) setSession(w http.ResponseWriter, r *http.Request) bool {
	if len(h.auth.SessionKey()) == 0 {
		h.log.Error("dashboard: the authenticator has no session key; browser logins are disabled")
		return false
	}
	c := SessionCookie(h.auth)
	c.Secure = r.TLS != nil
	http.SetCookie(w, c)
	return true
}

// requireAuth lets authenticated requests through. A valid ?token= (as in
// a link printed by `hpcml server`) logs the browser in and redirects to
// the same URL without the token, so it does not stay in the history.
// Pages redirect strangers to /login; fragments answer 401 so that the
// page's script can do so.
func (h *handler) requireAuth(next http.Handler, fragment bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query(); q.Has("token") {
			tok := q.Get("token")
			q.Del("token")
			clean := r.URL.EscapedPath()
			if enc := q.Encode(); enc != "" {
				clean += "?" + enc
			}
			clean = safeNext(clean)
			switch {
			case h.auth.ValidToken(tok) && h.setSession(w, r):
				http.Redirect(w, r, clean, http.StatusSeeOther)
				return
			case h.authenticated(r):
				http.Redirect(w, r, clean, http.StatusSeeOther)
				return
			case !fragment:
				http.Redirect(w, r, loginURL(clean, "token"), http.StatusSeeOther)
				return
			}
		}
		if !h.authenticated(r) {
			if fragment {
				w.Header().Set("Cache-Control", "no-store")
				http.Error(w, "not logged in", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, loginURL(safeNext(r.URL.RequestURI()), ""), http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func loginURL(next, errCode string) string {
	v := url.Values{}
	if next != "" && next != "/" {
		v.Set("next", next)
	}
	if errCode != "" {
		v.Set("error", errCode)
	}
	if len(v) == 0 {
		return "/login"
	}
	return "/login?" + v.Encode()
}

// safeNext keeps a redirect target on this server: a path, never a
// scheme, a host or a protocol-relative "//host".
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	if strings.HasPrefix(u.Path, "/login") {
		return "/"
	}
	return next
}

type loginView struct {
	Next   string
	Error  string
	Bounce bool // only reload the page (see loginPage)
}

func (h *handler) loginPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	next := safeNext(q.Get("next"))
	if q.Has("token") && h.auth.ValidToken(q.Get("token")) && h.setSession(w, r) {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if h.authenticated(r) {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	// A SameSite=Strict cookie is not sent when the navigation started on
	// another site (a link in a chat), so a logged-in user lands here. A
	// reload that this page starts is same-site and carries the cookie.
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		h.renderPage(w, r, http.StatusOK, &pageResult{Template: "login", Title: "Log in",
			Refresh: true, Content: loginView{Next: next, Bounce: true}}, false)
		return
	}
	v := loginView{Next: next}
	switch q.Get("error") {
	case "token":
		v.Error = "The token in the link is not valid."
	}
	h.renderPage(w, r, http.StatusOK, &pageResult{Template: "login", Title: "Log in", Content: v}, false)
}

func (h *handler) loginSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginForm)
	if err := r.ParseForm(); err != nil {
		h.errorPage(w, r, http.StatusBadRequest, "The login form could not be read.", false)
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	if tok != "" && h.auth.ValidToken(tok) {
		if !h.setSession(w, r) {
			h.errorPage(w, r, http.StatusInternalServerError, "Browser sessions are not configured on this server.", false)
			return
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	h.renderPage(w, r, http.StatusUnauthorized, &pageResult{Template: "login", Title: "Log in",
		Content: loginView{Next: next, Error: "That token is not valid."}}, false)
}
