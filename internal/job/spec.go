package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Spec is what a user submits. It is stored verbatim with the job, so a
// job can always be inspected (and resubmitted) exactly as it was asked for.
type Spec struct {
	Name    string            `json:"name,omitempty" yaml:"name,omitempty"`
	Queue   string            `json:"queue,omitempty" yaml:"queue,omitempty"`
	Command []string          `json:"command" yaml:"command"`
	Shell   bool              `json:"shell,omitempty" yaml:"shell,omitempty"`
	Env     map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	// WorkDir is where the command runs: absolute, or relative to the job dir.
	WorkDir   string            `json:"workdir,omitempty" yaml:"workdir,omitempty"`
	Resources Resources         `json:"resources" yaml:"resources,omitempty"`
	TimeLimit Duration          `json:"time_limit,omitempty" yaml:"time_limit,omitempty"`
	Retry     RetryPolicy       `json:"retry" yaml:"retry,omitempty"`
	Array     string            `json:"array,omitempty" yaml:"array,omitempty"`
	DependsOn []Dependency      `json:"depends_on,omitempty" yaml:"depends_on,omitempty"`
	Inputs    []Input           `json:"inputs,omitempty" yaml:"inputs,omitempty"`
	Outputs   []Output          `json:"outputs,omitempty" yaml:"outputs,omitempty"`
	Tags      map[string]string `json:"tags,omitempty" yaml:"tags,omitempty"`

	// A job is Nodes × TasksPerNode tasks (ranks) of the same command,
	// started together and ended together, as Slurm's --nodes and
	// --ntasks-per-node; both default to 1, which is a plain job.
	// Resources are per task (cpus) and per node (memory_mb, gpus): see
	// Allocation.
	Nodes        int `json:"nodes,omitempty" yaml:"nodes,omitempty"`
	TasksPerNode int `json:"tasks_per_node,omitempty" yaml:"tasks_per_node,omitempty"`
	// Type is how the tasks are started: "" starts them as plain
	// processes that learn their rank from HPCML_RANK; TypeMPI starts
	// them as one MPI world (mpirun here, srun --mpi=pmix under Slurm).
	Type string `json:"type,omitempty" yaml:"type,omitempty"`
}

// TypeMPI is the Spec.Type of an MPI job.
const TypeMPI = "mpi"

// Resources a job asks for. CPUs are per task and may be fractional (0.5 =
// half a core, as in Kubernetes; the scheduler accounts in thousandths);
// MemoryMB and GPUs are per node. These are Slurm's --cpus-per-task, --mem
// and --gres=gpu:N; for a one-task job, per task and per node are the same.
type Resources struct {
	CPUs     float64 `json:"cpus" yaml:"cpus,omitempty"`
	MemoryMB int64   `json:"memory_mb" yaml:"memory_mb,omitempty"`
	GPUs     int     `json:"gpus" yaml:"gpus,omitempty"`
}

// MilliCPUs is the CPU request in thousandths of a core.
func (r Resources) MilliCPUs() int64 { return int64(math.Round(r.CPUs * 1000)) }

// Add is r plus sign times o, CPUs summed in thousandths of a core (so
// that adding and taking away the same requests comes back exactly).
func (r Resources) Add(o Resources, sign int) Resources {
	return Resources{CPUs: float64(r.MilliCPUs()+int64(sign)*o.MilliCPUs()) / 1000,
		MemoryMB: r.MemoryMB + int64(sign)*o.MemoryMB, GPUs: r.GPUs + sign*o.GPUs}
}

// Within: r fits in total, in every dimension.
func (r Resources) Within(total Resources) bool {
	return r.MilliCPUs() <= total.MilliCPUs() && r.MemoryMB <= total.MemoryMB && r.GPUs <= total.GPUs
}

// RetryPolicy says how often and on what a failed attempt is retried.
// With no conditions, any failure is retried (as AWS Batch does); with
// conditions, a failure is retried only if one matches. Time-outs and
// cancellations are never retried.
type RetryPolicy struct {
	Attempts    int      `json:"attempts" yaml:"attempts,omitempty"`
	OnExitCodes []int    `json:"on_exit_codes,omitempty" yaml:"on_exit_codes,omitempty"`
	OnSignals   []string `json:"on_signals,omitempty" yaml:"on_signals,omitempty"`
	OnNodeLoss  bool     `json:"on_node_loss,omitempty" yaml:"on_node_loss,omitempty"`
}

// DependencyType follows Slurm's names.
type DependencyType string

