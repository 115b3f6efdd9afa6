package transform

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/table"
)

// Most shuffle buckets of a drop_duplicates (each unit of the shuffle
// keeps a file open per bucket).
const maxBuckets = 512

// originColumn carries each row's origin through a shuffle.
const originColumn = "__hpcml_origin"

// Plan is a transform ready to run: its spec, the input's columns and
// partitions, and where the output is staged. It is plain JSON: a job
// gets it (without the partitions list, which is long: each partition
// job gets its own) and compiles it again.
type Plan struct {
	ID       string `json:"id"`
	Spec     string `json:"spec"`      // the YAML
	SpecFile string `json:"spec_file"` // for messages
	// InputURL is the table read; Input how (format, columns, parse
	// settings).
	InputURL string     `json:"input_url"`
	Input    table.Spec `json:"input"`
	// Partitions of the input; NumPartitions their count (the list is
	// left out of the plan a job gets).
	Partitions    []table.Partition `json:"partitions,omitempty"`
	NumPartitions int               `json:"num_partitions"`
	// Buckets of each drop_duplicates shuffle, by step index.
	Buckets map[int]int `json:"buckets,omitempty"`
	// Output is the destination; Stage where it is written first.
	Output string `json:"output"`
	Stage  string `json:"stage"`

	spec *Spec
	c    *compiled
	segs []segment
}

// segment is a run of steps executed by the same units: the input's
// partitions (the first segment), or the buckets of the drop_duplicates
// shuffle it starts with.
type segment struct {
	first, end int   // steps [first, end); a dedup step first for k ≥ 1
	dedup      *step // the drop_duplicates the segment starts with
	units      int
}

// Pass kinds.
const (
	PassStats   = "stats"   // statistics of a step's input
	PassShuffle = "shuffle" // rows to the buckets of a drop_duplicates
	PassWrite   = "write"   // the output
)

// Pass is one read of the data: every unit of a segment runs it.
type Pass struct {
	Index   int    `json:"index"`
	Kind    string `json:"kind"`
	Segment int    `json:"segment"`
	// Step: stats — the step whose input is measured; shuffle — the
	// drop_duplicates the rows go to.
	Step  int `json:"step"`
	Units int `json:"units"`
}

// PlanOptions say how to plan.
type PlanOptions struct {
	// Table reading options beyond the spec's (ResolveDataset, ...).
	Table table.Options
	// ID names the run (staging names, job names); required.
	ID string
	// Workers that will process the partitions: unless the spec sets
	// input.partitions, an input of 32 MiB or more is cut into a multiple
	// of Workers partitions (at least Workers), so that none idles.
	Workers int
}

// NewPlan reads the input's schema, cuts it into partitions and checks
// every step against the columns it gets.
func NewPlan(ctx context.Context, spec *Spec, text string, opts PlanOptions) (*Plan, error) {
	topts, err := spec.Input.tableOptions(opts.Table)
	if err != nil {
		if se, ok := err.(*SpecError); ok {
			se.File = spec.File
		}
		return nil, err
	}
	if !strings.Contains(spec.Input.URL, "://") {
		// Jobs read the partitions from their own directories.
		if abs, err := filepath.Abs(spec.Input.URL); err == nil {
			spec.Input.URL = abs
		}
	}
	parts, err := table.Split(ctx, spec.Input.URL, topts, spec.Input.Partitions)
	if err != nil {
		return nil, err
	}
	if w := opts.Workers; spec.Input.Partitions == 0 && w > 1 {
		var total int64
		for _, pt := range parts {
			total += pt.Bytes
		}
		if n := (max(len(parts), w) + w - 1) / w * w; total >= 32<<20 && n != len(parts) {
			if more, err := table.Split(ctx, spec.Input.URL, topts, n); err == nil {
				parts = more
			}
		}
	}
	p := &Plan{ID: opts.ID, Spec: text, SpecFile: spec.File, InputURL: spec.Input.URL, Input: parts[0].Spec, Partitions: parts, NumPartitions: len(parts)}
	p.spec = spec
	if err := p.compile(); err != nil {
		return nil, err
	}
	d, err := newDest(spec.Output.URL, p.ID)
	if err != nil {
		return nil, &SpecError{File: spec.File, Field: spec.Output.at, Msg: err.Error()}
	}
	p.Output, p.Stage = d.url, d.stage
	if err := d.check(ctx, spec.Output.Overwrite); err != nil {
		return nil, &SpecError{File: spec.File, Field: Field{Path: "output.url", Line: spec.Output.at.Line}, Msg: err.Error()}
	}
	return p, nil
}

// Load is a plan read from JSON, compiled.
func Load(data []byte) (*Plan, error) {
	var p Plan
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	s, err := Parse([]byte(p.Spec), p.SpecFile)
	if err != nil {
		return nil, err
	}
	p.spec = s
	return &p, p.compile()
}

// JobJSON is the plan without its partitions, for jobs.
func (p *Plan) JobJSON() ([]byte, error) {
	q := *p
	q.Partitions = nil
	return json.Marshal(&q)
}

