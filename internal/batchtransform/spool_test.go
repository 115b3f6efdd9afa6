package batchtransform

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestSpoolToFile: a part's output beyond the memory limit goes to a
// temporary file, and the part's object is the same either way.
func TestSpoolToFile(t *testing.T) {
	ctx := context.Background()
	s, err := openOutput(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var want bytes.Buffer
	small, big := &spool{}, &spool{limit: 1000}
	for i := range 500 {
		row := []byte(fmt.Sprintf("r%d,0.25,0.5,0.25\n", i))
		want.Write(row)
		if err := small.append(row); err != nil {
			t.Fatal(err)
		}
		if err := big.append(row); err != nil {
			t.Fatal(err)
		}
	}
	if small.file != nil || big.file == nil || big.size != int64(want.Len()) {
		t.Fatalf("in a file: small %v, big %v (%d bytes)", small.file != nil, big.file != nil, big.size)
	}
	hdr := &partHeader{Part: 3, Records: 500}
	if err := writePart(ctx, s, 3, hdr, small); err != nil {
		t.Fatal(err)
	}
	inMemory, _ := os.ReadFile(filepath.Join(s.dir, "_hpcml", "parts", "000003"))
	if err := writePart(ctx, s, 3, hdr, big); err != nil {
		t.Fatal(err)
	}
	spooled, _ := os.ReadFile(filepath.Join(s.dir, "_hpcml", "parts", "000003"))
	if !bytes.Equal(inMemory, spooled) || !bytes.HasSuffix(spooled, want.Bytes()) || !bytes.HasPrefix(spooled, []byte(`{"part":3,`)) {
		t.Fatalf("objects differ:\n%.200s\n%.200s", inMemory, spooled)
	}
	big.reset()
	if big.file != nil || big.size != 0 {
		t.Fatal("reset kept the file")
	}
}
