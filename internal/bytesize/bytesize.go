// Package bytesize reads the sizes users write in flags: a number, with
// or without a fraction, and a binary unit K, M, G or T (with or without
// B or iB, in any case): "512M", "1.5GiB", "6MB", "4096". Every size a
// user types reads the same way; only what a bare number counts differs
// (bytes, or MB for memory as with Slurm's --mem).
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Unit is a number of bytes a bare number counts in.
type Unit int64

const (
	Byte Unit = 1
	KiB  Unit = 1 << 10
	MiB  Unit = 1 << 20
	GiB  Unit = 1 << 30
	TiB  Unit = 1 << 40
)

// largest is the largest size read: far beyond any real one, and far enough
// below math.MaxInt64 that callers may add sizes up.
const largest = 1 << 62

// Parse returns the size s names, in bytes, rounded up to a whole byte
// (a number of bytes itself must be whole). A bare number counts in units
// of bare.
func Parse(s string, bare Unit) (int64, error) {
	in := strings.TrimSpace(s)
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	// Digits and one point only: ParseFloat would also take "1e3",
	// "inf" and "0x10".
	num, unit := in[:i], strings.ToLower(strings.TrimSpace(in[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	if err != nil {
		return 0, fmt.Errorf("invalid size %q (want e.g. 512M, 1.5G, 6MB or a number of %s)", s, bare.plural())
	}
	factor := bare
	switch unit {
	case "":
	case "b":
		factor = Byte
	case "k", "kb", "kib":
		factor = KiB
	case "m", "mb", "mib":
		factor = MiB
	case "g", "gb", "gib":
		factor = GiB
	case "t", "tb", "tib":
		factor = TiB
	default:
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use K, M, G or T)", s, strings.TrimSpace(in[i:]))
	}
	if factor == Byte && v != math.Trunc(v) {
		// Rounding would turn "0.5" into 1: a limit of one byte a second
		// where 0 meant none.
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	n := math.Ceil(v * float64(factor))
	if n > largest {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return int64(n), nil
}

func (u Unit) plural() string {
	switch u {
	case Byte:
		return "bytes"
	case KiB:
		return "KB"
	case MiB:
		return "MB"
	case GiB:
		return "GB"
	}
	return "TB"
}
