package transform

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Spec is a transform as its YAML file says it: where the table comes
// from, the steps in order, and where the result goes. Parse reads it
// strictly: an unknown field, a missing one or a value of the wrong kind
// is an error naming the field (steps[2].filter.op) and its line.
type Spec struct {
	Input  InputSpec
	Steps  []Step
	Output OutputSpec
	// File names the spec in messages.
	File string
}

// InputSpec is the table read, with the table-reading options of
// `hpcml data profile`.
type InputSpec struct {
	URL        string
	Format     string
	Delimiter  string
	NoHeader   bool
	SkipRows   int
	Types      []ColumnType
	NullValues []string
	SampleRows int
	// Partitions the input is cut into (0: one per 128 MiB).
	Partitions int
	at         Field
}

// ColumnType sets a column's type.
type ColumnType struct {
	Column string
	Type   string
	At     Field
}

// OutputSpec is where and how the result is written.
type OutputSpec struct {
	URL         string
	Format      string // parquet (default) or csv
	Compression string // Parquet: snappy (default), zstd, gzip, none
	PartitionBy []Ref
	Overwrite   bool
	at          Field
}

// Field is a place in the spec: its path and line, for messages.
type Field struct {
	Path string
	Line int
}

// Ref is a column named in the spec.
type Ref struct {
	Name string
	At   Field
}

// Step kinds.
const (
	OpSelect         = "select"
	OpRename         = "rename"
	OpCast           = "cast"
	OpFilter         = "filter"
	OpIQROutliers    = "iqr_outliers"
	OpDropDuplicates = "drop_duplicates"
	OpDropMissing    = "drop_missing"
	OpImpute         = "impute"
	OpSplit          = "split"
)

var stepOps = []string{OpSelect, OpRename, OpCast, OpFilter, OpIQROutliers, OpDropDuplicates, OpDropMissing, OpImpute, OpSplit}

// Step is one step: Op says which of the fields is set.
type Step struct {
	Op string
	At Field

	Select  []Ref        // select
	Renames []Rename     // rename
	Casts   []ColumnType // cast
	Filter  *Predicate   // filter
	IQR     *IQRSpec     // iqr_outliers
	Dedup   *DedupSpec   // drop_duplicates
	Missing *MissingSpec // drop_missing
	Impute  []ImputeSpec // impute
	Split   *SplitSpec   // split
}

// Rename renames a column.
type Rename struct {
	From Ref
	To   string
	At   Field
}

// Predicate is a filter condition: a comparison of a column with a value
// (Column, Op, Value), or All, Any of predicates, or Not one.
type Predicate struct {
	Column *Ref
	Op     string
	Value  *yaml.Node
	All    []*Predicate
	Any    []*Predicate
	Not    *Predicate
	At     Field
}

// Comparison operators.
var predicateOps = []string{"==", "!=", "<", "<=", ">", ">=", "between", "in", "not_in", "is_null", "not_null"}

// IQRSpec removes rows with a value outside [Q1 − K·IQR, Q3 + K·IQR] in
// any of Columns.
type IQRSpec struct {
	Columns []Ref // empty: every numeric column
	K       float64
	At      Field
}

// DedupSpec drops rows equal (on Subset, or every column) to an earlier
// one.
type DedupSpec struct {
	Subset  []Ref
	Buckets int // shuffle buckets (0: as many as input partitions)
	At      Field
}

// MissingSpec drops rows with a missing value (null, or NaN) in any (or
// all) of Subset (empty: every column).
type MissingSpec struct {
	How    string // any (default) or all
	Subset []Ref
	At     Field
}

// Impute strategies.
const (
	ImputeMean     = "mean"
	ImputeMedian   = "median"
	ImputeMode     = "mode"
	ImputeConstant = "constant"
)

// ImputeSpec fills a column's missing values.
type ImputeSpec struct {
	Column   Ref
	Strategy string
	Value    *yaml.Node // constant
	At       Field
}

// SplitSpec assigns each row to one of the named splits.
type SplitSpec struct {
	Names     []string
	Fractions []float64
	Seed      uint64
	By        []Ref // hashed columns (empty: every column)
	At        Field
}

// SpecError is a bad spec: the field and what is wrong with it.
type SpecError struct {
	File  string
	Field Field
	Msg   string
}

func (e *SpecError) Error() string {
	s := e.File
	if e.Field.Line > 0 {
		if s != "" {
			s += ":"
		}
		s += "line " + strconv.Itoa(e.Field.Line)
	}
	if e.Field.Path != "" {
		if s != "" {
			s += ": "
		}
		s += e.Field.Path
	}
	if s != "" {
		s += ": "
	}
	return s + e.Msg
}

