package transfer

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"", 0},
		{"0", 0},
		{"off", 0},
		{"100", 100},
		{"512K", 512 << 10},
		{"512k", 512 << 10},
		{"10M", 10 << 20},
		{"10m", 10 << 20},
		{"1.5G", 3 << 29},
		{"0.5M", 512 << 10},
		{"10MB", 10 << 20}, // sizes read the same everywhere (bytesize)
	} {
		got, err := ParseRate(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"x", "-1", "-5M", "M", "1,5M", "ten"} {
		if got, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) = %d, want an error", bad, got)
		}
	}
}

func TestListUsageRemove(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	files := map[string]int{"a.bin": 10, "b.txt": 3, "sub/c.bin": 7, "sub/deep/d.txt": 1}
	for k, n := range files {
		writeFile(t, filepath.Join(dir, k), make([]byte, n))
	}
	ep := mustEndpoint(t, dir)
	objs, err := List(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
		if int(o.Size) != files[o.Key] {
			t.Errorf("%s: size %d, want %d", o.Key, o.Size, files[o.Key])
		}
	}
	if want := []string{"a.bin", "b.txt", "sub/c.bin", "sub/deep/d.txt"}; !equalStrings(keys, want) {
		t.Fatalf("List = %v, want %v", keys, want)
	}
	n, b, err := Usage(ctx, ep)
	if err != nil || n != 4 || b != 21 {
		t.Fatalf("Usage = %d, %d, %v; want 4, 21", n, b, err)
	}
	n, b, err = Usage(ctx, mustEndpoint(t, filepath.Join(dir, "sub")+"/"))
	if err != nil || n != 2 || b != 8 {
		t.Fatalf("Usage(sub/) = %d, %d, %v; want 2, 8", n, b, err)
	}
	// One file.
	objs, err = List(ctx, mustEndpoint(t, filepath.Join(dir, "a.bin")))
	if err != nil || len(objs) != 1 || objs[0].Key != "" || objs[0].Size != 10 {
		t.Fatalf("List(file) = %+v, %v", objs, err)
	}
	if _, err := List(ctx, mustEndpoint(t, filepath.Join(dir, "nope"))); err == nil {
		t.Error("List of a missing file: no error")
	}

	// Remove with a filter and a dry run: nothing goes.
	rep, err := Remove(ctx, ep, Options{Include: []string{"*.bin"}, DryRun: true})
	if err != nil || !equalStrings(rep.Deleted, []string{"a.bin", "sub/c.bin"}) {
		t.Fatalf("dry-run Remove: %+v, %v", rep, err)
	}
	if n, _, _ := Usage(ctx, ep); n != 4 {
		t.Fatalf("dry-run Remove removed files: %d left", n)
	}
	rep, err = Remove(ctx, ep, Options{Include: []string{"*.bin"}})
	if err != nil || !rep.OK() || !equalStrings(rep.Deleted, []string{"a.bin", "sub/c.bin"}) {
		t.Fatalf("Remove: %+v, %v", rep, err)
	}
	objs, _ = List(ctx, ep)
	if len(objs) != 2 || objs[0].Key != "b.txt" || objs[1].Key != "sub/deep/d.txt" {
		t.Fatalf("after Remove: %+v", objs)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.bin")); !os.IsNotExist(err) {
		t.Errorf("a.bin still there: %v", err)
	}
	// One file, then one that is not there.
	if rep, err := Remove(ctx, mustEndpoint(t, filepath.Join(dir, "b.txt")), Options{}); err != nil || len(rep.Deleted) != 1 {
		t.Fatalf("Remove(file): %+v, %v", rep, err)
	}
	if _, err := Remove(ctx, mustEndpoint(t, filepath.Join(dir, "b.txt")), Options{}); err == nil {
		t.Error("Remove of a missing file: no error")
	}
	if _, err := Remove(ctx, mustEndpoint(t, "https://example.com/x"), Options{}); err == nil {
		t.Error("Remove over http: no error")
	}
}
