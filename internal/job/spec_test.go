package job

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *Spec // compared when not nil
		wantErr string
	}{
		{
			name: "json",
			in: `{"name":"train","queue":"gpu","command":["python","train.py"],"env":{"SEED":"1"},
				"resources":{"cpus":0.5,"memory_mb":512},"time_limit":"90s","retry":{"attempts":3,"on_exit_codes":[3]},
				"array":"0-3%2","depends_on":[{"type":"afterok","job_id":7}],
				"inputs":[{"url":"in/x","path":"x"}],"outputs":[{"path":"y","url":"out/y"}],"tags":{"k":"v"}}`,
			want: &Spec{Name: "train", Queue: "gpu", Command: []string{"python", "train.py"}, Env: map[string]string{"SEED": "1"},
				Resources: Resources{CPUs: 0.5, MemoryMB: 512}, TimeLimit: Duration(90 * time.Second),
				Retry: RetryPolicy{Attempts: 3, OnExitCodes: []int{3}}, Array: "0-3%2",
				DependsOn: []Dependency{{AfterOK, 7}}, Inputs: []Input{{URL: "in/x", Path: "x"}},
				Outputs: []Output{{Path: "y", URL: "out/y"}}, Tags: map[string]string{"k": "v"}},
		},
		{
			name: "yaml",
			in: "name: train\ncommand: [python, train.py]\nshell: true\nresources:\n  cpus: 2\n  memory_mb: 100\n" +
				"time_limit: 30\nretry:\n  attempts: 2\n  on_node_loss: true\ndepends_on:\n  - {type: afterany, job_id: 3}\n",
			want: &Spec{Name: "train", Command: []string{"python", "train.py"}, Shell: true,
				Resources: Resources{CPUs: 2, MemoryMB: 100}, TimeLimit: Duration(30 * time.Second),
				Retry: RetryPolicy{Attempts: 2, OnNodeLoss: true}, DependsOn: []Dependency{{AfterAny, 3}}},
		},
		{name: "json duration as seconds", in: `{"command":["x"],"time_limit":1.5}`,
			want: &Spec{Command: []string{"x"}, TimeLimit: Duration(1500 * time.Millisecond)}},
		{name: "yaml duration string", in: "command: [x]\ntime_limit: 1h30m\n",
			want: &Spec{Command: []string{"x"}, TimeLimit: Duration(90 * time.Minute)}},
		{name: "empty", in: "  \n", wantErr: "empty job spec"},
		{name: "json unknown field", in: `{"command":["x"],"cpus":2}`, wantErr: `unknown field "cpus"`},
		{name: "yaml unknown field", in: "command: [x]\ncpus: 2\n", wantErr: "field cpus not found"},
		{name: "json nested unknown field", in: `{"command":["x"],"resources":{"cores":2}}`, wantErr: `unknown field "cores"`},
		{name: "json malformed", in: `{"command":["x"]`, wantErr: "malformed job spec"},
		{name: "json wrong type", in: `{"command":"echo hi"}`, wantErr: "malformed job spec"},
		{name: "json trailing object", in: `{"command":["x"]} {"command":["y"]}`, wantErr: "trailing data"},
		{name: "json trailing garbage", in: `{"command":["x"]} x`, wantErr: "trailing data"},
		{name: "json trailing brace", in: `{"command":["x"]}}`, wantErr: "trailing data"},
		{name: "json trailing bracket", in: `{"command":["x"]}]`, wantErr: "trailing data"},
		{name: "yaml second document", in: "command: [x]\n---\ncommand: [y]\n", wantErr: "trailing data"},
		{name: "yaml document markers", in: "---\ncommand: [x]\n---\n", want: &Spec{Command: []string{"x"}}},
		{name: "bad duration", in: `{"command":["x"],"time_limit":"soon"}`, wantErr: "invalid duration"},
		{name: "huge duration", in: `{"command":["x"],"time_limit":1e300}`, wantErr: "out of range"},
		{name: "huge duration string", in: `{"command":["x"],"time_limit":"1e19"}`, wantErr: "out of range"},
		{name: "yaml nan duration", in: "command: [x]\ntime_limit: .nan\n", wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSpec([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSpec error = %v, want one containing %q", err, tt.wantErr)
				}
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("error %T is not a *FieldError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseSpec =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestDurationRoundTrip(t *testing.T) {
	var d Duration
	if err := d.UnmarshalJSON([]byte(`"2m"`)); err != nil || d != Duration(2*time.Minute) {
		t.Fatalf("unmarshal = %v, %v", d, err)
	}
	b, _ := d.MarshalJSON()
	if string(b) != `"2m0s"` {
		t.Fatalf("marshal = %s", b)
	}
	var zero Duration
	if b, _ := zero.MarshalJSON(); string(b) != `""` {
		t.Fatalf("zero marshals as %s", b)
	}
}

var testLimits = Limits{MaxNode: Resources{CPUs: 2, MemoryMB: 1024, GPUs: 0}}

func TestNormalizeDefaults(t *testing.T) {
	s := &Spec{Command: []string{"/usr/bin/python3", "x.py"}, Retry: RetryPolicy{OnSignals: []string{"kill", "15"}}}
	if err := s.Normalize(testLimits); err != nil {
		t.Fatal(err)
	}
	if s.Queue != "default" || s.Name != "python3" || s.Resources.CPUs != 1 || s.Retry.Attempts != 1 {
		t.Fatalf("defaults not filled: %+v", s)
	}
	if !reflect.DeepEqual(s.Retry.OnSignals, []string{"SIGKILL", "SIGTERM"}) {
		t.Fatalf("signals not canonical: %v", s.Retry.OnSignals)
	}
	// A shell script is named after its first word.
	s = &Spec{Command: []string{"python3 train.py; echo done"}, Shell: true}
	if err := s.Normalize(testLimits); err != nil || s.Name != "python3" {
		t.Fatalf("shell job name = %q, err %v", s.Name, err)
	}
	// A name made only of odd characters still gets a usable default.
	s = &Spec{Command: []string{"./+++"}}
	if err := s.Normalize(testLimits); err != nil || s.Name != "job" {
		t.Fatalf("name = %q, err %v", s.Name, err)
	}
}

func TestNormalizeRejects(t *testing.T) {
	base := func() *Spec { return &Spec{Command: []string{"true"}} }
	tests := []struct {
		name  string
		edit  func(*Spec)
		field string
	}{
		{"no command", func(s *Spec) { s.Command = nil }, "command"},
		{"empty program", func(s *Spec) { s.Command = []string{""} }, "command"},
		{"NUL in argv", func(s *Spec) { s.Command = []string{"echo", "a\x00b"} }, "command[1]"},
		{"bad name", func(s *Spec) { s.Name = "has space" }, "name"},
		{"long name", func(s *Spec) { s.Name = strings.Repeat("a", MaxNameLen+1) }, "name"},
		{"negative cpus", func(s *Spec) { s.Resources.CPUs = -1 }, "resources.cpus"},
		{"tiny cpus", func(s *Spec) { s.Resources.CPUs = 0.0001 }, "resources.cpus"},
		{"cpus above capacity", func(s *Spec) { s.Resources.CPUs = 3 }, "resources.cpus"},
		{"negative memory", func(s *Spec) { s.Resources.MemoryMB = -5 }, "resources.memory_mb"},
		{"memory above capacity", func(s *Spec) { s.Resources.MemoryMB = 2048 }, "resources.memory_mb"},
		{"negative gpus", func(s *Spec) { s.Resources.GPUs = -1 }, "resources.gpus"},
		{"gpus above capacity", func(s *Spec) { s.Resources.GPUs = 1 }, "resources.gpus"},
		{"bad env name", func(s *Spec) { s.Env = map[string]string{"1BAD": "x"} }, "env"},
		{"env name with =", func(s *Spec) { s.Env = map[string]string{"A=B": "x"} }, "env"},
		{"HPCML_ env", func(s *Spec) { s.Env = map[string]string{"HPCML_JOB_ID": "7"} }, "env"},
		{"NUL in env value", func(s *Spec) { s.Env = map[string]string{"A": "x\x00"} }, "env"},
		{"workdir escaping", func(s *Spec) { s.WorkDir = "../elsewhere" }, "workdir"},
		{"workdir escaping after clean", func(s *Spec) { s.WorkDir = "a/../../b" }, "workdir"},
		{"negative time limit", func(s *Spec) { s.TimeLimit = -1 }, "time_limit"},
		{"huge cpus", func(s *Spec) { s.Resources.CPUs = 1e20 }, "resources.cpus"},
		{"attempts too many", func(s *Spec) { s.Retry.Attempts = MaxAttempts + 1 }, "retry.attempts"},
		{"attempts negative", func(s *Spec) { s.Retry.Attempts = -1 }, "retry.attempts"},
		{"bad signal", func(s *Spec) { s.Retry.OnSignals = []string{"SIGTERM", "SIGFOO"} }, "retry.on_signals[1]"},
		{"bad array", func(s *Spec) { s.Array = "5-1" }, "array"},
		{"array too big", func(s *Spec) { s.Array = "0-10000" }, "array"},
		{"bad dependency type", func(s *Spec) { s.DependsOn = []Dependency{{Type: "after", JobID: 1}} }, "depends_on[0].type"},
		{"bad dependency id", func(s *Spec) { s.DependsOn = []Dependency{{AfterOK, 1}, {AfterOK, 0}} }, "depends_on[1].job_id"},
		{"input without url", func(s *Spec) { s.Inputs = []Input{{Path: "x"}} }, "inputs[0].url"},
		{"input without path", func(s *Spec) { s.Inputs = []Input{{URL: "x"}} }, "inputs[0].path"},
		{"input path ../", func(s *Spec) { s.Inputs = []Input{{URL: "x", Path: "../x"}} }, "inputs[0].path"},
		{"input path absolute", func(s *Spec) { s.Inputs = []Input{{URL: "x", Path: "/etc/passwd"}} }, "inputs[0].path"},
		{"output path ../", func(s *Spec) {
			s.Outputs = []Output{{Path: "ok", URL: "o"}, {Path: "../escape", URL: "o"}}
		}, "outputs[1].path"},
		{"output path absolute", func(s *Spec) { s.Outputs = []Output{{Path: "/tmp/x", URL: "o"}} }, "outputs[0].path"},
		{"output path dotdot inside", func(s *Spec) { s.Outputs = []Output{{Path: "a/../../x", URL: "o"}} }, "outputs[0].path"},
		{"output without url", func(s *Spec) { s.Outputs = []Output{{Path: "x"}} }, "outputs[0].url"},
		{"empty tag key", func(s *Spec) { s.Tags = map[string]string{"": "v"} }, "tags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base()
			tt.edit(s)
			err := s.Normalize(testLimits)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Normalize = %v, want a FieldError on %s", err, tt.field)
			}
			if fe.Field != tt.field {
				t.Fatalf("Normalize named field %q (%v), want %q", fe.Field, err, tt.field)
			}
			if fe.Message == "" {
				t.Fatal("FieldError has no message")
			}
		})
	}
}

func TestNormalizeAccepts(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Spec)
	}{
		{"absolute workdir", func(s *Spec) { s.WorkDir = "/tmp" }},
		{"relative workdir", func(s *Spec) { s.WorkDir = "sub/dir" }},
		{"capacity exactly", func(s *Spec) { s.Resources = Resources{CPUs: 2, MemoryMB: 1024} }},
		{"fractional cpus", func(s *Spec) { s.Resources.CPUs = 0.25 }},
		{"nested paths", func(s *Spec) {
			s.Inputs = []Input{{URL: "s3://b/k", Path: "data/in.csv"}}
			s.Outputs = []Output{{Path: "out/", URL: "results/"}}
		}},
		{"max attempts", func(s *Spec) { s.Retry.Attempts = MaxAttempts }},
		{"signal number", func(s *Spec) { s.Retry.OnSignals = []string{"9"} }},
		{"serve token", func(s *Spec) { s.Env = map[string]string{ServeTokenEnv: "secret"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Spec{Command: []string{"true"}}
			tt.edit(s)
			if err := s.Normalize(testLimits); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestQueueValidate(t *testing.T) {
	tests := []struct {
		q     Queue
		field string
	}{
		{Queue{Name: "ok"}, ""},
		{Queue{Name: "bad name"}, "name"},
		{Queue{Name: ""}, "name"},
		{Queue{Name: "q", MaxRunning: -1}, "max_running"},
		{Queue{Name: "q", PriceCPUHour: -1}, "price_cpu_hour"},
		{Queue{Name: "q", PriceGBHour: -0.5}, "price_gb_hour"},
		{Queue{Name: "q", Backend: "k8s"}, "backend"},
		{Queue{Name: "q", Backend: "slurm"}, ""},
		{Queue{Name: "q", Backend: "slurm", Partition: "debug", Account: "lab1", QOS: "normal"}, ""},
		{Queue{Name: "q", Backend: "slurm", Partition: "a b"}, "partition"},
		{Queue{Name: "q", Backend: "slurm", Account: "$(x)"}, "account"},
		{Queue{Name: "q", Partition: "debug"}, "partition"},
	}
	for _, tt := range tests {
		err := tt.q.Validate()
		var fe *FieldError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%+v: %v", tt.q, err)
		case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
			t.Errorf("%+v: error %v, want field %s", tt.q, err, tt.field)
		}
	}
	q := Queue{Name: "q"}
	q.Validate()
	if q.Backend != "local" {
		t.Errorf("default backend = %q", q.Backend)
	}
}

func TestQueueCost(t *testing.T) {
	q := Queue{PriceCPUHour: 2, PriceGBHour: 0.5}
	got := q.Cost(Resources{CPUs: 4, MemoryMB: 2048}, 30*time.Minute)
	if want := 0.5 * (4*2 + 2*0.5); got != want {
		t.Fatalf("cost = %v, want %v", got, want)
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		in     string
		id     int64
		index  int
		isTask bool
		ok     bool
	}{
		{"42", 42, 0, false, true},
		{"41_3", 41, 3, true, true},
		{"0", 0, 0, false, false},
		{"-1", 0, 0, false, false},
		{"x", 0, 0, false, false},
		{"4_x", 0, 0, false, false},
		{"4_-1", 0, 0, false, false},
	}
	for _, tt := range tests {
		id, index, isTask, err := ParseID(tt.in)
		if (err == nil) != tt.ok || id != tt.id || index != tt.index || isTask != tt.isTask {
			t.Errorf("ParseID(%q) = %d, %d, %v, %v", tt.in, id, index, isTask, err)
		}
	}
	i := 3
	j := Job{ID: 9, ParentID: 8, ArrayIndex: &i}
	if j.DisplayID() != "8_3" {
		t.Errorf("DisplayID = %s", j.DisplayID())
	}
}

func TestSignalNumber(t *testing.T) {
	for _, in := range []string{"SIGKILL", "kill", " Kill ", "9"} {
		if n, ok := SignalNumber(in); !ok || SignalName(n) != "SIGKILL" {
			t.Errorf("SignalNumber(%q) = %v, %v", in, n, ok)
		}
	}
	for _, in := range []string{"", "SIGFOO", "0", "65", "9x"} {
		if _, ok := SignalNumber(in); ok {
			t.Errorf("SignalNumber(%q) accepted", in)
		}
	}
}

func TestTasksAndAllocation(t *testing.T) {
	tests := []struct {
		name  string
		spec  Spec
		tasks int
		want  Resources
	}{
		{"plain job", Spec{Resources: Resources{CPUs: 2, MemoryMB: 100, GPUs: 1}}, 1, Resources{CPUs: 2, MemoryMB: 100, GPUs: 1}},
		{"zeros are one", Spec{Nodes: 0, TasksPerNode: 0, Resources: Resources{CPUs: 1}}, 1, Resources{CPUs: 1}},
		{"cpus per task, memory and gpus per node",
			Spec{Nodes: 2, TasksPerNode: 3, Resources: Resources{CPUs: 0.5, MemoryMB: 1000, GPUs: 2}},
			6, Resources{CPUs: 3, MemoryMB: 2000, GPUs: 4}},
		// Thousandths, as the scheduler counts: 3 × 0.333 = 0.999.
		{"thousandths", Spec{TasksPerNode: 3, Resources: Resources{CPUs: 1.0 / 3}}, 3, Resources{CPUs: 0.999}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.spec.Tasks(); got != tt.tasks {
				t.Errorf("Tasks = %d, want %d", got, tt.tasks)
			}
			if got := tt.spec.Allocation(); got != tt.want {
				t.Errorf("Allocation = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNormalizeTasks(t *testing.T) {
	local := Limits{MaxNode: Resources{CPUs: 2, MemoryMB: 1024}, SingleNode: true}
	cluster := Limits{MaxNode: Resources{CPUs: 4, MemoryMB: 1024, GPUs: 2}, MaxNodes: 3}
	unknown := Limits{MaxNode: Resources{CPUs: 4, MemoryMB: 1024}}
	tests := []struct {
		name  string
		lim   Limits
		edit  func(*Spec)
		field string // "" = accepted
		msg   string // in the error
	}{
		{"defaults", local, func(s *Spec) {}, "", ""},
		{"mpi", local, func(s *Spec) { s.Type = TypeMPI }, "", ""},
		{"bad type", local, func(s *Spec) { s.Type = "foo" }, "type", `"foo" is not a job type (mpi)`},
		{"type is case-sensitive", local, func(s *Spec) { s.Type = "MPI" }, "type", "not a job type"},
		{"negative nodes", local, func(s *Spec) { s.Nodes = -1 }, "nodes", "between 1 and 1024"},
		{"too many nodes", cluster, func(s *Spec) { s.Nodes = MaxJobNodes + 1 }, "nodes", "between 1 and 1024"},
		{"negative tasks per node", local, func(s *Spec) { s.TasksPerNode = -2 }, "tasks_per_node", "between 1 and 1024"},
		{"too many tasks per node", local, func(s *Spec) { s.TasksPerNode = MaxTasksPerNode + 1 }, "tasks_per_node", "between 1 and 1024"},
		{"array of multi-task jobs", local, func(s *Spec) { s.Array = "0-3"; s.TasksPerNode = 2; s.Resources.CPUs = 0.5 }, "", ""},

		// Local: every task runs on the one machine.
		{"local: 4 × 0.5 cpus fits 2", local, func(s *Spec) { s.Nodes, s.TasksPerNode, s.Resources.CPUs = 2, 2, 0.5 }, "", ""},
		{"local: 4 × 1 cpus does not fit 2", local, func(s *Spec) { s.Nodes, s.TasksPerNode = 2, 2 }, "resources.cpus",
			"needs 4 CPUs in total (2 nodes × 2 tasks × 1 cpus); every task runs on this one node, which has 2: ask for fewer cpus per task, e.g. 0.5"},
		{"local: too many tasks for any cpus", local, func(s *Spec) { s.Nodes, s.TasksPerNode, s.Resources.CPUs = 1024, 1024, 0.001 }, "resources.cpus",
			"ask for fewer tasks"},
		{"local: memory is per node", local, func(s *Spec) { s.Nodes, s.Resources.CPUs, s.Resources.MemoryMB = 2, 0.5, 600 }, "resources.memory_mb",
			"needs 1200 MB in total (2 nodes × 600 MB)"},
		{"local: memory per node fits", local, func(s *Spec) { s.Nodes, s.Resources.CPUs, s.Resources.MemoryMB = 2, 0.5, 512 }, "", ""},
		{"local: one task above the node", local, func(s *Spec) { s.TasksPerNode, s.Resources.CPUs = 2, 3 }, "resources.cpus", "3 CPUs per task"},
		{"local: huge memory cannot wrap", local, func(s *Spec) { s.Nodes, s.Resources.CPUs, s.Resources.MemoryMB = 2, 0.5, 1<<62 }, "resources.memory_mb", ""},
		{"local: node count is not bounded by MaxNodes", Limits{MaxNode: local.MaxNode, SingleNode: true, MaxNodes: 1},
			func(s *Spec) { s.Nodes, s.Resources.CPUs = 4, 0.5 }, "", ""},

		// Cluster: per node, and the node count.
		{"cluster: 3 nodes × 4 cpus", cluster, func(s *Spec) { s.Nodes, s.TasksPerNode = 3, 4 }, "", ""},
		{"cluster: more nodes than there are", cluster, func(s *Spec) { s.Nodes = 4 }, "nodes", "4 nodes is more than there are (3)"},
		{"cluster: unknown node count", unknown, func(s *Spec) { s.Nodes = 100 }, "", ""},
		{"cluster: tasks of a node above it", cluster, func(s *Spec) { s.TasksPerNode, s.Resources.CPUs = 3, 1.5 }, "resources.cpus",
			"needs 4.5 CPUs per node (3 tasks × 1.5 cpus); the largest node has 4"},
		{"cluster: gpus per node", cluster, func(s *Spec) { s.Nodes, s.Resources.GPUs = 3, 2 }, "", ""},
		{"cluster: gpus above a node", cluster, func(s *Spec) { s.Nodes, s.Resources.GPUs = 2, 3 }, "resources.gpus", "3 GPUs"},
		{"cluster: memory above a node", cluster, func(s *Spec) { s.Nodes, s.Resources.MemoryMB = 2, 2000 }, "resources.memory_mb", "2000 MB"},
		// A one-task job keeps the plain message.
		{"single task above the node", cluster, func(s *Spec) { s.Resources.CPUs = 5 }, "resources.cpus",
			"5 CPUs is more than the largest node has (4)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Spec{Command: []string{"true"}}
			tt.edit(s)
			err := s.Normalize(tt.lim)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Normalize = %v, want it accepted", err)
				}
				if s.Nodes < 1 || s.TasksPerNode < 1 {
					t.Fatalf("layout not defaulted: %d × %d", s.Nodes, s.TasksPerNode)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Normalize = %v, want a FieldError on %s", err, tt.field)
			}
			if !strings.Contains(fe.Message, tt.msg) {
				t.Fatalf("message %q does not say %q", fe.Message, tt.msg)
			}
		})
	}
}

func TestParseSpecTasks(t *testing.T) {
	s, err := ParseSpec([]byte("command: [./solver]\ntype: mpi\nnodes: 2\ntasks_per_node: 4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Type != TypeMPI || s.Nodes != 2 || s.TasksPerNode != 4 || s.Tasks() != 8 {
		t.Fatalf("parsed %+v", s)
	}
	s, err = ParseSpec([]byte(`{"command":["x"],"type":"mpi","nodes":3,"tasks_per_node":2}`))
	if err != nil || s.Type != TypeMPI || s.Tasks() != 6 {
		t.Fatalf("parsed %+v, %v", s, err)
	}
}
