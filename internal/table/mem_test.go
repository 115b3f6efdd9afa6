package table

import (
	"context"
	"io"
	"path/filepath"
	"runtime"
	"testing"
)

// TestMemoryBound streams a ~200 MB CSV and checks that the heap stays
// far below the file's size: memory depends on the batch, not the rows.
func TestMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 200 MB file")
	}
	p := filepath.Join(t.TempDir(), "big.csv")
	size := genCSV(t, p, 2_000_000)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	r, err := Open(context.Background(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var rows int64
	var peak uint64
	for {
		rec, err := r.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rows += rec.NumRows()
		rec.Release()
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse-min(base, ms.HeapInuse))
	}
	if rows != 2_000_000 {
		t.Fatalf("%d rows", rows)
	}
	const bound = 64 << 20
	t.Logf("%d MB file: heap in use at most %d MB above the start", size>>20, peak>>20)
	if peak > bound {
		t.Fatalf("heap in use grew by %d MB reading a %d MB file (bound %d MB)", peak>>20, size>>20, bound>>20)
	}
}
