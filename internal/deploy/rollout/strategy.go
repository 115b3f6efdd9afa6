package rollout

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Strategy kinds.
const (
	KindAllAtOnce = "all-at-once"
	KindCanary    = "canary"
	KindLinear    = "linear"
	KindRolling   = "rolling"
)

// syntax is quoted in every parse error so that the user sees what is accepted.
const syntax = "all-at-once[:BAKE], canary:PCT%:BAKE, linear:PCT%:BAKE or rolling:N[:BAKE]"

// Strategy is how a deployment moves traffic from blue to green.
//
// The blue/green kinds (all-at-once, canary, linear) bring up a full green
// fleet beside blue, then move traffic through Steps, each held for its
// Bake time while the alarms watch green; the last step is always 100 %.
// Rolling replaces BatchSize replicas at a time (green up first, then as
// many blue down) and holds each batch for Bake.
type Strategy struct {
	Kind string
	// Steps are the traffic steps of the blue/green kinds (nil for rolling).
	Steps []Step
	// BatchSize and Bake are rolling's (zero for the other kinds).
	BatchSize int
	Bake      time.Duration
}

// Step is one traffic step: GreenPercent of the traffic goes to green for
// at least Bake, counted while the controller watches (see State.Watched).
type Step struct {
	GreenPercent int
	Bake         time.Duration
}

// ParseStrategy reads the --strategy flag:
//
//	all-at-once[:BAKE]  100 % to green at once, then BAKE (default 0: no bake)
//	canary:PCT%:BAKE    PCT % for BAKE, then 100 % for BAKE
//	linear:PCT%:BAKE    PCT %, 2·PCT %, …, 100 %, each for BAKE; when PCT does
//	                    not divide 100 the last step is smaller (30 % → 30, 60, 90, 100)
//	rolling:N[:BAKE]    N replicas at a time, each batch held for BAKE (default 0)
//
// PCT is an integer from 1 to 99 (the "%" may be left out); BAKE is a Go
// duration (30s, 5m, 1h30m), not negative.
func ParseStrategy(s string) (Strategy, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Strategy{}, fmt.Errorf("empty strategy: want %s", syntax)
	}
	f := strings.Split(s, ":")
	kind := f[0]
	// Fields are checked left to right before their number, so that
	// "canary:150%" is told about its percentage, the more useful error.
	switch kind {
	case KindAllAtOnce:
		if len(f) > 2 {
			return Strategy{}, fmt.Errorf("strategy %q: too many fields: want all-at-once[:BAKE]", s)
		}
		var bake time.Duration
		if len(f) == 2 {
			var err error
			if bake, err = parseBake(s, f[1]); err != nil {
				return Strategy{}, err
			}
		}
		return Strategy{Kind: kind, Steps: []Step{{100, bake}}}, nil
	case KindCanary, KindLinear:
		if len(f) > 3 {
			return Strategy{}, fmt.Errorf("strategy %q: too many fields: want %s:PCT%%:BAKE", s, kind)
		}
		if len(f) < 2 {
			return Strategy{}, fmt.Errorf("strategy %q: missing percentage and bake time: want %s:PCT%%:BAKE, e.g. %s:10%%:5m", s, kind, kind)
		}
		pct, err := parsePercent(s, f[1])
		if err != nil {
			return Strategy{}, err
		}
		if len(f) < 3 {
			return Strategy{}, fmt.Errorf("strategy %q: missing bake time: want %s:PCT%%:BAKE, e.g. %s:%d%%:5m", s, kind, kind, pct)
		}
		bake, err := parseBake(s, f[2])
		if err != nil {
			return Strategy{}, err
		}
		st := Strategy{Kind: kind}
		if kind == KindCanary {
			st.Steps = []Step{{pct, bake}, {100, bake}}
		} else {
			for p := pct; p < 100; p += pct {
				st.Steps = append(st.Steps, Step{p, bake})
			}
			st.Steps = append(st.Steps, Step{100, bake})
		}
		return st, nil
	case KindRolling:
		if len(f) > 3 {
			return Strategy{}, fmt.Errorf("strategy %q: too many fields: want rolling:N[:BAKE]", s)
		}
		if len(f) < 2 || f[1] == "" {
			return Strategy{}, fmt.Errorf("strategy %q: missing batch size: want rolling:N[:BAKE], e.g. rolling:1:30s", s)
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 1 {
			return Strategy{}, fmt.Errorf("strategy %q: batch size %q is not a whole number of replicas ≥ 1", s, f[1])
		}
		st := Strategy{Kind: kind, BatchSize: n}
		if len(f) == 3 {
			if st.Bake, err = parseBake(s, f[2]); err != nil {
				return Strategy{}, err
			}
		}
		return st, nil
	}
	return Strategy{}, fmt.Errorf("strategy %q: unknown kind %q: want %s", s, kind, syntax)
}

