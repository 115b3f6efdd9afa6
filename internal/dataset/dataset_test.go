package dataset

import (
	"strings"
	"testing"
)

func TestValidateSource(t *testing.T) {
	obj := []Object{{Key: "a", Size: 1, SHA256: strings.Repeat("0", 64)}}
	for _, src := range []string{"s3://bkt/p/?region=x", "file:///data/p/", "/data/p"} {
		m := &Manifest{Source: src, Objects: obj}
		if err := m.Validate(); err != nil {
			t.Errorf("source %s: %v", src, err)
		}
	}
	for _, src := range []string{"https://example.org/data.csv", "http://127.0.0.1:8000/x"} {
		m := &Manifest{Source: src, Objects: obj}
		if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "cannot hold a dataset") {
			t.Errorf("source %s: %v", src, err)
		}
	}
}

// TestCheckSource: http(s) URLs cannot hold a dataset; a local dir whose
// name only begins like one, or any other URL, can.
func TestCheckSource(t *testing.T) {
	for src, refused := range map[string]bool{"http://h/x": true, "HTTPS://h/x/": true, "http:data": false,
		"/srv/http://x": false, "s3://b/p/": false, "file:///d": false, "data": false} {
		if err := CheckSource(src); (err != nil) != refused {
			t.Errorf("CheckSource(%q) = %v, want refused %v", src, err, refused)
		}
	}
}
