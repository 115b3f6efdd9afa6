package transform

import (
	"bytes"
	"fmt"
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"gopkg.in/yaml.v3"
)

// pred says which rows of a batch satisfy a predicate.
type pred func(rec arrow.RecordBatch) []bool

// compilePred checks a predicate against the columns and compiles it.
// A comparison with a missing value (null, or NaN) is false, != and
// not_in included (as in SQL); is_null is true for it.
func compilePred(p *parser, pr *Predicate, cols []col) (pred, error) {
	switch {
	case pr.Not != nil:
		q, err := compilePred(p, pr.Not, cols)
		if err != nil {
			return nil, err
		}
		return func(rec arrow.RecordBatch) []bool {
			m := q(rec)
			for i := range m {
				m[i] = !m[i]
			}
			return m
		}, nil
	case pr.All != nil || pr.Any != nil:
		list, all := pr.All, true
		if pr.Any != nil {
			list, all = pr.Any, false
		}
		var qs []pred
		for _, x := range list {
			q, err := compilePred(p, x, cols)
			if err != nil {
				return nil, err
			}
			qs = append(qs, q)
		}
		return func(rec arrow.RecordBatch) []bool {
			m := qs[0](rec)
			for _, q := range qs[1:] {
				o := q(rec)
				for i := range m {
					if all {
						m[i] = m[i] && o[i]
					} else {
						m[i] = m[i] || o[i]
					}
				}
			}
			return m
		}, nil
	}
	j := indexOf(cols, pr.Column.Name)
	if j < 0 {
		return nil, p.errf(pr.Column.At, "no column %q here (the columns here: %s)", pr.Column.Name, colNames(cols))
	}
	k := cols[j].K
	test, err := leaf(pr.Op, k, pr.Value)
	if err != nil {
		f := Field{Path: strings.TrimSuffix(pr.Column.At.Path, ".column") + ".value", Line: pr.At.Line}
		if pr.Value != nil {
			f.Line = pr.Value.Line
		}
		return nil, p.errf(f, "column %q is %s: %v", pr.Column.Name, k, err)
	}
	return func(rec arrow.RecordBatch) []bool {
		c := view(rec.Column(j))
		m := make([]bool, c.n)
		for i := range m {
			m[i] = test(&c, i)
		}
		return m
	}, nil
}

// leaf compiles column op value for a column of kind k.
func leaf(op string, k kind, v *yaml.Node) (func(c *column, i int) bool, error) {
	switch op {
	case "is_null":
		return func(c *column, i int) bool { return c.missing(i) }, nil
	case "not_null":
		return func(c *column, i int) bool { return !c.missing(i) }, nil
	}
	var vals []*yaml.Node
	if v.Kind == yaml.SequenceNode {
		for _, x := range v.Content {
			vals = append(vals, deref(x))
		}
	} else {
		vals = []*yaml.Node{v}
	}
	if k == kBool && op != "==" && op != "!=" && op != "in" && op != "not_in" {
		return nil, fmt.Errorf("%s does not order booleans (==, !=, in, not_in)", op)
	}
	// cmp compares row i with value number n: -1, 0, 1.
	var cmp func(c *column, i, n int) int
	switch k {
	case kInt, kTime:
		ints := make([]int64, len(vals))
		flts := make([]float64, len(vals))
		allInt := true
		for n, x := range vals {
			s, err := valueOf(x, k)
			if err != nil && k == kInt {
				f, ferr := valueOf(x, kFloat)
				if ferr != nil {
					return nil, err
				}
				allInt, flts[n] = false, f.f
				continue
			}
			if err != nil {
				return nil, err
			}
			ints[n], flts[n] = s.i, float64(s.i)
		}
		if allInt {
			cmp = func(c *column, i, n int) int { return cmpInt(c.ints[i], ints[n]) }
		} else {
			cmp = func(c *column, i, n int) int { return cmpFloat(float64(c.ints[i]), flts[n]) }
		}
	case kFloat:
		flts := make([]float64, len(vals))
		for n, x := range vals {
			s, err := valueOf(x, k)
			if err != nil {
				return nil, err
			}
			if math.IsNaN(s.f) {
				return nil, fmt.Errorf("NaN is a missing value: use is_null")
			}
			flts[n] = s.f
		}
		cmp = func(c *column, i, n int) int { return cmpFloat(c.flts[i], flts[n]) }
	case kBool:
		bs := make([]bool, len(vals))
		for n, x := range vals {
			s, err := valueOf(x, k)
			if err != nil {
				return nil, err
			}
			bs[n] = s.b
		}
		cmp = func(c *column, i, n int) int {
			if c.boolAt(i) == bs[n] {
				return 0
			}
			return 1
		}
	case kString:
		strs := make([][]byte, len(vals))
		for n, x := range vals {
			strs[n] = []byte(x.Value)
		}
		cmp = func(c *column, i, n int) int { return bytes.Compare(c.str(i), strs[n]) }
	}
	var test func(c *column, i int) bool
	switch op {
	case "==":
		test = func(c *column, i int) bool { return cmp(c, i, 0) == 0 }
	case "!=":
		test = func(c *column, i int) bool { return cmp(c, i, 0) != 0 }
	case "<":
		test = func(c *column, i int) bool { return cmp(c, i, 0) < 0 }
	case "<=":
		test = func(c *column, i int) bool { return cmp(c, i, 0) <= 0 }
	case ">":
		test = func(c *column, i int) bool { return cmp(c, i, 0) > 0 }
	case ">=":
		test = func(c *column, i int) bool { return cmp(c, i, 0) >= 0 }
	case "between":
		test = func(c *column, i int) bool { return cmp(c, i, 0) >= 0 && cmp(c, i, 1) <= 0 }
	case "in", "not_in":
		want := op == "in"
		test = func(c *column, i int) bool {
			for n := range vals {
				if cmp(c, i, n) == 0 {
					return want
				}
			}
			return !want
		}
	default:
		return nil, fmt.Errorf("unknown op %q", op)
	}
	return func(c *column, i int) bool { return !c.missing(i) && test(c, i) }, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// predText writes a predicate back, for the plan.
func predText(p *Predicate) string {
	switch {
	case p.Not != nil:
		return "not (" + predText(p.Not) + ")"
	case p.All != nil || p.Any != nil:
		list, sep := p.All, " and "
		if p.Any != nil {
			list, sep = p.Any, " or "
		}
		var parts []string
		for _, q := range list {
			s := predText(q)
			if q.All != nil || q.Any != nil {
				s = "(" + s + ")"
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, sep)
	}
	s := p.Column.Name + " " + p.Op
	if p.Value == nil {
		return s
	}
	if p.Value.Kind == yaml.SequenceNode {
		var vs []string
		for _, x := range p.Value.Content {
			vs = append(vs, deref(x).Value)
		}
		return s + " [" + strings.Join(vs, ", ") + "]"
	}
	return s + " " + p.Value.Value
}
