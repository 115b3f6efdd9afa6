package nn

import (
	"runtime"
	"sync"
)

// parallelFor splits [0, n) into contiguous chunks, one per core, and runs
// fn on each; work below minPerChunk items per chunk stays on this
// goroutine, where a goroutine's start-up would cost more than it saves.
func parallelFor(n, minPerChunk int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if minPerChunk < 1 {
		minPerChunk = 1
	}
	if max := n / minPerChunk; workers > max {
		workers = max
	}
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}
