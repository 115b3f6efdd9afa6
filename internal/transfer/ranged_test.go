package transfer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	hblob "github.com/hpcml/hpcml/internal/blob"
)

// TestRangedDownload downloads an object over the ranged threshold that
// carries hpcml's SHA-256 to a local file: it arrives in parallel
// part-sized ranges, whole and with the right checksum, and nothing but
// the final file is left.
func TestRangedDownload(t *testing.T) {
	s := startS3(t, "ranged")
	log := &getLog{}
	via := log.proxy(t, s.endpoint)
	size := rangedMin + 5<<20 + 123 // three parts, the last a short one
	data := randomBytes(7, int(size))
	if _, err := s.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String("ranged"), Key: aws.String("big/model.bin"), Body: bytes.NewReader(data),
		Metadata: map[string]string{MetaSHA256: sha256hex(data)}, // as hpcml records it
	}); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	src := mustEndpoint(t, "s3://ranged/big/?endpoint="+via+"&region=us-east-1&use_path_style=true")
	var inUse atomic.Int64 // the part buffers taken from the memory budget
	rep := mustSync(t, src, mustEndpoint(t, dst), Options{Transfers: 2, memoryProbe: func(n int64) { inUse.Store(n) }})
	if part := hblob.PartSize(int64(size)); inUse.Load() != 3*part {
		t.Fatalf("the download took %d bytes of buffers from the memory budget, want its 3 parts' %d", inUse.Load(), 3*part)
	}

	got, err := os.ReadFile(filepath.Join(dst, "model.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes (err %v), want the %d put", len(got), err, len(data))
	}
	if len(rep.Transferred) != 1 || rep.Transferred[0].SHA256 != sha256hex(data) {
		t.Fatalf("report %+v, want the object's SHA-256", rep.Transferred)
	}
	part := hblob.PartSize(int64(size))
	want := []string{
		"bytes=0-" + itoa(part-1),
		"bytes=" + itoa(part) + "-" + itoa(2*part-1),
		"bytes=" + itoa(2*part) + "-" + itoa(int64(size)-1),
	}
	slices.Sort(want)
	if ranges := log.list(); !slices.Equal(ranges, want) {
		t.Fatalf("GET ranges %q, want %q", ranges, want)
	}
	entries, _ := os.ReadDir(dst)
	if len(entries) != 1 {
		t.Fatalf("destination holds %d entries, want the one file", len(entries))
	}

	// A second sync finds it up to date: nothing fetched.
	before := len(log.list())
	rep = mustSync(t, src, mustEndpoint(t, dst), Options{})
	if rep.Totals.FilesTransferred != 0 || len(log.list()) != before {
		t.Fatalf("second sync transferred %d, fetched %d ranges", rep.Totals.FilesTransferred, len(log.list())-before)
	}
}

// TestRangedDownloadWaitsForTheHash: a ranged download begins no part
// more than hashWindow ahead of the hash of what arrived (else, on a small
// machine, the hash falls behind and is left to finish alone), and goes
// on as the hash does.
func TestRangedDownloadWaitsForTheHash(t *testing.T) {
	s := startS3(t, "window")
	log := &getLog{}
	via := log.proxy(t, s.endpoint)
	size := (hashWindow+2)*hblob.DefaultPart + 1 // more parts than the window
	data := randomBytes(8, size)
	if _, err := s.client.PutObject(context.Background(), &s3.PutObjectInput{ // as hpcml records it
		Bucket: aws.String("window"), Key: aws.String("w.bin"), Body: bytes.NewReader(data),
		Metadata: map[string]string{MetaSHA256: sha256hex(data)},
	}); err != nil {
		t.Fatal(err)
	}
	stalled, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	unstall := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unstall) // a failed check lets the download end
	opts := Options{beforeHashPart: func(part int) {
		if part == 0 {
			close(stalled)
			<-release
		}
	}}
	src := mustEndpoint(t, "s3://window/?endpoint="+via+"&region=us-east-1&use_path_style=true")
	dst := t.TempDir()
	dstEp := mustEndpoint(t, dst)
	type result struct {
		rep *Report
		err error
	}
	res := make(chan result, 1)
	go func() {
		rep, err := Sync(context.Background(), src, dstEp, opts)
		res <- result{rep, err}
	}()
	<-stalled
	for deadline := time.Now().Add(10 * time.Second); len(log.list()) < hashWindow; {
		if time.Now().After(deadline) {
			t.Fatalf("%d parts begun while the hash waits, want %d", len(log.list()), hashWindow)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // time to begin more, were it allowed
	if n := len(log.list()); n != hashWindow {
		t.Fatalf("%d parts begun while the first was not hashed, want at most %d", n, hashWindow)
	}
	unstall()
	r := <-res
	if r.err != nil || !r.rep.OK() {
		t.Fatalf("download: %v %+v", r.err, r.rep)
	}
	got, err := os.ReadFile(filepath.Join(dst, "w.bin"))
	if err != nil || !bytes.Equal(got, data) || r.rep.Transferred[0].SHA256 != sha256hex(data) {
		t.Fatalf("downloaded %d bytes (err %v), want the %d put with their SHA-256", len(got), err, len(data))
	}
	if n := len(log.list()); n != hashWindow+3 {
		t.Fatalf("%d ranges fetched, want %d", n, hashWindow+3)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRangedDownloadTempName: where files are made under a temporary
// name (no O_TMPFILE), a large download still comes as ranges, checked
// against the recorded SHA-256, and leaves only the final file.
func TestRangedDownloadTempName(t *testing.T) {
	s := startS3(t, "tempname")
	log := &getLog{}
	via := log.proxy(t, s.endpoint)
	data := randomBytes(9, int(rangedMin)+7)
	if _, err := s.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String("tempname"), Key: aws.String("t.bin"), Body: bytes.NewReader(data),
		Metadata: map[string]string{MetaSHA256: sha256hex(data)},
	}); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	src := mustEndpoint(t, "s3://tempname/?endpoint="+via+"&region=us-east-1&use_path_style=true")
	rep := mustSync(t, src, mustEndpoint(t, dst), Options{noTmpfile: true})
	if got, err := os.ReadFile(filepath.Join(dst, "t.bin")); err != nil || !bytes.Equal(got, data) || rep.Transferred[0].SHA256 != sha256hex(data) {
		t.Fatalf("downloaded %d bytes (err %v), report %+v; want the %d put with their SHA-256", len(got), err, rep.Transferred, len(data))
	}
	if n := len(log.list()); n != 3 {
		t.Fatalf("%d ranges fetched, want 3", n)
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 1 {
		t.Fatalf("destination holds %d entries, want the one file", len(entries))
	}
}
