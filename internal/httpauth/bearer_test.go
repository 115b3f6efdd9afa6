package httpauth

import (
	"net/http/httptest"
	"testing"
)

func TestBearer(t *testing.T) {
	for _, c := range []struct {
		header string
		valid  bool
	}{
		{"Bearer s3cret", true},
		{"bearer s3cret", true},
		{"BEARER   s3cret ", true},
		{"Bearer wrong", false},
		{"Basic s3cret", false},
		{"Bearer", false},
		{"Bearer ", false},
		{"s3cret", false},
		{"", false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		if got := Valid(r, "s3cret"); got != c.valid {
			t.Errorf("Authorization %q: valid %v, want %v", c.header, got, c.valid)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer ")
	if Valid(r, "") {
		t.Error("an empty token admitted a request when none is configured")
	}
}
