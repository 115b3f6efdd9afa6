package transfer

import (
	"fmt"
	"path"
	"strings"
)

// filter decides which keys a transfer considers, from include and
// exclude globs (path.Match syntax, plus "**" for any number of
// directories). A pattern without "/" matches a key's last element, as
// rclone's and rsync's do; with "/" it matches the whole key. Excludes
// win over includes; with includes given, only matching keys are in.
type filter struct {
	include, exclude []string
}

func newFilter(include, exclude []string) (*filter, error) {
	for _, p := range append(append([]string{}, include...), exclude...) {
		if _, err := path.Match(strings.ReplaceAll(p, "**", "*"), ""); err != nil {
			return nil, fmt.Errorf("bad pattern %q: %w", p, err)
		}
	}
	return &filter{include: include, exclude: exclude}, nil
}

func (f *filter) allows(key string) bool {
	for _, p := range f.exclude {
		if globMatch(p, key) {
			return false
		}
	}
	if len(f.include) == 0 {
		return true
	}
	for _, p := range f.include {
		if globMatch(p, key) {
			return true
		}
	}
	return false
}

// globMatch matches key against pattern p (see filter).
func globMatch(p, key string) bool {
	if !strings.Contains(p, "/") {
		ok, _ := path.Match(p, path.Base(key))
		return ok
	}
	p = strings.TrimPrefix(p, "/")
	return matchParts(strings.Split(p, "/"), strings.Split(key, "/"))
}

func matchParts(pat, parts []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(parts); i++ {
				if matchParts(pat[1:], parts[i:]) {
					return true
				}
			}
			return false
		}
		if len(parts) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], parts[0]); !ok {
			return false
		}
		pat, parts = pat[1:], parts[1:]
	}
	return len(parts) == 0
}