const (
	AfterOK    DependencyType = "afterok"
	AfterAny   DependencyType = "afterany"
	AfterNotOK DependencyType = "afternotok"
)

// Dependency makes a job wait for another one to end.
type Dependency struct {
	Type  DependencyType `json:"type" yaml:"type"`
	JobID int64          `json:"job_id" yaml:"job_id"`
}

// Satisfied reports whether a dependency on a job that ended in state s
// is met. ok=false with decided=true means it can never be met.
func (d Dependency) Satisfied(s State) (ok, decided bool) {
	if !s.Terminal() {
		return false, false
	}
	switch d.Type {
	case AfterOK:
		return s == Succeeded, true
	case AfterNotOK:
		return s != Succeeded, true
	default:
		return true, true
	}
}

// Input copies an object (or, for a URL ending in "/", every object under
// a prefix) to Path inside the job dir before the command starts.
type Input struct {
	URL  string `json:"url" yaml:"url"`
	Path string `json:"path" yaml:"path"`
	// ManifestKey is set by the server for a dataset input
	// (dataset://NAME[@VERSION]): the manifest of the version resolved at
	// submission, so the job reads exactly those bytes whenever it runs.
	ManifestKey string `json:"manifest_key,omitempty" yaml:"manifest_key,omitempty"`
	// Mode is how a dataset input reaches the job: prefetch (the
	// default) copies every object into the job dir before the command
	// starts; lazy mounts the version read-only and fetches each file on
	// its first open.
	Mode string `json:"mode,omitempty" yaml:"mode,omitempty"`
}

// Input modes.
const (
	InputPrefetch = "prefetch"
	InputLazy     = "lazy"
)

// Lazy reports whether the input is to be served on demand.
func (in Input) Lazy() bool { return in.Mode == InputLazy }

// DatasetScheme prefixes an input URL naming a dataset version.
const DatasetScheme = "dataset://"

// DatasetRef returns the NAME[@VERSION] of a dataset input URL.
func (in Input) DatasetRef() (string, bool) {
	return strings.CutPrefix(in.URL, DatasetScheme)
}

// Output copies Path (a file or a directory) inside the job dir to URL
// after the command succeeds — or, with Always, also after it failed, if
// it wrote Path (a report or a checkpoint that says what went wrong).
type Output struct {
	Path   string `json:"path" yaml:"path"`
	URL    string `json:"url" yaml:"url"`
	Always bool   `json:"always,omitempty" yaml:"always,omitempty"`
}

// Duration is a time.Duration that reads "90s", "1h30m" or a number of seconds.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	if d == 0 {
		return []byte(`""`), nil
	}
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return d.set(v)
}

// UnmarshalYAML reads a duration string or a number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var v any
	if err := n.Decode(&v); err != nil {
		return err
	}
	return d.set(v)
}

// MarshalYAML writes the duration as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d *Duration) set(v any) error {
	switch x := v.(type) {
	case nil:
		*d = 0
	case float64:
		return d.setSeconds(x)
	case int:
		return d.setSeconds(float64(x))
	case string:
		if x == "" {
			*d = 0
			return nil
		}
		if secs, err := strconv.ParseFloat(x, 64); err == nil {
			return d.setSeconds(secs)
		}
		p, err := time.ParseDuration(x)
		if err != nil {
			return fmt.Errorf("invalid duration %q (want e.g. 90s, 1h30m or seconds)", x)
		}
		*d = Duration(p)
	default:
		return fmt.Errorf("invalid duration %v", v)
	}
	return nil
}

// setSeconds sets d to secs seconds, refusing what a duration cannot hold
// (it would wrap around and be reported as negative, or worse, accepted).
func (d *Duration) setSeconds(secs float64) error {
	const maxSeconds = float64(math.MaxInt64 / int64(time.Second))
	if math.IsNaN(secs) || math.Abs(secs) > maxSeconds {
		return fmt.Errorf("duration of %v seconds is out of range (at most %.0f, about 292 years)", secs, maxSeconds)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// FieldError is a validation error that names the offending field, so the
// API can report {"field": ...}.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

func fieldErr(field, format string, a ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, a...)}
}

// MaxBodyBytes bounds a spec document (and so any API request body).
const MaxBodyBytes = 1 << 20