type parser struct{ file string }

func (p *parser) errf(at Field, format string, args ...any) error {
	return &SpecError{File: p.file, Field: at, Msg: fmt.Sprintf(format, args...)}
}

func at(n *yaml.Node, path string) Field { return Field{Path: path, Line: n.Line} }

// Parse reads a spec from YAML; file names it in messages.
func Parse(data []byte, file string) (*Spec, error) {
	p := &parser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &SpecError{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &SpecError{File: file, Msg: "empty spec: want input, steps and output"}
	}
	root := doc.Content[0]
	m, err := p.mapping(root, "", true, "input", "steps", "output")
	if err != nil {
		return nil, err
	}
	s := &Spec{File: file}
	for _, k := range []string{"input", "output"} {
		if m.get(k) == nil {
			return nil, p.errf(at(root, k), "missing (the spec needs input and output)")
		}
	}
	if s.Input, err = p.input(m.get("input")); err != nil {
		return nil, err
	}
	if n := m.get("steps"); n != nil && !isNull(n) {
		if n.Kind != yaml.SequenceNode {
			return nil, p.errf(at(n, "steps"), "want a list of steps")
		}
		for i, sn := range n.Content {
			st, err := p.step(sn, fmt.Sprintf("steps[%d]", i))
			if err != nil {
				return nil, err
			}
			s.Steps = append(s.Steps, st)
		}
	}
	if s.Output, err = p.output(m.get("output")); err != nil {
		return nil, err
	}
	return s, nil
}

// mapping is a YAML mapping node whose keys are checked.
type mapping struct {
	node  *yaml.Node
	path  string
	keys  []string
	value map[string]*yaml.Node
	key   map[string]*yaml.Node
}

func (m *mapping) get(k string) *yaml.Node { return m.value[k] }

func (m *mapping) sub(k string) string {
	if m.path == "" {
		return k
	}
	return m.path + "." + k
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// mapping checks that n is a mapping whose keys are among allowed (any
// key if allowed is empty and !strict).
func (p *parser) mapping(n *yaml.Node, path string, strict bool, allowed ...string) (*mapping, error) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		what := "a mapping"
		if len(allowed) > 0 {
			what += " of " + strings.Join(allowed, ", ")
		}
		return nil, p.errf(at(n, path), "want %s, not %s", what, describe(n))
	}
	m := &mapping{node: n, path: path, value: map[string]*yaml.Node{}, key: map[string]*yaml.Node{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := deref(n.Content[i]), deref(n.Content[i+1])
		k := kn.Value
		if kn.Kind != yaml.ScalarNode {
			return nil, p.errf(at(kn, path), "a key must be a name")
		}
		if m.value[k] != nil {
			return nil, p.errf(at(kn, m.sub(k)), "given twice")
		}
		if strict && !contains(allowed, k) {
			return nil, p.errf(at(kn, m.sub(k)), "unknown field %q (fields here: %s)", k, strings.Join(allowed, ", "))
		}
		m.keys = append(m.keys, k)
		m.value[k] = vn
		m.key[k] = kn
	}
	return m, nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return deref(n.Content[0])
	}
	return n
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) str(n *yaml.Node, path string) (string, error) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return "", p.errf(at(n, path), "want a string, not %s", describe(n))
	}
	return n.Value, nil
}

func (p *parser) name(n *yaml.Node, path string) (string, error) {
	s, err := p.str(n, path)
	if err == nil && s == "" {
		err = p.errf(at(n, path), "empty name")
	}
	return s, err
}

func (p *parser) boolean(n *yaml.Node, path string) (bool, error) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		return false, p.errf(at(n, path), "want true or false, not %s", describe(n))
	}
	return b, nil
}

func (p *parser) integer(n *yaml.Node, path string, min int) (int, error) {
	var v int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		return 0, p.errf(at(n, path), "want a whole number, not %s", describe(n))
	}
	if v < min {
		return 0, p.errf(at(n, path), "%d: must be at least %d", v, min)
	}
	return v, nil
}

func (p *parser) number(n *yaml.Node, path string) (float64, error) {
	var v float64
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&v) != nil {
		return 0, p.errf(at(n, path), "want a number, not %s", describe(n))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, p.errf(at(n, path), "want a finite number, not %s", n.Value)
	}
	return v, nil
}

