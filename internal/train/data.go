package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/table"
	"github.com/hpcml/hpcml/internal/transfer"
)

// Tasks a model learns.
const (
	Classification = "classification"
	Regression     = "regression"
)

// Dataset is examples in memory: inputs X (N × features, or N × C × H × W
// for images) and either class labels or regression targets.
type Dataset struct {
	X       *nn.Tensor
	Labels  []int     // classification: index into DataInfo.Classes
	Targets []float32 // regression
}

// Len is the number of examples.
func (d *Dataset) Len() int { return d.X.Batch() }

// subset is the examples at idx, copied.
func (d *Dataset) subset(idx []int) *Dataset {
	n := d.X.SampleLen()
	shape := slices.Clone(d.X.Shape)
	shape[0] = len(idx)
	out := &Dataset{X: nn.NewTensor(shape...)}
	for i, j := range idx {
		copy(out.X.Data[i*n:(i+1)*n], d.X.Data[j*n:(j+1)*n])
	}
	if d.Labels != nil {
		out.Labels = make([]int, len(idx))
		for i, j := range idx {
			out.Labels[i] = d.Labels[j]
		}
	}
	if d.Targets != nil {
		out.Targets = make([]float32, len(idx))
		for i, j := range idx {
			out.Targets[i] = d.Targets[j]
		}
	}
	return out
}

// DataInfo describes what was loaded; it is saved with the model.
type DataInfo struct {
	Source   string   `json:"source"`
	Format   string   `json:"format"` // table or idx
	Task     string   `json:"task"`
	Label    string   `json:"label,omitempty"`
	Features []string `json:"features,omitempty"`
	Shape    []int    `json:"shape"` // per-sample input shape
	Classes  []string `json:"classes,omitempty"`
	Train    int      `json:"train_rows"`
	Test     int      `json:"test_rows,omitempty"`
}

// DataConfig says what to load.
type DataConfig struct {
	// URL is a table (file or prefix; local, file://, s3://, dataset://)
	// or IDX images: an images file (…-idx3-ubyte[.gz]) whose labels file
	// is named alike (…-idx1-ubyte), or a directory holding train-* and
	// t10k-* (or test-*) pairs.
	URL string
	// TestURL is an optional held-out table (or IDX images file) to
	// evaluate on; an IDX directory's t10k pair is used without it.
	TestURL string
	// Label is the label column of a table.
	Label string
	// Task is classification, regression or "" (inferred from the label).
	Task  string
	Table table.Options
}

// maxClasses bounds the distinct labels of a classification.
const maxClasses = 1000

// Load reads the training data (and test data, if any).
func Load(ctx context.Context, cfg DataConfig) (trainSet, testSet *Dataset, info DataInfo, err error) {
	if cfg.URL == "" {
		return nil, nil, info, errors.New("no training data (--data)")
	}
	info.Source = blob.Redact(cfg.URL)
	idx, err := findIDX(ctx, cfg.URL)
	if err != nil {
		return nil, nil, info, err
	}
	if idx != nil {
		return loadIDXSets(ctx, cfg, idx, info)
	}
	info.Format = "table"
	if cfg.Label == "" {
		return nil, nil, info, errors.New("--label is required for a table: name the column to predict")
	}
	tt, err := readTable(ctx, cfg.URL, cfg)
	if err != nil {
		return nil, nil, info, err
	}
	task, err := pickTask(cfg.Task, tt)
	if err != nil {
		return nil, nil, info, err
	}
	info.Task, info.Label, info.Features = task, cfg.Label, tt.features
	if task == Classification {
		info.Classes = tt.classes()
		if len(info.Classes) > maxClasses {
			return nil, nil, info, fmt.Errorf("label %q has %d distinct values, more than %d classes (use --hp task=regression?)", cfg.Label, len(info.Classes), maxClasses)
		}
		if len(info.Classes) < 2 {
			return nil, nil, info, fmt.Errorf("label %q has only one value (%v): nothing to classify", cfg.Label, info.Classes)
		}
	}
	trainSet, err = tt.dataset(info)
	if err != nil {
		return nil, nil, info, err
	}
	info.Shape = []int{len(tt.features)}
	info.Train = trainSet.Len()
	if cfg.TestURL != "" {
		te, err := readTable(ctx, cfg.TestURL, cfg)
		if err != nil {
			return nil, nil, info, fmt.Errorf("test data: %w", err)
		}
		if !slices.Equal(te.features, tt.features) {
			return nil, nil, info, fmt.Errorf("test data has features %v, training data %v", te.features, tt.features)
		}
		if testSet, err = te.dataset(info); err != nil {
			return nil, nil, info, fmt.Errorf("test data: %w", err)
		}
		info.Test = testSet.Len()
	}
	return trainSet, testSet, info, nil
}

