package rollout

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseStrategy(t *testing.T) {
	m := time.Minute
	tests := []struct {
		in     string
		want   Strategy
		canon  string // String(); "" means the input itself
		nsteps int
	}{
		{"all-at-once", Strategy{Kind: KindAllAtOnce, Steps: []Step{{100, 0}}}, "", 1},
		{"all-at-once:90s", Strategy{Kind: KindAllAtOnce, Steps: []Step{{100, 90 * time.Second}}}, "all-at-once:1m30s", 1},
		{"all-at-once:1h0m0s", Strategy{Kind: KindAllAtOnce, Steps: []Step{{100, time.Hour}}}, "all-at-once:1h", 1},
		{"canary:10%:5m", Strategy{Kind: KindCanary, Steps: []Step{{10, 5 * m}, {100, 5 * m}}}, "", 2},
		{"canary:10:5m", Strategy{Kind: KindCanary, Steps: []Step{{10, 5 * m}, {100, 5 * m}}}, "canary:10%:5m", 2},
		{" canary:1%:0s ", Strategy{Kind: KindCanary, Steps: []Step{{1, 0}, {100, 0}}}, "canary:1%:0s", 2},
		{"linear:25%:2m", Strategy{Kind: KindLinear, Steps: []Step{{25, 2 * m}, {50, 2 * m}, {75, 2 * m}, {100, 2 * m}}}, "", 4},
		// 30 does not divide 100: the last step is the smaller 10 %.
		{"linear:30%:1m", Strategy{Kind: KindLinear, Steps: []Step{{30, m}, {60, m}, {90, m}, {100, m}}}, "", 4},
		{"linear:60%:1m", Strategy{Kind: KindLinear, Steps: []Step{{60, m}, {100, m}}}, "", 2},
		{"linear:1%:1s", Strategy{}, "", 100},
		{"rolling:2", Strategy{Kind: KindRolling, BatchSize: 2}, "", 0},
		{"rolling:1:30s", Strategy{Kind: KindRolling, BatchSize: 1, Bake: 30 * time.Second}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseStrategy(tt.in)
			if err != nil {
				t.Fatalf("ParseStrategy(%q): %v", tt.in, err)
			}
			if tt.want.Kind != "" && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseStrategy(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if len(got.Steps) != tt.nsteps {
				t.Errorf("%d steps, want %d", len(got.Steps), tt.nsteps)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			canon := tt.canon
			if canon == "" {
				canon = tt.in
			}
			if got.String() != canon {
				t.Errorf("String() = %q, want %q", got.String(), canon)
			}
			// The canonical form is what the controller stores: it must
			// read back as the same strategy.
			again, err := ParseStrategy(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("ParseStrategy(String()) = %+v, %v; want %+v", again, err, got)
			}
		})
	}
}

func TestParseStrategyErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty strategy: want all-at-once[:BAKE], canary:PCT%:BAKE"},
		{"   ", "empty strategy"},
		{"bogus", `unknown kind "bogus"`},
		{"Canary:10%:5m", `unknown kind "Canary"`},
		{"blue-green:10%", `unknown kind "blue-green"`},
		{"canary", "missing percentage and bake time"},
		{"canary:0%:5m", "percentage 0% out of range: want 1%..99%"},
		{"canary:150%", "percentage 150% out of range"},
		{"canary:100%:5m", "use all-at-once for 100%"},
		{"canary:-5%:5m", "percentage -5% out of range"},
		{"canary:10%", "missing bake time: want canary:PCT%:BAKE, e.g. canary:10%:5m"},
		{"canary:ten%:5m", `percentage "ten%" is not a whole number`},
		{"canary:10.5%:5m", `percentage "10.5%" is not a whole number`},
		{"canary:10%:5", `bake time "5" is not a duration like 30s, 5m or 1h30m`},
		{"canary:10%:", `bake time "" is not a duration`},
		{"canary:10%:-1m", "bake time -1m is negative"},
		{"canary:10%:5m:extra", "too many fields"},
		{"linear:0%:1m", "percentage 0% out of range"},
		{"linear:100%:1m", "use all-at-once"},
		{"linear:25%", "missing bake time: want linear:PCT%:BAKE"},
		{"all-at-once:soon", `bake time "soon" is not a duration`},
		{"all-at-once:5m:1m", "too many fields: want all-at-once[:BAKE]"},
		{"rolling", "missing batch size: want rolling:N[:BAKE]"},
		{"rolling:", "missing batch size"},
		{"rolling:0", `batch size "0" is not a whole number of replicas ≥ 1`},
		{"rolling:-1:1m", `batch size "-1"`},
		{"rolling:25%", `batch size "25%"`},
		{"rolling:1:1m:2", "too many fields"},
		{"rolling:1:x", `bake time "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := ParseStrategy(tt.in)
			if err == nil {
				t.Fatalf("ParseStrategy(%q) = %+v, want an error", tt.in, s)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseStrategy(%q) error %q, want it to contain %q", tt.in, err, tt.want)
			}
			// The error names what was given (or that it was empty).
			if in := strings.TrimSpace(tt.in); in != "" && !strings.Contains(err.Error(), in) {
				t.Errorf("error %q does not quote the input %q", err, in)
			}
		})
	}
}

func TestStrategyValidate(t *testing.T) {
	tests := []struct {
		name string
		s    Strategy
		want string
	}{
		{"zero", Strategy{}, "no strategy"},
		{"unknown", Strategy{Kind: "blue"}, `unknown strategy kind "blue"`},
		{"no steps", Strategy{Kind: KindCanary}, "no steps"},
		{"not rising", Strategy{Kind: KindLinear, Steps: []Step{{50, 0}, {50, 0}, {100, 0}}}, "step 2: green percentage 50 must rise above 50"},
		{"not ending at 100", Strategy{Kind: KindCanary, Steps: []Step{{10, 0}, {90, 0}}}, "ends at 90%"},
		{"above 100", Strategy{Kind: KindCanary, Steps: []Step{{10, 0}, {110, 0}}}, "at most 100"},
		{"negative bake", Strategy{Kind: KindAllAtOnce, Steps: []Step{{100, -time.Second}}}, "negative bake"},
		{"rolling batch 0", Strategy{Kind: KindRolling}, "batch size 0"},
		{"rolling negative bake", Strategy{Kind: KindRolling, BatchSize: 1, Bake: -1}, "negative bake"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// Hand-made steps that no strategy string describes are still shown,
// rather than silently as the canary they are not.
func TestStringOfHandMadeSteps(t *testing.T) {
	s := Strategy{Kind: KindCanary, Steps: []Step{{5, time.Minute}, {50, time.Minute}, {100, 0}}}
	if got, want := s.String(), "canary[5%/1m,50%/1m,100%/0s]"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 30 * time.Second: "30s", 5 * time.Minute: "5m", 90 * time.Second: "1m30s",
		time.Hour: "1h", 90 * time.Minute: "1h30m", time.Hour + time.Second: "1h0m1s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
