package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/klauspost/compress/gzip"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/transfer"
)

// IDX is the format of MNIST and its kin: a magic number (two zero bytes,
// a type code, the number of dimensions), the dimensions as big-endian
// uint32, then the values. Only unsigned bytes (type 0x08) are read, as
// every such image set uses them.
const idxUbyte = 0x08

// maxIDXBytes bounds what one IDX file may expand to in memory (4 GiB).
const maxIDXBytes = 4 << 30

// readIDX reads an IDX file (gzip-compressed or not) whole: its dims and
// values. name is for messages.
func readIDX(r io.Reader, name string) (dims []int, data []byte, err error) {
	br := bufio.NewReader(r)
	if head, _ := br.Peek(2); bytes.Equal(head, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		defer gz.Close()
		br = bufio.NewReader(gz)
	}
	var magic [4]byte
	if _, err := io.ReadFull(br, magic[:]); err != nil {
		return nil, nil, fmt.Errorf("%s: too short for an IDX file: %w", name, err)
	}
	if magic[0] != 0 || magic[1] != 0 || magic[3] == 0 || magic[3] > 4 {
		return nil, nil, fmt.Errorf("%s: wrong magic number %#08x: not an IDX file", name, binary.BigEndian.Uint32(magic[:]))
	}
	if magic[2] != idxUbyte {
		return nil, nil, fmt.Errorf("%s: IDX value type %#02x: only unsigned bytes (0x08) are supported", name, magic[2])
	}
	dims = make([]int, magic[3])
	total := 1
	for i := range dims {
		var d uint32
		if err := binary.Read(br, binary.BigEndian, &d); err != nil {
			return nil, nil, fmt.Errorf("%s: dimension %d: %w", name, i, err)
		}
		if d == 0 {
			return nil, nil, fmt.Errorf("%s: dimension %d is 0", name, i)
		}
		dims[i] = int(d)
		total *= int(d)
		if total > maxIDXBytes {
			return nil, nil, fmt.Errorf("%s: dimensions %v exceed %d bytes", name, dims[:i+1], maxIDXBytes)
		}
	}
	data = make([]byte, total)
	if _, err := io.ReadFull(br, data); err != nil {
		return nil, nil, fmt.Errorf("%s: %d values declared, file ends early: %w", name, total, err)
	}
	if n, _ := br.Read(make([]byte, 1)); n > 0 {
		return nil, nil, fmt.Errorf("%s: data beyond the %d values its dimensions declare", name, total)
	}
	return dims, data, nil
}

// openObject opens a local path, file:// or s3:// URL for reading.
func openObject(ctx context.Context, url string) (io.ReadCloser, error) {
	ep, err := transfer.ParseEndpoint(url)
	if err != nil {
		return nil, err
	}
	if !ep.Single() {
		return nil, fmt.Errorf("%s: a file is needed, not a directory", blob.Redact(url))
	}
	b, err := blob.Open(ctx, ep.Bucket)
	if err != nil {
		return nil, err
	}
	r, err := b.NewReader(ctx, ep.Prefix, nil)
	if err != nil {
		b.Close()
		if blob.IsNotFound(err) {
			return nil, fmt.Errorf("%s: no such file", blob.Redact(url))
		}
		return nil, fmt.Errorf("open %s: %w", blob.Redact(url), err)
	}
	return closeBoth{r, b}, nil
}

type closeBoth struct {
	io.ReadCloser
	b *blob.Bucket
}

func (c closeBoth) Close() error {
	err := c.ReadCloser.Close()
	c.b.Close()
	return err
}

// loadIDX reads an images file and its labels file into a dataset of
// N×1×H×W images of raw pixel values (0–255; the preprocessing scales them).
func loadIDX(ctx context.Context, imagesURL, labelsURL string) (*Dataset, []int, error) {
	read := func(url string) ([]int, []byte, error) {
		r, err := openObject(ctx, url)
		if err != nil {
			return nil, nil, err
		}
		defer r.Close()
		return readIDX(r, blob.Redact(url))
	}
	idims, pix, err := read(imagesURL)
	if err != nil {
		return nil, nil, err
	}
	if len(idims) != 3 {
		return nil, nil, fmt.Errorf("%s: images need 3 dimensions (count, rows, columns), got %v", blob.Redact(imagesURL), idims)
	}
	ldims, labels, err := read(labelsURL)
	if err != nil {
		return nil, nil, fmt.Errorf("labels of %s: %w", blob.Redact(imagesURL), err)
	}
	if len(ldims) != 1 || ldims[0] != idims[0] {
		return nil, nil, fmt.Errorf("%s: %v labels for %d images", blob.Redact(labelsURL), ldims, idims[0])
	}
	n, h, w := idims[0], idims[1], idims[2]
	d := &Dataset{X: nn.NewTensor(n, 1, h, w), Labels: make([]int, n)}
	for i, p := range pix {
		d.X.Data[i] = float32(p)
	}
	for i, l := range labels {
		d.Labels[i] = int(l)
	}
	return d, []int{1, h, w}, nil
}

func loadIDXSets(ctx context.Context, cfg DataConfig, f *idxFiles, info DataInfo) (*Dataset, *Dataset, DataInfo, error) {
	info.Format, info.Task = "idx", Classification
	if cfg.Task == Regression {
		return nil, nil, info, errors.New("IDX images are labelled with classes: task regression does not apply")
	}
	tr, shape, err := loadIDX(ctx, f.trainImages, f.trainLabels)
	if err != nil {
		return nil, nil, info, err
	}
	info.Shape, info.Train = shape, tr.Len()
	testImages, testLabels := f.testImages, f.testLabels
	if cfg.TestURL != "" {
		testImages, testLabels = cfg.TestURL, labelsFor(cfg.TestURL)
	}
	var te *Dataset
	if testImages != "" {
		var tshape []int
		if te, tshape, err = loadIDX(ctx, testImages, testLabels); err != nil {
			return nil, nil, info, fmt.Errorf("test data: %w", err)
		}
		if !slices.Equal(tshape, shape) {
			return nil, nil, info, fmt.Errorf("test images are %v, training images %v", tshape, shape)
		}
		info.Test = te.Len()
	}
	top := 0
	for _, l := range tr.Labels {
		top = max(top, l)
	}
	for i := 0; i <= top; i++ {
		info.Classes = append(info.Classes, strconv.Itoa(i))
	}
	if te != nil {
		for i, l := range te.Labels {
			if l > top {
				return nil, nil, info, fmt.Errorf("test label %d (image %d) is not among the training labels 0..%d", l, i, top)
			}
		}
	}
	return tr, te, info, nil
}
