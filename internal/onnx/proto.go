package onnx

// The ONNX protobuf subset this package reads and writes, encoded by hand
// with protowire: the generated onnx.pb.go would pull in a code generator
// and its runtime for a dozen messages. Field numbers are those of the
// official onnx/onnx.proto (checked against the copy Debian's python3-onnx
// 1.12 ships). Unknown fields are skipped on decode, as protobuf requires,
// so models from newer exporters still load.

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// TensorProto.DataType values this package handles; dataTypeName names
// the rest for errors.
const (
	dtFloat  int32 = 1
	dtInt32  int32 = 6
	dtInt64  int32 = 7
	dtBool   int32 = 9
	dtDouble int32 = 11
)

// dataTypeName is the ONNX name of a TensorProto.DataType, for errors.
func dataTypeName(t int32) string {
	names := [...]string{"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64",
		"STRING", "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"}
	if t >= 0 && int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("data type %d", t)
}

// AttributeProto.AttributeType values written and checked here.
const (
	attrFloat  int32 = 1
	attrInt    int32 = 2
	attrString int32 = 3
	attrTensor int32 = 4
	attrFloats int32 = 6
	attrInts   int32 = 7
)

type modelProto struct {
	IRVersion       int64
	OpsetImport     []opsetID
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	DocString       string
	Graph           *graphProto
	MetadataProps   []stringPair
}

type opsetID struct {
	Domain  string
	Version int64
}

type stringPair struct{ Key, Value string }

type graphProto struct {
	Nodes        []*nodeProto
	Name         string
	Initializers []*tensorProto
	DocString    string
	Inputs       []*valueInfoProto
	Outputs      []*valueInfoProto
	// HasSparse records sparse initializers, which Load refuses rather
	// than ignores: nodes would find their inputs undefined.
	HasSparse bool
}

type nodeProto struct {
	Inputs     []string
	Outputs    []string
	Name       string
	OpType     string
	Domain     string
	Attributes []*attributeProto
	DocString  string
}

type attributeProto struct {
	Name    string
	Type    int32
	F       float32
	I       int64
	S       []byte
	T       *tensorProto
	Floats  []float32
	Ints    []int64
	Strings [][]byte
	// RefAttrName is set inside function bodies only; a node that uses it
	// is outside what Load supports.
	RefAttrName string
}

type tensorProto struct {
	Dims       []int64
	DataType   int32
	FloatData  []float32
	Int32Data  []int32
	Int64Data  []int64
	DoubleData []float64
	Name       string
	RawData    []byte
	// HasRaw tells an empty raw_data apart from none.
	HasRaw bool
	// External is set when the values live in another file (data_location
	// EXTERNAL); Load refuses those.
	External bool
}

type valueInfoProto struct {
	Name      string
	Type      *typeProto
	DocString string
}

// typeProto keeps only tensor types; NonTensor records a sequence, map,
// optional or sparse type, which Load refuses.
type typeProto struct {
	ElemType  int32
	Shape     []dimension
	HasShape  bool
	NonTensor bool
}

// dimension is a TensorShapeProto.Dimension: a value, a symbolic name, or
// neither (unknown).
type dimension struct {
	Value    int64
	Param    string
	HasValue bool
}

