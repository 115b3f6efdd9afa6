package registry

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Filter is the set of model versions a multi-model endpoint (or
// `hpcml serve --multi-model --models`) serves: a comma list of terms,
// each NAME (every version of the model), NAME:VERSION (that version) or
// PREFIX* (every version of every model whose name starts with PREFIX; a
// lone * is every model). Aliases are not terms: they move, and a
// filter says what may be served, not what is.
type Filter struct {
	terms []filterTerm
}

type filterTerm struct {
	name    string // the name, or the prefix when prefix is set
	version int    // 0: any
	prefix  bool
}

// MaxFilterTerms bounds a filter, which is checked on every request.
const MaxFilterTerms = 256

// ParseFilter reads a filter; its error names the term that is wrong.
func ParseFilter(s string) (Filter, error) {
	var f Filter
	if strings.TrimSpace(s) == "" {
		return f, fmt.Errorf("model filter %q is empty: want a comma list of NAME, NAME:VERSION or PREFIX*", s)
	}
	for raw := range strings.SplitSeq(s, ",") {
		t := strings.TrimSpace(raw)
		if t == "" {
			return Filter{}, fmt.Errorf("model filter %q has an empty term", s)
		}
		if p, ok := strings.CutSuffix(t, "*"); ok {
			if p != "" && !strings.ContainsFunc(p, func(r rune) bool { return !validNameRune(r) }) && validFirst(p) {
				f.terms = append(f.terms, filterTerm{name: p, prefix: true})
				continue
			}
			if p == "" {
				f.terms = append(f.terms, filterTerm{prefix: true})
				continue
			}
			return Filter{}, fmt.Errorf("model filter term %q: a prefix takes the characters of a model name (a-z, 0-9, '.', '_', '-') before the *", t)
		}
		ref, err := ParseRef(t)
		if err != nil {
			return Filter{}, fmt.Errorf("model filter term %q: %w", t, err)
		}
		if ref.Alias != "" {
			return Filter{}, fmt.Errorf("model filter term %q: aliases move, so a filter takes NAME, NAME:VERSION or PREFIX*, not NAME:ALIAS", t)
		}
		if strings.HasSuffix(t, ":"+Latest) {
			return Filter{}, fmt.Errorf("model filter term %q: NAME already means every version; drop :%s", t, Latest)
		}
		f.terms = append(f.terms, filterTerm{name: ref.Name, version: ref.Version})
	}
	if len(f.terms) > MaxFilterTerms {
		return Filter{}, fmt.Errorf("model filter has %d terms; at most %d (use PREFIX*)", len(f.terms), MaxFilterTerms)
	}
	return f, nil
}

func validNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

func validFirst(p string) bool { return p[0] >= 'a' && p[0] <= 'z' || p[0] >= '0' && p[0] <= '9' }

// IsZero reports a filter that was never parsed (it matches everything).
func (f Filter) IsZero() bool { return len(f.terms) == 0 }

// Match reports whether version v of model name is in the filter. The
// zero Filter matches everything.
func (f Filter) Match(name string, v int) bool {
	if len(f.terms) == 0 {
		return true
	}
	for _, t := range f.terms {
		switch {
		case t.prefix:
			if strings.HasPrefix(name, t.name) {
				return true
			}
		case t.name == name && (t.version == 0 || t.version == v):
			return true
		}
	}
	return false
}

// Pinned lists the versions of model name that the filter names one by
// one, highest first, when no term takes every version of it (nil
// otherwise): a request for NAME alone then means the highest of these,
// not the registry's latest, which the filter may not allow.
func (f Filter) Pinned(name string) []int {
	if len(f.terms) == 0 {
		return nil
	}
	var out []int
	for _, t := range f.terms {
		switch {
		case t.prefix && strings.HasPrefix(name, t.name), !t.prefix && t.name == name && t.version == 0:
			return nil
		case !t.prefix && t.name == name:
			out = append(out, t.version)
		}
	}
	slices.Sort(out)
	slices.Reverse(out)
	return slices.Compact(out)
}

// String is the filter as ParseFilter reads it.
func (f Filter) String() string {
	parts := make([]string, len(f.terms))
	for i, t := range f.terms {
		switch {
		case t.prefix:
			parts[i] = t.name + "*"
		case t.version > 0:
			parts[i] = t.name + ":" + strconv.Itoa(t.version)
		default:
			parts[i] = t.name
		}
	}
	return strings.Join(parts, ",")
}
