package batchtransform

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/serve"
	"github.com/hpcml/hpcml/internal/table"
)

// How the input is cut into requests (--split), as SageMaker's SplitType.
const (
	// SplitLine: every line of a CSV or JSON Lines file is a record
	// (every row of a Parquet file).
	SplitLine = "line"
	// SplitRecord: every CSV record (quoted fields may span lines; such
	// files are read whole, not cut by bytes), JSON line or Parquet row.
	SplitRecord = "record"
	// SplitNone: a file is one request: the features of all its records,
	// in order, are one sample; its output is one record.
	SplitNone = "none"
)

// What each output record carries besides the predictions (--join).
const (
	JoinInput = "input" // every input column, then the predictions
	JoinID    = "id"    // the id column, then the predictions
	JoinNone  = "none"  // the predictions only
)

// Output formats (--output-format).
const (
	FormatCSV   = "csv"
	FormatJSONL = "jsonl"
)

// Defaults and bounds.
const (
	DefaultBatchSize = 256
	DefaultPartBytes = 1 << 20
	MaxParts         = 10000
	planVersion      = 1
)

// Options say what to transform and how; the CLI fills them from its
// flags and from the registry's record of the model.
type Options struct {
	// Model and Version name the registered model version; Inputs and
	// Outputs are its signature (first dimension the batch).
	Model   string
	Version int
	Inputs  []serve.TensorInfo
	Outputs []serve.TensorInfo

	Input, Output string
	Split         string   // SplitLine (default), SplitRecord, SplitNone
	Join          string   // JoinNone (default), JoinInput, JoinID
	Format        string   // FormatCSV or FormatJSONL; default: CSV for CSV input, else JSON Lines
	Features      []string // the input columns (JSON keys) that make a sample, in order; default: all but the id
	IDColumn      string
	BatchSize     int   // records per model execution; 0 is DefaultBatchSize
	PartBytes     int64 // about how much input a part holds; 0 is DefaultPartBytes
}

// Plan is a transform fixed once: the files, their parts, the model and
// how records become samples and outputs. It is stored at the output
// (_hpcml/plan.json) where every worker and the commit read it; its Hash
// covers everything that decides the outputs, so a rerun with the same
// settings on the same input resumes, and anything else is refused.
type Plan struct {
	FormatVersion int       `json:"format_version"`
	Hash          string    `json:"hash"`
	Created       time.Time `json:"created"`

	Model   string `json:"model"`
	Version int    `json:"version"`
	Input   string `json:"input"`
	Output  string `json:"output"`

	Split     string `json:"split"`
	Join      string `json:"join"`
	Format    string `json:"output_format"`
	BatchSize int    `json:"batch_size"`

	// Spec is how the files are read (format, CSV delimiter and header,
	// Parquet columns).
	Spec table.Spec `json:"spec"`
	// Columns are the input's columns (the CSV header, the first JSON
	// object's keys, the Parquet schema); empty for JSON arrays.
	Columns []string `json:"columns,omitempty"`
	// Features are the columns (keys) a sample is made of, in order;
	// empty when a JSON line is an array (the array is the sample).
	Features []string `json:"features,omitempty"`
	IDColumn string   `json:"id_column,omitempty"`

	// InputName is the model's input and Volume its values per sample.
	InputName string      `json:"input_name"`
	Volume    int         `json:"volume"`
	Outputs   []OutputCol `json:"outputs"`

	Files []File `json:"files"`
	Parts []Part `json:"parts"`
}

// OutputCol is one model output: its name and values per sample.
type OutputCol struct {
	Name   string `json:"name"`
	Volume int    `json:"volume"`
}

// File is one input file and where its output goes.
type File struct {
	Name string `json:"name"` // relative to the input (for messages and the output's name)
	URL  string `json:"url"`
	Size int64  `json:"size"`
	Out  string `json:"out"` // output key, relative to the output prefix
}

// Part is a piece of one file that one worker scores in one go.
type Part struct {
	Index int         `json:"index"`
	File  int         `json:"file"`
	Piece table.Piece `json:"piece"`
	Bytes int64       `json:"bytes"`
}