// ---- encoding ----

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendInt(b []byte, num protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func (m *modelProto) marshal() []byte {
	var b []byte
	b = appendInt(b, 1, m.IRVersion)
	b = appendString(b, 2, m.ProducerName)
	b = appendString(b, 3, m.ProducerVersion)
	b = appendString(b, 4, m.Domain)
	if m.ModelVersion != 0 {
		b = appendInt(b, 5, m.ModelVersion)
	}
	b = appendString(b, 6, m.DocString)
	if m.Graph != nil {
		b = appendMessage(b, 7, m.Graph.marshal())
	}
	for _, o := range m.OpsetImport {
		var ob []byte
		ob = appendString(ob, 1, o.Domain)
		ob = appendInt(ob, 2, o.Version)
		b = appendMessage(b, 8, ob)
	}
	for _, p := range m.MetadataProps {
		var pb []byte
		pb = appendString(pb, 1, p.Key)
		pb = appendString(pb, 2, p.Value)
		b = appendMessage(b, 14, pb)
	}
	return b
}

func (g *graphProto) marshal() []byte {
	var b []byte
	for _, n := range g.Nodes {
		b = appendMessage(b, 1, n.marshal())
	}
	b = appendString(b, 2, g.Name)
	for _, t := range g.Initializers {
		b = appendMessage(b, 5, t.marshal())
	}
	b = appendString(b, 10, g.DocString)
	for _, v := range g.Inputs {
		b = appendMessage(b, 11, v.marshal())
	}
	for _, v := range g.Outputs {
		b = appendMessage(b, 12, v.marshal())
	}
	return b
}

func (n *nodeProto) marshal() []byte {
	var b []byte
	for _, s := range n.Inputs {
		// An empty name marks an omitted optional input and must be kept.
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	for _, s := range n.Outputs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	b = appendString(b, 3, n.Name)
	b = appendString(b, 4, n.OpType)
	for _, a := range n.Attributes {
		b = appendMessage(b, 5, a.marshal())
	}
	b = appendString(b, 6, n.DocString)
	b = appendString(b, 7, n.Domain)
	return b
}

func (a *attributeProto) marshal() []byte {
	var b []byte
	b = appendString(b, 1, a.Name)
	switch a.Type {
	case attrFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case attrInt:
		b = appendInt(b, 3, a.I)
	case attrString:
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, a.S)
	case attrTensor:
		b = appendMessage(b, 5, a.T.marshal())
	case attrFloats:
		// proto2 repeated scalars without [packed=true]: one tag per value.
		for _, f := range a.Floats {
			b = protowire.AppendTag(b, 7, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, math.Float32bits(f))
		}
	case attrInts:
		for _, v := range a.Ints {
			b = appendInt(b, 8, v)
		}
	}
	b = appendInt(b, 20, int64(a.Type))
	return b
}

func (t *tensorProto) marshal() []byte {
	var b []byte
	for _, d := range t.Dims {
		b = appendInt(b, 1, d)
	}
	b = appendInt(b, 2, int64(t.DataType))
	if len(t.FloatData) > 0 {
		var pb []byte
		for _, f := range t.FloatData {
			pb = protowire.AppendFixed32(pb, math.Float32bits(f))
		}
		b = appendMessage(b, 4, pb)
	}
	if len(t.Int64Data) > 0 {
		var pb []byte
		for _, v := range t.Int64Data {
			pb = protowire.AppendVarint(pb, uint64(v))
		}
		b = appendMessage(b, 7, pb)
	}
	b = appendString(b, 8, t.Name)
	if t.HasRaw {
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendBytes(b, t.RawData)
	}
	return b
}

func (v *valueInfoProto) marshal() []byte {
	var b []byte
	b = appendString(b, 1, v.Name)
	if v.Type != nil {
		b = appendMessage(b, 2, v.Type.marshal())
	}
	b = appendString(b, 3, v.DocString)
	return b
}

func (t *typeProto) marshal() []byte {
	var tt []byte
	tt = appendInt(tt, 1, int64(t.ElemType))
	if t.HasShape {
		var sb []byte
		for _, d := range t.Shape {
			var db []byte
			if d.HasValue {
				db = appendInt(db, 1, d.Value)
			} else {
				db = appendString(db, 2, d.Param)
			}
			sb = appendMessage(sb, 1, db)
		}
		tt = appendMessage(tt, 2, sb)
	}
	return appendMessage(nil, 1, tt)
}

// floatRaw is the little-endian raw_data encoding of float32 values, the
// form PyTorch and onnx.numpy_helper write.
func floatRaw(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// ---- decoding ----

// field is one decoded key-value pair of a message: u holds varint and
// fixed-width values, b the bytes of a length-delimited one.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64
	b   []byte
}

// eachField calls fn for every field of the message in b, in order.
func eachField(b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.u = uint64(v)
		case protowire.Fixed64Type:
			f.u, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			// Groups: obsolete, never in ONNX; skipped whole.
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

func (f field) want(t protowire.Type) error {
	if f.typ != t {
		return fmt.Errorf("field %d has wire type %d, want %d", f.num, f.typ, t)
	}
	return nil
}

func (f field) int64() (int64, error) {
	return int64(f.u), f.want(protowire.VarintType)
}

func (f field) string() (string, error) {
	return string(f.b), f.want(protowire.BytesType)
}

func (f field) bytes() ([]byte, error) {
	return f.b, f.want(protowire.BytesType)
}

func (f field) float32() (float32, error) {
	return math.Float32frombits(uint32(f.u)), f.want(protowire.Fixed32Type)
}

// appendVarints adds a repeated varint field's values, packed or not:
// a parser must accept both encodings whatever the schema says.
func (f field) appendVarints(dst []int64) ([]int64, error) {
	if f.typ == protowire.VarintType {
		return append(dst, int64(f.u)), nil
	}
	if err := f.want(protowire.BytesType); err != nil {
		return nil, err
	}
	for b := f.b; len(b) > 0; {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return nil, fmt.Errorf("field %d: %w", f.num, protowire.ParseError(n))
		}
		dst = append(dst, int64(v))
		b = b[n:]
	}
	return dst, nil
}

func (f field) appendFloats(dst []float32) ([]float32, error) {
	if f.typ == protowire.Fixed32Type {
		return append(dst, math.Float32frombits(uint32(f.u))), nil
	}
	if err := f.want(protowire.BytesType); err != nil {
		return nil, err
	}
	if len(f.b)%4 != 0 {
		return nil, fmt.Errorf("field %d: packed floats of %d bytes", f.num, len(f.b))
	}
	for i := 0; i < len(f.b); i += 4 {
		dst = append(dst, math.Float32frombits(binary.LittleEndian.Uint32(f.b[i:])))
	}
	return dst, nil
}

func (f field) appendDoubles(dst []float64) ([]float64, error) {
	if f.typ == protowire.Fixed64Type {
		return append(dst, math.Float64frombits(f.u)), nil
	}
	if err := f.want(protowire.BytesType); err != nil {
		return nil, err
	}
	if len(f.b)%8 != 0 {
		return nil, fmt.Errorf("field %d: packed doubles of %d bytes", f.num, len(f.b))
	}
	for i := 0; i < len(f.b); i += 8 {
		dst = append(dst, math.Float64frombits(binary.LittleEndian.Uint64(f.b[i:])))
	}
	return dst, nil
}

func decodeModel(b []byte) (*modelProto, error) {
	m := &modelProto{}
	err := eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.IRVersion, err = f.int64()
		case 2:
			m.ProducerName, err = f.string()
		case 3:
			m.ProducerVersion, err = f.string()
		case 4:
			m.Domain, err = f.string()
		case 5:
			m.ModelVersion, err = f.int64()
		case 6:
			m.DocString, err = f.string()
		case 7:
			var gb []byte
			if gb, err = f.bytes(); err == nil {
				m.Graph, err = decodeGraph(gb)
			}
		case 8:
			var ob []byte
			if ob, err = f.bytes(); err == nil {
				var o opsetID
				o, err = decodeOpset(ob)
				m.OpsetImport = append(m.OpsetImport, o)
			}
		case 14:
			var pb []byte
			if pb, err = f.bytes(); err == nil {
				var p stringPair
				p, err = decodeStringPair(pb)
				m.MetadataProps = append(m.MetadataProps, p)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ModelProto: %w", err)
	}
	return m, nil
}

func decodeOpset(b []byte) (opsetID, error) {
	var o opsetID
	err := eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			o.Domain, err = f.string()
		case 2:
			o.Version, err = f.int64()
		}
		return err
	})
	if err != nil {
		return o, fmt.Errorf("opset_import: %w", err)
	}
	return o, nil
}

