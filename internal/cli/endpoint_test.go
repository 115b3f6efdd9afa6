package cli

import (
	"strconv"
	"testing"
)

func TestParseVariantFlag(t *testing.T) {
	for s, want := range map[string][3]string{
		"a=mlp:2:90":   {"a", "mlp:2", "90"},
		"b=mlp:3":      {"b", "mlp", "3"},
		"c=mlp:prod:0": {"c", "mlp:prod", "0"},
	} {
		name, ref, w, err := parseVariantFlag(s)
		if err != nil || name != want[0] || ref != want[1] || strconv.Itoa(w) != want[2] {
			t.Errorf("%q: %q %q %d %v", s, name, ref, w, err)
		}
	}
	for _, s := range []string{"mlp:2:90", "a=mlp", "a=mlp:2:x", "a=:3", "=mlp:1:2", "a=mlp:1:-1"} {
		if _, _, _, err := parseVariantFlag(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
