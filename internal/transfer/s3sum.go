package transfer

import (
	"context"
	"encoding/base64"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/crc64nvme"

	hblob "github.com/hpcml/hpcml/internal/blob"
)

// s3Sum is an S3 checksum of an object's content as the store keeps it
// (x-amz-checksum-*, agreed by the client that wrote the object and the
// store): a CRC of the whole content (FULL_OBJECT), or for a multipart
// object the CRC of its parts' CRCs (COMPOSITE, written "value-N").
//
// A large download from an object that carries no SHA-256 of hpcml's is
// checked against this instead of being SHA-256'd: the SHA-256 would be
// checked against nothing (it would only be reported), and on one core
// it is most of a large download's CPU, where a CRC is a tenth of it.
type s3Sum struct {
	alg   string // crc32, crc32c or crc64nvme
	value string // base64, as S3 gives it (without a composite's "-N")
	// parts is a composite's part count (0 for a full-object CRC), and
	// partSizes, once a copy has read the parts, their sizes: what a
	// later verification of the copy hashes it by.
	parts     int
	partSizes []int64
}

// String is the checksum as the report gives it: "crc32:l5YxQA==-128".
func (c *s3Sum) String() string {
	if c == nil {
		return ""
	}
	s := c.alg + ":" + c.value
	if c.parts > 0 {
		s += "-" + strconv.Itoa(c.parts)
	}
	return s
}

// s3SumOf is the checksum a HEAD (with checksum mode enabled) gave, of
// the kinds hpcml checks, or nil. CRC64NVME exists only whole-object;
// SHA-1 and SHA-256 checksums (rare, and no cheaper than hpcml's own
// SHA-256) are not used.
func s3SumOf(out *s3.HeadObjectOutput) *s3Sum {
	for _, c := range []struct {
		alg   string
		value *string
	}{{"crc64nvme", out.ChecksumCRC64NVME}, {"crc32c", out.ChecksumCRC32C}, {"crc32", out.ChecksumCRC32}} {
		if c.value == nil || *c.value == "" {
			continue
		}
		v, parts := *c.value, 0
		if i := strings.LastIndexByte(v, '-'); i >= 0 {
			n, err := strconv.Atoi(v[i+1:])
			if err != nil || n < 1 || n > hblob.MaxParts {
				return nil
			}
			v, parts = v[:i], n
		}
		if (parts > 0) != (out.ChecksumType == types.ChecksumTypeComposite) && out.ChecksumType != "" {
			return nil // the value's form and the type it is said to be disagree
		}
		if parts > 0 && c.alg == "crc64nvme" {
			return nil
		}
		if _, err := base64.StdEncoding.DecodeString(v); err != nil {
			return nil
		}
		return &s3Sum{alg: c.alg, value: v, parts: parts}
	}
	return nil
}

// carried is what a source object carries to check a copy of it by: the
// SHA-256 hpcml recorded with it, and the S3 checksum the store keeps.
type carried struct {
	sha256 string
	s3     *s3Sum
}

// carriedIn reads what an object carries from the headers of a GET of
// it (with checksum mode enabled).
func carriedIn(h http.Header) carried {
	get := func(k string) *string {
		if v := h.Get(k); v != "" {
			return &v
		}
		return nil
	}
	return carried{
		sha256: h.Get("X-Amz-Meta-" + MetaSHA256),
		s3: s3SumOf(&s3.HeadObjectOutput{
			ChecksumCRC64NVME: get("X-Amz-Checksum-Crc64nvme"),
			ChecksumCRC32C:    get("X-Amz-Checksum-Crc32c"),
			ChecksumCRC32:     get("X-Amz-Checksum-Crc32"),
			ChecksumType:      types.ChecksumType(h.Get("X-Amz-Checksum-Type")),
		}),
	}
}

// carriedBy reads what an object carries from the SDK's answer to a GET
// (its checksum only if the GET asked for it).
func carriedBy(out *s3.GetObjectOutput) carried {
	return carried{
		sha256: out.Metadata[MetaSHA256],
		s3: s3SumOf(&s3.HeadObjectOutput{
			ChecksumCRC64NVME: out.ChecksumCRC64NVME, ChecksumCRC32C: out.ChecksumCRC32C,
			ChecksumCRC32: out.ChecksumCRC32, ChecksumType: out.ChecksumType,
		}),
	}
}

// check compares a whole object's bytes as read (data, whose SHA-256 is
// sha) with the strongest checksum it carries: the recorded SHA-256, else
// a whole-object S3 checksum. A composite one (a multipart upload's)
// needs the part sizes, which a whole read does not see: not checked.
func (c carried) check(data []byte, sha string) error {
	switch {
	case c.sha256 != "":
		if !strings.EqualFold(c.sha256, sha) {
			return fmt.Errorf("content does not match the SHA-256 recorded with the source (%s, read %s)", c.sha256, sha)
		}
	case c.s3 != nil && c.s3.parts == 0:
		h := c.s3.newHash()
		h.Write(data)
		return c.s3.check(encode(h))
	}
	return nil
}

// newHash is a hash of the checksum's kind (of the whole content, or of
// one part of a composite).
func (c *s3Sum) newHash() hash.Hash {
	switch c.alg {
	case "crc32c":
		return crc32.New(crc32.MakeTable(crc32.Castagnoli))
	case "crc64nvme":
		// Carry-less multiplication: 10 GB/s on the benchmark machine,
		// where hash/crc64's tables manage 1.3 (about SHA-256's speed).
		return crc64nvme.New()
	default:
		return crc32.NewIEEE()
	}
}

