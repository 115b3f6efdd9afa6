package train

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/table"
)

// TestParquetInputGivesTheSameModel trains on a CSV and on the same rows
// as Parquet: the same values make the same model, byte for byte.
func TestParquetInputGivesTheSameModel(t *testing.T) {
	trainCSV, _ := holdOut(t, samples(t, "breast_cancer.csv"), 1, 0.2)
	ctx := context.Background()
	r, err := table.Open(ctx, trainCSV, sklearnTable.options())
	if err != nil {
		t.Fatal(err)
	}
	pq := filepath.Join(t.TempDir(), "train.parquet")
	if _, err := table.WriteParquet(ctx, pq, r, table.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	models := map[string][]byte{}
	for name, cfg := range map[string]Config{
		"csv":     {Algorithm: "linear", Data: trainCSV, Label: "column_31", Epochs: 5, Seed: 1, Table: sklearnTable},
		"parquet": {Algorithm: "linear", Data: pq, Label: "column_31", Epochs: 5, Seed: 1},
	} {
		out, dir := outDir(t)
		meta, err := Run(ctx, cfg, Options{Out: out})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if meta.Data.Train != 456 {
			t.Fatalf("%s: %d rows", name, meta.Data.Train)
		}
		models[name], _ = os.ReadFile(filepath.Join(dir, ModelFile))
	}
	if len(models["csv"]) == 0 || !bytes.Equal(models["csv"], models["parquet"]) {
		t.Fatal("the Parquet copy of the data trained another model than the CSV")
	}
}

// TestClassWeights: on data where one class is 1 in 20, balanced class
// weights find more of it than none.
func TestClassWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	var b strings.Builder
	b.WriteString("a,b,y\n")
	for i := 0; i < 4000; i++ {
		y := 0
		if i%20 == 0 {
			y = 1
		}
		// Overlapping clouds: the rare class sits one unit off.
		fmt.Fprintf(&b, "%.4f,%.4f,%d\n", rng.NormFloat64()+float64(y), rng.NormFloat64()+float64(y), y)
	}
	csv := writeCSV(t, b.String())
	recall := map[string]float64{}
	for _, w := range []string{"none", "balanced", "1,0"} {
		out, _ := outDir(t)
		meta, err := Run(context.Background(), Config{Algorithm: "linear", Data: csv, Label: "y", Epochs: 10, Seed: 1,
			HP: map[string]string{"class_weights": w, "validation": "0.25", "patience": "0"}}, Options{Out: out})
		if err != nil {
			t.Fatalf("class_weights=%s: %v", w, err)
		}
		recall[w] = meta.Evaluation.PerClass[1].Recall
	}
	t.Logf("recall of the rare class: %v", recall)
	if recall["balanced"] < recall["none"]+0.2 || recall["1,0"] != 0 {
		t.Fatalf("recall of the rare class %v: balanced should find far more of it than none, and weight 0 none of it", recall)
	}
	out, _ := outDir(t)
	_, err := Run(context.Background(), Config{Algorithm: "linear", Data: csv, Label: "y", Epochs: 1,
		HP: map[string]string{"class_weights": "1,2,3"}}, Options{Out: out})
	if err == nil || !strings.Contains(err.Error(), "3 weights for 2 classes") {
		t.Fatalf("err = %v", err)
	}
}