// NewPlan lists and cuts the input and checks the settings against the
// input's columns and the model's signature. It reads the input's
// listing and first records, nothing else; an input that does not exist
// is an error here, before anything runs.
func NewPlan(ctx context.Context, o Options) (*Plan, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	p := &Plan{FormatVersion: planVersion, Created: time.Now().UTC(), Model: o.Model, Version: o.Version,
		Input: o.Input, Output: o.Output, Split: o.Split, Join: o.Join, Format: o.Format,
		BatchSize: o.BatchSize, IDColumn: o.IDColumn}
	if err := p.signature(o); err != nil {
		return nil, err
	}
	spec, first, err := inferInput(ctx, o.Input)
	if err != nil {
		return nil, err
	}
	p.Spec = *spec
	if p.Format == "" {
		p.Format = FormatJSONL
		if spec.Format == table.FormatCSV {
			p.Format = FormatCSV
		}
	}
	if err := p.pickFeatures(o, first); err != nil {
		return nil, err
	}
	if err := p.cut(ctx, o.PartBytes); err != nil {
		return nil, err
	}
	if err := p.checkOutput(); err != nil {
		return nil, err
	}
	p.Hash = p.hash()
	return p, nil
}

func (o *Options) defaults() error {
	if o.Model == "" || o.Version < 1 {
		return errors.New("a model version is needed (NAME and VERSION ≥ 1)")
	}
	if o.Input == "" {
		return errors.New("--input is required")
	}
	if o.Output == "" {
		return errors.New("--output is required")
	}
	var err error
	if o.Input, err = NormalizeURL(o.Input); err != nil {
		return fmt.Errorf("--input: %w", err)
	}
	if o.Output, err = NormalizeURL(o.Output); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	o.Output = asPrefix(o.Output)
	if in := strings.TrimSuffix(urlPath(o.Input), "/") + "/"; strings.HasPrefix(urlPath(o.Output), in) {
		return fmt.Errorf("--output %s is inside --input %s: write the outputs elsewhere", o.Output, o.Input)
	}
	if o.Split == "" {
		o.Split = SplitLine
	}
	if !slices.Contains([]string{SplitLine, SplitRecord, SplitNone}, o.Split) {
		return fmt.Errorf("--split %q: one of line, record, none", o.Split)
	}
	if o.Join == "" {
		o.Join = JoinNone
	}
	if !slices.Contains([]string{JoinInput, JoinID, JoinNone}, o.Join) {
		return fmt.Errorf("--join %q: one of input, id, none", o.Join)
	}
	if o.Format != "" && o.Format != FormatCSV && o.Format != FormatJSONL {
		return fmt.Errorf("--output-format %q: one of csv, jsonl", o.Format)
	}
	if o.Join == JoinID && o.IDColumn == "" {
		return errors.New("--join id needs --id-column")
	}
	if o.Split == SplitNone && o.Join != JoinNone {
		return errors.New("--split none sends each file whole, as one sample: there are no records to join (use --join none; each output file is named after its input)")
	}
	if o.Split == SplitNone && o.IDColumn != "" {
		return errors.New("--split none sends each file whole: --id-column does not apply")
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.BatchSize < 1 || o.BatchSize > 1<<20 {
		return fmt.Errorf("--batch-size %d: between 1 and %d", o.BatchSize, 1<<20)
	}
	if o.PartBytes == 0 {
		o.PartBytes = DefaultPartBytes
	}
	if o.PartBytes < 1024 {
		return fmt.Errorf("part size %d bytes: at least 1 KiB", o.PartBytes)
	}
	return nil
}

// signature reads the model's input and outputs: one input, every
// dimension but the batch fixed.
func (p *Plan) signature(o Options) error {
	if len(o.Inputs) != 1 {
		return fmt.Errorf("model %s:%d has %d inputs: batch transform feeds models of one input", o.Model, o.Version, len(o.Inputs))
	}
	in := o.Inputs[0]
	vol, err := sampleVolume(in)
	if err != nil {
		return fmt.Errorf("model %s:%d: %w", o.Model, o.Version, err)
	}
	p.InputName, p.Volume = in.Name, vol
	if len(o.Outputs) == 0 {
		return fmt.Errorf("model %s:%d has no outputs", o.Model, o.Version)
	}
	for _, out := range o.Outputs {
		v, err := sampleVolume(out)
		if err != nil {
			return fmt.Errorf("model %s:%d: %w", o.Model, o.Version, err)
		}
		p.Outputs = append(p.Outputs, OutputCol{Name: out.Name, Volume: v})
	}
	return nil
}

// sampleVolume is how many values one sample of a tensor holds: the
// product of its dimensions after the batch.
func sampleVolume(t serve.TensorInfo) (int, error) {
	if len(t.Shape) == 0 {
		return 0, fmt.Errorf("%q is a scalar: it has no batch dimension", t.Name)
	}
	v := 1
	for _, d := range t.Shape[1:] {
		if d <= 0 {
			return 0, fmt.Errorf("%q has shape %v: every dimension but the first (the batch) must be fixed", t.Name, t.Shape)
		}
		v *= int(d)
	}
	return v, nil
}

// pickFeatures resolves the feature columns against the input's columns
// and checks their values per sample against the model's input.
func (p *Plan) pickFeatures(o Options, first *firstRecord) error {
	if first.array {
		if len(o.Features) > 0 || o.IDColumn != "" || o.Join == JoinID {
			return fmt.Errorf("%s: the JSON lines are arrays, with no keys: --features and --id-column do not apply", first.file)
		}
		if o.Split != SplitNone && first.volume != p.Volume {
			return fmt.Errorf("%s: the first line holds %d numbers; model input %q takes %d per sample", first.file, first.volume, p.InputName, p.Volume)
		}
		return nil
	}
	p.Columns = first.columns
	has := func(c string) bool { return slices.Contains(p.Columns, c) }
	if o.IDColumn != "" && !has(o.IDColumn) {
		return fmt.Errorf("--id-column %q: the input has no such column (it has %s)", o.IDColumn, strings.Join(p.Columns, ", "))
	}
	if len(o.Features) > 0 {
		for _, f := range o.Features {
			if !has(f) {
				return fmt.Errorf("--features: the input has no column %q (it has %s)", f, strings.Join(p.Columns, ", "))
			}
			if f == o.IDColumn {
				return fmt.Errorf("--features: %q is the id column", f)
			}
		}
		p.Features = slices.Clone(o.Features)
	} else {
		for _, c := range p.Columns {
			if c != o.IDColumn {
				p.Features = append(p.Features, c)
			}
		}
	}
	if p.Spec.Format == table.FormatParquet {
		for _, f := range p.Features {
			i := slices.Index(p.Columns, f)
			switch p.Spec.Columns[i].Type {
			case "int64", "float64", "bool":
			default:
				return fmt.Errorf("%s: column %q is %s, not a number: leave it out of --features", first.file, f, p.Spec.Columns[i].Type)
			}
		}
	}
	vol := 0
	for _, f := range p.Features {
		vol += max(first.volumes[f], 1)
	}
	if o.Split != SplitNone && vol != p.Volume {
		return fmt.Errorf("model input %q takes %d values per sample; the features (%s) give %d: pick the columns with --features",
			p.InputName, p.Volume, strings.Join(p.Features, ", "), vol)
	}
	return nil
}

// cut lists the input's files and cuts each into parts of about
// partBytes (larger when the input would make more than MaxParts): byte
// ranges of text files, row groups of Parquet files, whole compressed
// files. A part belongs to one file, whose output it adds to.
func (p *Plan) cut(ctx context.Context, partBytes int64) error {
	listing, err := table.Split(ctx, p.Input, table.Options{Spec: &p.Spec, PartitionBytes: 1 << 62}, 1)
	if err != nil {
		return fmt.Errorf("--input: %w", err)
	}
	var total int64
	for _, tp := range listing {
		for _, pc := range tp.Pieces {
			if n := len(p.Files); n > 0 && p.Files[n-1].URL == pc.URL {
				continue
			}
			size, err := pieceFileSize(ctx, pc.URL)
			if err != nil {
				return fmt.Errorf("--input: %w", err)
			}
			name := relName(p.Input, pc.URL)
			p.Files = append(p.Files, File{Name: name, URL: pc.URL, Size: size, Out: name + OutSuffix})
			total += size
		}
	}
	partBytes = max(partBytes, (total+MaxParts-1)/MaxParts)
	whole := p.Split == SplitNone || p.Split == SplitRecord && p.Spec.Format == table.FormatCSV
	for fi, f := range p.Files {
		n := int((f.Size + partBytes - 1) / partBytes)
		if whole || n <= 1 {
			p.Parts = append(p.Parts, Part{Index: len(p.Parts), File: fi, Piece: table.Piece{URL: f.URL}, Bytes: f.Size})
			continue
		}
		cut, err := table.Split(ctx, f.URL, table.Options{Spec: &p.Spec}, n)
		if err != nil {
			return fmt.Errorf("--input: %w", err)
		}
		for _, tp := range cut {
			for _, pc := range tp.Pieces {
				pc.URL = f.URL
				p.Parts = append(p.Parts, Part{Index: len(p.Parts), File: fi, Piece: pc, Bytes: tp.Bytes})
			}
		}
	}
	if len(p.Parts) > MaxParts {
		return fmt.Errorf("the input makes %d parts, more than %d: give a larger --part-size", len(p.Parts), MaxParts)
	}
	return nil
}

// checkOutput refuses output columns that would collide.
func (p *Plan) checkOutput() error {
	if p.Join == JoinNone {
		return nil
	}
	joined := p.Columns
	if p.Join == JoinID {
		joined = []string{p.IDColumn}
	}
	for _, name := range predictionColumns(p.Outputs, p.Format) {
		if slices.Contains(joined, name) {
			return fmt.Errorf("the input's column %q has the name of the model's output: joined, the output would hold it twice (use --join id or none, or rename the column)", name)
		}
	}
	return nil
}

// hash is the SHA-256 of everything that decides the outputs: not when
// the plan was made, nor the batch size (a row's prediction does not
// depend on its batch), nor how the input and output were spelled ("in"
// or "./in/": the files and their parts say what is read).
func (p *Plan) hash() string {
	q := *p
	q.Hash, q.Created, q.BatchSize, q.Input, q.Output = "", time.Time{}, 0, "", ""
	data, _ := json.Marshal(&q)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// relName is a file's name relative to the input: its path under the
// input prefix or directory, or its base name when the input named it.
func relName(input, fileURL string) string {
	in, f := urlPath(input), urlPath(fileURL)
	if rest, ok := strings.CutPrefix(f, strings.TrimSuffix(in, "/")+"/"); ok && rest != "" {
		return rest
	}
	return path.Base(f)
}

// asPrefix makes a location name a prefix: its path ends in "/" (an
// s3:// URL keeps its query after it).
func asPrefix(loc string) string {
	if !strings.Contains(loc, "://") {
		if strings.HasSuffix(loc, "/") {
			return loc
		}
		return loc + "/"
	}
	u, err := url.Parse(loc)
	if err != nil || strings.HasSuffix(u.Path, "/") {
		return loc
	}
	u.Path += "/"
	return u.String()
}

// Join names an object under an output prefix, for people: a local path
// or the URL with the key appended (secrets in its query redacted).
func Join(prefix, rel string) string {
	if !strings.Contains(prefix, "://") {
		return prefix + rel
	}
	u, err := url.Parse(prefix)
	if err != nil {
		return prefix + rel
	}
	u.Path += rel
	return blob.Redact(u.String())
}

// urlPath is the slash path of a local path or URL (an s3 URL's bucket
// and key).
func urlPath(raw string) string {
	if !strings.Contains(raw, "://") {
		return filepath.ToSlash(raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Host + u.Path
}

// Load reads the plan stored at an output prefix.
func Load(ctx context.Context, output string) (*Plan, error) {
	s, err := openOutput(ctx, output)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.plan(ctx)
}

func (s *outputStore) plan(ctx context.Context) (*Plan, error) {
	data, ok, err := s.read(ctx, planFile)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s: no plan (was the transform committed or removed?)", s.where(planFile))
	}
	var p Plan
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", s.where(planFile), err)
	}
	if p.FormatVersion != planVersion {
		return nil, fmt.Errorf("%s: plan format %d, this hpcml reads %d", s.where(planFile), p.FormatVersion, planVersion)
	}
	if p.hash() != p.Hash {
		return nil, fmt.Errorf("%s: the plan does not match its hash (edited?)", s.where(planFile))
	}
	return &p, nil
}
