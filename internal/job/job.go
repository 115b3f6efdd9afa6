package job

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Job is one row of the job table as users see it.
type Job struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Queue string `json:"queue"`
	State State  `json:"state"`
	// Reason says why the job is in its state: what it waits for while
	// PENDING/RUNNABLE, what went wrong when FAILED.
	Reason string `json:"reason,omitempty"`
	// Array jobs: the parent has ArraySize > 0; each task has ParentID and ArrayIndex.
	ParentID   int64  `json:"parent_id,omitempty"`
	ArrayIndex *int   `json:"array_index,omitempty"`
	ArraySize  int    `json:"array_size,omitempty"`
	Attempt    int    `json:"attempt"`
	ExitCode   *int   `json:"exit_code,omitempty"`
	Signal     string `json:"signal,omitempty"`

	SubmittedAt time.Time  `json:"submitted_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`

	CPUSeconds  float64 `json:"cpu_seconds"`
	MaxRSSBytes int64   `json:"max_rss_bytes"`
	Cost        float64 `json:"cost"`

	CancelRequested bool `json:"cancel_requested,omitempty"`
	// Interruptions counts attempts lost to the machine rather than the
	// job: a node failure or a preemption.
	Interruptions int `json:"interruptions,omitempty"`

	Spec     Spec      `json:"spec"`
	Attempts []Attempt `json:"attempts,omitempty"`
	// ArrayCounts counts an array parent's tasks by state.
	ArrayCounts map[State]int `json:"array_counts,omitempty"`
	// Progress is what a STARTING or RUNNING job last reported of its
	// progress (through HPCML_PROGRESS_FILE); filled by a job get, never
	// stored.
	Progress *Progress `json:"progress,omitempty"`
}

// DisplayID is the Slurm-style id: "42" or, for array tasks, "41_3".
func (j *Job) DisplayID() string {
	if j.ParentID != 0 && j.ArrayIndex != nil {
		return fmt.Sprintf("%d_%d", j.ParentID, *j.ArrayIndex)
	}
	return strconv.FormatInt(j.ID, 10)
}

// IsArrayParent reports whether the job only groups array tasks.
func (j *Job) IsArrayParent() bool { return j.ArraySize > 0 }

// ParseID reads "42" or "41_3" (array task 3 of job 41).
func ParseID(s string) (id int64, index int, isTask bool, err error) {
	head, tail, isTask := strings.Cut(s, "_")
	id, err = strconv.ParseInt(head, 10, 64)
	if err != nil || id <= 0 {
		return 0, 0, false, fmt.Errorf("%q is not a job id", s)
	}
	if isTask {
		index, err = strconv.Atoi(tail)
		if err != nil || index < 0 {
			return 0, 0, false, fmt.Errorf("%q is not an array task id", s)
		}
	}
	return id, index, isTask, nil
}

// Attempt is one run of a job.
type Attempt struct {
	Number      int        `json:"attempt"`
	State       State      `json:"state"`
	Reason      string     `json:"reason,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	ExitCode    *int       `json:"exit_code,omitempty"`
	Signal      string     `json:"signal,omitempty"`
	CPUSeconds  float64    `json:"cpu_seconds"`
	MaxRSSBytes int64      `json:"max_rss_bytes"`
	// Logs name the stored stdout/stderr objects once the attempt ended.
	StdoutURL string `json:"stdout_url,omitempty"`
	StderrURL string `json:"stderr_url,omitempty"`
	// BackendID is the attempt's id in its backend ("slurm:1234_5").
	BackendID string `json:"backend_id,omitempty"`
	// Interrupted: the attempt was lost to a node failure or preemption.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Queue is where jobs wait; it sets their priority, how many may run at
// once and what a resource-hour costs.
type Queue struct {
	Name         string  `json:"name"`
	Priority     int     `json:"priority"`
	MaxRunning   int     `json:"max_running"`
	PriceCPUHour float64 `json:"price_cpu_hour"`
	PriceGBHour  float64 `json:"price_gb_hour"`
	Backend      string  `json:"backend"`
	// Slurm queues: where their jobs go (empty: the cluster's defaults).
	Partition string    `json:"partition,omitempty"`
	Account   string    `json:"account,omitempty"`
	QOS       string    `json:"qos,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Counts are the queue's jobs by state (filled by queue get).
	Counts map[State]int `json:"counts,omitempty"`
}