func (p *Plan) compile() error {
	schema, err := p.Input.Schema()
	if err != nil {
		return err
	}
	cols, err := colsOf(schema)
	if err != nil {
		return err
	}
	c, err := compile(p.spec, cols)
	if err != nil {
		return err
	}
	p.c = c
	if p.Buckets == nil {
		p.Buckets = map[int]int{}
	}
	p.segs = []segment{{first: 0, units: p.NumPartitions}}
	for _, s := range c.steps {
		if s.op != OpDropDuplicates {
			continue
		}
		if indexOf(s.in, originColumn) >= 0 {
			return &SpecError{File: p.SpecFile, Field: s.at, Msg: fmt.Sprintf("a column is named %s, which drop_duplicates uses itself", originColumn)}
		}
		b := p.Buckets[s.index]
		if b == 0 {
			b = s.buckets
		}
		if b == 0 {
			b = min(max(p.NumPartitions, 1), maxBuckets)
		}
		p.Buckets[s.index] = b
		p.segs[len(p.segs)-1].end = s.index
		p.segs = append(p.segs, segment{first: s.index, dedup: s, units: b})
	}
	p.segs[len(p.segs)-1].end = len(c.steps)
	return nil
}

func colsOf(schema *arrow.Schema) ([]col, error) {
	var cols []col
	for _, f := range schema.Fields() {
		k, err := kindOfType(f.Type)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", f.Name, err)
		}
		cols = append(cols, col{f.Name, k})
	}
	return cols, nil
}

// Passes are the reads of the data, in order: for each segment, a
// statistics pass per step that needs one, then the pass that shuffles
// its rows to the next segment or writes the output.
func (p *Plan) Passes() []Pass {
	var out []Pass
	for si, sg := range p.segs {
		for _, s := range p.c.steps[sg.first:sg.end] {
			if s.needsPass() {
				out = append(out, Pass{Index: len(out), Kind: PassStats, Segment: si, Step: s.index, Units: sg.units})
			}
		}
		if si+1 < len(p.segs) {
			out = append(out, Pass{Index: len(out), Kind: PassShuffle, Segment: si, Step: p.segs[si+1].first, Units: sg.units})
		} else {
			out = append(out, Pass{Index: len(out), Kind: PassWrite, Segment: si, Step: len(p.c.steps), Units: sg.units})
		}
	}
	return out
}

// Splits are the output's splits (one, "", without a split step).
func (p *Plan) Splits() []string {
	if p.c.split == nil {
		return []string{""}
	}
	return p.c.split.names
}

// Describe is the plan for people (--dry-run).
func (p *Plan) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Transform %s (%s)\n", p.ID, p.SpecFile)
	fmt.Fprintf(&b, "Input  %s: %s, %d columns, %d partitions\n", blob.Redact(p.InputURL), p.Input.Format, len(p.Input.Columns), p.NumPartitions)
	fmt.Fprintln(&b, "Steps:")
	for _, s := range p.c.steps {
		fmt.Fprintf(&b, "  %2d  %s\n", s.index, s.describe)
	}
	fmt.Fprintf(&b, "Output %s: %s", blob.Redact(p.Output), p.outFormat())
	if p.outFormat() == "parquet" {
		fmt.Fprintf(&b, " (%s)", p.compression())
	}
	if len(p.spec.Output.PartitionBy) > 0 {
		fmt.Fprintf(&b, ", partitioned by %s", refNames(p.spec.Output.PartitionBy))
	}
	var names []string
	for _, c := range p.c.out {
		names = append(names, c.Name+":"+c.K.String())
	}
	fmt.Fprintf(&b, "\n  columns %s\n", strings.Join(names, " "))
	if p.c.split != nil {
		fmt.Fprintf(&b, "  one directory per split: %s\n", strings.Join(p.c.split.names, ", "))
	}
	fmt.Fprintf(&b, "  staged at %s, then moved into place\n", blob.Redact(p.Stage))
	fmt.Fprintln(&b, "Passes:")
	for _, ps := range p.Passes() {
		what := ""
		switch ps.Kind {
		case PassStats:
			what = fmt.Sprintf("statistics for step %d", ps.Step)
		case PassShuffle:
			what = fmt.Sprintf("rows hashed into %d buckets for step %d", p.Buckets[ps.Step], ps.Step)
		case PassWrite:
			what = "write the output"
		}
		sg := p.segs[ps.Segment]
		unit := "partition"
		if sg.dedup != nil {
			unit = "bucket"
		}
		if ps.Units != 1 {
			unit += "s"
		}
		from, to := sg.first, min(ps.Step, sg.end)-1
		steps := fmt.Sprintf("steps %d-%d", from, to)
		switch {
		case to < from:
			steps = "no steps"
		case to == from:
			steps = fmt.Sprintf("step %d", from)
		}
		fmt.Fprintf(&b, "  %d  %-7s %d %s, %s, then %s\n", ps.Index+1, ps.Kind, ps.Units, unit, steps, what)
	}
	return b.String()
}

func (p *Plan) outFormat() string {
	if p.spec.Output.Format == "" {
		return "parquet"
	}
	return p.spec.Output.Format
}

func (p *Plan) compression() string {
	if p.spec.Output.Compression == "" {
		return "snappy"
	}
	return p.spec.Output.Compression
}

// tableOptions are the spec's reading options over base.
func (in *InputSpec) tableOptions(base table.Options) (table.Options, error) {
	o := base
	o.Format = table.Format(in.Format)
	o.NoHeader = in.NoHeader
	o.SkipRows = in.SkipRows
	o.SampleRows = in.SampleRows
	if in.NullValues != nil {
		o.NullValues = in.NullValues
	}
	if d := in.Delimiter; d != "" {
		if d == `\t` || d == "tab" {
			d = "\t"
		}
		o.Delimiter = []rune(d)[0]
	}
	for _, t := range in.Types {
		dt, err := table.ParseType(t.Type)
		if err != nil {
			return o, &SpecError{Field: t.At, Msg: err.Error()}
		}
		if o.Types == nil {
			o.Types = map[string]arrow.DataType{}
		}
		o.Types[t.Column] = dt
	}
	return o, nil
}
