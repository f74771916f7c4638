package executor

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// seen is one request as the server saw it.
type seen struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   string
}

// mustServer starts a loopback server running h and closes it at the end of
// the test.
func mustServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// mustRecorder starts a server that answers status and sends every request
// it sees on the returned channel.
func mustRecorder(t *testing.T, status int) (*httptest.Server, <-chan seen) {
	t.Helper()
	ch := make(chan seen, 64)
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(b)}
		w.WriteHeader(status)
	})
	return srv, ch
}

func mustDeliverer(t *testing.T, cfg Config) *Deliverer {
	t.Helper()
	if cfg.UserAgent == "" {
		cfg.UserAgent = "seed-scheduler/1.2.3"
	}
	d := NewDeliverer(cfg)
	t.Cleanup(d.Close)
	return d
}

func mustReceive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received within 10s")
	}
	panic("unreachable")
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func strptr(s string) *string { return &s }

// testSlot is 2019-05-10T13:25:00Z given in another zone with a fraction,
// to check the headers use UTC seconds.
var testSlot = time.Date(2019, 5, 10, 15, 25, 0, 987654321, time.FixedZone("CEST", 2*3600))

func testDelivery(endpoint string) Delivery {
	return Delivery{
		ScheduleID: "0f5b5a5e-0000-7000-8000-000000000001",
		Slot:       testSlot,
		Attempt:    3,
		Endpoint:   endpoint,
		AuthToken:  strptr("blah"),
		Payload:    json.RawMessage(`{ "msisdn" : "+27 12",  "n": [1, 2.50] }`),
	}
}

