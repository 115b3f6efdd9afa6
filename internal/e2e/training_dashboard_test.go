package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDashboardTraining: a run trained as a job through the server is
// listed on the dashboard's /training with its job's state, its page
// renders with the run's points embedded, its metrics come from the
// dashboard's own endpoint, and its model downloads through the
// dashboard the same as through the API.
func TestDashboardTraining(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")

	get := func(target string, want int) []byte {
		t.Helper()
		code, _, body := s.raw("GET", target, s.Token, nil)
		if code != want {
			t.Fatalf("GET %s: %d, want %d\n%.400s", target, code, want, body)
		}
		return body
	}
	if body := get("/training", http.StatusOK); !bytes.Contains(body, []byte("No training runs yet")) {
		t.Fatalf("the training page before any run:\n%.1000s", body)
	}

	out, stderr, err := trainCLI(s, "-a", "linear", "--data", moonsTable(t, 600), "--label", "y", "--epochs", "2", "--wait", "-o", "json")
	if err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	var res struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.ID == 0 {
		t.Fatalf("train -o json: %v\n%s", err, out)
	}
	id := strconv.FormatInt(res.ID, 10)

	list := string(get("/training", http.StatusOK))
	for _, want := range []string{`data-run="` + id + `"`, `href="/training/` + id + `"`, `<span class="badge st-succeeded">SUCCEEDED</span>`,
		`<span class="metric-name">accuracy</span>`} {
		if !strings.Contains(list, want) {
			t.Errorf("the training page lacks %q", want)
		}
	}

	page := string(get("/training/"+id, http.StatusOK))
	for _, want := range []string{`id="chart-loss"`, `id="chart-accuracy"`, `id="chart-confusion"`, `href="/jobs/` + id + `"`,
		`href="/training/` + id + `/model.onnx"`, "lower", "upper", "/static/training.js"} {
		if !strings.Contains(page, want) {
			t.Errorf("the run page lacks %q", want)
		}
	}
	m := regexp.MustCompile(`(?s)<script type="application/json" id="training-data">(.*?)</script>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the run page embeds no metrics")
	}
	var embedded struct {
		Total int  `json:"total"`
		Live  bool `json:"live"`
	}
	if err := json.Unmarshal([]byte(m[1]), &embedded); err != nil || embedded.Total == 0 || embedded.Live {
		t.Errorf("embedded: %+v (%v)", embedded, err)
	}

	// The dashboard's metrics are the API's.
	var dash, api struct {
		Total  int               `json:"total"`
		Points []json.RawMessage `json:"points"`
	}
	if err := json.Unmarshal(get("/ui/training/"+id+"/metrics", http.StatusOK), &dash); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(get("/api/v1/training/"+id+"/metrics", http.StatusOK), &api); err != nil {
		t.Fatal(err)
	}
	if dash.Total != embedded.Total || dash.Total != api.Total || len(dash.Points) != api.Total {
		t.Errorf("metrics: dashboard %d (%d points), embedded %d, API %d", dash.Total, len(dash.Points), embedded.Total, api.Total)
	}

	model := get("/training/"+id+"/model.onnx", http.StatusOK)
	if want := get("/api/v1/training/"+id+"/onnx", http.StatusOK); len(model) == 0 || !bytes.Equal(model, want) {
		t.Errorf("the dashboard's model.onnx (%d bytes) differs from the API's (%d bytes)", len(model), len(want))
	}

	get("/training/999999", http.StatusNotFound)
	get("/training/not-a-run", http.StatusBadRequest)
}
