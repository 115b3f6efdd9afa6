package serve

import (
	"encoding/json"
	"testing"
)

// TestStringEscapesLikeEncodingJSON: the scanner decodes \u escapes,
// surrogate pairs and broken pairs as encoding/json does.
func TestStringEscapesLikeEncodingJSON(t *testing.T) {
	for _, lit := range []string{
		`"plain"`, `"a\nb\t\"c\\"`, `"\u00e9\u4e2d"`, `"\ud83d\ude00"`,
		`"\ud800\u0041"`, `"\ud800"`, `"x\udc00y"`, `"\ud800\ud800\udc00"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatal(err)
		}
		s := &scanner{b: []byte(lit)}
		got, err := s.stringBytes()
		if err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		if string(got) != want {
			t.Errorf("%s: %q, encoding/json %q", lit, got, want)
		}
	}
}
