package transfer

import "testing"

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
