package dashboard

import (
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
	"sync"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/hpcml/hpcml/internal/analysis"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/train"
)

const testToken = "s3cret-token-0123456789abcdef"

// testAuth is the server's token check, as the server will do it.
type testAuth struct{ token string }

func (a testAuth) ValidToken(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), []byte(a.token)) == 1
}
func (a testAuth) SessionKey() []byte { return []byte(a.token) }

// fakeSource is an in-memory Source. Methods return copies, so a test may
// change a job while a page is being rendered.
type fakeSource struct {
	mu     sync.Mutex
	jobs   []*job.Job // in id order
	queues []*job.Queue
	cap    job.Capacity
	logs   map[string]string // "id/attempt/stream"
	// reports are the stored profile reports, in no particular order.
	reports []*analysis.ProfileReport
	// runs reads training runs: from an empty in-memory bucket unless a
	// test points it at a storage directory.
	runs train.Runs
	// err, if set, is returned by every method.
	err error
}

func ptr[T any](v T) *T { return &v }

// newFakeSource holds a small, varied cluster: a running job with a log, a
// finished one, a retried failure, an array with four tasks, a pending job.
func newFakeSource() *fakeSource {
	now := time.Now()
	ago := func(d time.Duration) *time.Time { return ptr(now.Add(-d)) }
	s := &fakeSource{logs: map[string]string{}, runs: train.Runs{Bucket: memblob.OpenBucket(nil)}}
	s.queues = []*job.Queue{
		{Name: "default", Priority: 10, PriceCPUHour: 0.05, PriceGBHour: 0.01, Backend: "local", CreatedAt: now.Add(-48 * time.Hour)},
		{Name: "gpu", Priority: 50, MaxRunning: 2, PriceCPUHour: 0.5, PriceGBHour: 0.1, Backend: "local", CreatedAt: now.Add(-2 * time.Hour)},
	}
	s.cap = job.Capacity{
		Total:   job.Resources{CPUs: 8, MemoryMB: 16384},
		Used:    job.Resources{CPUs: 2.5, MemoryMB: 6144},
		Running: 2,
	}
	res := job.Resources{CPUs: 2, MemoryMB: 4096}
	s.jobs = []*job.Job{
		{ID: 1, Name: "train-mnist", Queue: "gpu", State: job.Running, Attempt: 1,
			SubmittedAt: now.Add(-95 * time.Second), StartedAt: ago(90 * time.Second),
			Spec:     job.Spec{Name: "train-mnist", Queue: "gpu", Command: []string{"hpcml", "train", "--epochs", "3", "--data", "file:///data/mnist dir"}, Resources: res},
			Attempts: []job.Attempt{{Number: 1, State: job.Running, StartedAt: ago(90 * time.Second), CPUSeconds: 150, MaxRSSBytes: 812 << 20}},
			Progress: &job.Progress{Done: 1, Total: 3, Unit: "epochs", Rate: 0.02, ETASeconds: 100, Message: "epoch 1/3 <loss=0.3124>", UpdatedAt: now}},
		{ID: 2, Name: "preprocess", Queue: "default", State: job.Succeeded, Attempt: 1, ExitCode: ptr(0),
			SubmittedAt: now.Add(-20 * time.Minute), StartedAt: ago(19 * time.Minute), EndedAt: ago(17 * time.Minute),
			CPUSeconds: 12.5, MaxRSSBytes: 256 << 20, Cost: 0.0021,
			Spec: job.Spec{Name: "preprocess", Command: []string{"python3", "prep.py"}, Resources: job.Resources{CPUs: 1, MemoryMB: 1024}},
			Attempts: []job.Attempt{{Number: 1, State: job.Succeeded, StartedAt: ago(19 * time.Minute), EndedAt: ago(17 * time.Minute),
				ExitCode: ptr(0), CPUSeconds: 12.5, MaxRSSBytes: 256 << 20}}},
		{ID: 3, Name: "flaky-eval", Queue: "default", State: job.Failed, Reason: "exit code 1 <b>bold</b>", Attempt: 2, ExitCode: ptr(1),
			SubmittedAt: now.Add(-15 * time.Minute), StartedAt: ago(14 * time.Minute), EndedAt: ago(10 * time.Minute), Cost: 0.011,
			Spec: job.Spec{Name: "flaky-eval", Command: []string{"sh", "-c", "exit 1"}, Resources: res, Retry: job.RetryPolicy{Attempts: 2}},
			Attempts: []job.Attempt{
				{Number: 1, State: job.Failed, Reason: "node lost: slurm job 77: node fail", StartedAt: ago(14 * time.Minute), EndedAt: ago(13 * time.Minute), ExitCode: ptr(1), CPUSeconds: 3,
					BackendID: "slurm:77", Interrupted: true},
				{Number: 2, State: job.Failed, Reason: "killed by SIGKILL", StartedAt: ago(12 * time.Minute), EndedAt: ago(10 * time.Minute), Signal: "SIGKILL", CPUSeconds: 4},
			}},
		{ID: 4, Name: "sweep", Queue: "default", State: job.Running, ArraySize: 4,
			SubmittedAt: now.Add(-5 * time.Minute), StartedAt: ago(4 * time.Minute),
			Spec: job.Spec{Name: "sweep", Command: []string{"./sweep.sh"}, Array: "0-3%2", Resources: res}},
	}
	for i, st := range []job.State{job.Succeeded, job.Running, job.Runnable, job.Runnable} {
		t := &job.Job{ID: int64(5 + i), Name: "sweep", Queue: "default", State: st, ParentID: 4, ArrayIndex: ptr(i),
			SubmittedAt: now.Add(-5 * time.Minute), Spec: s.jobs[3].Spec}
		if st != job.Runnable {
			t.Attempt = 1
			t.StartedAt = ago(time.Duration(4-i) * time.Minute)
			t.Attempts = []job.Attempt{{Number: 1, State: st, StartedAt: t.StartedAt}}
		}
		if st == job.Succeeded {
			t.EndedAt, t.ExitCode = ago(time.Minute), ptr(0)
			t.Attempts[0].EndedAt, t.Attempts[0].ExitCode = t.EndedAt, ptr(0)
		}
		s.jobs = append(s.jobs, t)
	}
	s.jobs = append(s.jobs, &job.Job{ID: 9, Name: "report", Queue: "default", State: job.Pending,
		Reason: "waiting for job 3 (afterok)", SubmittedAt: now.Add(-30 * time.Second),
		Spec: job.Spec{Name: "report", Command: []string{"make", "report"}, Resources: res,
			DependsOn: []job.Dependency{{Type: job.AfterOK, JobID: 3}}}})
	s.logs["1/1/stdout"] = "epoch 1/3 loss=0.3124\n"
	s.logs["1/1/stderr"] = "warning: <no GPU> found, using CPU\n"
	s.logs["2/1/stdout"] = "prepared 60000 images\n"
	s.logs["3/2/stderr"] = "Traceback: boom\n"
	return s
}

