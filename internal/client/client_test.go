package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/client/clienttest"
	"github.com/hpcml/hpcml/internal/job"
)

func TestSubmitAndGetSendTokenAndRoundTripSpec(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := srv.Client()
	ctx := t.Context()
	spec := &job.Spec{
		Command:   []string{"python", "train.py", "--lr", "0.1"},
		Env:       map[string]string{"SEED": "1"},
		Resources: job.Resources{CPUs: 0.5, MemoryMB: 512},
		TimeLimit: job.Duration(90 * time.Second),
		Retry:     job.RetryPolicy{Attempts: 3, OnSignals: []string{"KILL"}},
	}
	got, err := c.SubmitJob(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != 1 || got.State != job.Runnable || got.Name != "python" || got.Queue != "default" {
		t.Fatalf("submitted job = %+v", got)
	}
	// The spec travelled as JSON and was normalised by the server.
	if got.Spec.TimeLimit != job.Duration(90*time.Second) || got.Spec.Retry.OnSignals[0] != "SIGKILL" {
		t.Fatalf("spec as stored = %+v", got.Spec)
	}
	again, err := c.GetJob(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != 1 || again.Spec.Env["SEED"] != "1" {
		t.Fatalf("GetJob = %+v", again)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %+v", reqs)
	}
	for _, r := range reqs {
		if r.Authorization != "Bearer "+clienttest.Token {
			t.Errorf("%s %s sent Authorization %q", r.Method, r.Path, r.Authorization)
		}
	}
	if reqs[0].ContentType != "application/json" || reqs[0].Method != http.MethodPost || reqs[0].Path != "/api/v1/jobs" {
		t.Errorf("submit request = %+v", reqs[0])
	}
}

func TestErrorsDecodeIntoAPIError(t *testing.T) {
	srv := clienttest.NewServer(t)
	ctx := t.Context()
	tests := []struct {
		name    string
		call    func(c *client.Client) error
		token   string
		status  int
		code    string
		field   string
		message string // the whole Error() text
	}{
		{
			name: "invalid spec names the field",
			call: func(c *client.Client) error {
				_, err := c.SubmitJob(ctx, &job.Spec{Command: []string{"x"}, Name: "bad name"})
				return err
			},
			status: 400, code: "invalid_spec", field: "name",
			message: `submit job: name: "bad name" is not a valid name (letters, digits, '.', '_', '-'; at most 128)`,
		},
		{
			name:   "unknown job",
			call:   func(c *client.Client) error { _, err := c.GetJob(ctx, "99"); return err },
			status: 404, code: "not_found", message: "get job 99: job 99 does not exist",
		},
		{
			name:   "wrong token",
			call:   func(c *client.Client) error { _, err := c.ListJobs(ctx, client.ListOptions{}); return err },
			token:  "nope",
			status: 401, code: "unauthorized", message: "list jobs: missing or wrong bearer token",
		},
		{
			name:   "duplicate queue",
			call:   func(c *client.Client) error { _, err := c.CreateQueue(ctx, &job.Queue{Name: "default"}); return err },
			status: 409, code: "conflict", field: "name", message: `create queue default: name: queue "default" already exists`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := clienttest.Token
			if tt.token != "" {
				token = tt.token
			}
			err := tt.call(client.New(srv.URL, token))
			var ae *client.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T) is not an *APIError", err, err)
			}
			if ae.Status != tt.status || ae.Code != tt.code || ae.Field != tt.field {
				t.Errorf("APIError = %+v", ae)
			}
			if err.Error() != tt.message {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.message)
			}
		})
	}
}

func TestNonJSONErrorBodyStillGivesAPIError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream went away\n<html>...", http.StatusBadGateway)
	}))
	defer srv.Close()
	_, err := client.New(srv.URL, "t").Capacity(t.Context())
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Code != "http_502" {
		t.Fatalf("err = %#v", err)
	}
	if want := "capacity: upstream went away (HTTP 502)"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