func decodeStringPair(b []byte) (stringPair, error) {
	var p stringPair
	err := eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			p.Key, err = f.string()
		case 2:
			p.Value, err = f.string()
		}
		return err
	})
	if err != nil {
		return p, fmt.Errorf("metadata_props: %w", err)
	}
	return p, nil
}

func decodeGraph(b []byte) (*graphProto, error) {
	g := &graphProto{}
	err := eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			var nb []byte
			if nb, err = f.bytes(); err == nil {
				var n *nodeProto
				n, err = decodeNode(nb)
				g.Nodes = append(g.Nodes, n)
			}
		case 2:
			g.Name, err = f.string()
		case 5:
			var tb []byte
			if tb, err = f.bytes(); err == nil {
				var t *tensorProto
				t, err = decodeTensor(tb)
				g.Initializers = append(g.Initializers, t)
			}
		case 10:
			g.DocString, err = f.string()
		case 11, 12:
			var vb []byte
			if vb, err = f.bytes(); err == nil {
				var v *valueInfoProto
				v, err = decodeValueInfo(vb)
				if f.num == 11 {
					g.Inputs = append(g.Inputs, v)
				} else {
					g.Outputs = append(g.Outputs, v)
				}
			}
		case 15:
			g.HasSparse = true
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("GraphProto: %w", err)
	}
	return g, nil
}

