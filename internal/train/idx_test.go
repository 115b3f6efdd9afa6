package train

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// idxBytes renders an IDX file of unsigned bytes.
func idxBytes(dims []int, data []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, idxUbyte, byte(len(dims))})
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(data)
	return b.Bytes()
}

func gz(data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func TestReadIDX(t *testing.T) {
	img := idxBytes([]int{2, 2, 3}, []byte{0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255})
	for _, c := range []struct {
		name string
		data []byte
		err  string
	}{
		{"plain", img, ""},
		{"gzip", gz(img), ""},
		{"wrong magic", append([]byte{0x12, 0x34, 8, 3}, img[4:]...), "wrong magic number 0x12340803"},
		{"float values", append([]byte{0, 0, 0x0d, 3}, img[4:]...), "only unsigned bytes"},
		{"truncated", img[:len(img)-1], "file ends early"},
		{"trailing data", append(img, 9), "beyond the 12 values"},
		{"zero dimension", idxBytes([]int{0, 2}, nil), "dimension 0 is 0"},
		{"empty", nil, "too short"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dims, data, err := readIDX(bytes.NewReader(c.data), "f.idx")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.HasPrefix(err.Error(), "f.idx: ") {
					t.Fatalf("err = %v, want one naming f.idx and %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(dims) != 3 || dims[0] != 2 || dims[1] != 2 || dims[2] != 3 || data[11] != 255 {
				t.Fatalf("dims %v data %v", dims, data)
			}
		})
	}
}

func TestLoadIDXDirAndErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pix := make([]byte, 3*4*4)
	for i := range pix {
		pix[i] = byte(i * 5)
	}
	write("train-images-idx3-ubyte.gz", gz(idxBytes([]int{3, 4, 4}, pix)))
	write("train-labels-idx1-ubyte.gz", gz(idxBytes([]int{3}, []byte{0, 2, 1})))
	write("t10k-images-idx3-ubyte", idxBytes([]int{1, 4, 4}, pix[:16]))
	write("t10k-labels-idx1-ubyte", idxBytes([]int{1}, []byte{2}))
	ctx := context.Background()
	tr, te, info, err := Load(ctx, DataConfig{URL: dir})
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != "idx" || tr.Len() != 3 || te.Len() != 1 || len(info.Classes) != 3 || info.Shape[0] != 1 || info.Shape[1] != 4 {
		t.Fatalf("info %+v train %d test %d", info, tr.Len(), te.Len())
	}
	if tr.X.Data[1] != 5 || tr.Labels[1] != 2 {
		t.Fatalf("raw pixels and labels: %v %v", tr.X.Data[:3], tr.Labels)
	}
	// A labels file that does not match its images.
	write("train-labels-idx1-ubyte.gz", gz(idxBytes([]int{2}, []byte{0, 1})))
	if _, _, _, err := Load(ctx, DataConfig{URL: dir}); err == nil || !strings.Contains(err.Error(), "labels for 3 images") {
		t.Fatalf("err = %v", err)
	}
	// Images with the wrong magic number, named by the file.
	write("train-images-idx3-ubyte.gz", []byte("PK\x03\x04 not idx at all"))
	if _, _, _, err := Load(ctx, DataConfig{URL: dir}); err == nil || !strings.Contains(err.Error(), "wrong magic number") || !strings.Contains(err.Error(), "train-images") {
		t.Fatalf("err = %v", err)
	}
}
