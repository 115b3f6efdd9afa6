package collective

import (
	"strings"
	"testing"
	"time"
)

func TestConfigFromEnv(t *testing.T) {
	good := map[string]string{
		"HPCML_RANK": "1", "HPCML_WORLD_SIZE": "4", "HPCML_MASTER_ADDR": "10.0.0.5", "HPCML_MASTER_PORT": "29500",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		if v == "<unset>" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	cfg, err := ConfigFromEnv(func(k string) string { return good[k] })
	if err != nil {
		t.Fatal(err)
	}
	if want := (Config{Rank: 1, WorldSize: 4, MasterAddr: "10.0.0.5", MasterPort: 29500}); cfg != want {
		t.Fatalf("got %+v, want %+v", cfg, want)
	}
	one, err := ConfigFromEnv(func(k string) string { return map[string]string{"HPCML_RANK": "0", "HPCML_WORLD_SIZE": "1"}[k] })
	if err != nil || one.WorldSize != 1 {
		t.Fatalf("world of one without a master: %+v, %v", one, err)
	}
	for _, tc := range []struct {
		key, val, want string
	}{
		{"HPCML_RANK", "<unset>", "HPCML_RANK is not set"},
		{"HPCML_RANK", "one", `HPCML_RANK="one" is not an integer`},
		{"HPCML_RANK", "4", "HPCML_RANK=4 is out of range for HPCML_WORLD_SIZE=4"},
		{"HPCML_RANK", "-1", "HPCML_RANK=-1 is out of range"},
		{"HPCML_WORLD_SIZE", "<unset>", "HPCML_WORLD_SIZE is not set"},
		{"HPCML_WORLD_SIZE", "0", "HPCML_WORLD_SIZE=0: must be at least 1"},
		{"HPCML_WORLD_SIZE", "4x", `HPCML_WORLD_SIZE="4x" is not an integer`},
		{"HPCML_MASTER_ADDR", "", "HPCML_MASTER_ADDR is not set"},
		{"HPCML_MASTER_PORT", "<unset>", "HPCML_MASTER_PORT is not set"},
		{"HPCML_MASTER_PORT", "http", `HPCML_MASTER_PORT="http" is not an integer`},
		{"HPCML_MASTER_PORT", "70000", "HPCML_MASTER_PORT=70000 is not a TCP port"},
	} {
		env := with(tc.key, tc.val)
		_, err := ConfigFromEnv(func(k string) string { return env[k] })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: got %v, want %q", tc.key, tc.val, err, tc.want)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Rank: 0, WorldSize: 0}, "WorldSize 0"},
		{Config{Rank: 2, WorldSize: 2, MasterAddr: "x", MasterPort: 1}, "Rank 2 is out of range"},
		{Config{Rank: 0, WorldSize: 2, MasterPort: 1}, "MasterAddr is empty"},
		{Config{Rank: 0, WorldSize: 2, MasterAddr: "x"}, "MasterPort 0"},
		{Config{Rank: 0, WorldSize: 1, Timeout: -time.Second}, "Timeout"},
		{Config{Rank: 0, WorldSize: 1, SegmentBytes: 6}, "SegmentBytes 6"},
		{Config{Rank: 0, WorldSize: 1, Fingerprint: strings.Repeat("x", 5000)}, "Fingerprint is 5000 bytes"},
	} {
		if err := tc.cfg.check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestShard(t *testing.T) {
	for size := 1; size <= 5; size++ {
		for length := range 23 {
			next := 0
			for r := range size {
				lo, hi := Shard(length, size, r)
				if lo != next || hi < lo || hi-lo > length/size+1 || hi-lo < length/size {
					t.Fatalf("Shard(%d, %d, %d) = %d, %d after %d", length, size, r, lo, hi, next)
				}
				next = hi
			}
			if next != length {
				t.Fatalf("Shard(%d, %d, ·) covers %d", length, size, next)
			}
		}
	}
}

func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		60 * time.Second: "60s", time.Second: "1s", 1500 * time.Millisecond: "1.5s", 5 * time.Minute: "5m0s", 250 * time.Millisecond: "250ms",
	} {
		if got := seconds(d); got != want {
			t.Errorf("seconds(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestListenAddr(t *testing.T) {
	for _, tc := range []struct {
		host string
		want string
	}{
		{"127.0.0.1", "127.0.0.1:29500"},
		{"10.1.2.3", "10.1.2.3:29500"},
		{"::1", "[::1]:29500"},
		{"localhost", "localhost:29500"},
		{"node-17", ":29500"},
	} {
		if got := listenAddr(tc.host, 29500); got != tc.want {
			t.Errorf("listenAddr(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
}
