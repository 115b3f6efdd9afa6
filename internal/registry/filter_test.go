package registry

import (
	"slices"
	"strings"
	"testing"
)

func TestFilter(t *testing.T) {
	f, err := ParseFilter(" digits-*, iris:2,iris:3 ,mnist")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		v    int
		want bool
	}{
		{"digits-mlp", 7, true}, {"digits", 1, false}, {"iris", 2, true}, {"iris", 3, true}, {"iris", 1, false},
		{"mnist", 1, true}, {"mnist", 99, true}, {"other", 1, false},
	} {
		if got := f.Match(c.name, c.v); got != c.want {
			t.Errorf("Match(%s, %d) = %v, want %v", c.name, c.v, got, c.want)
		}
	}
	if got := f.Pinned("iris"); !slices.Equal(got, []int{3, 2}) {
		t.Errorf("Pinned(iris) = %v", got)
	}
	if got := f.Pinned("mnist"); got != nil {
		t.Errorf("Pinned(mnist) = %v, want nil (every version)", got)
	}
	if f.String() != "digits-*,iris:2,iris:3,mnist" {
		t.Errorf("String() = %q", f.String())
	}
	all, err := ParseFilter("*")
	if err != nil || !all.Match("anything", 1) {
		t.Errorf("* : %v", err)
	}
	for _, bad := range []struct{ in, want string }{
		{"", "empty"}, {"a,,b", "empty term"}, {"Bad", "model name"}, {"iris:prod", "aliases"},
		{"iris:latest", "drop :latest"}, {"iris:0", "not a positive number"}, {"x/y*", "prefix"}, {"-x*", "prefix"},
	} {
		if _, err := ParseFilter(bad.in); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseFilter(%q): %v, want an error with %q", bad.in, err, bad.want)
		}
	}
}
