package nn

import (
	"math"
	"testing"
)

func TestSchedules(t *testing.T) {
	cases := []struct {
		cfg  ScheduleConfig
		want map[int]float64 // step → learning rate
	}{
		{ScheduleConfig{LR: 0.3}, map[int]float64{0: 0.3, 1000: 0.3}},
		{ScheduleConfig{Name: "step", LR: 0.1, Gamma: 0.5, Every: 10}, map[int]float64{0: 0.1, 9: 0.1, 10: 0.05, 19: 0.05, 25: 0.025, 40: 0.00625}},
		{ScheduleConfig{Name: "cosine", LR: 1, MinLR: 0.1, Total: 100}, map[int]float64{
			0: 1, 25: 0.1 + 0.9*(1+math.Sqrt2/2)/2, 50: 0.55, 75: 0.1 + 0.9*(1-math.Sqrt2/2)/2, 100: 0.1, 150: 0.1}},
		{ScheduleConfig{Name: "constant", LR: 1, Warmup: 4}, map[int]float64{0: 0.25, 1: 0.5, 2: 0.75, 3: 1, 4: 1, 100: 1}},
		// Warm-up scales the underlying schedule, which already runs.
		{ScheduleConfig{Name: "cosine", LR: 2, Total: 10, Warmup: 5}, map[int]float64{
			0: 2 * (1 + math.Cos(math.Pi*0.0)) / 2 / 5, 4: 2 * (1 + math.Cos(math.Pi*0.4)) / 2, 5: 2 * (1 + math.Cos(math.Pi*0.5)) / 2, 10: 0}},
		{ScheduleConfig{Name: "step", LR: 1, Gamma: 0.1, Every: 3, Warmup: 2}, map[int]float64{0: 0.5, 1: 1, 2: 1, 3: 0.1}},
	}
	for _, c := range cases {
		s, err := NewSchedule(c.cfg)
		if err != nil {
			t.Fatalf("%+v: %v", c.cfg, err)
		}
		for step, want := range c.want {
			if got := s(step); math.Abs(got-want) > 1e-12 {
				t.Errorf("%+v: step %d: lr %g, want %g", c.cfg, step, got, want)
			}
		}
	}
}

func TestScheduleErrors(t *testing.T) {
	for _, cfg := range []ScheduleConfig{
		{LR: 0},
		{LR: -0.1},
		{LR: math.Inf(1)},
		{LR: math.NaN()},
		{LR: 0.1, Warmup: -1},
		{Name: "step", LR: 0.1, Gamma: 0.5},
		{Name: "step", LR: 0.1, Every: 10},
		{Name: "cosine", LR: 0.1},
		{Name: "linear", LR: 0.1},
	} {
		if _, err := NewSchedule(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
