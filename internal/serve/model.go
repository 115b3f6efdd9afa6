// Package serve is hpcml's inference server: a Model (a runtime holding
// one loaded model version) behind the Open Inference Protocol v2 REST API
// (KServe, Triton) and SageMaker's /invocations, with Triton-style dynamic
// batching, a limit on concurrent model executions, a payload limit, a
// per-request timeout, a bearer token and Prometheus metrics.
//
// The server is a library so that tests and the deployment controller can
// host it in-process; `hpcml serve` (internal/cli) wraps it in a process
// with a listener, an announcement in storage and a graceful drain.
package serve

import (
	"context"
	"fmt"
	"slices"

	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/onnx"
)

// TensorInfo describes a model input or output as the Open Inference
// Protocol's model metadata does: a name, a datatype ("FP32") and a shape
// with -1 for a variable dimension (the batch, usually).
type TensorInfo struct {
	Name     string  `json:"name"`
	DataType string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// ModelInfo is what a Model says about itself.
type ModelInfo struct {
	Name     string
	Version  string
	Platform string // OIP "platform": "onnx" for the ONNX runtime
	Inputs   []TensorInfo
	Outputs  []TensorInfo
}

// Model is a loaded model version: the seam between the HTTP layer (and the
// batcher) and a runtime. Infer gets one tensor per declared input, already
// validated against Info (names, shapes) and converted to float32, and
// returns every output. Infer must be safe to call from many goroutines at
// once; the server bounds how many calls run together.
//
// When the server batches requests, the first dimension of every input
// and output is the batch: Infer is given the rows of several requests
// concatenated and must return outputs whose first dimension is the same
// number of rows, row i of each output belonging to row i of the inputs.
type Model interface {
	Info() ModelInfo
	Infer(ctx context.Context, inputs map[string]*nn.Tensor) (map[string]*nn.Tensor, error)
}

// ONNXModel is the ONNX runtime: an onnx.Graph (hpcml's own importer on the
// nn engine) as a Model.
type ONNXModel struct {
	graph *onnx.Graph
	info  ModelInfo
}

// LoadONNX loads an ONNX model's bytes under a name and version. Every
// input and output must be float32 (FP32): the engine computes in float32.
func LoadONNX(data []byte, name, version string) (*ONNXModel, error) {
	g, err := onnx.Load(data)
	if err != nil {
		return nil, err
	}
	info := ModelInfo{Name: name, Version: version, Platform: "onnx"}
	for _, in := range g.Inputs() {
		if in.DataType != "FP32" {
			return nil, fmt.Errorf("onnx: input %q is %s; only FP32 inputs can be served", in.Name, in.DataType)
		}
		info.Inputs = append(info.Inputs, TensorInfo{Name: in.Name, DataType: in.DataType, Shape: slices.Clone(in.Shape)})
	}
	for _, out := range g.Outputs() {
		if out.DataType != "FP32" {
			return nil, fmt.Errorf("onnx: output %q is %s; only FP32 outputs can be served", out.Name, out.DataType)
		}
		info.Outputs = append(info.Outputs, TensorInfo{Name: out.Name, DataType: out.DataType, Shape: slices.Clone(out.Shape)})
	}
	if len(info.Inputs) == 0 || len(info.Outputs) == 0 {
		return nil, fmt.Errorf("onnx: the model has %d inputs and %d outputs; it needs at least one of each", len(info.Inputs), len(info.Outputs))
	}
	return &ONNXModel{graph: g, info: info}, nil
}

// Info returns the model's name, version and signature.
func (m *ONNXModel) Info() ModelInfo { return cloneInfo(m.info) }

// Graph is the compiled graph, for callers that run it directly (the
// benchmark's plain net/http peer).
func (m *ONNXModel) Graph() *onnx.Graph { return m.graph }

// Infer runs the graph once.
func (m *ONNXModel) Infer(ctx context.Context, inputs map[string]*nn.Tensor) (map[string]*nn.Tensor, error) {
	return m.graph.Run(ctx, inputs)
}

func cloneInfo(i ModelInfo) ModelInfo {
	c := i
	c.Inputs = cloneTensorInfos(i.Inputs)
	c.Outputs = cloneTensorInfos(i.Outputs)
	return c
}

func cloneTensorInfos(ts []TensorInfo) []TensorInfo {
	out := make([]TensorInfo, len(ts))
	for i, t := range ts {
		out[i] = TensorInfo{Name: t.Name, DataType: t.DataType, Shape: slices.Clone(t.Shape)}
	}
	return out
}
