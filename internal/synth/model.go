package synth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/hpcml/hpcml/internal/table"
)

// ModelVersion is the version of the model's JSON form.
const ModelVersion = 1

// Marginals: how a column's values are modelled and drawn.
const (
	// Continuous: a float64 column's sorted values; a draw interpolates
	// between neighbouring order statistics (see Column.continuous).
	Continuous = "continuous"
	// Discrete: an int64 or timestamp column's distinct values and their
	// counts; a draw is one of the values, at its frequency.
	Discrete = "discrete"
	// Categorical: a string or bool column's categories and counts;
	// drawn by frequency.
	Categorical = "categorical"
	// AllNull: the column had no values; every draw is null.
	AllNull = "null"
)

// Model is a fitted Gaussian copula — or, fitted By a column, one
// copula per value of that column, drawn from at the value's share. Its
// JSON form (Save, Load) lets a model be fitted once and sampled later.
type Model struct {
	Version int    `json:"version"`
	Source  string `json:"source,omitempty"`
	// SourceRows is how many rows the source had, FitRows how many the
	// model was fitted on: all of them, or a uniform sample (MaxRows).
	SourceRows int64 `json:"source_rows"`
	FitRows    int64 `json:"fit_rows"`
	// Columns are the table's: sampled tables have this schema.
	Columns []Field `json:"columns"`
	// Match is what the correlations reproduce: MatchScores,
	// MatchPearson or MatchSpearman.
	Match string `json:"match"`
	// By is the column whose values have a copula each ("": one copula
	// for the whole table).
	By       string    `json:"by,omitempty"`
	Copulas  []*Copula `json:"copulas"`
	Warnings []string  `json:"warnings,omitempty"`

	schema *arrow.Schema
	cum    []int64 // copulas' rows summed
}

// Field is a column's name and type (table.TypeName: int64, float64,
// bool, timestamp or string).
type Field struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Sorted: with By, a float64 column's values over all rows (±Inf
	// included, NaN not), ascending. A copula's draw between two of its
	// own neighbouring values a < b follows these values from a to b
	// rather than a straight line, so that the copulas' draws together
	// keep the shape of the whole column (see Column.continuous).
	Sorted Floats `json:"sorted,omitempty"`
}

// Copula is a Gaussian copula over all columns: their marginals and the
// latent normals' correlation.
type Copula struct {
	// Rows is how many rows it was fitted on; Value the By column's value
	// they share (its text; absent for nulls and without By).
	Rows    int64    `json:"rows"`
	Value   *string  `json:"value,omitempty"`
	Columns []Column `json:"columns"`
	// Correlation is the latent normals' correlation matrix, in column
	// order: symmetric, unit diagonal, positive definite.
	Correlation [][]float64  `json:"correlation"`
	Repair      Repair       `json:"repair"`
	Calibration *Calibration `json:"calibration,omitempty"`

	chol    []float64 // L (R = L·Lᵀ), row-major k×k
	weights []float64 // of the columns in positiveDefinite
}

// Column is one column's marginal.
type Column struct {
	Name string `json:"name"`
	// Type is the column's type (table.TypeName): int64, float64, bool,
	// timestamp or string.
	Type     string `json:"type"`
	Marginal string `json:"marginal"`
	// Nulls and NaN are how many of the FitRows rows were null (NaN); a
	// sampled cell is null (NaN) at that share, independently of the rest.
	Nulls int64 `json:"nulls"`
	NaN   int64 `json:"nan,omitempty"`
	// Sorted: a Continuous column's values (±Inf included), ascending.
	Sorted Floats `json:"sorted,omitempty"`
	// Decimals: a Continuous column's draws are rounded to this many
	// decimals, the most its values have (absent: more than 12, not
	// rounded), so that a column of prices stays one of prices.
	Decimals *int `json:"decimals,omitempty"`
	// Values: a Discrete column's distinct values, ascending (timestamps:
	// microseconds since the epoch).
	Values []int64 `json:"values,omitempty"`
	// Categories: a Categorical column's distinct values ("false",
	// "true" for a bool column) in the order they take on the copula's
	// axis: a string column's by their rows' mean normal score on the
	// numeric column they tell most about (see fitCopula), else byte
	// order.
	Categories []string `json:"categories,omitempty"`
	// Counts: how often each of Values or Categories occurs.
	Counts []int64 `json:"counts,omitempty"`

	typ         arrow.DataType
	global      []float64 // Field.Sorted
	lo, hi      []int32   // the first and last index in global of each of Sorted
	n           int64     // values in the marginal
	cum         []int64   // Counts summed: cum[i] = Counts[0] + ... + Counts[i]
	bounds      []float64 // Φ⁻¹(cum[i]/n) for all but the last value
	nullP, nanP float64
	scale       float64 // 10^Decimals, 0 for none
}

