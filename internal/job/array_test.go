package job

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseArray(t *testing.T) {
	seq := func(lo, hi, step int) []int {
		var out []int
		for i := lo; i <= hi; i += step {
			out = append(out, i)
		}
		return out
	}
	tests := []struct {
		expr     string
		indices  []int
		throttle int
		wantErr  string
	}{
		{expr: "0-9", indices: seq(0, 9, 1)},
		{expr: "0-9%2", indices: seq(0, 9, 1), throttle: 2},
		{expr: "1,3,5-7", indices: []int{1, 3, 5, 6, 7}},
		{expr: "0-15:4", indices: []int{0, 4, 8, 12}},
		{expr: "7", indices: []int{7}},
		{expr: "5-7,1,6", indices: []int{1, 5, 6, 7}}, // sorted, distinct
		{expr: "0-9999", indices: seq(0, 9999, 1)},    // exactly the limit
		{expr: "0-4000000:1000", indices: seq(0, 4000000, 1000)},
		{expr: "", wantErr: "no indices"},
		{expr: "%2", wantErr: "no indices"},
		{expr: "0-9%0", wantErr: "throttle"},
		{expr: "0-9%x", wantErr: "throttle"},
		{expr: "0-9%-1", wantErr: "throttle"},
		{expr: "5-1", wantErr: "ends before it starts"},
		{expr: "0-10000", wantErr: "more than 10000"},
		{expr: "0-9999,10000", wantErr: "more than 10000"},
		{expr: "-1", wantErr: "not an array index"},
		{expr: "4000001", wantErr: "not an array index"},
		{expr: "a-b", wantErr: "not an array index"},
		{expr: "1,,2", wantErr: "not an array index"},
		{expr: "0-9:0", wantErr: "bad step"},
		{expr: "0-9:-2", wantErr: "bad step"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, throttle, err := ParseArray(tt.expr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseArray(%q) error = %v, want %q", tt.expr, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.indices) || throttle != tt.throttle {
				t.Fatalf("ParseArray(%q) = %d indices %v..., throttle %d", tt.expr, len(got), got[:min(len(got), 5)], throttle)
			}
		})
	}
}

func TestParseDependencies(t *testing.T) {
	tests := []struct {
		expr    string
		want    []Dependency
		wantErr string
	}{
		{expr: "", want: nil},
		{expr: "  ", want: nil},
		{expr: "afterok:12", want: []Dependency{{AfterOK, 12}}},
		{expr: "afterok:12:13,afterany:14,afternotok:15",
			want: []Dependency{{AfterOK, 12}, {AfterOK, 13}, {AfterAny, 14}, {AfterNotOK, 15}}},
		{expr: "after:1", wantErr: "type must be"},
		{expr: "singleton", wantErr: "type must be"},
		{expr: "afterok", wantErr: "no job id"},
		{expr: "afterok:", wantErr: "is not a job id"},
		{expr: "afterok:x", wantErr: "is not a job id"},
		{expr: "afterok:0", wantErr: "is not a job id"},
		{expr: "afterok:-3", wantErr: "is not a job id"},
		{expr: "afterok:1,", wantErr: "type must be"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := ParseDependencies(tt.expr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseDependencies(%q) = %v, %v; want %v", tt.expr, got, err, tt.want)
			}
		})
	}
}

func TestDependencySatisfied(t *testing.T) {
	tests := []struct {
		typ         DependencyType
		state       State
		ok, decided bool
	}{
		{AfterOK, Running, false, false},
		{AfterOK, Pending, false, false},
		{AfterOK, Succeeded, true, true},
		{AfterOK, Failed, false, true},
		{AfterOK, Cancelled, false, true},
		{AfterNotOK, Succeeded, false, true},
		{AfterNotOK, Failed, true, true},
		{AfterNotOK, Timeout, true, true},
		{AfterAny, Cancelled, true, true},
		{AfterAny, Succeeded, true, true},
		{AfterAny, Runnable, false, false},
	}
	for _, tt := range tests {
		ok, decided := Dependency{Type: tt.typ, JobID: 1}.Satisfied(tt.state)
		if ok != tt.ok || decided != tt.decided {
			t.Errorf("%s on %s = %v, %v; want %v, %v", tt.typ, tt.state, ok, decided, tt.ok, tt.decided)
		}
	}
}
