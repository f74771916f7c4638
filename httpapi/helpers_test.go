package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seedscheduler/schedulerd/cluster"
)

// objectKeys returns the keys of the JSON object body in document order.
func objectKeys(t *testing.T, body string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", body)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
	}
	return keys
}

func (a *testAPI) server(t *testing.T) *Server {
	t.Helper()
	s, ok := a.srv.Config.Handler.(*Server)
	if !ok {
		t.Fatalf("test server handler is %T, not *Server", a.srv.Config.Handler)
	}
	return s
}

func TestAPIRoot(t *testing.T) {
	a := mustAPI(t)
	u := a.srv.URL
	cases := []struct {
		name, path, token string
		hdr               []string
		status            int
		want              string
	}{
		{"root", "/api/v1/", adminToken, nil, 200, `{"user":"` + u + `/api/v1/user/","group":"` + u + `/api/v1/group/","schedule":"` +
			u + `/api/v1/schedule/","webhook":"` + u + `/api/v1/webhook/","failed-tasks":"` + u + `/api/v1/failed-tasks/"}`},
		{"no trailing slash behind the load balancer", "/api/v1", adminToken, []string{"X-Forwarded-Proto", "https", "X-Forwarded-Host", "lb.example.org"}, 200,
			`{"user":"https://lb.example.org/api/v1/user/","group":"https://lb.example.org/api/v1/group/","schedule":"https://lb.example.org/api/v1/schedule/",` +
				`"webhook":"https://lb.example.org/api/v1/webhook/","failed-tasks":"https://lb.example.org/api/v1/failed-tasks/"}`},
		{"anonymous", "/api/v1/", "", nil, 401, `{"detail":"Authentication credentials were not provided."}`},
		{"unknown token", "/api/v1/", strings.Repeat("0", 40), nil, 401, `{"detail":"Invalid token."}`},
	}
	for _, c := range cases {
		r := a.do(t, "GET", c.path, c.token, "", "", c.hdr...)
		if r.status != c.status || r.body != c.want {
			t.Errorf("%s: got %d %s\nwant %d %s", c.name, r.status, r.body, c.status, c.want)
		}
	}
	if r := a.do(t, "POST", "/api/v1/", adminToken, "application/json", `{}`); r.status != 405 ||
		r.header.Get("Allow") != "GET, HEAD, OPTIONS" || r.body != `{"detail":"Method \"POST\" not allowed."}` {
		t.Errorf("POST /api/v1/: got %d Allow=%q %s, want 405 Allow=%q", r.status, r.header.Get("Allow"), r.body, "GET, HEAD, OPTIONS")
	}
}

func TestMetricsList(t *testing.T) {
	a := mustAPI(t)
	wantList := `{"metrics_available":["schedules.created.sum","scheduler.deliver_task.connection_error.sum",` +
		`"scheduler.deliver_task.http_error.400.sum","scheduler.deliver_task.http_error.401.sum",` +
		`"scheduler.deliver_task.http_error.403.sum","scheduler.deliver_task.http_error.404.sum",` +
		`"scheduler.deliver_task.http_error.500.sum","scheduler.deliver_task.timeout.sum"]}`
	cases := []struct {
		name, method, path, token, ctype, body string
		status                                 int
		want, allow                            string
	}{
		{"list", "GET", "/api/metrics/", adminToken, "", "", 200, wantList, ""},
		{"list without slash", "GET", "/api/metrics", adminToken, "", "", 200, wantList, ""},
		{"start", "POST", "/api/metrics/", adminToken, "application/json", `{}`, 201, `{"scheduled_metrics_initiated":true}`, ""},
		{"start, no body", "POST", "/api/metrics/", adminToken, "", "", 201, `{"scheduled_metrics_initiated":true}`, ""},
		{"anonymous list", "GET", "/api/metrics/", "", "", "", 401, `{"detail":"Authentication credentials were not provided."}`, ""},
		{"anonymous start", "POST", "/api/metrics/", "", "application/json", `{}`, 401, `{"detail":"Authentication credentials were not provided."}`, ""},
		{"anonymous PUT is 401 first", "PUT", "/api/metrics/", "", "application/json", `{}`, 401, `{"detail":"Authentication credentials were not provided."}`, ""},
		{"PUT", "PUT", "/api/metrics/", adminToken, "application/json", `{}`, 405, `{"detail":"Method \"PUT\" not allowed."}`, "GET, HEAD, OPTIONS, POST"},
		{"DELETE", "DELETE", "/api/metrics/", adminToken, "", "", 405, `{"detail":"Method \"DELETE\" not allowed."}`, "GET, HEAD, OPTIONS, POST"},
	}
	for _, c := range cases {
		r := a.do(t, c.method, c.path, c.token, c.ctype, c.body)
		if r.status != c.status || r.body != c.want || r.header.Get("Allow") != c.allow {
			t.Errorf("%s: got %d Allow=%q %s\nwant %d Allow=%q %s", c.name, r.status, r.header.Get("Allow"), r.body, c.status, c.allow, c.want)
		}
		if r.status == 401 && r.header.Get("WWW-Authenticate") != `Basic realm="api"` {
			t.Errorf("%s: WWW-Authenticate %q, want %q", c.name, r.header.Get("WWW-Authenticate"), `Basic realm="api"`)
		}
	}
}