// Repair says how the correlation matrix was made positive definite
// (see positiveDefinite).
type Repair struct {
	// MinEigenvalue is the least eigenvalue of the matrix asked for (the
	// normal scores' correlations, corrected for discrete columns).
	MinEigenvalue float64 `json:"min_eigenvalue"`
	// Iterations of the nearest correlation matrix search (0: none was
	// needed), and eigenvalues Clipped to MinAllowed after it.
	Iterations int     `json:"iterations"`
	Clipped    int     `json:"clipped"`
	MinAllowed float64 `json:"min_allowed"`
	// MaxChange is the largest change of an entry.
	MaxChange float64 `json:"max_change"`
}

// Schema is the schema of the sampled table: the source's.
func (m *Model) Schema() *arrow.Schema { return m.schema }

// Save writes the model as JSON.
func (m *Model) Save(w io.Writer) error {
	return json.NewEncoder(w).Encode(m)
}

// Load reads a model Save wrote.
func Load(r io.Reader) (*Model, error) {
	var m Model
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	if m.Version != ModelVersion {
		return nil, fmt.Errorf("model version %d: this hpcml reads version %d", m.Version, ModelVersion)
	}
	if err := m.prepare(); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return &m, nil
}

// prepare checks the model and derives what sampling needs.
func (m *Model) prepare() error {
	if len(m.Columns) == 0 {
		return fmt.Errorf("no columns")
	}
	if len(m.Copulas) == 0 {
		return fmt.Errorf("no copulas")
	}
	fields := make([]arrow.Field, len(m.Columns))
	for i, f := range m.Columns {
		typ, err := table.ParseType(f.Type)
		if err != nil {
			return fmt.Errorf("column %q: %w", f.Name, err)
		}
		fields[i] = arrow.Field{Name: f.Name, Type: typ, Nullable: true}
	}
	m.schema = arrow.NewSchema(fields, nil)
	m.cum = make([]int64, len(m.Copulas))
	var rows int64
	for i, c := range m.Copulas {
		if c == nil {
			return fmt.Errorf("copula %d is null", i)
		}
		if err := c.prepare(m.Columns); err != nil {
			return fmt.Errorf("copula %d: %w", i, err)
		}
		rows += c.Rows
		m.cum[i] = rows
	}
	if rows != m.FitRows {
		return fmt.Errorf("copulas of %d rows, fitted on %d", rows, m.FitRows)
	}
	return nil
}

// prepare checks the copula and computes its Cholesky factor.
func (c *Copula) prepare(fields []Field) error {
	k := len(fields)
	if c.Rows <= 0 {
		return fmt.Errorf("fitted on %d rows", c.Rows)
	}
	if len(c.Columns) != k {
		return fmt.Errorf("%d columns, the table has %d", len(c.Columns), k)
	}
	for i := range c.Columns {
		col := &c.Columns[i]
		if col.Name != fields[i].Name || col.Type != fields[i].Type {
			return fmt.Errorf("column %d is %s %s, the table's %s %s", i, col.Name, col.Type, fields[i].Name, fields[i].Type)
		}
		if err := col.prepare(c.Rows, fields[i].Sorted); err != nil {
			return fmt.Errorf("column %q: %w", col.Name, err)
		}
	}
	if len(c.Correlation) != k {
		return fmt.Errorf("correlation matrix has %d rows for %d columns", len(c.Correlation), k)
	}
	for i, row := range c.Correlation {
		if len(row) != k {
			return fmt.Errorf("correlation matrix row %d has %d entries for %d columns", i, len(row), k)
		}
		for j, v := range row {
			if math.IsNaN(v) || v < -1 || v > 1 || (i == j && v != 1) || v != c.Correlation[j][i] {
				return fmt.Errorf("correlation matrix: entry (%d, %d) = %v: want a symmetric matrix in [-1, 1] with a unit diagonal", i, j, v)
			}
		}
	}
	return c.prepareChol()
}

// prepareChol computes the Cholesky factor of the correlation matrix.
func (c *Copula) prepareChol() error {
	l, ok := cholesky(flatten(c.Correlation), len(c.Correlation))
	if !ok {
		return fmt.Errorf("correlation matrix is not positive definite")
	}
	c.chol = l
	return nil
}

