package job

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ParseArray reads a Slurm array expression — "0-99", "1,3,5-7",
// "0-15:4", each optionally ending in "%N" to run at most N at once — and
// returns the sorted, distinct indices and the throttle (0: no limit).
func ParseArray(expr string) (indices []int, throttle int, err error) {
	body := expr
	if i := strings.IndexByte(expr, '%'); i >= 0 {
		body = expr[:i]
		throttle, err = strconv.Atoi(expr[i+1:])
		if err != nil || throttle < 1 {
			return nil, 0, fmt.Errorf("%q: the %%N throttle must be a positive integer", expr)
		}
	}
	if body == "" {
		return nil, 0, fmt.Errorf("%q: no indices", expr)
	}
	seen := map[int]bool{}
	for _, part := range strings.Split(body, ",") {
		lo, hi, step, err := parseRange(part)
		if err != nil {
			return nil, 0, fmt.Errorf("%q: %v", expr, err)
		}
		for i := lo; i <= hi; i += step {
			if !seen[i] {
				seen[i] = true
				indices = append(indices, i)
			}
			if len(indices) > MaxArraySize {
				return nil, 0, fmt.Errorf("%q: more than %d tasks", expr, MaxArraySize)
			}
		}
	}
	sort.Ints(indices)
	return indices, throttle, nil
}

func parseRange(part string) (lo, hi, step int, err error) {
	step = 1
	if i := strings.IndexByte(part, ':'); i >= 0 {
		step, err = strconv.Atoi(part[i+1:])
		if err != nil || step < 1 {
			return 0, 0, 0, fmt.Errorf("bad step in %q", part)
		}
		part = part[:i]
	}
	a, b, isRange := strings.Cut(part, "-")
	if lo, err = parseIndex(a); err != nil {
		return 0, 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = parseIndex(b); err != nil {
			return 0, 0, 0, err
		}
	}
	if hi < lo {
		return 0, 0, 0, fmt.Errorf("range %q ends before it starts", part)
	}
	if hi-lo >= MaxArraySize*step {
		return 0, 0, 0, fmt.Errorf("range %q has more than %d tasks", part, MaxArraySize)
	}
	return lo, hi, step, nil
}

func parseIndex(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 4_000_000 {
		return 0, fmt.Errorf("%q is not an array index (0 to 4000000)", s)
	}
	return n, nil
}

// ParseDependencies reads Slurm's --dependency syntax:
// "afterok:12:13,afterany:14".
func ParseDependencies(expr string) ([]Dependency, error) {
	var deps []Dependency
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	for _, part := range strings.Split(expr, ",") {
		fields := strings.Split(part, ":")
		t := DependencyType(fields[0])
		switch t {
		case AfterOK, AfterAny, AfterNotOK:
		default:
			return nil, fmt.Errorf("dependency %q: type must be afterok, afterany or afternotok", part)
		}
		if len(fields) < 2 {
			return nil, fmt.Errorf("dependency %q: no job id", part)
		}
		for _, f := range fields[1:] {
			id, err := strconv.ParseInt(f, 10, 64)
			if err != nil || id <= 0 {
				return nil, fmt.Errorf("dependency %q: %q is not a job id", part, f)
			}
			deps = append(deps, Dependency{Type: t, JobID: id})
		}
	}
	return deps, nil
}
