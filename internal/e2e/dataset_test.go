package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/dataset"
)

// TestDatasets versions a local tree through the real binary and server:
// a version per change, none for an unchanged tree, manifests with the
// files' SHA-256, and bad manifests refused with nothing stored.
func TestDatasets(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.txt", "alpha\n")
	write("b.txt", "beta\n")
	if out := s.cli("dataset", "create", "demo", dir); !strings.Contains(out, "Created demo@1: 2 files") {
		t.Fatalf("first create: %q", out)
	}
	if out := s.cli("dataset", "create", "demo", dir); !strings.Contains(out, "Unchanged") || !strings.Contains(out, "demo@1") {
		t.Fatalf("unchanged create: %q", out)
	}
	write("b.txt", "BETA\n") // same size, new content
	if out := s.cli("dataset", "create", "demo", dir); !strings.Contains(out, "Created demo@2") {
		t.Fatalf("create after a change: %q", out)
	}
	var v1 struct {
		dataset.Version
		Manifest dataset.Manifest `json:"manifest"`
	}
	if err := json.Unmarshal([]byte(s.cli("dataset", "get", "demo@1", "-o", "json")), &v1); err != nil {
		t.Fatal(err)
	}
	if v1.Version.Version != 1 || len(v1.Manifest.Objects) != 2 || v1.Manifest.Objects[1].Key != "b.txt" || v1.Manifest.Objects[1].Size != 5 {
		t.Fatalf("demo@1 = %+v", v1)
	}
	if got, want := v1.Manifest.Objects[1].SHA256, sha256Hex("beta\n"); got != want {
		t.Fatalf("b.txt checksum in demo@1 %s, want %s", got, want)
	}
	if out := s.cli("dataset", "versions", "demo"); !strings.Contains(out, "\n2 ") || !strings.Contains(out, "\n1 ") {
		t.Fatalf("versions: %q", out)
	}

	for _, tt := range []struct {
		path, body, field string
	}{
		{"/api/v1/datasets/demo/versions", `{"objects":[{"key":"../x","size":1,"sha256":"` + strings.Repeat("a", 64) + `"}]}`, "objects"},
		{"/api/v1/datasets/demo/versions", `{"objects":[{"key":"x","size":1,"sha256":"nothex"}]}`, "objects"},
		{"/api/v1/datasets/demo/versions", `{"objects":[{"key":"x","size":-1,"sha256":"` + strings.Repeat("a", 64) + `"}]}`, "objects"},
		{"/api/v1/datasets/bad%20name/versions", `{"objects":[]}`, "name"},
		{"/api/v1/datasets/demo/versions", `{"objects":[], "extra": 1}`, ""},
	} {
		status, _, body := s.raw("POST", tt.path, s.Token, []byte(tt.body))
		if status != 400 || !strings.Contains(string(body), fmt.Sprintf(`"field":"%s"`, tt.field)) && tt.field != "" {
			t.Fatalf("POST %s %s: %d %s, want 400 on field %q", tt.path, tt.body, status, body, tt.field)
		}
	}
	if out := s.cli("dataset", "versions", "demo"); strings.Contains(out, "\n3 ") {
		t.Fatalf("a bad manifest made a version: %q", out)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
