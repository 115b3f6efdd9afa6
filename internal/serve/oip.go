package serve

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"
)

// The Open Inference Protocol's tensor datatypes, with how a JSON element
// of each is read. Every one is accepted in a request and converted to the
// model's FP32; see convertData for what each allows.
type dataKind uint8

const (
	kindBool dataKind = iota
	kindUint
	kindInt
	kindFloat
	kindBytes
)

type dataType struct {
	kind     dataKind
	min, max float64 // integer range; the largest finite value for floats
}

var dataTypes = map[string]dataType{
	"BOOL":   {kind: kindBool},
	"UINT8":  {kind: kindUint, max: math.MaxUint8},
	"UINT16": {kind: kindUint, max: math.MaxUint16},
	"UINT32": {kind: kindUint, max: math.MaxUint32},
	"UINT64": {kind: kindUint, max: math.MaxUint64},
	"INT8":   {kind: kindInt, min: math.MinInt8, max: math.MaxInt8},
	"INT16":  {kind: kindInt, min: math.MinInt16, max: math.MaxInt16},
	"INT32":  {kind: kindInt, min: math.MinInt32, max: math.MaxInt32},
	"INT64":  {kind: kindInt, min: math.MinInt64, max: math.MaxInt64},
	"FP16":   {kind: kindFloat, max: 65504},
	"FP32":   {kind: kindFloat, max: math.MaxFloat32},
	"FP64":   {kind: kindFloat, max: math.MaxFloat64},
	"BYTES":  {kind: kindBytes},
}

// inferRequest is a parsed $inference_request. Raw fields alias the body.
type inferRequest struct {
	ID      []byte
	HasID   bool
	Params  []byte // raw JSON object, nil if absent
	Inputs  []requestInput
	Outputs []requestOutput
	// OutputsGiven tells "outputs": [] (none asked for, which we answer
	// with every output, as for an absent list) from no list at all; kept
	// for completeness of the parse.
	OutputsGiven bool
}

type requestInput struct {
	Name     []byte
	Shape    []int64
	HasShape bool
	DataType []byte
	Params   []byte // raw JSON object, nil if absent
	Data     []byte // raw JSON array, nil if absent
}

type requestOutput struct {
	Name   []byte
	Params []byte
}

// parseInferRequest reads an inference request's JSON. Errors wrap
// errSyntax when the body is not JSON, and name the field otherwise.
func parseInferRequest(body []byte, req *inferRequest) error {
	s := &scanner{b: body}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "id":
			if s.peek() != '"' {
				return fmt.Errorf(`"id" must be a string`)
			}
			v, err := s.stringBytes()
			req.ID, req.HasID = v, true
			return err
		case "inputs":
			if s.peek() != '[' {
				return fmt.Errorf(`"inputs" must be an array`)
			}
			return s.array(func(int) error {
				var in requestInput
				if err := parseInput(s, &in); err != nil {
					return err
				}
				req.Inputs = append(req.Inputs, in)
				return nil
			})
		case "outputs":
			if s.peek() != '[' {
				return fmt.Errorf(`"outputs" must be an array`)
			}
			req.OutputsGiven = true
			return s.array(func(int) error {
				var out requestOutput
				if s.peek() != '{' {
					return fmt.Errorf(`each of "outputs" must be an object`)
				}
				err := s.object(func(key []byte) error {
					var err error
					switch string(key) {
					case "name":
						if s.peek() != '"' {
							return fmt.Errorf(`"outputs": "name" must be a string`)
						}
						out.Name, err = s.stringBytes()
					case "parameters":
						out.Params, err = parseParams(s, `"outputs": "parameters"`)
					default:
						_, err = s.skip()
					}
					return err
				})
				if err != nil {
					return err
				}
				if out.Name == nil {
					return fmt.Errorf(`each of "outputs" needs a "name"`)
				}
				req.Outputs = append(req.Outputs, out)
				return nil
			})
		case "parameters":
			var err error
			req.Params, err = parseParams(s, `"parameters"`)
			return err
		default:
			_, err := s.skip()
			return err
		}
	})
	if err != nil {
		if !errors.Is(err, errSyntax) && s.peek() == 0 {
			// A semantic complaint about a truncated body: the body is
			// what is wrong.
			return s.errorf("unexpected end")
		}
		return err
	}
	return s.end()
}

func parseParams(s *scanner, what string) ([]byte, error) {
	if c := s.peek(); c != '{' {
		if c == 'n' && s.literal("null") {
			return nil, nil
		}
		return nil, fmt.Errorf("%s must be an object", what)
	}
	return s.skip()
}

func parseInput(s *scanner, in *requestInput) error {
	if s.peek() != '{' {
		return fmt.Errorf(`each of "inputs" must be an object`)
	}
	err := s.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "name":
			if s.peek() != '"' {
				return fmt.Errorf(`"inputs": "name" must be a string`)
			}
			in.Name, err = s.stringBytes()
		case "datatype":
			if s.peek() != '"' {
				return fmt.Errorf(`"inputs": "datatype" must be a string`)
			}
			in.DataType, err = s.stringBytes()
		case "shape":
			if s.peek() != '[' {
				return fmt.Errorf(`"inputs": "shape" must be an array of integers`)
			}
			in.HasShape = true
			in.Shape = in.Shape[:0]
			err = s.array(func(int) error {
				if c := s.peek(); c != '-' && (c < '0' || c > '9') {
					return fmt.Errorf(`"inputs": "shape" must be an array of integers`)
				}
				b, err := s.number()
				if err != nil {
					return err
				}
				d, perr := strconv.ParseInt(bytesString(b), 10, 64)
				if perr != nil || d < 0 {
					return fmt.Errorf(`"inputs": "shape" has %s; each dimension must be an integer ≥ 0`, b)
				}
				in.Shape = append(in.Shape, d)
				return nil
			})
		case "parameters":
			in.Params, err = parseParams(s, `"inputs": "parameters"`)
		case "data":
			if s.peek() != '[' {
				return fmt.Errorf(`"inputs": "data" must be an array`)
			}
			in.Data, err = s.skip()
		default:
			_, err = s.skip()
		}
		return err
	})
	return err
}