// rawTable is a table read into columns: features as float64, the label
// as its text (classification) and number (regression, if numeric).
type rawTable struct {
	features   []string
	cols       [][]float64
	labelText  []string
	labelNum   []float64
	labelIsNum bool
	labelIsInt bool
}

func readTable(ctx context.Context, url string, cfg DataConfig) (*rawTable, error) {
	r, err := table.Open(ctx, url, cfg.Table)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	schema := r.Schema()
	labelAt := -1
	t := &rawTable{labelIsNum: true, labelIsInt: true}
	for i, f := range schema.Fields() {
		if f.Name == cfg.Label {
			labelAt = i
		}
	}
	if labelAt < 0 {
		names := make([]string, 0, len(schema.Fields()))
		for _, f := range schema.Fields() {
			names = append(names, f.Name)
		}
		return nil, fmt.Errorf("%s: no label column %q (columns: %s)", blob.Redact(url), cfg.Label, strings.Join(names, ", "))
	}
	var featAt []int
	for i, f := range schema.Fields() {
		if i == labelAt {
			continue
		}
		switch f.Type.ID() {
		case arrow.INT64, arrow.FLOAT64, arrow.BOOL:
		default:
			return nil, fmt.Errorf("%s: column %q is %s, not numeric: training needs numeric features (drop or encode it with hpcml data transform)", blob.Redact(url), f.Name, table.TypeName(f.Type))
		}
		featAt = append(featAt, i)
		t.features = append(t.features, f.Name)
	}
	if len(featAt) == 0 {
		return nil, fmt.Errorf("%s: no feature columns besides the label %q", blob.Redact(url), cfg.Label)
	}
	t.cols = make([][]float64, len(featAt))
	row := 0
	for {
		rec, err := r.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		n := int(rec.NumRows())
		for c, at := range featAt {
			vals, err := floats(rec.Column(at), t.cols[c])
			if err != nil {
				rec.Release()
				return nil, fmt.Errorf("%s: column %q: %w", blob.Redact(url), t.features[c], rowErr(err, row))
			}
			t.cols[c] = vals
		}
		if err := t.addLabels(rec.Column(labelAt), row); err != nil {
			rec.Release()
			return nil, fmt.Errorf("%s: label %q: %w", blob.Redact(url), cfg.Label, err)
		}
		rec.Release()
		row += n
	}
	if row == 0 {
		return nil, fmt.Errorf("%s: the table has no rows", blob.Redact(url))
	}
	return t, nil
}

// badRow is a value that cannot be trained on, at a row of a batch.
type badRow struct {
	at  int
	why string
}

func (e badRow) Error() string { return e.why }

// rowErr places a batch's bad row in the whole table (1-based data rows).
func rowErr(err error, base int) error {
	var br badRow
	if errors.As(err, &br) {
		return fmt.Errorf("row %d: %s", base+br.at+1, br.why)
	}
	return err
}

// floats appends a numeric column's values; nulls and NaNs are refused,
// since a network cannot learn from them.
func floats(col arrow.Array, dst []float64) ([]float64, error) {
	for i := 0; i < col.Len(); i++ {
		if col.IsNull(i) {
			return nil, badRow{i, "missing value (impute or drop it first: hpcml data transform)"}
		}
		var v float64
		switch a := col.(type) {
		case *array.Int64:
			v = float64(a.Value(i))
		case *array.Float64:
			v = a.Value(i)
		case *array.Boolean:
			if a.Value(i) {
				v = 1
			}
		default:
			return nil, fmt.Errorf("type %s is not numeric", col.DataType())
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, badRow{i, fmt.Sprintf("%v is not a finite number (impute or drop it first: hpcml data transform)", v)}
		}
		dst = append(dst, v)
	}
	return dst, nil
}

