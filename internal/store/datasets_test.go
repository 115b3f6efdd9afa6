package store

import (
	"errors"
	"sync"
	"testing"

	"github.com/hpcml/hpcml/internal/dataset"
)

// Versions are numbered in order, an unchanged digest adds none, and
// concurrent adds never collide on a number.
func TestDatasetVersions(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	add := func(digest string) (*dataset.Version, bool) {
		t.Helper()
		v, created, err := s.AddDatasetVersion(ctx, &dataset.Version{Dataset: "mnist", Source: "s3://x/", Files: 2, Bytes: 10,
			Digest: digest, ManifestKey: dataset.ManifestKey("mnist", digest)})
		if err != nil {
			t.Fatal(err)
		}
		return v, created
	}
	if v, created := add("aa"); v.Version != 1 || !created {
		t.Fatalf("first add: v%d created=%v", v.Version, created)
	}
	if v, created := add("aa"); v.Version != 1 || created {
		t.Fatalf("same digest again: v%d created=%v, want v1 unchanged", v.Version, created)
	}
	if v, created := add("bb"); v.Version != 2 || !created {
		t.Fatalf("new digest: v%d created=%v", v.Version, created)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.AddDatasetVersion(ctx, &dataset.Version{Dataset: "mnist", Digest: string(rune('c' + i)), ManifestKey: "k"})
		}()
	}
	wg.Wait()
	d, err := s.GetDataset(ctx, "mnist")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Versions) != 10 || d.Latest.Version != 10 {
		t.Fatalf("%d versions, latest %d; want 10", len(d.Versions), d.Latest.Version)
	}
	for i, v := range d.Versions {
		if v.Version != 10-i {
			t.Fatalf("versions out of order: %d at %d", v.Version, i)
		}
	}
	list, err := s.ListDatasets(ctx)
	if err != nil || len(list) != 1 || list[0].Latest.Version != 10 {
		t.Fatalf("list %+v, %v", list, err)
	}
	if _, err := s.GetDataset(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing dataset: %v", err)
	}
}