func (c *Column) prepare(rows int64, global []float64) error {
	typ, err := table.ParseType(c.Type)
	if err != nil {
		return err
	}
	c.typ, c.n, c.cum = typ, 0, nil
	want := map[string]string{"float64": Continuous, "int64": Discrete, "timestamp": Discrete, "string": Categorical, "bool": Categorical}[table.TypeName(typ)]
	if c.Marginal != want && c.Marginal != AllNull {
		return fmt.Errorf("a %s column with a %q marginal (want %q)", c.Type, c.Marginal, want)
	}
	switch c.Marginal {
	case Continuous:
		if !slices.IsSorted(c.Sorted) || slices.ContainsFunc(c.Sorted, math.IsNaN) {
			return fmt.Errorf("sorted values are not sorted")
		}
		c.n = int64(len(c.Sorted))
		c.scale = 0
		if c.Decimals != nil {
			if *c.Decimals < 0 || *c.Decimals > maxDecimals {
				return fmt.Errorf("decimals %d: 0 to %d", *c.Decimals, maxDecimals)
			}
			c.scale = math.Pow10(*c.Decimals)
		}
		if global != nil {
			if err := c.placeIn(global); err != nil {
				return err
			}
		}
	case Discrete, Categorical:
		m := len(c.Values)
		if c.Marginal == Categorical {
			m = len(c.Categories)
			if !distinct(c.Categories) {
				return fmt.Errorf("categories are not distinct")
			}
			if table.TypeName(typ) == "bool" && slices.ContainsFunc(c.Categories, func(s string) bool { return s != "false" && s != "true" }) {
				return fmt.Errorf("a bool column's categories are false and true")
			}
		} else if !increasing(c.Values) {
			return fmt.Errorf("values are not distinct and in order")
		}
		if len(c.Counts) != m {
			return fmt.Errorf("%d counts for %d values", len(c.Counts), m)
		}
		c.cum = make([]int64, m)
		for i, n := range c.Counts {
			if n <= 0 {
				return fmt.Errorf("count %d", n)
			}
			c.n += n
			c.cum[i] = c.n
		}
		c.bounds = make([]float64, max(m-1, 0))
		for i := range c.bounds {
			c.bounds[i] = quantile(float64(c.cum[i]) / float64(c.n))
		}
	}
	if c.Nulls < 0 || c.NaN < 0 || c.n+c.Nulls+c.NaN != rows {
		return fmt.Errorf("%d values, %d nulls and %d NaN in %d rows", c.n, c.Nulls, c.NaN, rows)
	}
	if c.Marginal == AllNull && c.n != 0 {
		return fmt.Errorf("an all-null column with values")
	}
	c.nullP = float64(c.Nulls) / float64(rows)
	c.nanP = float64(c.NaN) / float64(rows)
	return nil
}

// placeIn finds each of the column's values among the whole column's.
func (c *Column) placeIn(global []float64) error {
	if !slices.IsSorted(global) || slices.ContainsFunc(global, math.IsNaN) {
		return fmt.Errorf("the column's values over all rows are not sorted")
	}
	c.global = global
	c.lo, c.hi = make([]int32, len(c.Sorted)), make([]int32, len(c.Sorted))
	for i, v := range c.Sorted {
		lo, ok := slices.BinarySearch(global, v)
		if !ok {
			return fmt.Errorf("value %v is not among the column's values over all rows", v)
		}
		hi := lo
		for hi+1 < len(global) && global[hi+1] == v {
			hi++
		}
		c.lo[i], c.hi[i] = int32(lo), int32(hi)
	}
	return nil
}

func distinct(vs []string) bool {
	seen := make(map[string]bool, len(vs))
	for _, v := range vs {
		if seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}

func increasing[T int64 | string](vs []T) bool {
	for i := 1; i < len(vs); i++ {
		if vs[i-1] >= vs[i] {
			return false
		}
	}
	return true
}

// Floats are float64s whose JSON form also holds infinities, as the
// strings "+Inf" and "-Inf".
type Floats []float64

// MarshalJSON writes the numbers in their shortest exact form.
func (f Floats) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+len(f)*12)
	b = append(b, '[')
	for i, v := range f {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case math.IsInf(v, 1):
			b = append(b, `"+Inf"`...)
		case math.IsInf(v, -1):
			b = append(b, `"-Inf"`...)
		case math.IsNaN(v):
			return nil, fmt.Errorf("NaN among the values")
		default:
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
		}
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *Floats) UnmarshalJSON(data []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	out := make([]float64, len(raw))
	for i, r := range raw {
		switch {
		case bytes.Equal(r, []byte(`"+Inf"`)):
			out[i] = math.Inf(1)
		case bytes.Equal(r, []byte(`"-Inf"`)):
			out[i] = math.Inf(-1)
		default:
			v, err := strconv.ParseFloat(string(r), 64)
			if err != nil {
				return fmt.Errorf("value %d: %s is not a number", i, r)
			}
			out[i] = v
		}
	}
	*f = out
	return nil
}