func (t *rawTable) addLabels(col arrow.Array, base int) error {
	for i := 0; i < col.Len(); i++ {
		if col.IsNull(i) {
			return fmt.Errorf("row %d: missing label", base+i+1)
		}
		var text string
		num, isNum := 0.0, true
		switch a := col.(type) {
		case *array.Int64:
			num = float64(a.Value(i))
			text = strconv.FormatInt(a.Value(i), 10)
		case *array.Float64:
			num = a.Value(i)
			if math.IsNaN(num) || math.IsInf(num, 0) {
				return fmt.Errorf("row %d: label %v is not a finite number", base+i+1, num)
			}
			text = strconv.FormatFloat(num, 'g', -1, 64)
		case *array.Boolean:
			text = strconv.FormatBool(a.Value(i))
			if a.Value(i) {
				num = 1
			}
		case *array.String:
			text, isNum = a.Value(i), false
		default:
			text, isNum = col.ValueStr(i), false
		}
		if !isNum {
			t.labelIsNum = false
		}
		if num != math.Trunc(num) {
			t.labelIsInt = false
		}
		t.labelText = append(t.labelText, text)
		t.labelNum = append(t.labelNum, num)
	}
	return nil
}

// autoClassLimit: an integer label with at most this many distinct
// values is taken as classes when the task is not given.
const autoClassLimit = 50

func pickTask(task string, t *rawTable) (string, error) {
	switch task {
	case Classification:
		return task, nil
	case Regression:
		if !t.labelIsNum {
			return "", errors.New("task regression needs a numeric label")
		}
		return task, nil
	case "":
		if !t.labelIsNum || (t.labelIsInt && len(t.classes()) <= autoClassLimit) {
			return Classification, nil
		}
		return Regression, nil
	}
	return "", fmt.Errorf("task %q: want classification or regression", task)
}

// classes are the label's distinct values: numeric order for numbers,
// text order otherwise.
func (t *rawTable) classes() []string {
	seen := map[string]float64{}
	for i, s := range t.labelText {
		seen[s] = t.labelNum[i]
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if t.labelIsNum && seen[out[i]] != seen[out[j]] {
			return seen[out[i]] < seen[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}

func (t *rawTable) dataset(info DataInfo) (*Dataset, error) {
	n, f := len(t.labelText), len(t.cols)
	d := &Dataset{X: nn.NewTensor(n, f)}
	for c, col := range t.cols {
		for i, v := range col {
			d.X.Data[i*f+c] = float32(v)
		}
	}
	if info.Task == Regression {
		d.Targets = make([]float32, n)
		for i, v := range t.labelNum {
			d.Targets[i] = float32(v)
		}
		return d, nil
	}
	index := make(map[string]int, len(info.Classes))
	for i, c := range info.Classes {
		index[c] = i
	}
	d.Labels = make([]int, n)
	for i, s := range t.labelText {
		k, ok := index[s]
		if !ok {
			return nil, fmt.Errorf("row %d: label %q is not one of the training data's classes", i+1, s)
		}
		d.Labels[i] = k
	}
	return d, nil
}

// idxFiles are the IDX images and labels files of a training set and,
// optionally, a test set: URLs openable by openObject.
type idxFiles struct {
	trainImages, trainLabels string
	testImages, testLabels   string
}

// findIDX reports the IDX files url names, or nil if url is not IDX data.
func findIDX(ctx context.Context, url string) (*idxFiles, error) {
	if strings.HasPrefix(url, "dataset://") {
		return nil, nil
	}
	ep, err := transfer.ParseEndpoint(url)
	if err != nil {
		return nil, err
	}
	if ep.Kind == transfer.KindHTTP {
		return nil, fmt.Errorf("%s: training data is read from local paths, file:// or s3:// URLs (copy it first: hpcml data cp)", url)
	}
	if ep.Single() {
		if !isIDXImages(ep.Prefix) {
			return nil, nil
		}
		return &idxFiles{trainImages: url, trainLabels: labelsFor(url)}, nil
	}
	b, err := blob.Open(ctx, ep.Bucket)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	files := &idxFiles{}
	it := b.List(&gcblob.ListOptions{Prefix: ep.Prefix, Delimiter: "/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", blob.Redact(url), err)
		}
		name := path.Base(obj.Key)
		if obj.IsDir || !isIDXImages(name) {
			continue
		}
		u := strings.TrimSuffix(url, "/") + "/" + name
		switch {
		case strings.HasPrefix(name, "train"):
			files.trainImages, files.trainLabels = u, labelsFor(u)
		case strings.HasPrefix(name, "t10k"), strings.HasPrefix(name, "test"):
			files.testImages, files.testLabels = u, labelsFor(u)
		}
	}
	if files.trainImages == "" {
		return nil, nil
	}
	return files, nil
}

func isIDXImages(name string) bool {
	return strings.Contains(name, "-idx3-ubyte")
}

// labelsFor is the labels file named like an images file, as MNIST names them.
func labelsFor(images string) string {
	return strings.Replace(strings.Replace(images, "-idx3-ubyte", "-idx1-ubyte", 1), "images", "labels", 1)
}
