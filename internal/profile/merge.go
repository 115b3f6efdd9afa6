package profile

import (
	"errors"
	"fmt"
)

// Merge folds another partial profile of the same schema, built with the
// same statistics options, into s. other is not modified. Exact statistics
// come out identical whatever the partitioning and merge order; see
// docs/profile.md for which are exact.
func (s *State) Merge(other *State) error {
	if other == nil {
		return errors.New("profile: merge: nil state")
	}
	if err := sameSchema(s.schema, other.schema); err != nil {
		return fmt.Errorf("profile: merge: schemas differ: %w", err)
	}
	if !s.opts.sameStats(other.opts) {
		return errors.New("profile: merge: states were built with different options")
	}
	s.rows += other.rows
	for i, c := range s.cols {
		c.merge(other.cols[i])
	}
	for i := range s.pairs {
		s.pairs[i].merge(other.pairs[i])
	}
	if s.dupX != nil {
		for k := range other.dupX {
			s.dupX[k] = struct{}{}
		}
	} else {
		s.dup.merge(other.dup)
	}
	s.sample.merge(other.sample)
	return nil
}

func (c *column) merge(o *column) {
	c.nulls += o.nulls
	switch c.kind {
	case kindNumeric:
		c.nan += o.nan
		c.posInf += o.posInf
		c.negInf += o.negInf
		c.zeros += o.zeros
		c.negatives += o.negatives
		c.min = min(c.min, o.min)
		c.max = max(c.max, o.max)
		c.mom.merge(o.mom)
		c.sum.merge(&o.sum)
		c.q.merge(o.q)
		c.dist.merge(o.dist)
	case kindTime:
		c.tmin = min(c.tmin, o.tmin)
		c.tmax = max(c.tmax, o.tmax)
		c.dist.merge(o.dist)
	case kindBool:
		c.trues += o.trues
		c.falses += o.falses
	case kindString:
		c.minLen = min(c.minLen, o.minLen)
		c.maxLen = max(c.maxLen, o.maxLen)
		c.totalLen += o.totalLen
		c.totalBytes += o.totalBytes
		if o.strMin != nil && (c.strMin == nil || string(o.strMin) < string(c.strMin)) {
			c.strMin = append(c.strMin[:0], o.strMin...)
		}
		if o.strMax != nil && (c.strMax == nil || string(o.strMax) > string(c.strMax)) {
			c.strMax = append(c.strMax[:0], o.strMax...)
		}
		c.ctr.merge(o.ctr)
	}
}
