package transfer

import (
	"strings"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, key string
		want         bool
	}{
		// No "/": the last element of the key.
		{"*.bin", "a.bin", true},
		{"*.bin", "sub/deep/a.bin", true},
		{"*.bin", "a.bin.txt", false},
		{"*.bin", "bin", false},
		{"a?.txt", "dir/ab.txt", true},
		{"[ab].txt", "c.txt", false},
		// With "/": the whole key.
		{"sub/**", "sub/a", true},
		{"sub/**", "sub/x/y/z.bin", true},
		{"sub/**", "sub", true}, // ** matches zero elements too
		{"sub/**", "other/sub/a", false},
		{"sub/**", "subway/a", false},
		{"**/x.txt", "x.txt", true},
		{"**/x.txt", "a/x.txt", true},
		{"**/x.txt", "a/b/c/x.txt", true},
		{"**/x.txt", "a/y.txt", false},
		{"**/x.txt", "a/xx.txt", false},
		{"sub/*.bin", "sub/a.bin", true},
		{"sub/*.bin", "sub/d/a.bin", false},
		{"a/**/z", "a/z", true},
		{"a/**/z", "a/b/c/z", true},
		{"a/**/z", "a/b/c/y", false},
		{"/sub/*", "sub/a", true}, // a leading slash anchors at the root
		{"sub/*", "sub/a/b", false},
	} {
		if got := globMatch(tc.pattern, tc.key); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.key, got, tc.want)
		}
	}
}

func TestFilter(t *testing.T) {
	for _, tc := range []struct {
		name             string
		include, exclude []string
		in, out          []string
	}{
		{name: "nothing given lets everything in", in: []string{"a", "b/c.bin", "x/y/z"}},
		{name: "include only", include: []string{"*.bin"},
			in: []string{"a.bin", "d/b.bin"}, out: []string{"a.txt", "bin", "d/c.txt"}},
		{name: "exclude only", exclude: []string{"sub/**"},
			in: []string{"a", "x/sub/a", "subx/a"}, out: []string{"sub/a", "sub/b/c"}},
		{name: "exclude wins over include", include: []string{"*.bin"}, exclude: []string{"**/skip.bin", "tmp/**"},
			in: []string{"a.bin", "d/keep.bin"}, out: []string{"skip.bin", "d/skip.bin", "tmp/a.bin", "a.txt"}},
		{name: "several includes", include: []string{"*.txt", "data/**"},
			in: []string{"a.txt", "data/x.bin", "data/d/e"}, out: []string{"x.bin", "other/data/x.bin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := newFilter(tc.include, tc.exclude)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range tc.in {
				if !f.allows(k) {
					t.Errorf("%q should be in", k)
				}
			}
			for _, k := range tc.out {
				if f.allows(k) {
					t.Errorf("%q should be out", k)
				}
			}
		})
	}
}

func TestFilterBadPattern(t *testing.T) {
	for _, tc := range []struct{ include, exclude []string }{
		{include: []string{"[a"}},
		{exclude: []string{"ok", "sub/[z"}},
	} {
		_, err := newFilter(tc.include, tc.exclude)
		if err == nil || !strings.Contains(err.Error(), "bad pattern") {
			t.Errorf("%v %v: error %v, want a bad pattern", tc.include, tc.exclude, err)
		}
	}
}