// encode is a hash's sum in S3's form.
func encode(h hash.Hash) string { return base64.StdEncoding.EncodeToString(h.Sum(nil)) }

// combine is a composite's value: the checksum of its parts' checksums,
// each as the bytes S3 encodes.
func (c *s3Sum) combine(partSums [][]byte) string {
	h := c.newHash()
	for _, s := range partSums {
		h.Write(s)
	}
	return encode(h)
}

// check compares the checksum got of the bytes read with c.
func (c *s3Sum) check(got string) error {
	if got != c.value {
		want := c.String()
		return fmt.Errorf("content does not match the source's S3 checksum (%s, read %s)", want, strings.Replace(want, c.value, got, 1))
	}
	return nil
}

// of computes the checksum of r's content the way c is computed, over
// the same parts for a composite (whose sizes a copy recorded), and
// returns it in c's form.
func (c *s3Sum) of(r io.Reader, buf []byte) (string, error) {
	if c.parts == 0 {
		h := c.newHash()
		if _, err := io.CopyBuffer(h, r, buf); err != nil {
			return "", err
		}
		return (&s3Sum{alg: c.alg, value: encode(h)}).String(), nil
	}
	if len(c.partSizes) != c.parts {
		return "", fmt.Errorf("the sizes of the %d parts of %s are not known", c.parts, c)
	}
	sums := make([][]byte, c.parts)
	for i, n := range c.partSizes {
		h := c.newHash()
		got, err := io.CopyBuffer(h, io.LimitReader(r, n), buf)
		if err != nil {
			return "", err
		}
		if got != n {
			return "", fmt.Errorf("%d bytes in part %d, want %d", got, i+1, n)
		}
		sums[i] = h.Sum(nil)
	}
	if n, _ := r.Read(make([]byte, 1)); n > 0 {
		return "", fmt.Errorf("more bytes than the %d parts of %s", c.parts, c)
	}
	return (&s3Sum{alg: c.alg, value: c.combine(sums), parts: c.parts}).String(), nil
}

// s3Sum asks the store for an object's S3 checksum (a HEAD with checksum
// mode enabled, which gocloud's attributes do not ask for) and returns
// it if the object still has the ETag etag; nil if it has none, or the
// store does not say, or the key is one the raw client might not spell
// as gocloud does (see blob.PlainS3Key).
func (s *store) s3Sum(ctx context.Context, key, etag string) *s3Sum {
	var client *s3.Client
	full := s.full(key)
	name, ok := s.s3Name()
	if !ok || !s.bucket.As(&client) || !hblob.PlainS3Key(full) {
		return nil
	}
	out, err := client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(name), Key: aws.String(full), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil || aws.ToString(out.ETag) != etag {
		return nil
	}
	return s3SumOf(out)
}

// crcOf is a CRC's reflected polynomial and width: the three kinds S3
// uses all start from and end with all ones, as zlib's CRC-32 does, so
// zlib's way of combining applies to each.
func (c *s3Sum) crcOf() (poly uint64, width uint) {
	switch c.alg {
	case "crc32c":
		return 0x82f63b78, 32
	case "crc64nvme":
		return 0x9a6c9329ac4bc9b5, 64
	default:
		return 0xedb88320, 32
	}
}

// combineCRC is the CRC of A‖B from crcA, crcB and B's length: crcA
// carried over len(B) more bytes (times x^(8·len(B)) mod P), plus crcB
// (zlib's crc32_combine).
func (c *s3Sum) combineCRC(crcA, crcB uint64, lenB int64) uint64 {
	poly, width := c.crcOf()
	return mulModP(x8nModP(uint64(lenB), poly, width), crcA, poly, width) ^ crcB
}

// mulModP is a·b modulo P, in the reflected form (the top bit is x^0).
func mulModP(a, b, poly uint64, width uint) uint64 {
	m := uint64(1) << (width - 1)
	var p uint64
	for a != 0 { // each bit of a is cleared as it is passed
		if a&m != 0 {
			p ^= b
			a &^= m
		}
		m >>= 1
		if b&1 != 0 {
			b = b>>1 ^ poly
		} else {
			b >>= 1
		}
	}
	return p
}

// x8nModP is x^(8n) modulo P: n bytes' worth of shift.
func x8nModP(n, poly uint64, width uint) uint64 {
	p := uint64(1) << (width - 1) // x^0
	x := uint64(1) << (width - 2) // x^1
	for range 3 {                 // x^8
		x = mulModP(x, x, poly, width)
	}
	for ; n != 0; n >>= 1 {
		if n&1 != 0 {
			p = mulModP(x, p, poly, width)
		}
		x = mulModP(x, x, poly, width)
	}
	return p
}

// sumOf is a CRC hash's value as a number.
func sumOf(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

// encodeCRC is a CRC's value in S3's form (big-endian, base64).
func (c *s3Sum) encodeCRC(v uint64) string {
	_, width := c.crcOf()
	b := make([]byte, width/8)
	for i := range b {
		b[len(b)-1-i] = byte(v >> (8 * i))
	}
	return base64.StdEncoding.EncodeToString(b)
}
