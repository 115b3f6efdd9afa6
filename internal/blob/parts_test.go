package blob

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
		if got := PartSize(tc.size); got != tc.want {
			t.Errorf("PartSize(%d) = %d (%.2f MiB), want %d", tc.size, got, float64(got)/float64(MiB), tc.want)
		}
	}
	// For every size S3 allows: within the limits, a whole number of
	// MiB, and at most 10,000 parts.
	for size := int64(1); size <= 5*TiB; size = size*3 + 7 {
		p := PartSize(size)
		if p < MinPart || p > MaxPart {
			t.Errorf("PartSize(%d) = %d, outside [5 MiB, 5 GiB]", size, p)
		}
		if parts := (size + p - 1) / p; parts > MaxParts {
			t.Errorf("PartSize(%d) = %d gives %d parts", size, p, parts)
		}
		if p%MiB != 0 {
			t.Errorf("PartSize(%d) = %d, not a whole number of MiB", size, p)
		}
	}
	if MinPart != 5*MiB || MaxPart != 5*GiB || MaxParts != 10000 {
		t.Errorf("S3's multipart limits changed: %d %d %d", MinPart, MaxPart, MaxParts)
	}
}
