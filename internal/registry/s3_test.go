package registry

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/s3test"
	"github.com/hpcml/hpcml/internal/store"
)

// TestS3 registers from an s3:// URL into a registry whose own storage is
// S3 too (a real S3 server, versitygw): the artefact lands byte for byte
// under models/NAME/VERSION/, and a missing key is refused naming it.
func TestS3(t *testing.T) {
	const access, secret = "registrytest", "registrytestsecret"
	srv := s3test.Start(t, access, secret, "lake", "platform")
	q := srv.URLEnv(t)
	ctx := t.Context()
	lake, err := blob.Open(ctx, "s3://lake"+q)
	if err != nil {
		t.Fatal(err)
	}
	defer lake.Close()
	data := tinyModel(t, 7)
	if err := lake.WriteAll(ctx, "models/exported/iris.onnx", data, nil); err != nil {
		t.Fatal(err)
	}
	platform, err := blob.Open(ctx, "s3://platform"+q)
	if err != nil {
		t.Fatal(err)
	}
	defer platform.Close()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "hpcml.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := New(st, platform, nil)
	defer reg.Close()

	v, err := reg.Register(ctx, RegisterRequest{Name: "iris", Artifact: "s3://lake/models/exported/iris.onnx" + q})
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != 1 || v.SHA256 != sum(data) {
		t.Fatalf("%+v", v)
	}
	got, err := platform.ReadAll(ctx, "models/iris/1/model.onnx")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("artefact in the platform's S3 storage: %v", err)
	}
	if _, err := platform.ReadAll(ctx, "models/iris/1/version.json"); err != nil {
		t.Fatalf("version.json: %v", err)
	}
	_, err = reg.Register(ctx, RegisterRequest{Name: "iris", Artifact: "s3://lake/models/exported/nope.onnx" + q})
	var ie *InputError
	if !errors.As(err, &ie) || ie.Field != "artifact" {
		t.Fatalf("missing S3 key: %v", err)
	}
	if m, _ := reg.Get(ctx, "iris"); m.VersionCount != 1 {
		t.Fatalf("versions after a refused registration: %d", m.VersionCount)
	}
}