// ParseSpec reads a spec from JSON or YAML (JSON is YAML, but JSON errors
// read better, so JSON-looking input goes through encoding/json). Unknown
// fields are rejected: a misspelt field must not be silently ignored.
func ParseSpec(data []byte) (*Spec, error) {
	var s Spec
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fieldErr("", "empty job spec")
	}
	if trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return nil, fieldErr("", "malformed job spec: %v", err)
		}
		// Token, not More: More reports false for a stray '}' or ']', which
		// would let `{...}}` through.
		if _, err := dec.Token(); err != io.EOF {
			return nil, fieldErr("", "malformed job spec: trailing data after the JSON object")
		}
		return &s, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(trimmed))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fieldErr("", "malformed job spec: %v", err)
	}
	// A second document would otherwise be silently dropped: a spec must
	// be one document, as a JSON spec must be one object. (An empty one,
	// from a trailing "---", says nothing and is allowed.)
	for {
		var extra any
		err := dec.Decode(&extra)
		if err == io.EOF {
			return &s, nil
		}
		if err != nil || extra != nil {
			return nil, fieldErr("", "malformed job spec: trailing data after the YAML document")
		}
	}
}

// Limits the validator needs from the outside world.
type Limits struct {
	// Largest node: a request above it can never run.
	MaxNode Resources
	// MaxNodes bounds a job's nodes; 0 when unknown (no bound is checked).
	MaxNodes int
	// SingleNode: every task of a job runs on this one node (the local
	// backend), so the job's whole Allocation must fit MaxNode, however
	// many nodes it asks for.
	SingleNode bool
}

// ServeTokenEnv is the bearer token hpcml serve requires of its callers;
// a job may set it.
const ServeTokenEnv = "HPCML_SERVE_TOKEN"

// Bounds on user input, so that one spec cannot exhaust the server.
const (
	MaxArraySize   = 10000
	MaxAttempts    = 10
	MaxCommandArgs = 4096
	MaxNameLen     = 128
	// A job's nodes and tasks per node: far above any cluster's needs,
	// low enough that their product cannot overflow anything.
	MaxJobNodes     = 1024
	MaxTasksPerNode = 1024
)

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidName reports whether s is usable as a job or queue name.
func ValidName(s string) bool { return len(s) <= MaxNameLen && nameRE.MatchString(s) }

// Normalize fills defaults and checks the spec against itself and lim.
// It returns the first problem found, naming the field.
func (s *Spec) Normalize(lim Limits) error {
	if s.Queue == "" {
		s.Queue = "default"
	}
	if s.Name == "" && len(s.Command) > 0 {
		prog := s.Command[0]
		if f := strings.Fields(prog); s.Shell && len(f) > 0 {
			prog = f[0] // a script: its first word, not all of it squashed
		}
		s.Name = defaultName(prog)
	}
	if s.Name != "" && !ValidName(s.Name) {
		return fieldErr("name", "%q is not a valid name (letters, digits, '.', '_', '-'; at most %d)", s.Name, MaxNameLen)
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return fieldErr("command", "a command is required")
	}
	if len(s.Command) > MaxCommandArgs {
		return fieldErr("command", "at most %d arguments", MaxCommandArgs)
	}
	for i, a := range s.Command {
		if strings.ContainsRune(a, 0) {
			return fieldErr(fmt.Sprintf("command[%d]", i), "contains a NUL byte")
		}
	}
	for k, v := range s.Env {
		if !envKeyRE.MatchString(k) {
			return fieldErr("env", "%q is not a valid variable name", k)
		}
		// HPCML_SERVE_TOKEN is an input of hpcml serve run as a job (an
		// endpoint's replica), not a variable the runtime sets.
		if strings.HasPrefix(k, "HPCML_") && k != ServeTokenEnv {
			return fieldErr("env", "%q: HPCML_ variables are set by hpcml", k)
		}
		if strings.ContainsRune(v, 0) {
			return fieldErr("env", "value of %q contains a NUL byte", k)
		}
	}
	if s.WorkDir != "" && !filepath.IsAbs(s.WorkDir) && !filepath.IsLocal(s.WorkDir) {
		return fieldErr("workdir", "%q escapes the job dir (use an absolute path or one inside the job dir)", s.WorkDir)
	}
	if err := s.normalizeTasks(); err != nil {
		return err
	}
	if err := s.Resources.normalize(); err != nil {
		return err
	}
	if err := s.checkFits(lim); err != nil {
		return err
	}
	if s.TimeLimit < 0 {
		return fieldErr("time_limit", "must not be negative")
	}
	if err := s.Retry.normalize(); err != nil {
		return err
	}
	if s.Array != "" {
		if _, _, err := ParseArray(s.Array); err != nil {
			return fieldErr("array", "%v", err)
		}
	}
	for i, d := range s.DependsOn {
		switch d.Type {
		case AfterOK, AfterAny, AfterNotOK:
		default:
			return fieldErr(fmt.Sprintf("depends_on[%d].type", i), "%q is not one of afterok, afterany, afternotok", d.Type)
		}
		if d.JobID <= 0 {
			return fieldErr(fmt.Sprintf("depends_on[%d].job_id", i), "must be a job id")
		}
	}
	for i, in := range s.Inputs {
		f := fmt.Sprintf("inputs[%d]", i)
		if in.URL == "" {
			return fieldErr(f+".url", "required")
		}
		if err := checkJobPath(in.Path); err != nil {
			return fieldErr(f+".path", "%v", err)
		}
		switch in.Mode {
		case "", InputPrefetch:
		case InputLazy:
			if _, ok := in.DatasetRef(); !ok {
				return fieldErr(f+".mode", "lazy loading needs a dataset input (%sNAME[@VERSION]): only a version's manifest says what is there before it is read", DatasetScheme)
			}
		default:
			return fieldErr(f+".mode", "%q is not one of prefetch, lazy", in.Mode)
		}
	}
	for i, out := range s.Outputs {
		f := fmt.Sprintf("outputs[%d]", i)
		if out.URL == "" {
			return fieldErr(f+".url", "required")
		}
		if err := checkJobPath(out.Path); err != nil {
			return fieldErr(f+".path", "%v", err)
		}
	}
	for k := range s.Tags {
		if k == "" || len(k) > MaxNameLen {
			return fieldErr("tags", "tag keys must be 1 to %d characters", MaxNameLen)
		}
	}
	return nil
}

