package endpoint

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

func TestSpecMultiModel(t *testing.T) {
	ok := Spec{MultiModel: &MultiModel{Models: "digits-*,iris:2"}, Variants: []Variant{{Name: "primary"}}}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	if v := ok.Variants[0]; v.Replicas != 1 || v.Weight != 1 || v.CPUs != 1 || v.Model != "" || v.Version != 0 {
		t.Fatalf("defaults of a multi-model variant: %+v", v)
	}
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{Spec{MultiModel: &MultiModel{Models: "a"}, Variants: []Variant{{Name: "primary", Model: "a", Version: 1}}}, "names no model"},
		{Spec{MultiModel: &MultiModel{Models: "a"}, Variants: []Variant{{Name: "a"}, {Name: "b"}}}, "exactly one variant"},
		{Spec{MultiModel: &MultiModel{Models: "a:prod"}, Variants: []Variant{{Name: "primary"}}}, "aliases"},
		{Spec{MultiModel: &MultiModel{Models: ""}, Variants: []Variant{{Name: "primary"}}}, "empty"},
		{Spec{MultiModel: &MultiModel{Models: "a", CacheBytes: -1}, Variants: []Variant{{Name: "primary"}}}, "cache_bytes"},
		{Spec{MultiModel: &MultiModel{Models: "a"}, Async: &Async{}, Variants: []Variant{{Name: "primary"}}}, "either async or multi-model"},
		{Spec{MultiModel: &MultiModel{Models: "a"}, Variants: []Variant{{Name: "primary", Replicas: 99}}}, "replicas"},
	} {
		if err := c.spec.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.spec, err, c.want)
		}
	}
}