func (p *parser) strings(n *yaml.Node, path string) ([]string, error) {
	if n.Kind == yaml.ScalarNode && !isNull(n) { // one name alone
		s, err := p.name(n, path)
		return []string{s}, err
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(at(n, path), "want a list of names, not %s", describe(n))
	}
	var out []string
	for i, c := range n.Content {
		s, err := p.name(deref(c), fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// refs reads a list of column names (or one name).
func (p *parser) refs(n *yaml.Node, path string) ([]Ref, error) {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		s, err := p.name(n, path)
		return []Ref{{s, at(n, path)}}, err
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(at(n, path), "want a list of column names, not %s", describe(n))
	}
	var out []Ref
	seen := map[string]bool{}
	for i, c := range n.Content {
		f := at(c, fmt.Sprintf("%s[%d]", path, i))
		s, err := p.name(deref(c), f.Path)
		if err != nil {
			return nil, err
		}
		if seen[s] {
			return nil, p.errf(f, "column %q named twice", s)
		}
		seen[s] = true
		out = append(out, Ref{s, f})
	}
	return out, nil
}

func (p *parser) input(n *yaml.Node) (InputSpec, error) {
	in := InputSpec{at: at(n, "input")}
	m, err := p.mapping(n, "input", true, "url", "format", "delimiter", "no_header", "skip_rows", "types", "null_values", "sample_rows", "partitions")
	if err != nil {
		return in, err
	}
	if m.get("url") == nil {
		return in, p.errf(at(n, "input.url"), "missing: the table to read (a path, file://, s3:// or dataset:// URL)")
	}
	for _, k := range m.keys {
		v, path := m.get(k), m.sub(k)
		switch k {
		case "url":
			in.URL, err = p.name(v, path)
		case "format":
			in.Format, err = p.str(v, path)
			if err == nil && !contains([]string{"csv", "parquet", "jsonl"}, strings.ToLower(in.Format)) {
				err = p.errf(at(v, path), "format %q: one of csv, parquet, jsonl", in.Format)
			}
			in.Format = strings.ToLower(in.Format)
		case "delimiter":
			in.Delimiter, err = p.str(v, path)
			if d := in.Delimiter; err == nil && d != `\t` && d != "tab" && (len([]rune(d)) != 1 || d == `"` || d == "\n" || d == "\r") {
				err = p.errf(at(v, path), "delimiter %q: want one character other than a quote or newline", d)
			}
		case "no_header":
			in.NoHeader, err = p.boolean(v, path)
		case "skip_rows":
			in.SkipRows, err = p.integer(v, path, 0)
		case "sample_rows":
			in.SampleRows, err = p.integer(v, path, 0)
		case "partitions":
			in.Partitions, err = p.integer(v, path, 0)
		case "null_values":
			if v.Kind != yaml.SequenceNode {
				err = p.errf(at(v, path), "want a list of strings")
				break
			}
			in.NullValues = []string{}
			for i, c := range v.Content {
				var s string
				s, err = p.str(deref(c), fmt.Sprintf("%s[%d]", path, i))
				if err != nil {
					break
				}
				in.NullValues = append(in.NullValues, s)
			}
		case "types":
			in.Types, err = p.columnTypes(v, path)
		}
		if err != nil {
			return in, err
		}
	}
	return in, nil
}

var typeNames = []string{"int64", "float64", "bool", "timestamp", "string"}

func (p *parser) columnTypes(n *yaml.Node, path string) ([]ColumnType, error) {
	m, err := p.mapping(n, path, false)
	if err != nil {
		return nil, err
	}
	var out []ColumnType
	for _, k := range m.keys {
		v := m.get(k)
		f := at(m.key[k], m.sub(k))
		t, err := p.str(v, f.Path)
		if err != nil {
			return nil, err
		}
		t = canonicalType(t)
		if !contains(typeNames, t) {
			return nil, p.errf(f, "unknown type %q (one of %s)", v.Value, strings.Join(typeNames, ", "))
		}
		out = append(out, ColumnType{Column: k, Type: t, At: f})
	}
	return out, nil
}

func canonicalType(t string) string {
	switch t = strings.ToLower(t); t {
	case "int", "integer", "long":
		return "int64"
	case "float", "double":
		return "float64"
	case "boolean":
		return "bool"
	case "str", "text", "utf8":
		return "string"
	case "datetime":
		return "timestamp"
	}
	return t
}

var splitName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func (p *parser) output(n *yaml.Node) (OutputSpec, error) {
	out := OutputSpec{at: at(n, "output")}
	m, err := p.mapping(n, "output", true, "url", "format", "compression", "partition_by", "overwrite")
	if err != nil {
		return out, err
	}
	if m.get("url") == nil {
		return out, p.errf(at(n, "output.url"), "missing: the directory or prefix to write (a path, file:// or s3:// URL)")
	}
	for _, k := range m.keys {
		v, path := m.get(k), m.sub(k)
		switch k {
		case "url":
			out.URL, err = p.name(v, path)
		case "format":
			out.Format, err = p.str(v, path)
			out.Format = strings.ToLower(out.Format)
			if err == nil && out.Format != "parquet" && out.Format != "csv" {
				err = p.errf(at(v, path), "format %q: parquet or csv", v.Value)
			}
		case "compression":
			out.Compression, err = p.str(v, path)
			out.Compression = strings.ToLower(out.Compression)
			if err == nil && !contains([]string{"snappy", "zstd", "gzip", "none"}, out.Compression) {
				err = p.errf(at(v, path), "compression %q: snappy, zstd, gzip or none", v.Value)
			}
		case "partition_by":
			out.PartitionBy, err = p.refs(v, path)
		case "overwrite":
			out.Overwrite, err = p.boolean(v, path)
		}
		if err != nil {
			return out, err
		}
	}
	if out.Format == "csv" && out.Compression != "" && out.Compression != "none" {
		return out, p.errf(at(m.get("compression"), "output.compression"), "CSV output is written uncompressed; compression is for Parquet")
	}
	return out, nil
}

func (p *parser) step(n *yaml.Node, path string) (Step, error) {
	n = deref(n)
	st := Step{At: at(n, path)}
	if n.Kind == yaml.ScalarNode && contains([]string{OpDropDuplicates, OpDropMissing}, n.Value) {
		// "- drop_duplicates" alone: the defaults.
		st.Op = n.Value
		st.At.Path += "." + n.Value
		if st.Op == OpDropDuplicates {
			st.Dedup = &DedupSpec{At: st.At}
		} else {
			st.Missing = &MissingSpec{How: "any", At: st.At}
		}
		return st, nil
	}
	if n.Kind != yaml.MappingNode {
		return st, p.errf(at(n, path), "want a step: a mapping of one of %s, not %s", strings.Join(stepOps, ", "), describe(n))
	}
	m, err := p.mapping(n, path, true, stepOps...)
	if err != nil {
		return st, err
	}
	if len(m.keys) != 1 {
		if len(m.keys) == 0 {
			return st, p.errf(at(n, path), "empty step: want one of %s", strings.Join(stepOps, ", "))
		}
		return st, p.errf(at(n, path), "one step per list item, not %s (start each with its own -)", strings.Join(m.keys, " and "))
	}
	st.Op = m.keys[0]
	v := m.get(st.Op)
	path = m.sub(st.Op)
	st.At = at(v, path)
	switch st.Op {
	case OpSelect:
		st.Select, err = p.refs(v, path)
		if err == nil && len(st.Select) == 0 {
			err = p.errf(st.At, "select no columns?")
		}
	case OpRename:
		st.Renames, err = p.renames(v, path)
	case OpCast:
		st.Casts, err = p.columnTypes(v, path)
	case OpFilter:
		st.Filter, err = p.predicate(v, path)
	case OpIQROutliers:
		st.IQR, err = p.iqr(v, path)
	case OpDropDuplicates:
		st.Dedup, err = p.dedup(v, path)
	case OpDropMissing:
		st.Missing, err = p.missing(v, path)
	case OpImpute:
		st.Impute, err = p.impute(v, path)
	case OpSplit:
		st.Split, err = p.split(v, path)
	}
	return st, err
}

func (p *parser) renames(n *yaml.Node, path string) ([]Rename, error) {
	m, err := p.mapping(n, path, false)
	if err != nil {
		return nil, err
	}
	var out []Rename
	for _, k := range m.keys {
		f := at(m.key[k], m.sub(k))
		to, err := p.name(m.get(k), f.Path)
		if err != nil {
			return nil, err
		}
		out = append(out, Rename{From: Ref{k, f}, To: to, At: f})
	}
	if len(out) == 0 {
		return nil, p.errf(at(n, path), "rename nothing? want old: new")
	}
	return out, nil
}

func (p *parser) predicate(n *yaml.Node, path string) (*Predicate, error) {
	m, err := p.mapping(n, path, true, "column", "op", "value", "all", "any", "not")
	if err != nil {
		return nil, err
	}
	pr := &Predicate{At: at(m.node, path)}
	switch {
	case m.get("all") != nil || m.get("any") != nil || m.get("not") != nil:
		if len(m.keys) != 1 {
			return nil, p.errf(pr.At, "a predicate is column/op/value, or one of all, any, not: not %s", strings.Join(m.keys, ", "))
		}
		k := m.keys[0]
		v := m.get(k)
		if k == "not" {
			pr.Not, err = p.predicate(v, m.sub(k))
			return pr, err
		}
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			return nil, p.errf(at(v, m.sub(k)), "want a list of predicates")
		}
		for i, c := range v.Content {
			q, err := p.predicate(c, fmt.Sprintf("%s[%d]", m.sub(k), i))
			if err != nil {
				return nil, err
			}
			if k == "all" {
				pr.All = append(pr.All, q)
			} else {
				pr.Any = append(pr.Any, q)
			}
		}
		return pr, nil
	}
	cn, on := m.get("column"), m.get("op")
	if cn == nil || on == nil {
		return nil, p.errf(pr.At, "want column, op and value (or all, any, not)")
	}
	c, err := p.name(cn, m.sub("column"))
	if err != nil {
		return nil, err
	}
	pr.Column = &Ref{c, at(cn, m.sub("column"))}
	if pr.Op, err = p.str(on, m.sub("op")); err != nil {
		return nil, err
	}
	if !contains(predicateOps, pr.Op) {
		return nil, p.errf(at(on, m.sub("op")), "unknown op %q (one of %s)", pr.Op, strings.Join(predicateOps, ", "))
	}
	vn := m.get("value")
	switch pr.Op {
	case "is_null", "not_null":
		if vn != nil {
			return nil, p.errf(at(vn, m.sub("value")), "%s takes no value", pr.Op)
		}
		return pr, nil
	}
	if vn == nil {
		return nil, p.errf(pr.At, "op %s needs a value", pr.Op)
	}
	vp := m.sub("value")
	switch pr.Op {
	case "between":
		if vn.Kind != yaml.SequenceNode || len(vn.Content) != 2 {
			return nil, p.errf(at(vn, vp), "between takes [low, high], not %s", describe(vn))
		}
	case "in", "not_in":
		if vn.Kind != yaml.SequenceNode {
			return nil, p.errf(at(vn, vp), "%s takes a list of values, not %s", pr.Op, describe(vn))
		}
	default:
		if vn.Kind != yaml.ScalarNode || isNull(vn) {
			return nil, p.errf(at(vn, vp), "%s takes one value, not %s (nulls: is_null, not_null)", pr.Op, describe(vn))
		}
	}
	for i, c := range vn.Content {
		if c = deref(c); c.Kind != yaml.ScalarNode || isNull(c) {
			return nil, p.errf(at(c, fmt.Sprintf("%s[%d]", vp, i)), "want a value, not %s", describe(c))
		}
	}
	pr.Value = vn
	return pr, nil
}

func (p *parser) iqr(n *yaml.Node, path string) (*IQRSpec, error) {
	s := &IQRSpec{K: 1.5, At: at(n, path)}
	if isNull(n) {
		return s, nil
	}
	m, err := p.mapping(n, path, true, "columns", "k")
	if err != nil {
		return nil, err
	}
	if v := m.get("columns"); v != nil {
		if s.Columns, err = p.refs(v, m.sub("columns")); err != nil {
			return nil, err
		}
	}
	if v := m.get("k"); v != nil {
		if s.K, err = p.number(v, m.sub("k")); err != nil {
			return nil, err
		}
		if s.K < 0 {
			return nil, p.errf(at(v, m.sub("k")), "k %v: cannot be negative", s.K)
		}
	}
	return s, nil
}

func (p *parser) dedup(n *yaml.Node, path string) (*DedupSpec, error) {
	s := &DedupSpec{At: at(n, path)}
	if isNull(n) {
		return s, nil
	}
	m, err := p.mapping(n, path, true, "subset", "buckets")
	if err != nil {
		return nil, err
	}
	if v := m.get("subset"); v != nil {
		if s.Subset, err = p.refs(v, m.sub("subset")); err != nil {
			return nil, err
		}
	}
	if v := m.get("buckets"); v != nil {
		if s.Buckets, err = p.integer(v, m.sub("buckets"), 1); err != nil {
			return nil, err
		}
		if s.Buckets > maxBuckets {
			return nil, p.errf(at(v, m.sub("buckets")), "at most %d buckets", maxBuckets)
		}
	}
	return s, nil
}

func (p *parser) missing(n *yaml.Node, path string) (*MissingSpec, error) {
	s := &MissingSpec{How: "any", At: at(n, path)}
	if isNull(n) {
		return s, nil
	}
	m, err := p.mapping(n, path, true, "how", "subset")
	if err != nil {
		return nil, err
	}
	if v := m.get("how"); v != nil {
		if s.How, err = p.str(v, m.sub("how")); err != nil {
			return nil, err
		}
		if s.How != "any" && s.How != "all" {
			return nil, p.errf(at(v, m.sub("how")), "how %q: any or all", s.How)
		}
	}
	if v := m.get("subset"); v != nil {
		if s.Subset, err = p.refs(v, m.sub("subset")); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (p *parser) impute(n *yaml.Node, path string) ([]ImputeSpec, error) {
	m, err := p.mapping(n, path, false)
	if err != nil {
		return nil, err
	}
	var out []ImputeSpec
	strategies := []string{ImputeMean, ImputeMedian, ImputeMode, ImputeConstant}
	for _, k := range m.keys {
		v := m.get(k)
		f := at(m.key[k], m.sub(k))
		is := ImputeSpec{Column: Ref{k, f}, At: f}
		if v.Kind == yaml.MappingNode {
			cm, err := p.mapping(v, f.Path, true, "constant")
			if err != nil {
				return nil, err
			}
			c := cm.get("constant")
			if c == nil || c.Kind != yaml.ScalarNode || isNull(c) {
				return nil, p.errf(at(v, f.Path+".constant"), "want {constant: VALUE}")
			}
			is.Strategy, is.Value = ImputeConstant, c
		} else {
			s, err := p.str(v, f.Path)
			if err != nil {
				return nil, p.errf(at(v, f.Path), "want one of mean, median, mode, or {constant: VALUE}, not %s", describe(v))
			}
			if !contains(strategies[:3], s) {
				if s == ImputeConstant {
					return nil, p.errf(at(v, f.Path), "a constant is given as {constant: VALUE}")
				}
				return nil, p.errf(at(v, f.Path), "unknown strategy %q (mean, median, mode, or {constant: VALUE})", s)
			}
			is.Strategy = s
		}
		out = append(out, is)
	}
	if len(out) == 0 {
		return nil, p.errf(at(n, path), "impute no columns? want COLUMN: mean|median|mode|{constant: VALUE}")
	}
	return out, nil
}

func (p *parser) split(n *yaml.Node, path string) (*SplitSpec, error) {
	s := &SplitSpec{At: at(n, path)}
	m, err := p.mapping(n, path, true, "fractions", "seed", "by")
	if err != nil {
		return nil, err
	}
	fn := m.get("fractions")
	if fn == nil {
		return nil, p.errf(s.At, "missing fractions, e.g. {train: 0.8, test: 0.2}")
	}
	fm, err := p.mapping(fn, m.sub("fractions"), false)
	if err != nil {
		return nil, err
	}
	var sum float64
	for _, k := range fm.keys {
		f := at(fm.key[k], fm.sub(k))
		if !splitName.MatchString(k) {
			return nil, p.errf(f, "split name %q: letters, digits, _ . - (not first), as it names a directory", k)
		}
		v, err := p.number(fm.get(k), f.Path)
		if err != nil {
			return nil, err
		}
		if v < 0 || v > 1 {
			return nil, p.errf(f, "fraction %v: must be between 0 and 1", v)
		}
		s.Names = append(s.Names, k)
		s.Fractions = append(s.Fractions, v)
		sum += v
	}
	if len(s.Names) == 0 || len(s.Names) > 255 {
		return nil, p.errf(at(fn, m.sub("fractions")), "%d splits: want 1 to 255", len(s.Names))
	}
	if math.Abs(sum-1) > 1e-9 {
		return nil, p.errf(at(fn, m.sub("fractions")), "fractions sum to %v, not 1", strconv.FormatFloat(sum, 'g', 10, 64))
	}
	if v := m.get("seed"); v != nil {
		var seed uint64
		if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&seed) != nil {
			return nil, p.errf(at(v, m.sub("seed")), "want a whole number ≥ 0, not %s", describe(v))
		}
		s.Seed = seed
	}
	if v := m.get("by"); v != nil {
		if s.By, err = p.refs(v, m.sub("by")); err != nil {
			return nil, err
		}
	}
	return s, nil
}
