package transfer

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestS3SumOf(t *testing.T) {
	for _, c := range []struct {
		name string
		out  s3.HeadObjectOutput
		want string // String() of the result, "" for none
	}{
		{"none", s3.HeadObjectOutput{}, ""},
		{"full crc32", s3.HeadObjectOutput{ChecksumCRC32: aws.String("l5YxQA=="), ChecksumType: types.ChecksumTypeFullObject}, "crc32:l5YxQA=="},
		{"composite crc32", s3.HeadObjectOutput{ChecksumCRC32: aws.String("l5YxQA==-128"), ChecksumType: types.ChecksumTypeComposite}, "crc32:l5YxQA==-128"},
		{"composite without a type", s3.HeadObjectOutput{ChecksumCRC32C: aws.String("AAAAAA==-2")}, "crc32c:AAAAAA==-2"},
		{"crc64nvme first", s3.HeadObjectOutput{ChecksumCRC32: aws.String("l5YxQA=="), ChecksumCRC64NVME: aws.String("tiKXJQQEDqU=")}, "crc64nvme:tiKXJQQEDqU="},
		{"form and type disagree", s3.HeadObjectOutput{ChecksumCRC32: aws.String("l5YxQA=="), ChecksumType: types.ChecksumTypeComposite}, ""},
		{"composite crc64nvme", s3.HeadObjectOutput{ChecksumCRC64NVME: aws.String("tiKXJQQEDqU=-3")}, ""},
		{"bad part count", s3.HeadObjectOutput{ChecksumCRC32: aws.String("l5YxQA==-x")}, ""},
		{"not base64", s3.HeadObjectOutput{ChecksumCRC32: aws.String("%%%")}, ""},
		{"sha256 alone is not used", s3.HeadObjectOutput{ChecksumSHA256: aws.String("n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=")}, ""},
	} {
		if got := s3SumOf(&c.out).String(); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// TestS3SumKinds: each kind's hash is the standard CRC (the catalogue's
// check value of "123456789"), encoded as S3 encodes it.
func TestS3SumKinds(t *testing.T) {
	for alg, want := range map[string]string{
		"crc32":     "y/Q5Jg==",     // CRC-32/ISO-HDLC 0xcbf43926
		"crc32c":    "4waSgw==",     // CRC-32/ISCSI 0xe3069283
		"crc64nvme": "rosUhgp5mIg=", // CRC-64/NVME 0xae8b14860a799888
	} {
		h := (&s3Sum{alg: alg}).newHash()
		h.Write([]byte("123456789"))
		if got := encode(h); got != want {
			t.Errorf("%s: %s, want %s", alg, got, want)
		}
	}
}

// TestS3SumOfParts: a composite is recomputed over the recorded part
// sizes, and a flipped byte or a missing one shows.
func TestS3SumOfParts(t *testing.T) {
	data := randomBytes(3, 1000)
	c := &s3Sum{alg: "crc32", parts: 3, partSizes: []int64{400, 400, 200}}
	sums := [][]byte{}
	for _, sp := range [][2]int{{0, 400}, {400, 800}, {800, 1000}} {
		h := c.newHash()
		h.Write(data[sp[0]:sp[1]])
		sums = append(sums, h.Sum(nil))
	}
	c.value = c.combine(sums)
	buf := make([]byte, 64)
	if got, err := c.of(bytes.NewReader(data), buf); err != nil || got != c.String() {
		t.Fatalf("of the parts: %q, %v; want %q", got, err, c.String())
	}
	flipped := slices.Clone(data)
	flipped[555] ^= 1
	if got, err := c.of(bytes.NewReader(flipped), buf); err != nil || got == c.String() {
		t.Fatalf("of a flipped byte: %q, %v; want another checksum", got, err)
	}
	if _, err := c.of(bytes.NewReader(data[:999]), buf); err == nil {
		t.Fatal("of a short copy: no error")
	}
	if _, err := c.of(bytes.NewReader(append(slices.Clone(data), 0)), buf); err == nil {
		t.Fatal("of a long copy: no error")
	}
	// A full-object checksum is over the whole content.
	h := c.newHash()
	h.Write(data)
	full := &s3Sum{alg: "crc32", value: encode(h)}
	if got, err := full.of(bytes.NewReader(data), buf); err != nil || got != full.String() {
		t.Fatalf("of the whole: %q, %v; want %q", got, err, full.String())
	}
}

func TestParseContentRange(t *testing.T) {
	for s, want := range map[string][4]int64{
		"bytes 0-9/10":                        {0, 10, 10, 1},
		"bytes 8388608-16777215/1073741824":   {8388608, 8388608, 1073741824, 1},
		"bytes 5-4/10":                        {0, 0, 0, 0},
		"bytes 0-10/10":                       {0, 0, 0, 0},
		"":                                    {0, 0, 0, 0},
		"bytes */10":                          {0, 0, 0, 0},
		"bytes -1-3/10":                       {0, 0, 0, 0},
		"bytes 0-9/10 and something after it": {0, 10, 10, 1},
	} {
		off, n, total, ok := parseContentRange(s)
		if got := [4]int64{off, n, total, map[bool]int64{true: 1}[ok]}; got != want {
			t.Errorf("%q: %v, want %v", s, got, want)
		}
	}
}

// putComposite uploads data as a multipart object with a CRC32 per part
// (parts of the given sizes), as awscli and the AWS SDKs' transfer
// managers write large objects, and returns the object's checksum as the
// store gives it.
func putComposite(t *testing.T, s *s3Server, bucket, key string, data []byte, sizes ...int) string {
	t.Helper()
	ctx := context.Background()
	up, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	at := 0
	for i, n := range sizes {
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32, Body: bytes.NewReader(data[at : at+n]),
		})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1)), ChecksumCRC32: out.ChecksumCRC32})
		at += n
	}
	if at != len(data) {
		t.Fatalf("parts of %d bytes for %d", at, len(data))
	}
	if _, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		t.Fatal(err)
	}
	return headChecksum(t, s, bucket, key)
}