func TestUnreachableServer(t *testing.T) {
	// A port that was just free: nothing listens on it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := client.New(addr, "t") // a bare host:port means http
	if c.BaseURL() != "http://"+addr {
		t.Fatalf("BaseURL = %q", c.BaseURL())
	}
	err = c.Health(t.Context())
	var ue *client.UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v (%T), want *UnreachableError", err, err)
	}
	if !strings.Contains(err.Error(), "the server at http://"+addr+" is not reachable: connection refused") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestListJobsSendsFilters(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := srv.Client()
	ctx := t.Context()
	parent, err := c.SubmitJob(ctx, &job.Spec{Command: []string{"echo"}, Array: "0-3"})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := c.ListJobs(ctx, client.ListOptions{Parent: parent.ID, State: "RUNNABLE", Limit: 2, Before: 100, Queue: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2 || tasks[0].DisplayID() != "1_3" || tasks[1].DisplayID() != "1_2" {
		t.Fatalf("tasks = %v", tasks)
	}
	last := srv.Requests()[1]
	if last.RawQuery != "before=100&limit=2&parent=1&queue=default&state=RUNNABLE" {
		t.Errorf("query = %q", last.RawQuery)
	}
	// Array tasks are addressed as PARENT_INDEX.
	task, err := c.GetJob(ctx, "1_2")
	if err != nil || *task.ArrayIndex != 2 {
		t.Fatalf("GetJob(1_2) = %+v, %v", task, err)
	}
}

func TestBadJobIDIsRefusedBeforeSending(t *testing.T) {
	srv := clienttest.NewServer(t)
	for _, id := range []string{"", "abc", "../queues", "1_x", "-3"} {
		if _, err := srv.Client().GetJob(t.Context(), id); err == nil {
			t.Errorf("GetJob(%q) succeeded", id)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestWaitJobLongPollsUntilTerminal(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := srv.Client()
	ctx := t.Context()
	j, err := c.SubmitJob(ctx, &job.Spec{Command: []string{"sleep", "1"}})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		srv.SetState(j.ID, job.Running)
		time.Sleep(20 * time.Millisecond)
		srv.Update(j.ID, func(j *job.Job) { j.ExitCode = new(int) })
		srv.SetState(j.ID, job.Succeeded)
	}()
	done, err := c.WaitJob(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if done.State != job.Succeeded || done.ExitCode == nil || *done.ExitCode != 0 {
		t.Fatalf("WaitJob = %+v", done)
	}
	for _, r := range srv.Requests()[1:] {
		if r.RawQuery != "wait=30s" {
			t.Errorf("wait request query = %q", r.RawQuery)
		}
	}
}

func TestWatchJobReportsEachPoll(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := srv.Client()
	j, err := c.SubmitJob(t.Context(), &job.Spec{Command: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	var seen []job.State
	go func() {
		time.Sleep(30 * time.Millisecond)
		srv.SetState(j.ID, job.Running)
		time.Sleep(30 * time.Millisecond)
		srv.SetState(j.ID, job.Failed)
	}()
	// A short poll: the fake holds each request for it, then answers.
	done, err := c.WatchJob(t.Context(), "1", 10*time.Millisecond, func(j *job.Job) { seen = append(seen, j.State) })
	if err != nil {
		t.Fatal(err)
	}
	if done.State != job.Failed {
		t.Fatalf("state = %s", done.State)
	}
	if seen[0] != job.Runnable || seen[len(seen)-1] != job.Failed || !contains(seen, job.Running) {
		t.Errorf("states seen = %v", seen)
	}
	// The callback sees the job at once: the first request does not wait.
	reqs := srv.Requests()
	if reqs[1].RawQuery != "" || reqs[2].RawQuery != "wait=10ms" {
		t.Errorf("queries = %q, %q", reqs[1].RawQuery, reqs[2].RawQuery)
	}
}

func contains(s []job.State, x job.State) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestWaitJobHonoursContext(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := srv.Client()
	if _, err := c.SubmitJob(t.Context(), &job.Spec{Command: []string{"sleep", "inf"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.WaitJob(ctx, "1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("WaitJob returned %s after its context ended", time.Since(start))
	}
}

func TestWaitJobRetriesServerRestart(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":7,"state":"TIMEOUT","reason":"time limit reached","attempt":1}`)
	}))
	defer srv.Close()
	j, err := client.New(srv.URL, "t").WaitJob(t.Context(), "7")
	if err != nil {
		t.Fatal(err)
	}
	if j.State != job.Timeout || calls != 2 {
		t.Errorf("state %s after %d calls", j.State, calls)
	}
}

func TestLogsStreamWhileJobRuns(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := srv.Client()
	ctx := t.Context()
	j, err := c.SubmitJob(ctx, &job.Spec{Command: []string{"train"}})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetState(j.ID, job.Running)
	srv.AppendLog("1", "stderr", "epoch 1\n")
	rc, err := c.Logs(ctx, "1", client.LogOptions{Stream: "stderr", Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// The first line arrives while the job still runs: the body streams.
	buf := make([]byte, 64)
	n, err := rc.Read(buf)
	if err != nil || string(buf[:n]) != "epoch 1\n" {
		t.Fatalf("first read = %q, %v", buf[:n], err)
	}
	srv.AppendLog("1", "stderr", "epoch 2\n")
	srv.SetState(j.ID, job.Succeeded)
	rest, err := io.ReadAll(rc)
	if err != nil || string(rest) != "epoch 2\n" {
		t.Fatalf("rest = %q, %v", rest, err)
	}
	q := srv.Requests()[1].RawQuery
	if q != "follow=true&stream=stderr" {
		t.Errorf("query = %q", q)
	}
}

func TestLogsErrorAndAttempt(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := srv.Client()
	if _, err := c.Logs(t.Context(), "5", client.LogOptions{}); !client.IsNotFound(err) {
		t.Fatalf("logs of a missing job: %v", err)
	}
	if _, err := c.SubmitJob(t.Context(), &job.Spec{Command: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	srv.AppendLog("1", "stdout", "hello\n")
	rc, err := c.Logs(t.Context(), "1", client.LogOptions{Attempt: 2})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "hello\n" {
		t.Errorf("log = %q", b)
	}
	if q := srv.Requests()[2].RawQuery; q != "attempt=2" {
		t.Errorf("query = %q", q)
	}
}

func TestQueuesCapacityHealth(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := srv.Client()
	ctx := t.Context()
	q, err := c.CreateQueue(ctx, &job.Queue{Name: "gpu", Priority: 10, MaxRunning: 2, PriceCPUHour: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	if q.Name != "gpu" || q.Backend != "local" || q.CreatedAt.IsZero() {
		t.Fatalf("created %+v", q)
	}
	if _, err := c.SubmitJob(ctx, &job.Spec{Command: []string{"x"}, Queue: "gpu"}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetQueue(ctx, "gpu")
	if err != nil || got.Counts[job.Runnable] != 1 || got.Priority != 10 {
		t.Fatalf("GetQueue = %+v, %v", got, err)
	}
	all, err := c.ListQueues(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "default" {
		t.Fatalf("ListQueues = %v, %v", all, err)
	}
	srv.SetCapacity(job.Capacity{Total: job.Resources{CPUs: 2, MemoryMB: 1024}, Used: job.Resources{CPUs: 0.5}, Running: 1})
	capa, err := c.Capacity(ctx)
	if err != nil || capa.Used.CPUs != 0.5 || capa.Running != 1 {
		t.Fatalf("Capacity = %+v, %v", capa, err)
	}
	// Health needs no token.
	if err := client.New(srv.URL, "").Health(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestCancelJob(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := srv.Client()
	if _, err := c.SubmitJob(t.Context(), &job.Spec{Command: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	j, err := c.CancelJob(t.Context(), "1")
	if err != nil || j.State != job.Cancelled {
		t.Fatalf("CancelJob = %+v, %v", j, err)
	}
	_, err = c.CancelJob(t.Context(), "1")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Fatalf("second cancel: %v", err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want client.Config
	}{
		{"defaults, no token file", map[string]string{"HPCML_DATA_DIR": filepath.Join(dir, "missing")},
			client.Config{Server: "http://127.0.0.1:8080", TokenFile: filepath.Join(dir, "missing", "token")}},
		{"token file in data dir", map[string]string{"HPCML_DATA_DIR": dir, "HPCML_SERVER": "http://h:1"},
			client.Config{Server: "http://h:1", Token: "file-token", TokenFile: filepath.Join(dir, "token")}},
		{"env token wins", map[string]string{"HPCML_DATA_DIR": dir, "HPCML_TOKEN": "env-token"},
			client.Config{Server: "http://127.0.0.1:8080", Token: "env-token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := client.ConfigFromEnv(func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestJobOutputPaths: an output path is sent with its elements escaped
// (spaces, ?, #, % reach the server as parts of the path), and one with
// . or .. elements is refused before anything is sent: the server's
// router would redirect it to wherever it leads, another job's outputs.
func TestJobOutputPaths(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.EscapedPath())
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	c := client.New(srv.URL, "t")
	rc, err := c.JobOutput(t.Context(), "12", "out dir/a?b#c%d.txt")
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if want := "/api/v1/jobs/12/outputs/out%20dir/a%3Fb%23c%25d.txt"; len(got) != 1 || got[0] != want {
		t.Fatalf("sent %v, want %s", got, want)
	}
	for _, bad := range []string{"../13/outputs/report.json", "./a", "a//b", "a/../b", ".", "/abs", ""} {
		if _, err := c.JobOutput(t.Context(), "12", bad); err == nil {
			t.Errorf("path %q was accepted", bad)
		}
	}
	if len(got) != 1 {
		t.Fatalf("requests sent for refused paths: %v", got[1:])
	}
}
