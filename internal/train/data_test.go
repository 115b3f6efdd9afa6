package train

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeCSV(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "t.csv")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadTableErrors(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name, csv, label, task, want string
	}{
		{"label missing", "a,b\n1,2\n3,4\n", "y", "", `no label column "y" (columns: a, b)`},
		{"no label flag", "a,b\n1,2\n", "", "", "--label is required"},
		{"non-numeric feature", "a,s,y\n1,x,0\n2,z,1\n", "y", "", `column "s" is string, not numeric`},
		{"NaN feature", "a,b,y\n1,2,0\n3,NaN,1\n", "y", "", `column "b": row 2: NaN is not a finite number`},
		{"missing feature", "a,b,y\n1,2,0\n3,,1\n", "y", "", `column "b": row 2: missing value`},
		{"missing label", "a,y\n1,0\n2,\n", "y", "", "row 2: missing label"},
		{"one class", "a,y\n1,0\n2,0\n", "y", "", "only one value"},
		{"regression of text", "a,y\n1,cat\n2,dog\n", "y", Regression, "needs a numeric label"},
		{"no features", "y\n1\n2\n", "y", "", "no feature columns"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, _, err := Load(ctx, DataConfig{URL: writeCSV(t, c.csv), Label: c.label, Task: c.task})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestLoadTableTasksAndClasses(t *testing.T) {
	ctx := context.Background()
	// Text labels are classes in text order; an integer label with few
	// values is classes in numeric order; a real-valued one is regression.
	tr, _, info, err := Load(ctx, DataConfig{URL: writeCSV(t, "a,b,y\n1,2,dog\n3,4,cat\n5,6,dog\n"), Label: "y"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Task != Classification || strings.Join(info.Classes, ",") != "cat,dog" || tr.Labels[0] != 1 || tr.Labels[1] != 0 {
		t.Fatalf("info %+v labels %v", info, tr.Labels)
	}
	_, _, info, err = Load(ctx, DataConfig{URL: writeCSV(t, "a,y\n1,10\n2,9\n3,10\n4,2\n"), Label: "y"})
	if err != nil || info.Task != Classification || strings.Join(info.Classes, ",") != "2,9,10" {
		t.Fatalf("info %+v err %v", info, err)
	}
	tr, _, info, err = Load(ctx, DataConfig{URL: writeCSV(t, "a,y\n1,0.5\n2,1.25\n"), Label: "y"})
	if err != nil || info.Task != Regression || tr.Targets[1] != 1.25 || tr.Labels != nil {
		t.Fatalf("info %+v err %v", info, err)
	}
	// A test set with a class the training data lacks.
	_, _, _, err = Load(ctx, DataConfig{URL: writeCSV(t, "a,y\n1,a\n2,b\n"), TestURL: writeCSV(t, "a,y\n1,c\n"), Label: "y"})
	if err == nil || !strings.Contains(err.Error(), `label "c" is not one of the training data's classes`) {
		t.Fatalf("err = %v", err)
	}
}