// headChecksum is the object's S3 checksum in the report's form, as the
// store says it.
func headChecksum(t *testing.T, s *s3Server, bucket, key string) string {
	t.Helper()
	head, err := s.client.HeadObject(context.Background(), &s3.HeadObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case head.ChecksumCRC64NVME != nil:
		return "crc64nvme:" + *head.ChecksumCRC64NVME
	case head.ChecksumCRC32C != nil:
		return "crc32c:" + *head.ChecksumCRC32C
	case head.ChecksumCRC32 != nil:
		return "crc32:" + *head.ChecksumCRC32
	}
	return ""
}

// getLog is a loopback proxy in front of the S3 server that records
// every ranged GET's Range and every GET of a part by number ("part N"),
// and flips a byte of the body of the GETs corrupt picks.
type getLog struct {
	mu      sync.Mutex
	gets    []string
	corrupt func(r *http.Request) bool
	// noSums drops the checksums from HEAD answers, as a store that
	// keeps none; noPartRanges drops the Content-Range from answers to
	// reads of a part by number, as a store that does not do those.
	noSums, noPartRanges bool
}

func (l *getLog) proxy(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if l.noSums && resp.Request.Method == http.MethodHead {
			for k := range resp.Header {
				if strings.HasPrefix(strings.ToLower(k), "x-amz-checksum-") {
					resp.Header.Del(k)
				}
			}
		}
		if l.noPartRanges && resp.Request.URL.Query().Has("partNumber") {
			resp.Header.Del("Content-Range")
		}
		if l.corrupt != nil && l.corrupt(resp.Request) && resp.StatusCode/100 == 2 {
			resp.Body = &flipFirst{r: resp.Body}
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			got := r.Header.Get("Range")
			if n := r.URL.Query().Get("partNumber"); n != "" {
				got = "part " + n
			}
			if got != "" {
				l.mu.Lock()
				l.gets = append(l.gets, got)
				l.mu.Unlock()
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (l *getLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.gets)
	slices.Sort(out)
	return out
}

// flipFirst flips the first byte read through it.
type flipFirst struct {
	r       io.ReadCloser
	flipped bool
}

func (f *flipFirst) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && !f.flipped {
		p[0] ^= 0xff
		f.flipped = true
	}
	return n, err
}

func (f *flipFirst) Close() error { return f.r.Close() }

// TestDownloadCheckedByS3Checksum: a large object without hpcml's
// SHA-256 is downloaded checked against the S3 checksum it carries — a
// composite one part by part, over parts of uneven sizes; a whole-object
// one as ranges — and the report gives that checksum; verifying the
// transferred files recomputes it from the copy. Where the store gives
// no checksum, or cannot read the parts a composite is over, the copy is
// SHA-256'd as before.
func TestDownloadCheckedByS3Checksum(t *testing.T) {
	s := startS3(t, "sums")
	log := &getLog{}
	via := log.proxy(t, s.endpoint)
	ctx := context.Background()
	const mib = 1 << 20

	composite := randomBytes(11, 11*mib+13*mib+9*mib+5)
	wantComposite := putComposite(t, s, "sums", "in/composite.bin", composite, 11*mib, 13*mib, 9*mib+5)
	if !strings.HasPrefix(wantComposite, "crc32:") || !strings.HasSuffix(wantComposite, "-3") {
		t.Fatalf("the store gave checksum %q, want a composite CRC32 of 3 parts", wantComposite)
	}
	full := randomBytes(12, int(rangedMin)+1)
	if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("sums"), Key: aws.String("in/full.bin"), Body: bytes.NewReader(full),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	}); err != nil {
		t.Fatal(err)
	}
	wantFull := headChecksum(t, s, "sums", "in/full.bin")

	dst := t.TempDir()
	src := mustEndpoint(t, "s3://sums/in/?endpoint="+via+"&region=us-east-1&use_path_style=true")
	rep := mustSync(t, src, mustEndpoint(t, dst), Options{Verify: VerifyTransferred})
	want := []Entry{
		{Key: "composite.bin", Size: int64(len(composite)), Checksum: wantComposite},
		{Key: "full.bin", Size: int64(len(full)), Checksum: wantFull},
	}
	checkReport(t, rep, want, dst, composite, full)
	gets := log.list()
	for _, p := range []string{"part 1", "part 2", "part 3"} {
		if !slices.Contains(gets, p) {
			t.Fatalf("GETs %q: the composite's %s was not read by number", gets, p)
		}
	}
	// The whole-object CRC came as partsInFlight streams, CRC'd apart
	// and combined.
	if ranges := slices.DeleteFunc(gets, func(g string) bool { return !strings.HasPrefix(g, "bytes=") }); len(ranges) != partsInFlight {
		t.Fatalf("GETs %q: want full.bin in %d ranges", gets, partsInFlight)
	}

	// A store that keeps no checksums: SHA-256s, checked against nothing
	// but reported (and verified).
	noSums := &getLog{noSums: true}
	dst = t.TempDir()
	src = mustEndpoint(t, "s3://sums/in/?endpoint="+noSums.proxy(t, s.endpoint)+"&region=us-east-1&use_path_style=true")
	rep = mustSync(t, src, mustEndpoint(t, dst), Options{Verify: VerifyTransferred})
	want = []Entry{
		{Key: "composite.bin", Size: int64(len(composite)), SHA256: sha256hex(composite)},
		{Key: "full.bin", Size: int64(len(full)), SHA256: sha256hex(full)},
	}
	checkReport(t, rep, want, dst, composite, full)

	// A store that keeps a composite but does not read parts by number:
	// the composite cannot be checked, so the copy is SHA-256'd. (One
	// object copied into a directory lands under the last element of its
	// key.)
	noParts := &getLog{noPartRanges: true}
	dst = t.TempDir()
	src = mustEndpoint(t, "s3://sums/in/composite.bin?endpoint="+noParts.proxy(t, s.endpoint)+"&region=us-east-1&use_path_style=true")
	rep = mustSync(t, src, mustEndpoint(t, dst+"/"), Options{Verify: VerifyTransferred})
	if len(rep.Transferred) != 1 || rep.Transferred[0].SHA256 != sha256hex(composite) || rep.Totals.FilesVerified != 1 {
		t.Fatalf("report %+v, want the composite's SHA-256, verified", rep)
	}
	if got, err := os.ReadFile(filepath.Join(dst, "composite.bin")); err != nil || !bytes.Equal(got, composite) {
		t.Fatalf("composite.bin: %d bytes (%v), want the %d put", len(got), err, len(composite))
	}
}

