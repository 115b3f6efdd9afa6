package batchtransform

import (
	"context"
	"testing"
)

// BenchmarkWorker scores 100,000 CSV rows (one worker, the id joined),
// per op: the planning, every part and the commit.
func BenchmarkWorker(b *testing.B) {
	ctx := context.Background()
	in := b.TempDir()
	writeCSVFiles(b, in, 2, 100_000)
	m := testModel(b)
	for b.Loop() {
		out := b.TempDir()
		o := options(m, in, out)
		o.Features = []string{"a", "b", "c", "d"}
		o.IDColumn, o.Join = "id", JoinID
		plan(b, ctx, o)
		runAll(b, ctx, out, m, 1)
	}
}
