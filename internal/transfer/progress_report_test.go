package transfer

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestProgressReport: snapshots reach the Report function at the start,
// while copying and, Final, at Done; nothing is drawn without a writer.
func TestProgressReport(t *testing.T) {
	var mu sync.Mutex
	var got []Stats
	p := new(Progress)
	p.Report(5*time.Millisecond, func(s Stats) {
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
	})
	p.Start(2, 100)
	p.Add(40)
	p.FileDone()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		last := Stats{}
		if n > 0 {
			last = got[n-1]
		}
		mu.Unlock()
		if last.Bytes == 40 && last.FilesDone == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report of the bytes moved: %+v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.Add(70) // a retry counts again: past the total
	p.FileFailed()
	p.Done()

	mu.Lock()
	defer mu.Unlock()
	first, final := got[0], got[len(got)-1]
	if first.Files != 2 || first.Total != 100 || first.Final {
		t.Errorf("first report %+v", first)
	}
	if !final.Final || final.Bytes != 110 || final.FilesDone != 1 || final.FilesFailed != 1 || final.ETA != 0 {
		t.Errorf("final report %+v", final)
	}
	for _, s := range got[:len(got)-1] {
		if s.Final {
			t.Errorf("a report before Done is final: %+v", s)
		}
		if s.Rate < 0 || s.ETA < 0 {
			t.Errorf("report %+v", s)
		}
	}
}

func TestProgressStatsETA(t *testing.T) {
	p := new(Progress)
	p.Start(1, 1000)
	defer p.Done()
	p.start = time.Now().Add(-2 * time.Second)
	p.Add(500)
	s := p.Stats()
	if s.Rate < 200 || s.Rate > 260 {
		t.Errorf("rate %v, want about 250 B/s", s.Rate)
	}
	if s.ETA < time.Second || s.ETA > 3*time.Second {
		t.Errorf("eta %v, want about 2s", s.ETA)
	}
}

// TestProgressCountsSmallFilesAsRead: a file small enough to be read
// whole before it is written still moves the progress while it is read
// (throttled here), not only when it is done.
func TestProgressCountsSmallFilesAsRead(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	const size = 2 << 20
	if err := os.WriteFile(filepath.Join(src, "a.bin"), bytes.Repeat([]byte("a"), size), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var midway []Stats
	p := new(Progress)
	p.Report(20*time.Millisecond, func(s Stats) {
		if s.Bytes > 0 && s.Bytes < s.Total && s.FilesDone == 0 {
			mu.Lock()
			midway = append(midway, s)
			mu.Unlock()
		}
	})
	se, _ := ParseEndpoint(src + "/")
	de, _ := ParseEndpoint(dst + "/")
	rep, err := Sync(t.Context(), se, de, Options{Transfers: 1, Checkers: 1, BwLimit: 1 << 20, Progress: p})
	if err != nil || !rep.OK() {
		t.Fatalf("sync: %v %+v", err, rep)
	}
	if final := p.Stats(); final.Bytes != size || final.FilesDone != 1 {
		t.Errorf("at the end %+v", final)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(midway) == 0 {
		t.Error("no report while the file was read")
	}
}
