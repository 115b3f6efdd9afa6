package deploy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkGateway compares a request straight to a replica with the
// same request through the gateway, both over loopback HTTP with
// keep-alive: the difference is the gateway's cost per request (its CPU
// and its extra hop), without the model.
func BenchmarkGateway(b *testing.B) {
	answer := []byte(`{"model_name":"m","outputs":[{"name":"output","shape":[1,10],"datatype":"FP32","data":[0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1]}]}`)
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
	defer replica.Close()
	g := NewGateway(GatewayConfig{Authorized: func(tok string) bool { return tok == "t" }})
	defer g.Close()
	g.SetRoute(&Route{Endpoint: "ep", Token: "rt", Variants: []RouteVariant{{Name: "v", Weight: 1, Fleets: []Fleet{{Model: "m",
		Percent: 100, Replicas: []*Replica{{Addr: strings.TrimPrefix(replica.URL, "http://")}}, Stats: g.Stats("ep", "v", 0)}}}}})
	mux := http.NewServeMux()
	mux.Handle("/endpoints/", g)
	front := httptest.NewServer(mux)
	defer front.Close()
	body := bytes.Repeat([]byte("x"), 300)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	run := func(b *testing.B, url string) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer t")
				resp, err := hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
			}
		})
	}
	b.Run("direct", func(b *testing.B) { run(b, replica.URL+"/v2/models/m/infer") })
	b.Run("gateway", func(b *testing.B) { run(b, front.URL+"/endpoints/ep/v2/models/x/infer") })
}
