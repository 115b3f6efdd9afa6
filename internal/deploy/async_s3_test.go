package deploy

import (
	"encoding/json"
	"strings"
	"testing"

	hblob "github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/deploy/asyncq"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/s3test"
)

// TestAsyncS3: an input by reference in S3 (versitygw), results and
// error objects to S3 prefixes whose URLs carry the endpoint's query.
func TestAsyncS3(t *testing.T) {
	const access, secret = "asynctest", "asynctestsecret"
	srv := s3test.Start(t, access, secret, "data")
	q := srv.URLEnv(t)
	b, err := hblob.Open(t.Context(), "s3://data"+q)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.WriteAll(t.Context(), "in/one.json", []byte(`{"x":21}`), nil); err != nil {
		t.Fatal(err)
	}
	rep := newDoubler(t)
	h := newAsyncHarness(t, endpoint.Async{OutputPath: "s3://data/results/" + q}, rep.srv)
	h.run(0)
	ok := h.submit("", HeaderSageMakerInputLocation, "s3://data/in/one.json"+q)
	bad := h.submit(`{"x":-2}`)
	if !strings.HasPrefix(ok.OutputLocation, "s3://data/results/"+ok.InferenceID+".out?") ||
		!strings.HasPrefix(ok.FailureLocation, "s3://data/results/failures/"+ok.InferenceID+".error.json?") {
		t.Fatalf("locations %+v", ok)
	}
	if code, _, msg := h.do("POST", "/endpoints/ep/async-invocations", nil, HeaderInputLocation, "s3://data/in/none.json"+q); code != 400 ||
		!strings.Contains(string(msg), "does not exist") {
		t.Fatalf("a missing S3 input: %d %s", code, msg)
	}
	h.waitEnded([]string{ok.InferenceID, bad.InferenceID})
	if r := h.get(ok.InferenceID); r.State != asyncq.Succeeded || r.InputBytes != 8 || r.Inline {
		t.Fatalf("by reference: %+v", r)
	}
	got, err := b.ReadAll(t.Context(), "results/"+ok.InferenceID+".out")
	if err != nil || string(got) != `{"y":42}` {
		t.Fatalf("result in S3: %s %v", got, err)
	}
	fail, err := b.ReadAll(t.Context(), "results/failures/"+bad.InferenceID+".error.json")
	var doc failureDoc
	if err != nil || json.Unmarshal(fail, &doc) != nil || doc.Status != 400 {
		t.Fatalf("error object in S3: %s %v", fail, err)
	}
	code, _, body := h.do("GET", "/endpoints/ep/async-invocations/"+ok.InferenceID+"/output", nil)
	if code != 200 || string(body) != `{"y":42}` {
		t.Fatalf("output route from S3: %d %s", code, body)
	}
}