func TestHealth(t *testing.T) {
	a := mustAPI(t)
	r := a.do(t, "GET", "/api/health/", adminToken, "", "")
	if r.status != 200 {
		t.Fatalf("health: got %d %s, want 200", r.status, r.body)
	}
	if got, want := objectKeys(t, r.body), []string{"up", "result"}; !slices.Equal(got, want) {
		t.Errorf("health keys: got %v, want %v", got, want)
	}
	var body struct {
		Up     bool            `json:"up"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatal(err)
	}
	if got, want := objectKeys(t, string(body.Result)), []string{"database", "version", "libraries", "cluster"}; !slices.Equal(got, want) {
		t.Errorf("result keys: got %v, want %v", got, want)
	}
	var res struct {
		Database  string          `json:"database"`
		Version   *string         `json:"version"`
		Libraries json.RawMessage `json:"libraries"`
		Cluster   json.RawMessage `json:"cluster"`
	}
	if err := json.Unmarshal(body.Result, &res); err != nil {
		t.Fatal(err)
	}
	if !body.Up || res.Database != "Accessible" || res.Version == nil || *res.Version != "" {
		t.Errorf("health: got %s, want up true, database Accessible, version \"\"", r.body)
	}
	if got := objectKeys(t, string(res.Libraries)); !slices.Equal(got, healthLibraries) {
		t.Errorf("libraries: got %v, want %v", got, healthLibraries)
	}
	if want := mustJSON(t, libraryVersions()); string(res.Libraries) != want {
		t.Errorf("libraries: got %s, want %s", res.Libraries, want)
	}
	if got, want := objectKeys(t, string(res.Cluster)), []string{"node_id", "state", "leader_id", "applied_index"}; !slices.Equal(got, want) {
		t.Errorf("cluster keys: got %v, want %v", got, want)
	}
	var cl struct {
		NodeID       string `json:"node_id"`
		State        string `json:"state"`
		LeaderID     string `json:"leader_id"`
		AppliedIndex uint64 `json:"applied_index"`
	}
	json.Unmarshal(res.Cluster, &cl)
	if cl.NodeID != "t1" || cl.State != "Leader" || cl.LeaderID != "t1" || cl.AppliedIndex == 0 {
		t.Errorf("cluster: got %+v, want node t1, state Leader, leader t1, applied index > 0", cl)
	}

	for _, c := range []struct {
		name, method, token string
		status              int
		want, allow         string
	}{
		{"anonymous", "GET", "", 401, `{"detail":"Authentication credentials were not provided."}`, ""},
		{"POST", "POST", adminToken, 405, `{"detail":"Method \"POST\" not allowed."}`, "GET, HEAD, OPTIONS"},
	} {
		r := a.do(t, c.method, "/api/health", c.token, "", "")
		if r.status != c.status || r.body != c.want || r.header.Get("Allow") != c.allow {
			t.Errorf("%s: got %d Allow=%q %s, want %d Allow=%q %s", c.name, r.status, r.header.Get("Allow"), r.body, c.status, c.allow, c.want)
		}
	}
}

func TestHealthStateNotReadable(t *testing.T) {
	s := &Server{version: "1.2.3"}
	st := cluster.Status{NodeID: "n1", State: "Follower", LeaderID: "n2", AppliedIndex: 7}
	status, body := s.healthBody(st, errors.New("state file closed"))
	got, err := marshalResponse(body)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"up":false,"result":{"database":"Not accessible","version":"1.2.3","libraries":` + mustJSON(t, libraryVersions()) +
		`,"cluster":{"node_id":"n1","state":"Follower","leader_id":"n2","applied_index":7}}}`
	if status != 503 || string(got) != want {
		t.Errorf("got %d %s\nwant 503 %s", status, got, want)
	}
	status, body = s.healthBody(st, nil)
	got, _ = marshalResponse(body)
	if status != 200 || !strings.HasPrefix(string(got), `{"up":true,"result":{"database":"Accessible","version":"1.2.3",`) {
		t.Errorf("readable: got %d %s, want 200 up", status, got)
	}
}

func TestLibraryVersionsFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{Deps: []*debug.Module{
		{Path: "go.etcd.io/bbolt", Version: "v1.5.0"},
		{Path: "github.com/hashicorp/raft", Version: "v1.7.3"},
		{Path: "github.com/gorilla/mux", Version: "v1.8.1", Replace: &debug.Module{Path: "example.org/mux", Version: "v1.8.2-fork"}},
		{Path: "github.com/hashicorp/go-hclog", Version: "v1.6.3", Replace: &debug.Module{Path: "../hclog"}},
		{Path: "github.com/google/uuid", Version: "v1.6.0"},
	}}
	want := `{"github.com/hashicorp/raft":"v1.7.3","github.com/hashicorp/raft-boltdb/v2":"unknown","go.etcd.io/bbolt":"v1.5.0",` +
		`"github.com/gorilla/mux":"v1.8.2-fork","github.com/hashicorp/go-hclog":"v1.6.3"}`
	if got := mustJSON(t, libraryVersionsFrom(bi)); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	wantNone := `{"github.com/hashicorp/raft":"unknown","github.com/hashicorp/raft-boltdb/v2":"unknown","go.etcd.io/bbolt":"unknown",` +
		`"github.com/gorilla/mux":"unknown","github.com/hashicorp/go-hclog":"unknown"}`
	if got := mustJSON(t, libraryVersionsFrom(nil)); got != wantNone {
		t.Errorf("no build info: got %s\nwant %s", got, wantNone)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := marshalResponse(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPrometheusMetrics(t *testing.T) {
	a := mustAPI(t)
	forbidden := `{"detail":"You do not have permission to perform this action."}`
	cases := []struct {
		name, path, token string
		hdr               []string
		status            int
	}{
		{"direct scrape", "/metrics", "", nil, 200},
		{"with slash", "/metrics/", "", nil, 200},
		{"one forwarded address", "/metrics", "", []string{"X-Forwarded-For", "10.0.0.7"}, 200},
		{"stale credentials are ignored", "/metrics", strings.Repeat("0", 40), nil, 200},
		{"through the load balancer", "/metrics", "", []string{"X-Forwarded-For", "203.0.113.9, 10.0.0.7"}, 403},
		{"through the load balancer, no space", "/metrics", "", []string{"X-Forwarded-For", "203.0.113.9,10.0.0.7"}, 403},
		{"admin through the load balancer", "/metrics", adminToken, []string{"X-Forwarded-For", "a, b"}, 403},
	}
	for _, c := range cases {
		r := a.do(t, "GET", c.path, c.token, "", "", c.hdr...)
		if r.status != c.status {
			t.Errorf("%s: got %d %.200s, want %d", c.name, r.status, r.body, c.status)
			continue
		}
		if c.status == 403 && r.body != forbidden {
			t.Errorf("%s: body %s, want %s", c.name, r.body, forbidden)
		}
		if c.status == 200 {
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("%s: Content-Type %q, want text/plain", c.name, ct)
			}
			for _, want := range []string{"\nschedulerd_raft_leader 1\n", "\nschedulerd_raft_applied_index ", "\nschedulerd_raft_commit_index ",
				"\ngo_goroutines ", "\nprocess_resident_memory_bytes ", "schedulerd_build_info{"} {
				if !strings.Contains("\n"+r.body, want) {
					t.Errorf("%s: exposition lacks %q", c.name, want)
				}
			}
		}
	}

	// Two X-Forwarded-For header lines are two addresses as well.
	req, _ := http.NewRequest("GET", a.srv.URL+"/metrics", nil)
	req.Header.Add("X-Forwarded-For", "203.0.113.9")
	req.Header.Add("X-Forwarded-For", "10.0.0.7")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 403 || string(b) != forbidden {
		t.Errorf("two header lines: got %d %s, want 403 %s", res.StatusCode, b, forbidden)
	}

	if r := a.do(t, "POST", "/metrics", "", "application/json", `{}`); r.status != 405 || r.header.Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Errorf("POST /metrics: got %d Allow=%q, want 405 Allow=%q", r.status, r.header.Get("Allow"), "GET, HEAD, OPTIONS")
	}
}

func TestRegistryIsSharedAndServed(t *testing.T) {
	a := mustAPI(t)
	s := a.server(t)
	reg := s.Registry()
	if reg == nil || reg != s.Registry() {
		t.Fatal("Registry must return the same registry on every call")
	}
	if other := New(Config{Node: a.node}).Registry(); other == reg {
		t.Fatal("two servers share a registry")
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "schedulerd_test_deliveries_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	if r := a.do(t, "GET", "/metrics", "", "", ""); r.status != 200 || !strings.Contains(r.body, "\nschedulerd_test_deliveries_total 3\n") {
		t.Errorf("a collector registered on Registry() is not served: %d %.300s", r.status, r.body)
	}
}

func TestInstrumentCountsByRouteAndCode(t *testing.T) {
	a := mustAPI(t)
	m := a.server(t).met
	h := m.instrument("/api/v1/thing/{id}/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/thing/1/" {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		w.Write([]byte("ok"))
	}))
	for _, p := range []string{"/api/v1/thing/1/", "/api/v1/thing/2/", "/api/v1/thing/3/"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	got := map[string]float64{}
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "schedulerd_http_requests_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["route"]+" "+labels["code"]] = mt.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"/api/v1/thing/{id}/ 418": 1, "/api/v1/thing/{id}/ 200": 2}
	if len(got) != len(want) || got["/api/v1/thing/{id}/ 418"] != 1 || got["/api/v1/thing/{id}/ 200"] != 2 {
		t.Errorf("request counts: got %v, want %v", got, want)
	}
}