func (s *fakeSource) find(id string) *job.Job {
	for _, j := range s.jobs {
		if j.DisplayID() == id {
			return j
		}
	}
	return nil
}

// view copies a job and, for an array parent, counts its tasks.
func (s *fakeSource) view(j *job.Job) *job.Job {
	c := *j
	c.Attempts = slices.Clone(j.Attempts)
	if j.IsArrayParent() {
		c.ArrayCounts = map[job.State]int{}
		for _, t := range s.jobs {
			if t.ParentID == j.ID {
				c.ArrayCounts[t.State]++
			}
		}
	}
	return &c
}

func (s *fakeSource) ListJobs(ctx context.Context, f JobFilter) ([]*job.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	var out []*job.Job
	for i := len(s.jobs) - 1; i >= 0; i-- {
		j := s.jobs[i]
		if j.ParentID != f.Parent ||
			(f.State != "" && j.State != f.State) ||
			(f.Queue != "" && j.Queue != f.Queue) {
			continue
		}
		c := *j // like a list query: no attempts, no counts
		c.Attempts = nil
		out = append(out, &c)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

func (s *fakeSource) GetJob(ctx context.Context, id string) (*job.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	j := s.find(id)
	if j == nil {
		return nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	return s.view(j), nil
}

func (s *fakeSource) ListQueues(ctx context.Context) ([]*job.Queue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	var out []*job.Queue
	for _, q := range s.queues {
		c := *q
		c.Counts = map[job.State]int{}
		for _, j := range s.jobs {
			if j.Queue == q.Name && !j.IsArrayParent() {
				c.Counts[j.State]++
			}
		}
		out = append(out, &c)
	}
	return out, nil
}

func (s *fakeSource) Capacity(ctx context.Context) (job.Capacity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return job.Capacity{}, s.err
	}
	return s.cap, nil
}

func (s *fakeSource) Log(ctx context.Context, id string, attempt int, stream string, maxBytes int64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	l, ok := s.logs[fmt.Sprintf("%s/%d/%s", id, attempt, stream)]
	if !ok {
		return nil, fmt.Errorf("log of %s: %w", id, ErrNotFound)
	}
	if int64(len(l)) > maxBytes {
		l = l[int64(len(l))-maxBytes:]
	}
	return []byte(l), nil
}

// setState moves a job, as the scheduler would.
func (s *fakeSource) setState(id string, st job.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.find(id)
	j.State = st
	if st.Terminal() {
		end := time.Now()
		j.EndedAt = &end
		j.ExitCode = ptr(0)
		if n := len(j.Attempts); n > 0 {
			j.Attempts[n-1].State = st
			j.Attempts[n-1].EndedAt = &end
			j.Attempts[n-1].ExitCode = ptr(0)
		}
	}
}

func (s *fakeSource) appendLog(id string, attempt int, stream, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs[fmt.Sprintf("%s/%d/%s", id, attempt, stream)] += text
}

// setProgress sets what a running job reports of its progress.
func (s *fakeSource) setProgress(id string, p *job.Progress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.find(id).Progress = p
}

func (s *fakeSource) ListReports(ctx context.Context) ([]analysis.Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	out := []analysis.Summary{}
	for _, r := range s.reports {
		out = append(out, r.Summary())
	}
	return out, nil
}

func (s *fakeSource) GetReport(ctx context.Context, id string) (*analysis.ProfileReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	for _, r := range s.reports {
		if r.ID == id {
			return r, nil
		}
	}
	return nil, fmt.Errorf("report %s: %w", id, ErrNotFound)
}

// addReport stores a report, as `hpcml data profile --save` would.
func (s *fakeSource) addReport(r *analysis.ProfileReport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reports = append(s.reports, r)
}

// TrainingRuns reads the runs in the source's bucket, as the server reads
// its storage.
func (s *fakeSource) TrainingRuns() train.Runs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs
}