// Validate checks a queue definition.
func (q *Queue) Validate() error {
	if !ValidName(q.Name) {
		return fieldErr("name", "%q is not a valid queue name", q.Name)
	}
	if q.MaxRunning < 0 {
		return fieldErr("max_running", "must not be negative (0 means no limit)")
	}
	if q.PriceCPUHour < 0 {
		return fieldErr("price_cpu_hour", "must not be negative")
	}
	if q.PriceGBHour < 0 {
		return fieldErr("price_gb_hour", "must not be negative")
	}
	if q.Backend == "" {
		q.Backend = BackendLocal
	}
	switch q.Backend {
	case BackendLocal:
		for field, v := range map[string]string{"partition": q.Partition, "account": q.Account, "qos": q.QOS} {
			if v != "" {
				return fieldErr(field, "only a slurm queue has a %s", field)
			}
		}
	case BackendSlurm:
		for field, v := range map[string]string{"partition": q.Partition, "account": q.Account, "qos": q.QOS} {
			if v != "" && !slurmNameRE.MatchString(v) {
				return fieldErr(field, "%q is not a valid Slurm %s name", v, field)
			}
		}
	default:
		return fieldErr("backend", "%q is not a backend (local, slurm)", q.Backend)
	}
	return nil
}

// DefaultQueue is where a job without a queue goes; it always exists.
const DefaultQueue = "default"

// Backend names a queue may choose.
const (
	BackendLocal = "local"
	BackendSlurm = "slurm"
)

// slurmNameRE bounds partition, account and QOS names to what Slurm
// itself accepts in practice, so that nothing odd reaches its commands.
var slurmNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$`)

// QueuePatch changes some settings of a queue; nil fields stay as they are.
type QueuePatch struct {
	Priority     *int     `json:"priority,omitempty"`
	MaxRunning   *int     `json:"max_running,omitempty"`
	PriceCPUHour *float64 `json:"price_cpu_hour,omitempty"`
	PriceGBHour  *float64 `json:"price_gb_hour,omitempty"`
	Partition    *string  `json:"partition,omitempty"`
	Account      *string  `json:"account,omitempty"`
	QOS          *string  `json:"qos,omitempty"`
}

// Apply writes the patch's fields into q.
func (p QueuePatch) Apply(q *Queue) {
	if p.Priority != nil {
		q.Priority = *p.Priority
	}
	if p.MaxRunning != nil {
		q.MaxRunning = *p.MaxRunning
	}
	if p.PriceCPUHour != nil {
		q.PriceCPUHour = *p.PriceCPUHour
	}
	if p.PriceGBHour != nil {
		q.PriceGBHour = *p.PriceGBHour
	}
	if p.Partition != nil {
		q.Partition = *p.Partition
	}
	if p.Account != nil {
		q.Account = *p.Account
	}
	if p.QOS != nil {
		q.QOS = *p.QOS
	}
}

// Cost of holding r for d at the queue's prices: allocation is billed,
// as on a cloud, not what the job happened to use.
func (q *Queue) Cost(r Resources, d time.Duration) float64 {
	h := d.Hours()
	return h * (r.CPUs*q.PriceCPUHour + float64(r.MemoryMB)/1024*q.PriceGBHour)
}

// Capacity is what a backend can run at once.
type Capacity struct {
	Total Resources `json:"total"`
	Used  Resources `json:"used"`
	// Running counts jobs holding resources.
	Running int `json:"running"`
}
