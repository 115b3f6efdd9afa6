package transfer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// TestHTTPSourceUnknownSize: an http(s) server that sends no
// Content-Length (chunked encoding, as for generated content) is a
// source like any other: the object is streamed, hashed as it passes, and
// reported with the size actually read — small and large (streamed,
// and for S3 hashed first), to both kinds of destination.
func TestHTTPSourceUnknownSize(t *testing.T) {
	files := map[string][]byte{"/small.txt": []byte("generated on the fly\n"), "/large.bin": randomBytes(11, 9<<20)}
	mod := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Last-Modified", mod.Format(http.TimeFormat))
		w.WriteHeader(http.StatusOK)
		// The headers go out now, before the size could be known: no
		// Content-Length, and the body in chunks.
		w.(http.Flusher).Flush()
		if r.Method == http.MethodHead {
			return
		}
		for chunk := range slices.Chunk(data, 64<<10) {
			w.Write(chunk)
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	// The server really sends no size, to HEAD or GET.
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		req, _ := http.NewRequest(method, srv.URL+"/large.bin", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ContentLength != -1 {
			t.Fatalf("%s: Content-Length %d, want none", method, resp.ContentLength)
		}
	}

	forEachDest(t, func(t *testing.T, d *dest) {
		want := tree{}
		for name, data := range files {
			key := name[1:]
			want[key] = data
			rep := mustSync(t, mustEndpoint(t, srv.URL+name), d.ep(t, "u/"), Options{})
			if len(rep.Transferred) != 1 || rep.Transferred[0].Size != int64(len(data)) || rep.Transferred[0].SHA256 != sha256hex(data) ||
				rep.Totals.BytesTransferred != int64(len(data)) {
				t.Fatalf("%s: report %+v, totals %+v; want %d bytes, sha256 %s", name, rep.Transferred, rep.Totals, len(data), sha256hex(data))
			}
		}
		sameTree(t, "from http without sizes", d.read(t, "u/"), want)
		if d.s3 != nil {
			a, err := d.b.Attributes(context.Background(), "u/large.bin")
			if err != nil || a.Metadata[MetaSHA256] != sha256hex(files["/large.bin"]) {
				t.Errorf("large.bin on S3: metadata %v, %v", a.Metadata, err)
			}
		}
		vr, err := Verify(context.Background(), mustEndpoint(t, srv.URL+"/large.bin"), d.ep(t, "u/"), Options{})
		if err != nil || !vr.OK() || vr.Totals.FilesVerified != 1 {
			t.Fatalf("verify: %+v, %v%s", vr.Totals, err, failuresString(vr.Mismatched))
		}
	})
}
