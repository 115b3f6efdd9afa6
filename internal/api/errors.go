package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/hpcml/hpcml/internal/backend"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/sched"
	"github.com/hpcml/hpcml/internal/store"
)

// errorBody is the error shape of ARCHITECTURE.md §3.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// apiError is an error with its HTTP status and code.
type apiError struct {
	status int
	code   string
	msg    string
	field  string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(code, msg string) error { return &apiError{http.StatusBadRequest, code, msg, ""} }
func notFound(msg string) error         { return &apiError{http.StatusNotFound, "not_found", msg, ""} }

// writeError maps err to a status and writes the JSON error.
func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	d := errorDetail{Code: "internal", Message: err.Error()}
	status := http.StatusInternalServerError
	var ae *apiError
	var fe *job.FieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		status, d.Code, d.Message, d.Field = ae.status, ae.code, ae.msg, ae.field
	case errors.As(err, &mbe):
		status, d.Code = http.StatusRequestEntityTooLarge, "too_large"
		d.Message = "request body is larger than the limit"
	case errors.As(err, &fe):
		status, d.Code, d.Message, d.Field = http.StatusBadRequest, "invalid", fe.Message, fe.Field
	case errors.Is(err, store.ErrNotFound), errors.Is(err, sched.ErrNotFound):
		status, d.Code = http.StatusNotFound, "not_found"
	case errors.Is(err, store.ErrExists), errors.Is(err, sched.ErrConflict):
		status, d.Code = http.StatusConflict, "conflict"
	case errors.Is(err, backend.ErrUnavailable):
		status, d.Code = http.StatusServiceUnavailable, "unavailable"
	case errors.Is(err, context.Canceled):
		// The client went away; there is nobody to tell.
		return
	default:
		log.Error("request failed", "err", err)
		d.Message = "internal error: " + err.Error()
	}
	writeJSON(w, status, errorBody{Error: d})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // commands like "a > b" stay readable; this is not HTML
	enc.Encode(v)
}
