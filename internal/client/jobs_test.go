package client

import (
	"testing"

	"github.com/hpcml/hpcml/internal/job"
)

// TestIsJob: a job answered for an id is that job — a task by its
// parent and index or by its own id — so that an older server's list,
// answered to ?ids= it does not know, is not taken for the jobs asked.
func TestIsJob(t *testing.T) {
	three := 3
	task := &job.Job{ID: 45, ParentID: 41, ArrayIndex: &three}
	plain := &job.Job{ID: 42}
	for _, c := range []struct {
		j    *job.Job
		raw  string
		want bool
	}{
		{plain, "42", true},
		{plain, "042", true},
		{plain, "43", false},
		{task, "41_3", true},
		{task, "45", true},
		{task, "41_2", false},
		{plain, "41_3", false},
		{nil, "42", false},
		{plain, "x", false},
	} {
		if got := isJob(c.j, c.raw); got != c.want {
			t.Errorf("isJob(%+v, %q) = %v, want %v", c.j, c.raw, got, c.want)
		}
	}
}
