package executor

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// metricPost is one POST as the metrics server saw it.
type metricPost struct {
	Path, Body, ContentType string
	User, Pass              string
	HasAuth                 bool
}

// mustMetricsServer records every post; when gate is not nil each handler
// first waits for a value from it (or for the end of the test).
func mustMetricsServer(t *testing.T, gate <-chan struct{}) (*httptest.Server, <-chan metricPost, *atomic.Int64) {
	t.Helper()
	ch := make(chan metricPost, 4096)
	var arrived atomic.Int64
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		if gate != nil {
			select {
			case <-gate:
			case <-stop:
				return
			case <-r.Context().Done():
				return
			}
		}
		b, _ := io.ReadAll(r.Body)
		u, p, ok := r.BasicAuth()
		ch <- metricPost{r.URL.Path, string(b), r.Header.Get("Content-Type"), u, p, ok}
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // before srv.Close
	return srv, ch, &arrived
}

func mustReporter(t *testing.T, r *Reporter) *Reporter {
	t.Helper()
	if r == nil {
		t.Fatal("reporter is nil")
	}
	t.Cleanup(r.Close)
	return r
}

func TestReporterPosts(t *testing.T) {
	srv, ch, _ := mustMetricsServer(t, nil)
	r := mustReporter(t, NewReporter(srv.URL+"/api/v1/", "metrics", "pa:ss", nil))
	r.Report("scheduler.deliver_task.http_error.404.sum")
	got := mustReceive(t, ch)
	want := metricPost{Path: "/api/v1/metrics/", Body: `{"scheduler.deliver_task.http_error.404.sum": 1.0}`,
		ContentType: "application/json", User: "metrics", Pass: "pa:ss", HasAuth: true}
	if got != want {
		t.Errorf("post = %+v\nwant %+v", got, want)
	}
	var m map[string]float64
	if err := json.Unmarshal([]byte(got.Body), &m); err != nil || len(m) != 1 || m["scheduler.deliver_task.http_error.404.sum"] != 1.0 {
		t.Errorf("body decodes to %v (err %v), want {name: 1.0}", m, err)
	}
}

func TestReporterURLForms(t *testing.T) {
	srv, ch, _ := mustMetricsServer(t, nil)
	host := strings.TrimPrefix(srv.URL, "http://")
	cases := []struct {
		url, user, pass string
		want            metricPost
	}{
		{"http://u1:p1@" + host + "/api/v1", "", "", metricPost{Path: "/api/v1/metrics/", User: "u1", Pass: "p1", HasAuth: true}},
		{"http://u1:p1@" + host, "param", "pw", metricPost{Path: "/metrics/", User: "param", Pass: "pw", HasAuth: true}},
		{srv.URL + "//", "", "", metricPost{Path: "/metrics/"}},
		{"  " + srv.URL + "/x  ", "a", "", metricPost{Path: "/x/metrics/", User: "a", HasAuth: true}},
	}
	for _, tc := range cases {
		r := NewReporter(tc.url, tc.user, tc.pass, nil)
		if r == nil {
			t.Fatalf("NewReporter(%q) = nil", tc.url)
		}
		r.Report("schedules.created.sum")
		r.Close()
		got := mustReceive(t, ch)
		got.Body, got.ContentType = "", ""
		if got != tc.want {
			t.Errorf("url %q user %q: post = %+v, want %+v", tc.url, tc.user, got, tc.want)
		}
	}
}

func TestReporterNil(t *testing.T) {
	var r *Reporter
	r.Report("x")
	r.Close()
	if r.Dropped() != 0 {
		t.Error("nil reporter dropped something")
	}
	for _, u := range []string{"", "   ", "not a url", "ftp://host/", "/relative/path", "http://"} {
		if got := NewReporter(u, "u", "p", nil); got != nil {
			got.Close()
			t.Errorf("NewReporter(%q) = non-nil, want nil (no-op)", u)
		}
	}
}

