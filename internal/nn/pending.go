package nn

// Placeholders until the layers land; the layers' author deletes this file.

import (
	"errors"
	"math/rand/v2"
)

func NewConv2D(name string, inC, outC, kernel, stride, padding int, init Init, rng *rand.Rand) Layer {
	panic("pending")
}
func NewPool2D(isMax bool, kernel, stride, padding int) Layer { panic("pending") }
func NewGlobalAvgPool() Layer                                 { panic("pending") }
func NewBatchNorm(name string, channels int, momentum, eps float64) Layer {
	panic("pending")
}
func NewDropout(rate float64) Layer { panic("pending") }
func NewFlatten() Layer             { panic("pending") }
func NewResidual(name string, in, out []int, body []Layer, rng *rand.Rand) (Layer, error) {
	return nil, errors.New("pending")
}
