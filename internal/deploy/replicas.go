package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/task"
)

// Tags on a replica job: how the controller finds its replicas again
// after a restart.
const (
	TagEndpoint = "hpcml.endpoint"
	TagVariant  = "hpcml.variant"
	TagRevision = "hpcml.revision"
)

// ReplicaState is what the controller knows of a replica.
type ReplicaState string

const (
	// ReplicaStarting: the job is queued or starting, or its server has
	// not answered ready yet.
	ReplicaStarting ReplicaState = "starting"
	// ReplicaReady: answers its readiness check; in the routing table.
	ReplicaReady ReplicaState = "ready"
	// ReplicaUnhealthy: was ready, fails its checks now; out of routing.
	ReplicaUnhealthy ReplicaState = "unhealthy"
	// ReplicaDraining: out of routing, finishing its requests.
	ReplicaDraining ReplicaState = "draining"
	// ReplicaStopping: its job is being cancelled.
	ReplicaStopping ReplicaState = "stopping"
)

// Announcement is what a replica writes to storage once it is ready
// (hpcml serve --announce).
type Announcement struct {
	Addr    string    `json:"addr"`
	Job     string    `json:"job"`
	Attempt int       `json:"attempt"`
	PID     int       `json:"pid"`
	Model   string    `json:"model"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
}

// AnnouncePrefix is where an endpoint's replicas announce themselves.
func AnnouncePrefix(ep string) string { return "endpoints/" + ep + "/replicas/" }

// replica is the controller's record of one replica job.
type replica struct {
	*Replica
	endpoint  string
	state     ReplicaState
	jobState  job.State
	since     time.Time // when state last changed
	submitted time.Time
	fails     int // consecutive failed checks
	everReady bool
	reason    string
	// stopping replicas are ours to end: their end is no failure.
	stopRequested bool
}

func (r *replica) set(s ReplicaState, now time.Time, reason string) {
	if r.state != s {
		r.state, r.since = s, now
	}
	r.reason = reason
}

// live: counts towards its fleet's size (not on its way out).
func (r *replica) live() bool {
	return r.state == ReplicaStarting || r.state == ReplicaReady || r.state == ReplicaUnhealthy
}

// replicaSpec is the job that runs one replica of variant v, listening on
// listen (see Controller.replicaListen).
func replicaSpec(e *endpoint.Endpoint, v endpoint.Variant, revision int64, listen string) *job.Spec {
	cmd := []string{task.SelfProgram, "serve", "--model", v.ModelURL(), "--name", v.Model,
		"--model-version", strconv.Itoa(v.Version), "--listen", listen, "--announce", AnnouncePrefix(e.Name)}
	if mm := multiModelArgs(e, listen); mm != nil {
		cmd = mm // every model: the requests name theirs
	}
	cmd = append(cmd, v.Batching.Args()...)
	cmd = append(cmd, asyncReplicaArgs(e)...)
	return &job.Spec{
		Name:      "endpoint-" + e.Name + "-" + v.Name,
		Queue:     e.Spec.Queue,
		Command:   cmd,
		Env:       map[string]string{job.ServeTokenEnv: e.Token},
		Resources: job.Resources{CPUs: v.CPUs},
		// One attempt: a replica that ends is replaced by the controller,
		// which knows whether it is wanted still.
		Retry: job.RetryPolicy{Attempts: 1},
		Tags: map[string]string{TagEndpoint: e.Name, TagVariant: v.Name,
			TagRevision: strconv.FormatInt(revision, 10)},
	}
}

// checkAll runs the readiness check of every replica with an address,
// in parallel, and returns ok by job id.
func (c *Controller) checkAll(ctx context.Context, reps []*replica) map[int64]bool {
	out := make(map[int64]bool, len(reps))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, r := range reps {
		if r.Addr == "" {
			continue
		}
		wg.Add(1)
		go func(id int64, addr string) {
			defer wg.Done()
			ok := c.checkReady(ctx, addr)
			mu.Lock()
			out[id] = ok
			mu.Unlock()
		}(r.JobID, r.Addr)
	}
	wg.Wait()
	return out
}

func (c *Controller) checkReady(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/health/ready", nil)
	if err != nil {
		return false
	}
	resp, err := c.checks.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// readAnnouncement reads a replica's announcement; "" while there is none.
func (c *Controller) readAnnouncement(ctx context.Context, ep string, jobID int64) (string, error) {
	data, err := c.cfg.Storage.ReadAll(ctx, AnnouncePrefix(ep)+strconv.FormatInt(jobID, 10)+".json")
	if err != nil {
		if isNotFound(err) {
			return "", nil
		}
		return "", err
	}
	var a Announcement
	if err := json.Unmarshal(data, &a); err != nil {
		return "", fmt.Errorf("announcement of replica %d: %w", jobID, err)
	}
	return a.Addr, nil
}