func TestReporterDropsWhenFull(t *testing.T) {
	gate := make(chan struct{})
	srv, ch, arrived := mustMetricsServer(t, gate)
	const queue = 4
	r := mustReporter(t, newReporter(srv.URL, "u", "p", nil, queue, 10*time.Second, 10*time.Second))

	r.Report("first")
	waitFor(t, "the first post to reach the server", func() bool { return arrived.Load() == 1 })
	// The goroutine is busy with "first": the queue takes 4, the rest drop.
	for i := 0; i < queue+3; i++ {
		r.Report("m")
	}
	if got := r.Dropped(); got != 3 {
		t.Errorf("Dropped = %d, want 3", got)
	}
	close(gate)
	r.Close()
	if got := len(ch); got != 1+queue {
		t.Errorf("posts = %d, want %d (the first and the queued ones)", got, 1+queue)
	}
	r.Report("after close")
	if got := r.Dropped(); got != 4 {
		t.Errorf("Dropped after a Report past Close = %d, want 4", got)
	}
	r.Close() // idempotent
}

func TestReporterReportDoesNotBlock(t *testing.T) {
	gate := make(chan struct{}) // never opened: the server holds every post
	srv, _, _ := mustMetricsServer(t, gate)
	r := mustReporter(t, newReporter(srv.URL, "", "", nil, 8, 10*time.Second, 50*time.Millisecond))
	start := time.Now()
	for i := 0; i < 10000; i++ {
		r.Report("m")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("10000 Reports took %v with a stuck server", el)
	}
	if d := r.Dropped(); d < 10000-8-1 {
		t.Errorf("Dropped = %d, want at least %d", d, 10000-8-1)
	}
}

func TestReporterCloseDrains(t *testing.T) {
	srv, ch, _ := mustMetricsServer(t, nil)
	r := NewReporter(srv.URL, "u", "p", nil)
	const n = 200
	for i := 0; i < n; i++ {
		r.Report("scheduler.deliver_task.timeout.sum")
	}
	r.Close()
	if got := len(ch); got != n {
		t.Errorf("posts after Close = %d, want all %d queued", got, n)
	}
	if r.Dropped() != 0 {
		t.Errorf("Dropped = %d, want 0", r.Dropped())
	}
}

func TestReporterCloseBounded(t *testing.T) {
	gate := make(chan struct{}) // never opened
	srv, _, arrived := mustMetricsServer(t, gate)
	r := newReporter(srv.URL, "", "", nil, 16, 10*time.Second, 100*time.Millisecond)
	for i := 0; i < 5; i++ {
		r.Report("m")
	}
	waitFor(t, "the first post to reach the server", func() bool { return arrived.Load() >= 1 })
	start := time.Now()
	r.Close()
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Close took %v with a stuck server, want about the 100ms drain bound", el)
	}
	if d := r.Dropped(); d != 5 {
		t.Errorf("Dropped = %d, want 5 (the abandoned in-flight post and the 4 queued names)", d)
	}
}

func TestMetricBody(t *testing.T) {
	for name, want := range map[string]string{
		"schedules.created.sum": `{"schedules.created.sum": 1.0}`,
		`a"b\c`:                 `{"a\"b\\c": 1.0}`,
	} {
		got := metricBody(name)
		if string(got) != want {
			t.Errorf("metricBody(%q) = %s, want %s", name, got, want)
		}
		var m map[string]float64
		if err := json.Unmarshal(got, &m); err != nil || m[name] != 1.0 {
			t.Errorf("metricBody(%q) decodes to %v, %v", name, m, err)
		}
	}
}

func TestMetricsEndpointErrorsHidePassword(t *testing.T) {
	for _, u := range []string{"http://user:s3cret@host:bad/", "ftp://user:s3cret@host/", "http://user:s3cret@[::1"} {
		_, _, _, _, err := metricsEndpoint(u)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("metricsEndpoint(%q) error = %v, want an error without the password", u, err)
		}
	}
}
