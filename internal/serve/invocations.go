package serve

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/hpcml/hpcml/internal/nn"
)

// invocations serves SageMaker's POST /invocations. The body is rows
// (samples) for the model:
//
//	application/json  {"instances": [row, ...]}        → {"predictions": [...]}
//	                  [row, ...]                         → {"predictions": [...]}
//	                  {"inputs": [row, ...]}             → {"outputs": [...]}
//	                  {"inputs": {"name": [row, ...]}}   → {"outputs": [...]}   (several inputs)
//	text/csv          one row per line, numbers only     → predictions
//
// A row is one sample: its values flat (row-major) or nested as the
// model's per-sample shape; with several inputs a row of "instances" may
// be an object keyed by input name. A prediction is the sample's output,
// nested as the output's per-sample shape; with several outputs, an
// object keyed by output name. Accept: text/csv answers one line per row
// (every output's values of the row, flat, in the model's output order).
func (s *Server) invocations(w http.ResponseWriter, r *http.Request) {
	s.m.inflight.Inc()
	defer s.m.inflight.Dec()
	ct := "application/json"
	if v := r.Header.Get("Content-Type"); v != "" {
		t, _, err := mime.ParseMediaType(v)
		if err != nil {
			writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: %v", v, err))
			return
		}
		ct = t
	}
	if ct != "application/json" && ct != "text/csv" {
		writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %s is not supported; send application/json or text/csv", ct))
		return
	}
	csvOut, ok := wantsCSV(r.Header.Get("Accept"))
	if !ok {
		writeError(w, http.StatusNotAcceptable, fmt.Sprintf("cannot answer Accept: %s; accept application/json or text/csv", r.Header.Get("Accept")))
		return
	}
	ctx := s.requestDeadline(w, r)
	defer ctx.release()
	bp, err := s.readBody(r)
	if err != nil {
		s.writeFailure(w, err)
		return
	}
	defer s.putBuf(bp)
	var inputs map[string]*nn.Tensor
	var rows int
	key := "predictions"
	if ct == "text/csv" {
		inputs, rows, err = s.csvInputs(*bp)
	} else {
		inputs, rows, key, err = s.jsonInputs(*bp)
	}
	if err != nil {
		s.writeFailure(w, err)
		return
	}
	outs, err := s.exec.infer(ctx, inputs, rows)
	if err != nil {
		s.writeFailure(w, err)
		return
	}
	for _, o := range s.info.Outputs {
		t := outs[o.Name]
		if t == nil || len(t.Shape) == 0 || t.Shape[0] != rows {
			s.writeFailure(w, fmt.Errorf("output %q does not have one entry per row (%d rows)", o.Name, rows))
			return
		}
	}
	ob := s.getBuf()
	defer s.putBuf(ob)
	out := (*ob)[:0]
	if csvOut {
		for i := range rows {
			first := true
			for _, o := range s.info.Outputs {
				t := outs[o.Name]
				n := nn.Volume(t.Shape[1:])
				for _, v := range t.Data[i*n : (i+1)*n] {
					if !first {
						out = append(out, ',')
					}
					first = false
					out = strconv.AppendFloat(out, float64(v), 'g', -1, 32)
				}
			}
			out = append(out, '\n')
		}
		*ob = out
		h := w.Header()
		h.Set("Content-Type", "text/csv")
		h.Set("Content-Length", strconv.Itoa(len(out)))
		w.WriteHeader(http.StatusOK)
		w.Write(out)
		return
	}
	out = append(append(append(out, `{"`...), key...), `":[`...)
	for i := range rows {
		if i > 0 {
			out = append(out, ',')
		}
		if len(s.info.Outputs) > 1 {
			out = append(out, '{')
		}
		for k, o := range s.info.Outputs {
			t := outs[o.Name]
			n := nn.Volume(t.Shape[1:])
			if len(s.info.Outputs) > 1 {
				if k > 0 {
					out = append(out, ',')
				}
				out = append(appendJSONString(out, o.Name), ':')
			}
			out = appendNested(out, t.Data[i*n:(i+1)*n], t.Shape[1:])
		}
		if len(s.info.Outputs) > 1 {
			out = append(out, '}')
		}
	}
	out = append(out, "]}"...)
	*ob = out
	writeJSON(w, http.StatusOK, out)
}

