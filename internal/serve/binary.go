package serve

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
)

// The binary tensor data extension (Triton's "binary_tensor_data", which
// KServe documents too): tensors may travel as raw little-endian bytes
// after the JSON object instead of as JSON "data". Triton's clients use
// it by default, so supporting it is what lets them work unchanged.
//
//   - An input with parameter "binary_data_size": S takes the next S bytes
//     after the JSON (inputs in the order the JSON lists them).
//   - An output asked for with parameter "binary_data": true (or every
//     output, when the request's parameters say "binary_data_output": true
//     and the output does not say false) is answered with
//     "binary_data_size" instead of "data", its bytes after the JSON.
//   - Header Inference-Header-Content-Length gives the JSON's length in a
//     request or response that carries binary data.
const (
	headerJSONLength = "Inference-Header-Content-Length"
	extensionBinary  = "binary_tensor_data"
)

// elemSize is the bytes per element of a datatype's binary form; 0 for
// BYTES, whose elements have a length prefix each.
func elemSize(dt string) int {
	switch dt {
	case "BOOL", "UINT8", "INT8":
		return 1
	case "UINT16", "INT16", "FP16":
		return 2
	case "UINT32", "INT32", "FP32":
		return 4
	case "UINT64", "INT64", "FP64":
		return 8
	}
	return 0
}

// convertBinary reads raw little-endian elements of datatype dt into dst
// as float32, with the same rules as JSON data: integers exactly as they
// are (beyond 2^24 rounded to float32), BOOL bytes 0 or 1, FP64 within
// float32's range, no NaN or infinity for any float type except FP32 and
// FP16, which carry them natively.
func convertBinary(raw []byte, dt string, dst []float32) ([]float32, error) {
	size := elemSize(dt)
	if size == 0 || len(raw)%size != 0 {
		return nil, fmt.Errorf("%d bytes of binary data are not a whole number of %s elements", len(raw), dt)
	}
	n := len(raw) / size
	switch dt {
	case "FP32":
		for i := range n {
			dst = append(dst, math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	case "FP64":
		for i := range n {
			v := math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("element %d is %g: FP64 data must be finite", i, v)
			}
			if math.Abs(v) > math.MaxFloat32 {
				return nil, fmt.Errorf("element %d (%g) is out of range for the model's FP32", i, v)
			}
			dst = append(dst, float32(v))
		}
	case "FP16":
		for i := range n {
			dst = append(dst, halfToFloat(binary.LittleEndian.Uint16(raw[2*i:])))
		}
	case "BOOL":
		for i, b := range raw {
			if b > 1 {
				return nil, fmt.Errorf("BOOL element %d is byte %d, not 0 or 1", i, b)
			}
			dst = append(dst, float32(b))
		}
	case "UINT8":
		for _, b := range raw {
			dst = append(dst, float32(b))
		}
	case "INT8":
		for _, b := range raw {
			dst = append(dst, float32(int8(b)))
		}
	case "UINT16":
		for i := range n {
			dst = append(dst, float32(binary.LittleEndian.Uint16(raw[2*i:])))
		}
	case "INT16":
		for i := range n {
			dst = append(dst, float32(int16(binary.LittleEndian.Uint16(raw[2*i:]))))
		}
	case "UINT32":
		for i := range n {
			dst = append(dst, float32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	case "INT32":
		for i := range n {
			dst = append(dst, float32(int32(binary.LittleEndian.Uint32(raw[4*i:]))))
		}
	case "UINT64":
		for i := range n {
			dst = append(dst, float32(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	case "INT64":
		for i := range n {
			dst = append(dst, float32(int64(binary.LittleEndian.Uint64(raw[8*i:]))))
		}
	}
	return dst, nil
}

// halfToFloat converts an IEEE 754 half-precision value.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for frac&0x400 == 0 {
			frac <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (frac&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}

// appendFloatBytes appends v as little-endian float32s.
func appendFloatBytes(dst []byte, v []float32) []byte {
	for _, f := range v {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
	}
	return dst
}

// paramValue finds a key in a raw JSON parameters object and returns its
// raw value, nil if absent.
func paramValue(params []byte, key string) ([]byte, error) {
	if params == nil {
		return nil, nil
	}
	s := &scanner{b: params}
	var found []byte
	err := s.object(func(k []byte) error {
		v, err := s.skip()
		if string(k) == key {
			found = v
		}
		return err
	})
	return found, err
}

// paramBool reads a boolean parameter; present is false when it is absent.
func paramBool(params []byte, key string) (val, present bool, err error) {
	v, err := paramValue(params, key)
	switch {
	case err != nil || v == nil:
		return false, false, err
	case string(v) == "true":
		return true, true, nil
	case string(v) == "false":
		return false, true, nil
	}
	return false, false, fmt.Errorf("parameter %q must be true or false, not %s", key, v)
}

// paramSize reads a non-negative integer parameter, -1 when it is absent.
func paramSize(params []byte, key string) (int64, error) {
	v, err := paramValue(params, key)
	if err != nil || v == nil {
		return -1, err
	}
	n, perr := strconv.ParseInt(string(v), 10, 64)
	if perr != nil || n < 0 {
		return -1, fmt.Errorf("parameter %q must be an integer ≥ 0, not %s", key, v)
	}
	return n, nil
}
