package onnx

import (
	"strings"
	"testing"
)

//go:noinline
func derefNil([]*value) ([]*value, error) {
	var v *value
	return nil, wantFloat(v, "v")
}

//go:noinline
func deep(n int) ([]*value, error) {
	if n == 0 {
		panic("deep enough")
	}
	return deep(n - 1)
}

// TestExecNamesPanicSite checks that a panic in a kernel becomes an error
// that says where it happened: a recovered panic has lost its stack, and
// without it a fault once seen in a model's trial run (an assembly kernel
// faulting in a mismatched build) could only be guessed at.
func TestExecNamesPanicSite(t *testing.T) {
	for _, c := range []struct {
		name string
		run  kernel
		want []string
	}{
		{"nil", derefNil, []string{
			"internal error: runtime error: invalid memory address or nil pointer dereference (at onnx.wantFloat (ops.go:",
			") < onnx.derefNil (panic_test.go:",
		}},
		{"index", func(in []*value) ([]*value, error) { return []*value{in[3]}, nil }, []string{
			"internal error: runtime error: index out of range [3] with length 1 (at onnx.TestExecNamesPanicSite.func1 (panic_test.go:",
		}},
		{"deep", func([]*value) ([]*value, error) { return deep(20) }, []string{
			"internal error: deep enough (at onnx.deep (panic_test.go:",
			") < onnx.deep (panic_test.go:",
			") < …)",
		}},
	} {
		st := step{label: "node 0 'x' (X)", run: c.run}
		_, err := st.exec([]*value{newFloat(1)})
		if err == nil {
			t.Fatalf("%s: no error", c.name)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not contain %q", c.name, err, w)
			}
		}
		if n := strings.Count(err.Error(), " < "); n > panicSiteFrames {
			t.Errorf("%s: %d frames listed: %s", c.name, n+1, err)
		}
		if strings.Contains(err.Error(), "runtime.") || strings.Contains(err.Error(), "exec") {
			t.Errorf("%s: the runtime's or exec's frames are listed: %s", c.name, err)
		}
	}
}