// wantsCSV reads Accept: CSV when it names text/csv before (or without)
// application/json; ok is false when it names neither nor a wildcard.
func wantsCSV(accept string) (csvOut, ok bool) {
	if accept == "" {
		return false, true
	}
	for part := range strings.SplitSeq(accept, ",") {
		t, _, _ := strings.Cut(part, ";")
		switch strings.TrimSpace(strings.ToLower(t)) {
		case "text/csv":
			return true, true
		case "application/json", "*/*", "application/*":
			return false, true
		}
	}
	return false, false
}

// appendNested writes values nested as shape (a scalar for an empty
// shape).
func appendNested(dst []byte, v []float32, shape []int) []byte {
	if len(shape) == 0 {
		return appendFloat(dst, v[0])
	}
	if len(shape) == 1 {
		return appendFloats(dst, v)
	}
	n := nn.Volume(shape[1:])
	dst = append(dst, '[')
	for i := range shape[0] {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendNested(dst, v[i*n:(i+1)*n], shape[1:])
	}
	return append(dst, ']')
}

// jsonInputs reads an /invocations JSON body into the model's inputs and
// returns the rows and the response's key.
func (s *Server) jsonInputs(body []byte) (map[string]*nn.Tensor, int, string, error) {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		return nil, 0, "", badf("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, 0, "", badf("malformed JSON: data after the JSON value")
	}
	switch v := doc.(type) {
	case []any:
		in, rows, err := s.rowInputs(v)
		return in, rows, "predictions", err
	case map[string]any:
		if inst, ok := v["instances"]; ok {
			list, ok := inst.([]any)
			if !ok {
				return nil, 0, "", badf(`"instances" must be an array of rows`)
			}
			in, rows, err := s.rowInputs(list)
			return in, rows, "predictions", err
		}
		if ins, ok := v["inputs"]; ok {
			switch x := ins.(type) {
			case []any:
				in, rows, err := s.rowInputs(x)
				return in, rows, "outputs", err
			case map[string]any:
				in, rows, err := s.namedInputs(x)
				return in, rows, "outputs", err
			}
			return nil, 0, "", badf(`"inputs" must be an array of rows or an object of them by input name`)
		}
		return nil, 0, "", badf(`the JSON body needs "instances" or "inputs" (or is an array of rows)`)
	}
	return nil, 0, "", badf(`the JSON body must be an object with "instances" or "inputs", or an array of rows`)
}

// rowInputs makes the inputs from a list of rows: values for a model of
// one input, or objects keyed by input name.
func (s *Server) rowInputs(list []any) (map[string]*nn.Tensor, int, error) {
	if len(list) == 0 {
		return nil, 0, badf("no rows")
	}
	if _, ok := list[0].(map[string]any); ok {
		byName := map[string][]any{}
		for i, r := range list {
			obj, ok := r.(map[string]any)
			if !ok {
				return nil, 0, badf("row %d: rows mix objects and values", i)
			}
			for k, v := range obj {
				byName[k] = append(byName[k], v)
			}
		}
		named := map[string]any{}
		for k, v := range byName {
			if len(v) != len(list) {
				return nil, 0, badf("input %q is not in every row", k)
			}
			named[k] = v
		}
		return s.namedInputs(named)
	}
	if len(s.info.Inputs) != 1 {
		return nil, 0, badf("the model has %d inputs (%s): give each row as an object keyed by input name, or \"inputs\" by name", len(s.info.Inputs), s.inputNames)
	}
	t, err := s.rowsTensor(s.info.Inputs[0], list)
	if err != nil {
		return nil, 0, err
	}
	return map[string]*nn.Tensor{s.info.Inputs[0].Name: t}, len(list), nil
}

func (s *Server) namedInputs(byName map[string]any) (map[string]*nn.Tensor, int, error) {
	inputs := map[string]*nn.Tensor{}
	rows := -1
	for name, v := range byName {
		i, ok := s.inputIndex[name]
		if !ok {
			return nil, 0, badf("unknown input %q (the model's inputs: %s)", name, s.inputNames)
		}
		list, ok := v.([]any)
		if !ok || len(list) == 0 {
			return nil, 0, badf("input %q: give a non-empty array of rows", name)
		}
		if rows >= 0 && len(list) != rows {
			return nil, 0, badf("input %q has %d rows, another input %d", name, len(list), rows)
		}
		rows = len(list)
		t, err := s.rowsTensor(s.info.Inputs[i], list)
		if err != nil {
			return nil, 0, err
		}
		inputs[name] = t
	}
	for _, want := range s.info.Inputs {
		if inputs[want.Name] == nil {
			return nil, 0, badf("input %q is missing (the model's inputs: %s)", want.Name, s.inputNames)
		}
	}
	return inputs, rows, nil
}

