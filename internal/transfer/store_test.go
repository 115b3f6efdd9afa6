package transfer

import (
	"testing"
	"time"
)

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

// TestMtimeValue: the recorded time is Unix seconds as rclone writes
// them, before 1970 too.
func TestMtimeValue(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{time.Unix(1795764715, 0), "1795764715"},
		{time.Unix(1795764715, 617194755), "1795764715.617194755"},
		{time.Unix(1795764715, 500000000), "1795764715.5"},
		{time.Unix(-1, 750000000), "-0.25"},
		{time.Unix(-2, 500000000), "-1.5"},
		{time.Unix(-3, 0), "-3"},
	} {
		if got := mtimeValue(c.t); got != c.want {
			t.Errorf("%v: %q, want %q", c.t, got, c.want)
		}
	}
}