func decodeNode(b []byte) (*nodeProto, error) {
	n := &nodeProto{}
	err := eachField(b, func(f field) error {
		var err error
		var s string
		switch f.num {
		case 1:
			s, err = f.string()
			n.Inputs = append(n.Inputs, s)
		case 2:
			s, err = f.string()
			n.Outputs = append(n.Outputs, s)
		case 3:
			n.Name, err = f.string()
		case 4:
			n.OpType, err = f.string()
		case 5:
			var ab []byte
			if ab, err = f.bytes(); err == nil {
				var a *attributeProto
				a, err = decodeAttribute(ab)
				n.Attributes = append(n.Attributes, a)
			}
		case 6:
			n.DocString, err = f.string()
		case 7:
			n.Domain, err = f.string()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("NodeProto: %w", err)
	}
	return n, nil
}

func decodeAttribute(b []byte) (*attributeProto, error) {
	a := &attributeProto{}
	err := eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			a.Name, err = f.string()
		case 2:
			a.F, err = f.float32()
		case 3:
			a.I, err = f.int64()
		case 4:
			a.S, err = f.bytes()
		case 5:
			var tb []byte
			if tb, err = f.bytes(); err == nil {
				a.T, err = decodeTensor(tb)
			}
		case 7:
			a.Floats, err = f.appendFloats(a.Floats)
		case 8:
			a.Ints, err = f.appendVarints(a.Ints)
		case 9:
			var s []byte
			s, err = f.bytes()
			a.Strings = append(a.Strings, s)
		case 20:
			var t int64
			t, err = f.int64()
			a.Type = int32(t)
		case 21:
			a.RefAttrName, err = f.string()
		}
		// Graphs (6), sparse tensors, type protos: only control-flow and
		// other unsupported ops carry them; skipping them also keeps a
		// hostile file from driving deep recursion.
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("AttributeProto %q: %w", a.Name, err)
	}
	return a, nil
}

func decodeTensor(b []byte) (*tensorProto, error) {
	t := &tensorProto{}
	err := eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			t.Dims, err = f.appendVarints(t.Dims)
		case 2:
			var v int64
			v, err = f.int64()
			t.DataType = int32(v)
		case 4:
			t.FloatData, err = f.appendFloats(t.FloatData)
		case 5:
			var vs []int64
			vs, err = f.appendVarints(nil)
			for _, v := range vs {
				t.Int32Data = append(t.Int32Data, int32(v))
			}
		case 7:
			t.Int64Data, err = f.appendVarints(t.Int64Data)
		case 8:
			t.Name, err = f.string()
		case 9:
			t.RawData, err = f.bytes()
			t.HasRaw = true
		case 10:
			t.DoubleData, err = f.appendDoubles(t.DoubleData)
		case 13:
			t.External = true
		case 14:
			var v int64
			v, err = f.int64()
			t.External = t.External || v == 1
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("TensorProto %q: %w", t.Name, err)
	}
	return t, nil
}

func decodeValueInfo(b []byte) (*valueInfoProto, error) {
	v := &valueInfoProto{}
	err := eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			v.Name, err = f.string()
		case 2:
			var tb []byte
			if tb, err = f.bytes(); err == nil {
				v.Type, err = decodeType(tb)
			}
		case 3:
			v.DocString, err = f.string()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ValueInfoProto %q: %w", v.Name, err)
	}
	return v, nil
}

func decodeType(b []byte) (*typeProto, error) {
	t := &typeProto{}
	err := eachField(b, func(f field) error {
		switch f.num {
		case 1:
			tb, err := f.bytes()
			if err != nil {
				return err
			}
			return eachField(tb, func(f field) error {
				var err error
				switch f.num {
				case 1:
					var v int64
					v, err = f.int64()
					t.ElemType = int32(v)
				case 2:
					var sb []byte
					if sb, err = f.bytes(); err == nil {
						t.HasShape = true
						t.Shape, err = decodeShape(sb)
					}
				}
				return err
			})
		case 4, 5, 8, 9:
			t.NonTensor = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("TypeProto: %w", err)
	}
	return t, nil
}

func decodeShape(b []byte) ([]dimension, error) {
	var dims []dimension
	err := eachField(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		db, err := f.bytes()
		if err != nil {
			return err
		}
		var d dimension
		err = eachField(db, func(f field) error {
			var err error
			switch f.num {
			case 1:
				d.Value, err = f.int64()
				d.HasValue = true
			case 2:
				d.Param, err = f.string()
			}
			return err
		})
		dims = append(dims, d)
		return err
	})
	return dims, err
}
