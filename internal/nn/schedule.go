package nn

import (
	"fmt"
	"math"
)

// ScheduleConfig describes a learning-rate schedule over optimiser steps:
//
//	constant  lr
//	step      lr × gamma^floor(step/every)
//	cosine    min_lr + (lr − min_lr)(1 + cos(π·step/total))/2
//
// with an optional linear warm-up from 0 over warmup steps in front.
type ScheduleConfig struct {
	Name   string  `json:"name"`
	LR     float64 `json:"lr"`
	Gamma  float64 `json:"gamma,omitempty"`
	Every  int     `json:"every,omitempty"`
	Total  int     `json:"total,omitempty"`
	MinLR  float64 `json:"min_lr,omitempty"`
	Warmup int     `json:"warmup,omitempty"`
}

// Schedule gives the learning rate for a step (0-based).
type Schedule func(step int) float64

// NewSchedule checks cfg and returns its schedule.
func NewSchedule(cfg ScheduleConfig) (Schedule, error) {
	if !(cfg.LR > 0) || math.IsInf(cfg.LR, 0) {
		return nil, fmt.Errorf("nn: learning rate %g must be > 0", cfg.LR)
	}
	if cfg.Warmup < 0 {
		return nil, fmt.Errorf("nn: warmup %d must be ≥ 0", cfg.Warmup)
	}
	var base Schedule
	switch cfg.Name {
	case "", "constant":
		base = func(int) float64 { return cfg.LR }
	case "step":
		if cfg.Every <= 0 || !(cfg.Gamma > 0) {
			return nil, fmt.Errorf("nn: the step schedule needs every > 0 and gamma > 0")
		}
		base = func(s int) float64 { return cfg.LR * math.Pow(cfg.Gamma, float64(s/cfg.Every)) }
	case "cosine":
		if cfg.Total <= 0 {
			return nil, fmt.Errorf("nn: the cosine schedule needs total > 0 steps")
		}
		base = func(s int) float64 {
			p := math.Min(float64(s)/float64(cfg.Total), 1)
			return cfg.MinLR + (cfg.LR-cfg.MinLR)*(1+math.Cos(math.Pi*p))/2
		}
	default:
		return nil, fmt.Errorf("nn: unknown schedule %q (want constant, step or cosine)", cfg.Name)
	}
	if cfg.Warmup == 0 {
		return base, nil
	}
	return func(s int) float64 {
		if s < cfg.Warmup {
			return base(s) * float64(s+1) / float64(cfg.Warmup)
		}
		return base(s)
	}, nil
}
