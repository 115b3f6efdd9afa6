//go:build !linux

package collective

import "errors"

// Elsewhere than on Linux (runTCP yields the CPU with sched_yield), TCP
// links take the two-goroutine path.
const tcpLoop = false

func (g *Group) runTCP([]float32, *plan) error { return errors.New("no TCP progress loop here") }
