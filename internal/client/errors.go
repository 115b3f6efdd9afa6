package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// APIError is a request the server refused: the documented
// {"error": {"code", "message", "field"}} body together with the HTTP status.
type APIError struct {
	Status  int
	Code    string
	Message string
	// Field names the offending input field, when there is one.
	Field string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.Status))
		if msg == "" {
			msg = fmt.Sprintf("HTTP status %d", e.Status)
		}
	}
	if e.Field != "" {
		return e.Field + ": " + msg
	}
	return msg
}

// IsNotFound reports whether err is the server saying the thing asked for
// does not exist.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// IsUnauthorized reports whether err is the server refusing the token.
func IsUnauthorized(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusUnauthorized
}

// maxErrorBytes bounds how much of an error body is read: error documents
// are small, and a proxy's HTML page need not be read whole.
const maxErrorBytes = 64 << 10

// decodeError turns a non-2xx response into an *APIError. A body that is
// not the documented JSON (a proxy, a server too old to know the route)
// still yields an APIError, with the body's first line as its message.
func decodeError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	ae := &APIError{Status: resp.StatusCode}
	var doc struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &doc) == nil && doc.Error != nil {
		ae.Code, ae.Message, ae.Field = doc.Error.Code, doc.Error.Message, doc.Error.Field
		return ae
	}
	ae.Code = fmt.Sprintf("http_%d", resp.StatusCode)
	line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	if line != "" {
		ae.Message = fmt.Sprintf("%s (HTTP %d)", line, resp.StatusCode)
	}
	return ae
}

// UnreachableError means no connection could be made to the server: it is
// not running, or the address is wrong. It is separate from APIError so
// that the CLI can say what to do about it.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("the server at %s is not reachable: %v", e.URL, rootCause(e.Err))
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// rootCause strips the *url.Error and *net.OpError wrapping that repeats
// the method, URL and address, leaving "connection refused".
func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// transportError classifies an error from http.Client.Do.
func (c *Client) transportError(req *http.Request, err error) error {
	// The caller's cancellation or deadline is reported as such, not as
	// an unreachable server.
	if ctxErr := req.Context().Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("%s %s: no answer from %s in time: %w", req.Method, req.URL.Path, c.BaseURL(), ctxErr)
		}
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, ctxErr)
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if (errors.As(err, &opErr) && opErr.Op == "dial") || errors.As(err, &dnsErr) {
		return &UnreachableError{URL: c.BaseURL(), Err: err}
	}
	return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
}