// sampleShape is an input's shape less its first (batch) dimension, which
// must be variable or equal to the rows; the rest must be fixed.
func sampleShape(want TensorInfo, rows int) ([]int, error) {
	if len(want.Shape) == 0 || (want.Shape[0] != -1 && want.Shape[0] != int64(rows)) {
		return nil, fmt.Errorf("input %q has shape %v, which has no batch dimension for %d rows; use the OIP /v2 API", want.Name, want.Shape, rows)
	}
	out := make([]int, len(want.Shape)-1)
	for i, d := range want.Shape[1:] {
		if d < 0 {
			return nil, fmt.Errorf("input %q has shape %v, variable beyond its batch dimension; use the OIP /v2 API", want.Name, want.Shape)
		}
		out[i] = int(d)
	}
	return out, nil
}

func (s *Server) rowsTensor(want TensorInfo, list []any) (*nn.Tensor, error) {
	sample, err := sampleShape(want, len(list))
	if err != nil {
		return nil, &badRequest{msg: err.Error()}
	}
	n := nn.Volume(sample)
	// Every value takes at least two bytes of the body: a shape that needs
	// more values than the payload limit could carry is refused before
	// anything is allocated for it (a 400-byte body must not make the
	// server allocate for millions of values).
	if int64(n)*int64(len(list)) > s.opts.MaxPayload/2 {
		return nil, badf("input %q: %d rows of %d values (shape %v) are more than a %d-byte payload can hold", want.Name, len(list), n, sample, s.opts.MaxPayload)
	}
	data := make([]float32, 0, n*len(list))
	for i, row := range list {
		before := len(data)
		if data, err = flatten(data, row, 0); err != nil {
			return nil, badf("input %q, row %d: %v", want.Name, i, err)
		}
		if got := len(data) - before; got != n {
			return nil, badf("input %q, row %d: %d values, the model takes %d per row (shape %v)", want.Name, i, got, n, sample)
		}
	}
	return &nn.Tensor{Shape: append([]int{len(list)}, sample...), Data: data}, nil
}

// flatten appends a row's numbers (nested arrays or a scalar).
func flatten(dst []float32, v any, depth int) ([]float32, error) {
	switch x := v.(type) {
	case float64:
		if x > 3.4028234663852886e38 || x < -3.4028234663852886e38 {
			return nil, fmt.Errorf("%v is out of FP32's range", x)
		}
		return append(dst, float32(x)), nil
	case []any:
		if depth > maxDepth {
			return nil, fmt.Errorf("nested more than %d levels", maxDepth)
		}
		var err error
		for _, e := range x {
			if dst, err = flatten(dst, e, depth+1); err != nil {
				return nil, err
			}
		}
		return dst, nil
	case bool:
		if x {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	}
	return nil, fmt.Errorf("values must be numbers, found %v", v)
}

// csvInputs reads text/csv rows of numbers for a model of one input.
func (s *Server) csvInputs(body []byte) (map[string]*nn.Tensor, int, error) {
	if len(s.info.Inputs) != 1 {
		return nil, 0, badf("text/csv needs a model of one input; this one has %d (%s)", len(s.info.Inputs), s.inputNames)
	}
	want := s.info.Inputs[0]
	cr := csv.NewReader(bytes.NewReader(body))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var data []float32
	rows, n := 0, -1
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, badf("malformed CSV: %v", err)
		}
		if n < 0 {
			n = len(rec)
		} else if len(rec) != n {
			return nil, 0, badf("CSV row %d has %d values, the first row %d", rows+1, len(rec), n)
		}
		for j, f := range rec {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 32)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				// NaN and infinities parse, but JSON bodies cannot carry
				// them and a model given one answers nulls.
				return nil, 0, badf("CSV row %d, column %d: %q is not a finite number", rows+1, j+1, f)
			}
			data = append(data, float32(v))
		}
		rows++
	}
	if rows == 0 {
		return nil, 0, badf("no rows")
	}
	sample, err := sampleShape(want, rows)
	if err != nil {
		return nil, 0, &badRequest{msg: err.Error()}
	}
	if nn.Volume(sample) != n {
		return nil, 0, badf("input %q: CSV rows have %d values, the model takes %d per row (shape %v)", want.Name, n, nn.Volume(sample), sample)
	}
	return map[string]*nn.Tensor{want.Name: {Shape: append([]int{rows}, sample...), Data: data}}, rows, nil
}
