package endpoint

import (
	"fmt"
	"regexp"
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
			if p == "" || prefixRE.MatchString(p) {
				f.terms = append(f.terms, filterTerm{name: p, prefix: true})
				continue
			}
			return Filter{}, fmt.Errorf("model filter term %q: a prefix takes the characters of a model name (a-z, 0-9, '.', '_', '-') before the *", t)
		}
		name, sel, hasVersion := strings.Cut(t, ":")
		if !modelRE.MatchString(name) {
			return Filter{}, fmt.Errorf("model filter term %q: model name %q: want 1-63 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit", t, name)
		}
		version := 0
		if hasVersion {
			n, err := strconv.Atoi(sel)
			switch {
			case sel == "latest":
				return Filter{}, fmt.Errorf("model filter term %q: NAME already means every version; drop :latest", t)
			case sel != "" && sel[0] >= 'a' && sel[0] <= 'z':
				return Filter{}, fmt.Errorf("model filter term %q: aliases move, so a filter takes NAME, NAME:VERSION or PREFIX*, not NAME:ALIAS", t)
			case err != nil || n < 1:
				return Filter{}, fmt.Errorf("model filter term %q: version %q is not a positive number", t, sel)
			}
			version = n
		}
		f.terms = append(f.terms, filterTerm{name: name, version: version})
	}
	if len(f.terms) > MaxFilterTerms {
		return Filter{}, fmt.Errorf("model filter has %d terms; at most %d (use PREFIX*)", len(f.terms), MaxFilterTerms)
	}
	return f, nil
}

// prefixRE is the start of a model name (modelRE without its length).
var prefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

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
