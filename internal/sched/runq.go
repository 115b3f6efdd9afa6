package sched

import (
	"cmp"
	"slices"
)

// runQueue holds the runnable jobs in scheduling order — higher queue
// priority first, then older (lower id) — kept sorted on insert, so that a
// pass does not sort thousands of waiting jobs every time a slot frees.
type runQueue struct {
	items []*entry
}

func compareEntries(a, b *entry) int {
	if a.prio != b.prio {
		return cmp.Compare(b.prio, a.prio)
	}
	return cmp.Compare(a.j.ID, b.j.ID)
}

func (q *runQueue) add(e *entry) {
	i, found := slices.BinarySearchFunc(q.items, e, compareEntries)
	if !found {
		q.items = slices.Insert(q.items, i, e)
	}
}

func (q *runQueue) remove(e *entry) {
	if i, found := slices.BinarySearchFunc(q.items, e, compareEntries); found {
		q.items = slices.Delete(q.items, i, i+1)
	}
}

// resort re-establishes the order after priorities changed.
func (q *runQueue) resort() { slices.SortFunc(q.items, compareEntries) }