func parsePercent(s, f string) (int, error) {
	v := strings.TrimSuffix(strings.TrimSpace(f), "%")
	p, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("strategy %q: percentage %q is not a whole number like 10%%", s, f)
	}
	if p < 1 || p > 99 {
		// 100 % in one step is what all-at-once means; 0 % would never move.
		return 0, fmt.Errorf("strategy %q: percentage %d%% out of range: want 1%%..99%% (use all-at-once for 100%%)", s, p)
	}
	return p, nil
}

func parseBake(s, f string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(f))
	if err != nil {
		return 0, fmt.Errorf("strategy %q: bake time %q is not a duration like 30s, 5m or 1h30m", s, f)
	}
	if d < 0 {
		return 0, fmt.Errorf("strategy %q: bake time %s is negative", s, f)
	}
	return d, nil
}

// Validate checks a Strategy that was not made by ParseStrategy (or was
// decoded from storage): Next refuses to run one that does not pass.
func (s Strategy) Validate() error {
	switch s.Kind {
	case KindAllAtOnce, KindCanary, KindLinear:
		if len(s.Steps) == 0 {
			return fmt.Errorf("%s strategy has no steps", s.Kind)
		}
		prev := 0
		for i, st := range s.Steps {
			if st.GreenPercent <= prev || st.GreenPercent > 100 {
				return fmt.Errorf("%s strategy step %d: green percentage %d must rise above %d and be at most 100", s.Kind, i+1, st.GreenPercent, prev)
			}
			if st.Bake < 0 {
				return fmt.Errorf("%s strategy step %d: negative bake time %s", s.Kind, i+1, st.Bake)
			}
			prev = st.GreenPercent
		}
		if prev != 100 {
			return fmt.Errorf("%s strategy ends at %d%% green, not 100%%", s.Kind, prev)
		}
	case KindRolling:
		if s.BatchSize < 1 {
			return fmt.Errorf("rolling strategy: batch size %d must be at least 1", s.BatchSize)
		}
		if s.Bake < 0 {
			return fmt.Errorf("rolling strategy: negative bake time %s", s.Bake)
		}
	case "":
		return errors.New("no strategy")
	default:
		return fmt.Errorf("unknown strategy kind %q: want all-at-once, canary, linear or rolling", s.Kind)
	}
	return nil
}

// String is the strategy in the form ParseStrategy reads, with durations
// written short ("5m", not "5m0s"). A strategy with hand-made steps that
// no string describes is written as its kind followed by its steps.
func (s Strategy) String() string {
	switch s.Kind {
	case KindAllAtOnce:
		if len(s.Steps) == 1 && s.Steps[0].GreenPercent == 100 {
			if s.Steps[0].Bake == 0 {
				return KindAllAtOnce
			}
			return KindAllAtOnce + ":" + FormatDuration(s.Steps[0].Bake)
		}
	case KindCanary, KindLinear:
		if len(s.Steps) >= 2 {
			p, b := s.Steps[0].GreenPercent, s.Steps[0].Bake
			if c, err := ParseStrategy(fmt.Sprintf("%s:%d%%:%s", s.Kind, p, FormatDuration(b))); err == nil && sameSteps(c.Steps, s.Steps) {
				return fmt.Sprintf("%s:%d%%:%s", s.Kind, p, FormatDuration(b))
			}
		}
	case KindRolling:
		if s.Bake == 0 {
			return fmt.Sprintf("rolling:%d", s.BatchSize)
		}
		return fmt.Sprintf("rolling:%d:%s", s.BatchSize, FormatDuration(s.Bake))
	}
	parts := make([]string, len(s.Steps))
	for i, st := range s.Steps {
		parts[i] = fmt.Sprintf("%d%%/%s", st.GreenPercent, FormatDuration(st.Bake))
	}
	return fmt.Sprintf("%s[%s]", s.Kind, strings.Join(parts, ","))
}

func sameSteps(a, b []Step) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FormatDuration writes d as time.Duration.String does, without the
// trailing zero units ("5m" for 5m0s, "1h" for 1h0m0s).
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