// bytesString views b as a string without copying, for parsing; the
// string must not outlive b or be kept.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// convertData reads an input's "data" (flat row-major, or nested as the
// shape) into dst as float32, converting from the request's datatype:
// integers must be integral and within the type's range, floats finite
// and within the type's range (FP64 values beyond float32's are refused
// rather than made infinite), BOOL is 1 or 0. BYTES has no numeric value
// and is refused by the caller before this. It returns the values read.
func convertData(raw []byte, dt dataType, shape []int64, dst []float32) ([]float32, error) {
	s := &scanner{b: raw}
	c := convertState{s: s, dt: dt, shape: shape, dst: dst}
	if err := c.level(0); err != nil {
		return nil, err
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	return c.dst, nil
}

type convertState struct {
	s     *scanner
	dt    dataType
	shape []int64
	dst   []float32
}

// level reads one array. Either all its elements are arrays (a nested
// level, whose length must be the shape's dimension) or none is; the
// innermost arrays of nested data must be as long as the last dimension.
// A flat array (depth 0 with scalars) may have any length; the caller
// checks it against the shape's volume.
func (c *convertState) level(depth int) error {
	s := c.s
	if depth > maxDepth {
		return s.errorf("nested more than %d levels", maxDepth)
	}
	if err := s.expect('['); err != nil {
		return err
	}
	nested := s.peek() == '['
	n := 0
	if s.peek() == ']' {
		s.i++
	} else {
		for {
			if nested {
				if s.peek() != '[' {
					return fmt.Errorf("nested data mixes arrays and values")
				}
				if err := c.level(depth + 1); err != nil {
					return err
				}
			} else {
				if s.peek() == '[' {
					return fmt.Errorf("nested data mixes arrays and values")
				}
				if err := c.element(); err != nil {
					return err
				}
			}
			n++
			if s.peek() == ',' {
				s.i++
				continue
			}
			if err := s.expect(']'); err != nil {
				return err
			}
			break
		}
	}
	if depth == 0 && !nested {
		return nil // flat
	}
	if depth >= len(c.shape) || int64(n) != c.shape[depth] || (!nested && depth != len(c.shape)-1) {
		return fmt.Errorf("nested data does not have the shape %v", c.shape)
	}
	return nil
}

func (c *convertState) element() error {
	s := c.s
	switch c.dt.kind {
	case kindBool:
		switch {
		case s.peek() == 't' && s.literal("true"):
			c.dst = append(c.dst, 1)
		case s.peek() == 'f' && s.literal("false"):
			c.dst = append(c.dst, 0)
		default:
			return fmt.Errorf("BOOL data must be true or false")
		}
		return nil
	case kindBytes:
		return fmt.Errorf("BYTES data cannot be converted to numbers")
	}
	if ch := s.peek(); ch != '-' && (ch < '0' || ch > '9') {
		if ch == 0 {
			return s.errorf("unexpected end")
		}
		return fmt.Errorf("data must be numbers, found %q", ch)
	}
	b, err := s.number()
	if err != nil {
		return err
	}
	if c.dt.kind == kindFloat && c.dt.max == math.MaxFloat32 {
		v, err := strconv.ParseFloat(bytesString(b), 32)
		if err != nil {
			return fmt.Errorf("%s is out of FP32's range", b)
		}
		c.dst = append(c.dst, float32(v))
		return nil
	}
	v, err := strconv.ParseFloat(bytesString(b), 64)
	if err != nil {
		return fmt.Errorf("%s is out of range", b)
	}
	switch c.dt.kind {
	case kindFloat:
		if math.Abs(v) > c.dt.max || math.Abs(v) > math.MaxFloat32 {
			return fmt.Errorf("%s is out of range for the model's FP32", b)
		}
	default:
		if v != math.Trunc(v) || v < c.dt.min || v > c.dt.max {
			return fmt.Errorf("%s is not an integer of the input's datatype", b)
		}
	}
	c.dst = append(c.dst, float32(v))
	return nil
}

// appendFloats appends v as a JSON array of numbers: the shortest decimal
// that reads back as the same float32. NaN and infinities, which JSON
// cannot carry, are written as null.
func appendFloats(dst []byte, v []float32) []byte {
	dst = append(dst, '[')
	for i, f := range v {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendFloat(dst, f)
	}
	return append(dst, ']')
}

func appendFloat(dst []byte, f float32) []byte {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, float64(f), 'g', -1, 32)
}

func appendInts(dst []byte, v []int) []byte {
	dst = append(dst, '[')
	for i, d := range v {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendInt(dst, int64(d), 10)
	}
	return append(dst, ']')
}
