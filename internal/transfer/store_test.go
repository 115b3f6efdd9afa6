package transfer

import "testing"

func TestPartSize(t *testing.T) {
	const (
		MiB = int64(1) << 20
		GiB = int64(1) << 30
		TiB = int64(1) << 40
	)
	for _, tc := range []struct {
		size, want int64
	}{
		{0, 16 * MiB},
		{1, 16 * MiB},
		{40 * MiB, 16 * MiB},
		{16 * MiB * 10000, 16 * MiB}, // exactly 10,000 default parts
		// 1 TiB needs parts of at least 1 TiB / 10,000 = 104.9 MiB,
		// rounded up to a multiple of 5 MiB: 105 MiB.
		{TiB, 105 * MiB},
		// 5 TiB (S3's largest object) still fits.
		{5 * TiB, 525 * MiB},
		// Beyond anything S3 allows: capped at 5 GiB.
		{100 * TiB, 5 * GiB},
	} {
		if got := partSize(tc.size); got != tc.want {
			t.Errorf("partSize(%d) = %d (%.2f MiB), want %d", tc.size, got, float64(got)/float64(MiB), tc.want)
		}
	}
	// For every size S3 allows: within the limits, a whole number of
	// MiB, and at most 10,000 parts.
	for size := int64(1); size <= 5*TiB; size = size*3 + 7 {
		p := partSize(size)
		if p < minPart || p > maxPart {
			t.Errorf("partSize(%d) = %d, outside [5 MiB, 5 GiB]", size, p)
		}
		if parts := (size + p - 1) / p; parts > maxParts {
			t.Errorf("partSize(%d) = %d gives %d parts", size, p, parts)
		}
		if p%MiB != 0 {
			t.Errorf("partSize(%d) = %d, not a whole number of MiB", size, p)
		}
	}
	if minPart != 5*MiB || maxPart != 5*GiB || maxParts != 10000 {
		t.Errorf("S3's multipart limits changed: %d %d %d", minPart, maxPart, maxParts)
	}
}

func TestKeyToURL(t *testing.T) {
	for _, tc := range []struct{ raw, key, want string }{
		{"/data/src", "a/b.bin", "/data/src/a/b.bin"},
		{"/data/src/", "a/b.bin", "/data/src/a/b.bin"},
		{"s3://bkt/pre/?region=us-east-1", "x/y", "s3://bkt/pre/x/y?region=us-east-1"},
		{"s3://bkt/pre/", "x", "s3://bkt/pre/x"},
		{"s3://bkt/one.bin", "", "s3://bkt/one.bin"},
	} {
		ep, err := ParseEndpoint(tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		if tc.key != "" {
			ep = ep.AsTree()
		}
		if got := keyToURL(ep, tc.key); got != tc.want {
			t.Errorf("keyToURL(%s, %q) = %q, want %q", tc.raw, tc.key, got, tc.want)
		}
	}
}
