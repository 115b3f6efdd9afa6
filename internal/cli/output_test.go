package cli

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hpcml/hpcml/internal/job"
)

func TestPrintYAMLKeepsStringsStrings(t *testing.T) {
	in := map[string]any{"command": []string{"1", "true", "x: y", "two\nlines"}, "cpus": 1.5}
	var buf bytes.Buffer
	if err := printYAML(&buf, in); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := yaml.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"command": []any{"1", "true", "x: y", "two\nlines"}, "cpus": 1.5}
	if !reflect.DeepEqual(back, want) {
		t.Errorf("round trip = %#v\nyaml:\n%s", back, buf.String())
	}
}

func TestHumanText(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	three, started := 3, now.Add(-75*time.Minute)
	tests := []struct{ got, want string }{
		{age(now, now.Add(-30*time.Second)), "30s"},
		{age(now, now.Add(-90*time.Minute)), "1h"},
		{age(now, now.Add(-72*time.Hour)), "3d"},
		{age(now, time.Time{}), "-"},
		{clock(75 * time.Second), "1:15"},
		{clock(3*time.Hour + 5*time.Second), "3:00:05"},
		{elapsed(now, &started, nil), "1:15:00"},
		{elapsed(now, nil, nil), "-"},
		{exitText(&three, ""), "3"},
		{exitText(&three, "SIGKILL"), "SIGKILL"},
		{exitText(nil, ""), "-"},
		{bytesText(512), "512 B"},
		{bytesText(3 << 30), "3.0 GiB"},
		{memText(1536), "1.5 GiB"},
		{cpuText(0.5), "0.5"},
		{cpuText(2), "2"},
		{truncate("a  b\nc", 10), "a b c"},
		{truncate("abcdefghijk", 5), "abcd…"},
		{quoteArgs([]string{"echo", "it's", "", "a=b"}), `echo 'it'\''s' '' a=b`},
		{countsText(map[job.State]int{job.Succeeded: 7, job.Running: 3, "NEW": 1}, false), "3 RUNNING, 7 SUCCEEDED, 1 NEW"},
		{finalLine(&job.Job{ID: 4, State: job.Failed, ExitCode: &three}), "Job 4 FAILED: exit 3"},
		{finalLine(&job.Job{ID: 5, State: job.Succeeded, ArraySize: 2, ArrayCounts: map[job.State]int{job.Succeeded: 2}}), "Job 5 SUCCEEDED (2 tasks: 2 SUCCEEDED)"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}
