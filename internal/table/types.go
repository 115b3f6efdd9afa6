package table

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// The five column types every reader yields; all columns are nullable.
var (
	Int64   arrow.DataType = arrow.PrimitiveTypes.Int64
	Float64 arrow.DataType = arrow.PrimitiveTypes.Float64
	Boolean arrow.DataType = arrow.FixedWidthTypes.Boolean
	String  arrow.DataType = arrow.BinaryTypes.String
	// Timestamp is microseconds since the Unix epoch, UTC. Dates are
	// midnight UTC; times without a zone are taken as UTC; Parquet's
	// nanosecond timestamps are truncated to microseconds.
	Timestamp arrow.DataType = arrow.FixedWidthTypes.Timestamp_us
)

type kind uint8

const (
	kindInt64 kind = iota
	kindFloat64
	kindBoolean
	kindTimestamp
	kindString
)

var kinds = [...]struct {
	name string
	typ  arrow.DataType
}{
	kindInt64:     {"int64", Int64},
	kindFloat64:   {"float64", Float64},
	kindBoolean:   {"bool", Boolean},
	kindTimestamp: {"timestamp", Timestamp},
	kindString:    {"string", String},
}

func (k kind) String() string       { return kinds[k].name }
func (k kind) Type() arrow.DataType { return kinds[k].typ }
func (k kind) article() string      { return map[bool]string{true: "an", false: "a"}[k == kindInt64] }
func (k kind) describe() string     { return k.article() + " " + k.String() }
func typeNames() string             { return "int64, float64, bool, timestamp, string" }
func kindOfName(s string) (kind, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "int64", "int", "integer", "bigint":
		return kindInt64, true
	case "float64", "float", "double", "number":
		return kindFloat64, true
	case "bool", "boolean":
		return kindBoolean, true
	case "timestamp", "datetime", "date", "time":
		return kindTimestamp, true
	case "string", "str", "text", "utf8":
		return kindString, true
	}
	return 0, false
}

// kindOf is the kind of one of the five types.
func kindOf(t arrow.DataType) (kind, bool) {
	for k, v := range kinds {
		if arrow.TypeEqual(v.typ, t) {
			return kind(k), true
		}
	}
	return 0, false
}

// ParseType reads a type name: int64, float64, bool, timestamp or string
// (and the usual synonyms: int, double, boolean, date, text, ...).
func ParseType(name string) (arrow.DataType, error) {
	k, ok := kindOfName(name)
	if !ok {
		return nil, fmt.Errorf("unknown column type %q (one of %s)", name, typeNames())
	}
	return k.Type(), nil
}

// TypeName is the name ParseType reads for one of the five types, or the
// type's own name for any other.
func TypeName(t arrow.DataType) string {
	if k, ok := kindOf(t); ok {
		return k.String()
	}
	return t.String()
}

// Column is a column of a Spec: its name and type name (see ParseType).
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Set: the type was given (Options.Types), not inferred.
	Set bool `json:"set,omitempty"`
}

// schemaOf is the Arrow schema of columns.
func schemaOf(cols []Column) (*arrow.Schema, []kind, error) {
	fields := make([]arrow.Field, len(cols))
	ks := make([]kind, len(cols))
	for i, c := range cols {
		k, ok := kindOfName(c.Type)
		if !ok {
			return nil, nil, fmt.Errorf("column %q: unknown type %q (one of %s)", c.Name, c.Type, typeNames())
		}
		fields[i] = arrow.Field{Name: c.Name, Type: k.Type(), Nullable: true}
		ks[i] = k
	}
	return arrow.NewSchema(fields, nil), ks, nil
}
