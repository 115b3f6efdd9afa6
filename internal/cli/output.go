package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"
)

// Output formats of -o.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// format returns the -o format, checked against those the command offers.
func (o *rootOptions) format(allowed ...string) (string, error) {
	f := strings.ToLower(strings.TrimSpace(o.output))
	if f == "" {
		f = formatTable
	}
	if !slices.Contains(allowed, f) {
		return "", fmt.Errorf("-o %s: this command prints %s", o.output, strings.Join(allowed, ", "))
	}
	return f, nil
}

// printDoc writes v as JSON or YAML.
func printDoc(w io.Writer, format string, v any) error {
	switch format {
	case formatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case formatYAML:
		return printYAML(w, v)
	}
	return fmt.Errorf("cannot print %s as a document", format)
}

// printYAML writes v as YAML with the same field names as its JSON (the
// API's names), since the job types carry json tags only. It goes through
// JSON and a yaml.Node, which keeps the fields in their JSON order.
func printYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("encode yaml: %w", err)
	}
	plainStyle(&n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return fmt.Errorf("encode yaml: %w", err)
	}
	return enc.Close()
}

// plainStyle drops the flow and quoting styles the JSON text left on the
// nodes, so the output reads as block YAML.
func plainStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		plainStyle(c)
	}
}

// newTable returns a tabwriter for aligned columns; call Flush when done.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}
