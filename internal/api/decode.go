package api

import (
	"encoding/json"
	"errors"
	"net/http"
)

// decodeJSON reads a request body holding one JSON object into v. Unknown
// fields are refused (a typo must not silently become a default), as is
// anything after the object. A body over the route's limit stays an
// *http.MaxBytesError (413); any other failure is a 400 whose message
// starts "malformed <what>".
func decodeJSON(r *http.Request, v any, what string) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return err
		}
		return badRequest("invalid", "malformed "+what+": "+err.Error())
	}
	if dec.More() {
		return badRequest("invalid", "malformed "+what+": trailing data after the JSON object")
	}
	return nil
}