func TestDeliverExactRequest(t *testing.T) {
	srv, ch := mustRecorder(t, http.StatusOK)
	d := mustDeliverer(t, Config{})
	cases := []struct {
		name     string
		token    *string
		payload  json.RawMessage
		wantAuth string // "" = no Authorization header at all
		wantBody string
	}{
		{"token", strptr("blah"), json.RawMessage(`{ "a" : [1, 2] }`), "Token blah", `{ "a" : [1, 2] }`},
		{"nil token", nil, json.RawMessage(`[1,"x"]`), "", `[1,"x"]`},
		{"empty token", strptr(""), json.RawMessage(`null`), "", `null`},
		{"empty payload", strptr("k"), nil, "Token k", `{}`},
		{"empty non-nil payload", nil, json.RawMessage{}, "", `{}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			del := testDelivery(srv.URL + "/api/v1/send?x=1&y=%20")
			del.AuthToken, del.Payload = tc.token, tc.payload
			res := d.Deliver(context.Background(), del)
			if !res.OK() || res.Kind != KindOK || res.Status != 200 || res.Err != nil {
				t.Fatalf("result = %+v, want ok 200", res)
			}
			got := mustReceive(t, ch)
			if got.Method != "POST" || got.Path != "/api/v1/send" || got.RawQuery != "x=1&y=%20" {
				t.Errorf("request line = %s %s?%s, want POST /api/v1/send?x=1&y=%%20", got.Method, got.Path, got.RawQuery)
			}
			want := map[string]string{
				"Content-Type":             "application/json",
				"User-Agent":               "seed-scheduler/1.2.3",
				"Idempotency-Key":          "0f5b5a5e-0000-7000-8000-000000000001:1557494700",
				"X-Scheduler-Scheduled-At": "2019-05-10T13:25:00Z",
				"X-Scheduler-Attempt":      "3",
			}
			if tc.wantAuth != "" {
				want["Authorization"] = tc.wantAuth
			}
			for k, v := range want {
				if vs := got.Header.Values(k); len(vs) != 1 || vs[0] != v {
					t.Errorf("header %s = %q, want [%q]", k, vs, v)
				}
			}
			if _, ok := got.Header["Authorization"]; ok && tc.wantAuth == "" {
				t.Errorf("Authorization = %q, want no header", got.Header.Get("Authorization"))
			}
			// Nothing else but what the transport itself adds.
			for k := range got.Header {
				if _, ok := want[k]; !ok && k != "Content-Length" && k != "Accept-Encoding" {
					t.Errorf("unexpected header %s: %q", k, got.Header[k])
				}
			}
			if got.Body != tc.wantBody {
				t.Errorf("body = %q, want %q verbatim", got.Body, tc.wantBody)
			}
		})
	}
}

func TestDeliverStatusKinds(t *testing.T) {
	cases := []struct {
		status int
		ok     bool
		metric string
	}{
		{200, true, ""},
		{201, true, ""},
		{202, true, ""},
		{204, true, ""},
		{304, true, ""},
		{400, false, "scheduler.deliver_task.http_error.400.sum"},
		{401, false, "scheduler.deliver_task.http_error.401.sum"},
		{403, false, "scheduler.deliver_task.http_error.403.sum"},
		{404, false, "scheduler.deliver_task.http_error.404.sum"},
		{418, false, "scheduler.deliver_task.http_error.418.sum"},
		{500, false, "scheduler.deliver_task.http_error.500.sum"},
		{503, false, "scheduler.deliver_task.http_error.503.sum"},
		{599, false, "scheduler.deliver_task.http_error.599.sum"},
	}
	var status atomic.Int64
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		_, _ = io.WriteString(w, `{"detail":"x"}`)
	})
	d := mustDeliverer(t, Config{})
	for _, tc := range cases {
		status.Store(int64(tc.status))
		res := d.Deliver(context.Background(), testDelivery(srv.URL))
		if res.OK() != tc.ok || res.Status != tc.status || res.MetricName() != tc.metric {
			t.Errorf("status %d: OK=%v Status=%d MetricName=%q, want %v %d %q",
				tc.status, res.OK(), res.Status, res.MetricName(), tc.ok, tc.status, tc.metric)
		}
		if tc.ok {
			if res.Kind != KindOK || res.Err != nil {
				t.Errorf("status %d: Kind=%q Err=%v, want ok and nil", tc.status, res.Kind, res.Err)
			}
			continue
		}
		if res.Kind != KindHTTPError || !errors.Is(res.Err, ErrHTTPStatus) {
			t.Errorf("status %d: Kind=%q Err=%v, want http_error wrapping ErrHTTPStatus", tc.status, res.Kind, res.Err)
		}
		if res.Err != nil && !strings.Contains(res.Err.Error(), http.StatusText(tc.status)) && http.StatusText(tc.status) != "" {
			t.Errorf("status %d: Err = %q, want the status text in it", tc.status, res.Err)
		}
	}
}

func TestDeliverRedirectNotFollowed(t *testing.T) {
	var targetHits atomic.Int64
	target := mustServer(t, func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) })
	for _, code := range []int{301, 302, 303, 307, 308} {
		srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/elsewhere", code)
		})
		d := mustDeliverer(t, Config{})
		res := d.Deliver(context.Background(), testDelivery(srv.URL))
		if !res.OK() || res.Status != code || res.Err != nil {
			t.Errorf("redirect %d: result = %+v, want ok with status %d", code, res, code)
		}
	}
	if n := targetHits.Load(); n != 0 {
		t.Errorf("redirect target hit %d times, want 0", n)
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestDeliverConnectionRefused(t *testing.T) {
	d := mustDeliverer(t, Config{})
	res := d.Deliver(context.Background(), testDelivery("http://"+closedPort(t)+"/"))
	if res.OK() || res.Kind != KindConnectionError || res.Status != 0 {
		t.Fatalf("result = %+v, want connection_error with status 0", res)
	}
	if !errors.Is(res.Err, ErrConnection) || errors.Is(res.Err, ErrDeniedAddress) {
		t.Errorf("Err = %v, want ErrConnection and not ErrDeniedAddress", res.Err)
	}
	if got, want := res.MetricName(), "scheduler.deliver_task.connection_error.sum"; got != want {
		t.Errorf("MetricName = %q, want %q", got, want)
	}
}

func TestDeliverBadEndpoint(t *testing.T) {
	d := mustDeliverer(t, Config{})
	for _, ep := range []string{"", "not a url", "ftp://example.org/", "http://[::1", "http://exa mple.org/"} {
		res := d.Deliver(context.Background(), testDelivery(ep))
		if res.Kind != KindConnectionError || !errors.Is(res.Err, ErrConnection) {
			t.Errorf("endpoint %q: result = %+v, want connection_error", ep, res)
		}
	}
}

// blockingServer answers only when release is closed (at the end of the
// test) or the client goes away; arrived gets one value per request.
func blockingServer(t *testing.T, before func(http.ResponseWriter)) (srv *httptest.Server, arrived <-chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	ch := make(chan struct{}, 16)
	srv = mustServer(t, func(w http.ResponseWriter, r *http.Request) {
		if before != nil {
			before(w)
		}
		ch <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv, ch
}

func TestDeliverTimeout(t *testing.T) {
	srv, _ := blockingServer(t, nil)
	const timeout = 150 * time.Millisecond
	d := mustDeliverer(t, Config{Timeout: timeout})
	res := d.Deliver(context.Background(), testDelivery(srv.URL))
	if res.Kind != KindTimeout || res.Status != 0 || !errors.Is(res.Err, ErrTimeout) {
		t.Fatalf("result = %+v, want timeout wrapping ErrTimeout", res)
	}
	if got, want := res.MetricName(), "scheduler.deliver_task.timeout.sum"; got != want {
		t.Errorf("MetricName = %q, want %q", got, want)
	}
	if res.Latency < timeout {
		t.Errorf("Latency = %v, want >= the %v timeout", res.Latency, timeout)
	}
}

// A status that arrived before the timeout is the answer even when the body
// then stalls: the endpoint has accepted the delivery.
func TestDeliverTimeoutWhileReadingBody(t *testing.T) {
	srv, _ := blockingServer(t, func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
	})
	const timeout = 150 * time.Millisecond
	d := mustDeliverer(t, Config{Timeout: timeout})
	res := d.Deliver(context.Background(), testDelivery(srv.URL))
	if !res.OK() || res.Status != http.StatusAccepted {
		t.Fatalf("result = %+v, want ok 202", res)
	}
	if res.Latency < timeout {
		t.Errorf("Latency = %v, want >= %v (the body read is bounded by the timeout)", res.Latency, timeout)
	}
}

func TestDeliverHugeBodyCut(t *testing.T) {
	var written atomic.Int64
	handlerDone := make(chan error, 1)
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 32<<10))
		for {
			n, err := w.Write(chunk) // endless: only the client can end it
			written.Add(int64(n))
			if err != nil {
				handlerDone <- err
				return
			}
		}
	})
	d := mustDeliverer(t, Config{MaxResponseBody: 1 << 10, Timeout: 20 * time.Second})
	res := d.Deliver(context.Background(), testDelivery(srv.URL))
	if !res.OK() || res.Status != 200 || res.Err != nil {
		t.Fatalf("result = %+v, want ok 200 without error", res)
	}
	if res.Latency > 10*time.Second {
		t.Errorf("Latency = %v: the body was read to the timeout instead of being cut", res.Latency)
	}
	// The client dropped the connection instead of reading on.
	if err := mustReceive(t, (<-chan error)(handlerDone)); err == nil {
		t.Error("handler finished without a write error")
	}
}

func TestDeliverBodyLimitAndConnectionReuse(t *testing.T) {
	const limit = 8 << 10
	cases := []struct {
		size      int
		wantConns int64
	}{
		{100, 1},
		{limit, 1},       // exactly the limit: drained to EOF, reused
		{limit + 100, 5}, // past the limit: cut, connection dropped
		{200 << 10, 5},
	}
	for _, tc := range cases {
		srv, newConns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, strings.Repeat("y", tc.size))
		})
		d := mustDeliverer(t, Config{MaxResponseBody: limit})
		for i := 0; i < 5; i++ {
			if res := d.Deliver(context.Background(), testDelivery(srv.URL)); !res.OK() || res.Err != nil {
				t.Fatalf("body %d: delivery %d: %+v, want ok", tc.size, i, res)
			}
		}
		if n := newConns.Load(); n != tc.wantConns {
			t.Errorf("body of %d bytes with a %d limit: new connections for 5 deliveries = %d, want %d",
				tc.size, limit, n, tc.wantConns)
		}
	}
}

// countingServer counts the connections the server accepts.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestDeliverReusesConnections(t *testing.T) {
	srv, newConns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	d := mustDeliverer(t, Config{})
	for i := 0; i < 20; i++ {
		del := testDelivery(srv.URL)
		del.Attempt = i + 1
		if res := d.Deliver(context.Background(), del); !res.OK() {
			t.Fatalf("delivery %d: %+v", i, res)
		}
	}
	if n := newConns.Load(); n != 1 {
		t.Errorf("new connections for 20 sequential deliveries = %d, want 1", n)
	}
}

func TestDeliverMaxConnsPerHost(t *testing.T) {
	srv, newConns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	d := mustDeliverer(t, Config{MaxConnsPerHost: 2})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < 40; i++ {
		wg.Go(func() {
			if res := d.Deliver(context.Background(), testDelivery(srv.URL)); !res.OK() {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d deliveries failed", failed.Load())
	}
	if n := newConns.Load(); n < 1 || n > 2 {
		t.Errorf("new connections for 40 concurrent deliveries = %d, want 1..2 (MaxConnsPerHost)", n)
	}
}

func TestDeliverDenyPrivate(t *testing.T) {
	var hits atomic.Int64
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	deny := mustDeliverer(t, Config{DenyPrivate: true})
	for _, ep := range []string{srv.URL, "http://localhost:" + strconv.Itoa(port) + "/"} {
		res := deny.Deliver(context.Background(), testDelivery(ep))
		if res.Kind != KindConnectionError || !errors.Is(res.Err, ErrConnection) || !errors.Is(res.Err, ErrDeniedAddress) {
			t.Fatalf("%s: result = %+v, want connection_error wrapping ErrDeniedAddress", ep, res)
		}
		if msg := res.Err.Error(); !strings.Contains(msg, "is loopback") || !strings.Contains(msg, "non-public address") {
			t.Errorf("%s: Err = %q, want a message naming the refused loopback address", ep, msg)
		}
	}
	if !strings.Contains(deny.Deliver(context.Background(), testDelivery(srv.URL)).Err.Error(), "127.0.0.1 is loopback") {
		t.Error("message does not name 127.0.0.1")
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("server hit %d times with DenyPrivate, want 0", n)
	}

	allow := mustDeliverer(t, Config{DenyPrivate: false})
	if res := allow.Deliver(context.Background(), testDelivery(srv.URL)); !res.OK() {
		t.Errorf("DenyPrivate false: result = %+v, want ok", res)
	}
}

func TestNonPublicClass(t *testing.T) {
	cases := map[string]string{
		"127.0.0.1":          "loopback",
		"127.255.1.2":        "loopback",
		"::1":                "loopback",
		"::ffff:127.0.0.1":   "loopback",
		"10.1.2.3":           "private",
		"172.16.0.1":         "private",
		"172.31.255.255":     "private",
		"192.168.1.1":        "private",
		"fc00::1":            "private",
		"fd12:3456::1":       "private",
		"::ffff:10.0.0.1":    "private",
		"169.254.169.254":    "link-local",
		"fe80::1":            "link-local",
		"fe80::1%eth0":       "link-local",
		"0.0.0.0":            "unspecified",
		"0.1.2.3":            "unspecified",
		"::":                 "unspecified",
		"224.0.0.1":          "multicast",
		"239.1.1.1":          "multicast",
		"ff02::1":            "multicast",
		"ff01::1":            "multicast",
		"255.255.255.255":    "broadcast",
		"8.8.8.8":            "",
		"172.32.0.1":         "",
		"192.169.0.1":        "",
		"2001:4860:4860::88": "",
		"::ffff:8.8.8.8":     "",
	}
	for s, want := range cases {
		if got := nonPublicClass(netip.MustParseAddr(s)); got != want {
			t.Errorf("nonPublicClass(%s) = %q, want %q", s, got, want)
		}
	}
	if err := denyPrivateControl("tcp4", "93.184.216.34:443", nil); err != nil {
		t.Errorf("public address refused: %v", err)
	}
	if err := denyPrivateControl("tcp6", "[::1]:80", nil); !errors.Is(err, ErrDeniedAddress) {
		t.Errorf("[::1]:80 allowed (err %v)", err)
	}
}

func TestDeliverCancelled(t *testing.T) {
	srv, arrived := blockingServer(t, nil)
	d := mustDeliverer(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Result, 1)
	go func() { done <- d.Deliver(ctx, testDelivery(srv.URL)) }()
	mustReceive(t, arrived)
	cancel()
	res := mustReceive(t, (<-chan Result)(done))
	if res.Kind != KindCancelled || res.OK() || !errors.Is(res.Err, context.Canceled) || !errors.Is(res.Err, ErrCancelled) {
		t.Fatalf("result = %+v, want cancelled wrapping context.Canceled", res)
	}
	if res.MetricName() != "" {
		t.Errorf("MetricName = %q, want \"\" for a cancelled attempt", res.MetricName())
	}
}

func TestDeliverAlreadyCancelled(t *testing.T) {
	var hits atomic.Int64
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	d := mustDeliverer(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := d.Deliver(ctx, testDelivery(srv.URL))
	if res.Kind != KindCancelled || !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("result = %+v, want cancelled", res)
	}
	if hits.Load() != 0 {
		t.Error("server hit with an already-cancelled context")
	}
}

func TestDeliverWebhook(t *testing.T) {
	srv, ch := mustRecorder(t, http.StatusOK)
	d := mustDeliverer(t, Config{})
	target := srv.URL + "/hook?a=1&b=<2>"
	data := json.RawMessage(`{"url":"http://h/api/v1/schedule/x/","id":"x","next_send_at":null,"payload":{}}`)

	res := d.DeliverWebhook(context.Background(), 7, "schedule.added", target, data, "hooktoken")
	if !res.OK() {
		t.Fatalf("result = %+v, want ok", res)
	}
	got := mustReceive(t, ch)
	wantBody := `{"hook":{"id":7,"event":"schedule.added","target":"` + target + `"},"data":` + string(data) + `}`
	if got.Body != wantBody {
		t.Errorf("body =\n%s\nwant\n%s", got.Body, wantBody)
	}
	if !json.Valid([]byte(got.Body)) {
		t.Errorf("body is not valid JSON: %s", got.Body)
	}
	if got.Method != "POST" || got.Path != "/hook" {
		t.Errorf("request = %s %s, want POST /hook", got.Method, got.Path)
	}
	for k, v := range map[string]string{"Content-Type": "application/json", "Authorization": "Token hooktoken", "User-Agent": "seed-scheduler/1.2.3"} {
		if got.Header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, got.Header.Get(k), v)
		}
	}
	for _, k := range []string{"Idempotency-Key", "X-Scheduler-Attempt", "X-Scheduler-Scheduled-At"} {
		if _, ok := got.Header[k]; ok {
			t.Errorf("webhook carries delivery header %s", k)
		}
	}

	// No token, no data.
	res = d.DeliverWebhook(context.Background(), 1<<40, "schedule.added", srv.URL, nil, "")
	if !res.OK() {
		t.Fatalf("result = %+v, want ok", res)
	}
	got = mustReceive(t, ch)
	if _, ok := got.Header["Authorization"]; ok {
		t.Errorf("Authorization = %q, want none for an empty token", got.Header.Get("Authorization"))
	}
	if want := `{"hook":{"id":1099511627776,"event":"schedule.added","target":"` + srv.URL + `"},"data":null}`; got.Body != want {
		t.Errorf("body = %s, want %s", got.Body, want)
	}
}

func TestDeliverWebhookFailures(t *testing.T) {
	srv, _ := mustRecorder(t, http.StatusNotFound)
	d := mustDeliverer(t, Config{})
	res := d.DeliverWebhook(context.Background(), 1, "schedule.added", srv.URL, json.RawMessage(`{}`), "t")
	if res.Kind != KindHTTPError || res.Status != 404 || res.MetricName() != "scheduler.deliver_task.http_error.404.sum" {
		t.Errorf("result = %+v, want http_error 404", res)
	}
	res = d.DeliverWebhook(context.Background(), 1, "schedule.added", "http://"+closedPort(t)+"/", nil, "")
	if res.Kind != KindConnectionError {
		t.Errorf("result = %+v, want connection_error", res)
	}
}

func TestResultMetricName(t *testing.T) {
	cases := []struct {
		r    Result
		want string
	}{
		{Result{Kind: KindOK, Status: 200}, ""},
		{Result{Kind: KindCancelled}, ""},
		{Result{}, ""},
		{Result{Kind: KindConnectionError}, "scheduler.deliver_task.connection_error.sum"},
		{Result{Kind: KindTimeout}, "scheduler.deliver_task.timeout.sum"},
		{Result{Kind: KindHTTPError, Status: 400}, "scheduler.deliver_task.http_error.400.sum"},
		{Result{Kind: KindHTTPError, Status: 502}, "scheduler.deliver_task.http_error.502.sum"},
	}
	for _, tc := range cases {
		if got := tc.r.MetricName(); got != tc.want {
			t.Errorf("%+v.MetricName() = %q, want %q", tc.r, got, tc.want)
		}
	}
	if (Result{}).OK() {
		t.Error("zero Result is OK")
	}
}

func TestDeliverErrorRedactsPassword(t *testing.T) {
	srv, _ := mustRecorder(t, http.StatusInternalServerError)
	u, _ := url.Parse(srv.URL)
	u.User = url.UserPassword("user", "s3cret")
	d := mustDeliverer(t, Config{})
	for _, ep := range []string{u.String(), "http://user:s3cret@" + closedPort(t) + "/"} {
		res := d.Deliver(context.Background(), testDelivery(ep))
		if res.Err == nil || strings.Contains(res.Err.Error(), "s3cret") {
			t.Errorf("Err = %v, want an error without the password", res.Err)
		}
	}
}

func TestNewDelivererDefaults(t *testing.T) {
	d := NewDeliverer(Config{})
	defer d.Close()
	tr := d.transport
	if d.timeout != 30*time.Second || d.maxBody != 64<<10 || d.userAgent != "seed-scheduler" {
		t.Errorf("defaults: timeout %v, maxBody %d, user agent %q", d.timeout, d.maxBody, d.userAgent)
	}
	if tr.Proxy != nil || !tr.ForceAttemptHTTP2 || tr.MaxConnsPerHost != 64 || tr.MaxIdleConnsPerHost != 64 ||
		tr.IdleConnTimeout != 90*time.Second || tr.TLSHandshakeTimeout != 10*time.Second {
		t.Errorf("transport settings: %+v", tr)
	}
	if d.client.CheckRedirect == nil {
		t.Error("redirects would be followed")
	}
}

func TestIdempotencyKeyStableAcrossAttempts(t *testing.T) {
	keys := make([]string, 0, MaxAttempts)
	for n := 1; n <= MaxAttempts; n++ {
		del := testDelivery("")
		del.Attempt = n
		keys = append(keys, del.IdempotencyKey())
	}
	keys = slices.Compact(keys)
	if len(keys) != 1 || keys[0] != "0f5b5a5e-0000-7000-8000-000000000001:1557494700" {
		t.Errorf("keys = %q, want one key <id>:1557494700", keys)
	}
}

func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	d := NewDeliverer(Config{})
	defer d.Close()
	del := testDelivery(srv.URL)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := d.Deliver(context.Background(), del); !res.OK() {
				b.Errorf("delivery failed: %+v", res)
				return
			}
		}
	})
}