// checkJobPath confines a path to the job dir.
func checkJobPath(p string) error {
	if p == "" {
		return errors.New("required")
	}
	if filepath.IsAbs(p) || !filepath.IsLocal(p) {
		return fmt.Errorf("%q escapes the job dir (paths are relative to it)", p)
	}
	return nil
}

// maxCPUs bounds a CPU request far above any node, so that the count in
// thousandths always fits.
const maxCPUs = 1 << 20

// normalize fills the default and checks the request against itself;
// whether it fits a node is checkFits'.
func (r *Resources) normalize() error {
	if r.CPUs == 0 {
		r.CPUs = 1
	}
	if r.CPUs < 0 || math.IsNaN(r.CPUs) {
		return fieldErr("resources.cpus", "must be positive")
	}
	if r.CPUs > maxCPUs { // also keeps MilliCPUs from overflowing
		return fieldErr("resources.cpus", "at most %d", maxCPUs)
	}
	if r.MilliCPUs() < 1 {
		return fieldErr("resources.cpus", "at least 0.001")
	}
	if r.MemoryMB < 0 {
		return fieldErr("resources.memory_mb", "must not be negative")
	}
	if r.GPUs < 0 {
		return fieldErr("resources.gpus", "must not be negative")
	}
	return nil
}

func (p *RetryPolicy) normalize() error {
	if p.Attempts == 0 {
		p.Attempts = 1
	}
	if p.Attempts < 1 || p.Attempts > MaxAttempts {
		return fieldErr("retry.attempts", "must be between 1 and %d", MaxAttempts)
	}
	for i, s := range p.OnSignals {
		n, ok := SignalNumber(s)
		if !ok {
			return fieldErr(fmt.Sprintf("retry.on_signals[%d]", i), "%q is not a known signal", s)
		}
		p.OnSignals[i] = SignalName(n)
	}
	return nil
}

// defaultName derives a job name from the program it runs.
func defaultName(prog string) string {
	base := filepath.Base(prog)
	var b strings.Builder
	for _, r := range base {
		if r < 128 && (r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		}
	}
	name := strings.TrimLeft(b.String(), "._-")
	if name == "" {
		return "job"
	}
	if len(name) > MaxNameLen {
		name = name[:MaxNameLen]
	}
	return name
}

// CheckOutputPath checks a path naming a file of a job's outputs, as
// GET /api/v1/jobs/{id}/outputs/{path} reads it: relative, without . or
// .. elements (which an HTTP router would resolve to some other path).
func CheckOutputPath(p string) error {
	if p == "." || !filepath.IsLocal(p) || path.Clean(p) != p {
		return fmt.Errorf("output path %q: a relative path without . or .. elements", p)
	}
	return nil
}
