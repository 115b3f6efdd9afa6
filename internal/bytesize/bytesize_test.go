package bytesize

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		bare Unit
		want int64
	}{
		{"100", Byte, 100},
		{"512K", Byte, 512 << 10},
		{"512k", Byte, 512 << 10},
		{"6MB", Byte, 6 << 20},
		{"1GiB", Byte, 1 << 30},
		{"7b", Byte, 7},
		{" 2 m ", Byte, 2 << 20},
		{"1.5G", Byte, 3 << 29},
		{"0.5M", Byte, 512 << 10},
		{"2T", Byte, 2 << 40},
		{"0", Byte, 0},
		{"0.1K", Byte, 103}, // rounds up to a whole byte
		{"512", MiB, 512 << 20},
		{"1.5", MiB, 3 << 19},
		{"4 GiB", MiB, 4 << 30},
		{"100B", MiB, 100}, // a unit given overrides the bare one
	} {
		if got, err := Parse(tc.in, tc.bare); err != nil || got != tc.want {
			t.Errorf("Parse(%q, %d) = %d, %v; want %d", tc.in, tc.bare, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", " ", "M", "x", "ten", "-1", "-5M", "1,5M", "4.5.1G", "1e3", "NaN", "inf", "0x10",
		"6XB", "4X", "99999999999G", "9999999T", "0.5", "1.5B", "1" + strings.Repeat("0", 400)} {
		if got, err := Parse(bad, Byte); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", bad, got)
		}
	}
	if _, err := Parse("ten", MiB); err == nil || !strings.Contains(err.Error(), `"ten"`) || !strings.Contains(err.Error(), "number of MB") {
		t.Errorf("error %v: want the input and what a bare number counts", err)
	}
	if _, err := Parse("1e400", Byte); err == nil || !strings.Contains(err.Error(), "invalid size") {
		t.Errorf("error %v", err)
	}
	if _, err := Parse("1"+strings.Repeat("0", 400), Byte); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("error %v: want too large", err)
	}
	if _, err := Parse("0.5", Byte); err == nil || !strings.Contains(err.Error(), "not a whole number of bytes") {
		t.Errorf("error %v: want a fraction of a byte refused", err)
	}
	if _, err := Parse("4 X", Byte); err == nil || !strings.Contains(err.Error(), `unknown unit "X"`) {
		t.Errorf("error %v: want the unknown unit named", err)
	}
}
