package sched

import "sync"

// inbox is an unbounded FIFO of events for the scheduler loop. Unbounded
// so that a backend reporting from inside a scheduler call (as Recover may)
// can never deadlock against a full channel.
type inbox struct {
	mu     sync.Mutex
	items  []event
	signal chan struct{}
}

func newInbox() *inbox { return &inbox{signal: make(chan struct{}, 1)} }

func (b *inbox) push(e event) {
	b.mu.Lock()
	b.items = append(b.items, e)
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

// drain takes every queued event.
func (b *inbox) drain() []event {
	b.mu.Lock()
	defer b.mu.Unlock()
	items := b.items
	b.items = nil
	return items
}
