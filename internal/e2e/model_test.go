package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/onnx"
	"github.com/hpcml/hpcml/internal/registry"
)

// TestModelRegistry trains a small model with the real binary, registers
// it straight from the training job (train --register) and again by the
// job's id, moves aliases, downloads by alias and checks the checksum
// against the training run's own file, and finds it all again after a
// kill -9 of the server.
func TestModelRegistry(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	data := moonsTable(t, 600)
	s.cli("dataset", "create", "moons", filepath.Dir(data)+"/")

	out, stderr, err := trainCLI(s, "-a", "mlp", "--data", "dataset://moons@1", "--label", "y", "--epochs", "2",
		"--hp", "hidden=16", "--wait", "--register", "moons", "-o", "json")
	if err != nil {
		t.Fatalf("train --register: %v\n%s", err, stderr)
	}
	var res struct {
		ID         int64             `json:"id"`
		Registered *registry.Version `json:"registered"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Registered == nil {
		t.Fatalf("train -o json: %v\n%s", err, out)
	}
	v1 := res.Registered
	if v1.Name != "moons" || v1.Version != 1 || v1.Lineage.TrainingJob != res.ID || v1.Lineage.Dataset != "moons:1" ||
		v1.Lineage.Algorithm != "mlp" || v1.Metrics["accuracy"] <= 0 || v1.Metadata["classes"] != "lower,upper" {
		t.Fatalf("registered %+v", v1)
	}
	if len(v1.Signature.Inputs) != 1 || len(v1.Signature.Inputs[0].Shape) != 2 || v1.Signature.Inputs[0].Shape[0] != -1 ||
		v1.Signature.Inputs[0].Shape[1] != 2 || v1.Signature.Inputs[0].DataType != "FP32" {
		t.Fatalf("signature %+v", v1.Signature)
	}
	// The registered bytes are the training run's model.onnx.
	_, _, trained := s.raw("GET", fmt.Sprintf("/api/v1/training/%d/onnx", res.ID), s.Token, nil)
	sum := sha256.Sum256(trained)
	if hex.EncodeToString(sum[:]) != v1.SHA256 || int64(len(trained)) != v1.Size {
		t.Fatalf("checksum %s (%d bytes), the run's model.onnx has %x (%d bytes)", v1.SHA256, v1.Size, sum, len(trained))
	}

	// The same job again, by id: version 2, same bytes.
	var v2 registry.Version
	if err := json.Unmarshal([]byte(s.cli("model", "register", "moons", "--from-training", strconv.FormatInt(res.ID, 10),
		"--description", "again", "-o", "json")), &v2); err != nil || v2.Version != 2 || v2.SHA256 != v1.SHA256 {
		t.Fatalf("register --from-training: %+v %v", v2, err)
	}

	// An unusable file: refused with the reason, nothing registered.
	bad := filepath.Join(t.TempDir(), "bad.onnx")
	os.WriteFile(bad, []byte("not a model"), 0o644)
	cmd := exec.Command(binary, "model", "register", "moons", "--artifact", bad, "--server", s.URL)
	cmd.Env = append(os.Environ(), "HPCML_TOKEN="+s.Token)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err == nil || !strings.Contains(errb.String(), "not a valid ONNX") {
		t.Fatalf("bad artefact: %v, stderr %q", err, errb.String())
	}

	s.cli("model", "alias", "moons", "production", "1")
	s.cli("model", "alias", "moons", "staging", "2")
	check := func(when string) {
		t.Helper()
		var got client.ModelVersion
		if err := json.Unmarshal([]byte(s.cli("model", "get", "moons:production", "-o", "json")), &got); err != nil ||
			got.Version.Version != 1 || strings.Join(got.Aliases, ",") != "production" {
			t.Fatalf("%s: moons:production = %+v %v", when, got, err)
		}
		var list []registry.Model
		if err := json.Unmarshal([]byte(s.cli("model", "list", "-o", "json")), &list); err != nil || len(list) != 1 ||
			list[0].VersionCount != 2 || list[0].Aliases["staging"] != 2 || list[0].Aliases["production"] != 1 {
			t.Fatalf("%s: model list %+v %v", when, list, err)
		}
		file := filepath.Join(t.TempDir(), "prod.onnx")
		s.cli("model", "download", "moons:production", "-o", file)
		got2, err := os.ReadFile(file)
		if err != nil || !bytes.Equal(got2, trained) {
			t.Fatalf("%s: the download differs from the trained model (%v)", when, err)
		}
	}
	check("registered")

	// The server's dashboard reads the same registry.
	if code, _, body := s.raw("GET", "/models", s.Token, nil); code != 200 || !strings.Contains(string(body), `data-model="moons"`) ||
		!strings.Contains(string(body), "production → 1") {
		t.Fatalf("dashboard /models: %d\n%s", code, body)
	}
	if code, _, body := s.raw("GET", "/models/moons?version=1", s.Token, nil); code != 200 || !strings.Contains(string(body), ">moons:1<") ||
		!strings.Contains(string(body), fmt.Sprintf(`href="/training/%d"`, res.ID)) {
		t.Fatalf("dashboard /models/moons: %d\n%s", code, body)
	}
	if code, _, body := s.raw("GET", "/models/moons/versions/1/model.onnx", s.Token, nil); code != 200 || !bytes.Equal(body, trained) {
		t.Fatalf("dashboard download: %d, %d bytes", code, len(body))
	}

	// The storage layout of the contract.
	key := filepath.Join(s.DataDir, "objects", "models", "moons", "2")
	if b, err := os.ReadFile(filepath.Join(key, "model.onnx")); err != nil || !bytes.Equal(b, trained) {
		t.Fatalf("models/moons/2/model.onnx: %v", err)
	}
	var rec registry.Version
	if b, err := os.ReadFile(filepath.Join(key, "version.json")); err != nil || json.Unmarshal(b, &rec) != nil || rec.Description != "again" {
		t.Fatalf("models/moons/2/version.json: %+v %v", rec, err)
	}

	// Durable: a crash of the server loses nothing.
	s.Kill9()
	s.Restart()
	check("after kill -9")
	if out := s.cli("model", "versions", "moons"); !strings.Contains(out, "production") || !strings.Contains(out, "staging") {
		t.Fatalf("versions after restart:\n%s", out)
	}
}

// TestModelRegisterKilled kills the server (kill -9) while it registers a
// 16 MB model, at several moments, and restarts it: each time, every
// version the registry shows is whole (its stored bytes match its
// checksum, which is one of the files sent), and registering again works
// and gets the next number. Whether a given kill lands before or after
// the commit does not matter; a half version must never be visible.
func TestModelRegisterKilled(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "1")
	dir := t.TempDir()
	files := map[string]string{} // sha256 -> path
	var paths []string
	for seed := range 2 {
		m, err := nn.Build(nn.Spec{Input: []int{2000}, Layers: []nn.LayerSpec{{Type: "dense", Units: 2000}, {Type: "relu"}, {Type: "dense", Units: 2}}}, uint64(seed+1))
		if err != nil {
			t.Fatal(err)
		}
		data, err := onnx.Export(m, onnx.ExportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("big%d.onnx", seed))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		files[hex.EncodeToString(sum[:])] = p
		paths = append(paths, p)
	}
	check := func(when string) int {
		t.Helper()
		m, err := s.Client.GetModel(ctxFor(t, 30*time.Second), "big")
		if client.IsNotFound(err) {
			return 0
		}
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		for i, v := range m.Versions {
			if v.Version != m.VersionCount-i {
				t.Fatalf("%s: versions %d of %d are not numbered 1..n", when, v.Version, m.VersionCount)
			}
			if _, ok := files[v.SHA256]; !ok {
				t.Fatalf("%s: version %d has a checksum of neither file sent", when, v.Version)
			}
			// DownloadModel fails unless the stored bytes have the
			// recorded SHA-256.
			if _, _, err := s.Client.DownloadModel(ctxFor(t, 30*time.Second), registry.Ref{Name: "big", Version: v.Version}, io.Discard); err != nil {
				t.Fatalf("%s: version %d: %v", when, v.Version, err)
			}
		}
		return m.VersionCount
	}
	// Kills every 20 ms from the request's start to well past a whole
	// registration here (~200 ms, most of it reading and compiling the
	// file). The window between the object writes and the commit is a
	// few ms, so a run may not land in it; the state it would leave
	// (objects under an uncommitted number) is made deterministically by
	// the registry's TestOrphanObjectsOfAnInterruptedRegisterAreInvisibleAndReplaced.
	for i := range 20 {
		delay := time.Duration(i) * 20 * time.Millisecond
		done := make(chan error, 1)
		go func() {
			_, err := s.Client.RegisterModel(context.Background(), registry.RegisterRequest{Name: "big", Artifact: paths[i%2]})
			done <- err
		}()
		time.Sleep(delay)
		s.Kill9()
		<-done
		s.Restart()
		n := check(fmt.Sprintf("after a kill %v into registration %d", delay, i+1))
		// Objects under a number no row names are what a kill between
		// the writes and the commit leaves; the next registration
		// overwrites them (logged to show which path a run took).
		stored, _ := filepath.Glob(filepath.Join(s.DataDir, "objects", "models", "big", "*", "model.onnx"))
		t.Logf("kill %v into registration %d: %d versions visible, %d stored artefacts", delay, i+1, n, len(stored))
	}
	before := check("before the last registration")
	v, err := s.Client.RegisterModel(ctxFor(t, 60*time.Second), registry.RegisterRequest{Name: "big", Artifact: paths[1]})
	if err != nil || v.Version != before+1 {
		t.Fatalf("registration after the kills: %+v %v (had %d versions)", v, err, before)
	}
	if files[v.SHA256] != paths[1] {
		t.Fatal("the last version's checksum is not its file's")
	}
	check("at the end")
}
