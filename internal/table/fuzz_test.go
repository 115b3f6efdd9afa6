package table

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzCSV: any bytes are read or rejected with an error, never a crash;
// what reads whole reads the same through partitions (the sample is the
// whole file here, so Split knows whether quoted fields span lines).
func FuzzCSV(f *testing.F) {
	for _, s := range []string{
		"a,b\n1,2\n", "a,b\n\"x,\"\"y\",2\n", "a\n\"open", "a;b\r\n1;2\r\n", "\n\n", "a,b\n1,2,3\n",
		"a,b\n\"x\"y,1\n", "x\n1e5\nNaN\n-inf\n", "t\n2024-02-29T10:00Z\n", "\xff\xfe,\n1,2\n", "a\n\"\"\n\n",
		"a,b\n1,\n,2\nNA,NULL\n", "a\tb\n1\t2\n", "\xef\xbb\xbf1,2\n3,4\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		p := filepath.Join(t.TempDir(), "f.csv")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Open(context.Background(), p, Options{BatchRows: 5})
		if err != nil {
			return
		}
		whole, err := drain(r)
		r.Close()
		if err != nil {
			return
		}
		parts, err := Split(context.Background(), p, Options{}, int(n%16)+1)
		if err != nil {
			t.Fatalf("read whole but Split failed: %v", err)
		}
		var got []string
		for _, part := range parts {
			pr, err := OpenPartition(context.Background(), part, Options{BatchRows: 3})
			if err != nil {
				t.Fatal(err)
			}
			rows, err := drain(pr)
			pr.Close()
			if err != nil {
				// The sample was the whole file: a file with quoted
				// newlines is not cut, and one without is cut exactly.
				t.Fatalf("partition %d failed though the whole read: %v", part.Index, err)
			}
			got = append(got, rows...)
		}
		eq(t, "partitions", got, whole)
	})
}

// FuzzJSONL: the same for JSON Lines, whose ranges are exact.
func FuzzJSONL(f *testing.F) {
	for _, s := range []string{"{\"a\":1}\n{\"a\":2.5,\"b\":\"x\"}\n", "[1]\n", "{\"a\":\"2024-01-01\"}\n", "{}\n\n{\"a\":null}\n", "{\"a\":{\"b\":[1,2]}}\n"} {
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		p := filepath.Join(t.TempDir(), "f.jsonl")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Open(context.Background(), p, Options{BatchRows: 5})
		if err != nil {
			return
		}
		whole, err := drain(r)
		r.Close()
		if err != nil {
			return
		}
		parts, err := Split(context.Background(), p, Options{}, int(n%16)+1)
		if err != nil {
			t.Fatal(err)
		}
		var all []string
		for _, part := range parts {
			pr, err := OpenPartition(context.Background(), part, Options{})
			if err != nil {
				t.Fatal(err)
			}
			rows, err := drain(pr)
			pr.Close()
			if err != nil {
				t.Fatalf("partition %d failed though the whole read: %v", part.Index, err)
			}
			all = append(all, rows...)
		}
		eq(t, "partitions", all, whole)
	})
}

// FuzzParseFloat: the fast parser agrees with strconv on every decimal.
func FuzzParseFloat(f *testing.F) {
	for _, s := range []string{"1.5", "-0.000123", "1e22", "9007199254740993", "123456789012345678901", ".5", "5.", "-", "1e", "inf", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := parseFloat([]byte(s))
		w, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		decimal := !strings.ContainsAny(s, "xXpP_") && strings.TrimLeft(strings.TrimSpace(s), "+-") != "" &&
			strings.Trim(strings.TrimSpace(s), " \t") == strings.TrimSpace(s)
		if ok {
			if err != nil && err.(*strconv.NumError).Err != strconv.ErrRange {
				t.Fatalf("parseFloat(%q) = %v but strconv: %v", s, v, err)
			}
			if math.Float64bits(v) != math.Float64bits(w) && !(math.IsNaN(v) && math.IsNaN(w)) {
				t.Fatalf("parseFloat(%q) = %v, strconv %v", s, v, w)
			}
		} else if err == nil && decimal && !strings.ContainsAny(s, "\n\r\v\f") {
			t.Fatalf("parseFloat(%q) failed; strconv reads %v", s, w)
		}
		iv, iok := parseInt([]byte(s))
		ww, ierr := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if iok && (ierr != nil || iv != ww) {
			t.Fatalf("parseInt(%q) = %v; strconv %v, %v", s, iv, ww, ierr)
		}
	})
}