// checkReport checks that rep transferred want, all verified, and that
// dst holds data under their names, in their order.
func checkReport(t *testing.T, rep *Report, want []Entry, dst string, data ...[]byte) {
	t.Helper()
	for i := range rep.Transferred {
		rep.Transferred[i].s3 = nil
	}
	if !slices.Equal(rep.Transferred, want) || rep.Totals.FilesVerified != len(want) {
		t.Fatalf("report %+v (verified %d), want %+v, all verified", rep.Transferred, rep.Totals.FilesVerified, want)
	}
	for i, en := range want {
		if got, err := os.ReadFile(filepath.Join(dst, en.Key)); err != nil || !bytes.Equal(got, data[i]) {
			t.Fatalf("%s: %d bytes (%v), want the %d put", en.Key, len(got), err, len(data[i]))
		}
	}
}

// TestDownloadS3ChecksumCatchesCorruption: a byte changed on the way
// fails the download of an object checked by its S3 checksum, composite
// or whole, and leaves nothing at the destination.
func TestDownloadS3ChecksumCatchesCorruption(t *testing.T) {
	s := startS3(t, "bad")
	const mib = 1 << 20
	data := randomBytes(21, 34*mib)
	putComposite(t, s, "bad", "c/x.bin", data, 17*mib, 17*mib)
	if _, err := s.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String("bad"), Key: aws.String("f/x.bin"), Body: bytes.NewReader(data),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	}); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"c/", "f/"} {
		log := &getLog{corrupt: func(r *http.Request) bool {
			rg := r.Header.Get("Range")
			return r.URL.Query().Get("partNumber") == "2" || rg != "" && !strings.HasPrefix(rg, "bytes=0-")
		}}
		via := log.proxy(t, s.endpoint)
		dst := t.TempDir()
		src := mustEndpoint(t, "s3://bad/"+prefix+"?endpoint="+via+"&region=us-east-1&use_path_style=true")
		rep, err := Sync(context.Background(), src, mustEndpoint(t, dst), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0].Reason, "does not match the source's S3 checksum") {
			t.Fatalf("%s: failed %+v, want x.bin failed by its checksum", prefix, rep.Failed)
		}
		if entries, _ := os.ReadDir(dst); len(entries) != 0 {
			t.Fatalf("%s: the destination holds %d entries after a failed copy", prefix, len(entries))
		}
	}
}

// TestCombineCRC: the CRC of two pieces, combined, is the CRC of the
// whole, for each kind and for pieces of any length.
func TestCombineCRC(t *testing.T) {
	data := randomBytes(31, 100_000)
	for _, alg := range []string{"crc32", "crc32c", "crc64nvme"} {
		c := &s3Sum{alg: alg}
		whole := c.newHash()
		whole.Write(data)
		for _, cut := range []int{0, 1, 7, 4096, 65_537, 99_999, 100_000} {
			a, b := c.newHash(), c.newHash()
			a.Write(data[:cut])
			b.Write(data[cut:])
			got := c.combineCRC(sumOf(a.Sum(nil)), sumOf(b.Sum(nil)), int64(len(data)-cut))
			if enc := c.encodeCRC(got); enc != encode(whole) {
				t.Errorf("%s cut at %d: %s, want %s", alg, cut, enc, encode(whole))
			}
		}
	}
}
