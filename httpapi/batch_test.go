package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/seedscheduler/schedulerd/cluster"
)

func TestBatchWireRoundTrip(t *testing.T) {
	items := []*fwdItem{
		{method: "POST", uri: "/api/v1/user/token/?x=1", header: http.Header{"Authorization": {"Token abc"}, "X-Multi": {"a", "b"}}, body: []byte(`{"email":"a@b.org"}`)},
		{method: "DELETE", uri: "/api/v1/schedule/0f5b/", header: http.Header{}},
	}
	leader := httptest.NewRequest("POST", "http://10.0.0.1:8080"+forwardBatchPath, nil)
	leader.RemoteAddr = "10.0.0.2:5555"
	reqs, err := decodeBatch(leader, encodeBatch(items))
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	r := reqs[0]
	body, _ := io.ReadAll(r.Body)
	if r.Method != "POST" || r.RequestURI != "/api/v1/user/token/?x=1" || r.URL.Query().Get("x") != "1" ||
		r.Host != "10.0.0.1:8080" || r.RemoteAddr != "10.0.0.2:5555" || string(body) != `{"email":"a@b.org"}` ||
		r.ContentLength != int64(len(body)) || r.Header.Get("Authorization") != "Token abc" ||
		strings.Join(r.Header.Values("X-Multi"), ",") != "a,b" {
		t.Fatalf("decoded request %+v body %q", r, body)
	}
	if reqs[1].Method != "DELETE" || reqs[1].ContentLength != 0 {
		t.Fatalf("second request %s length %d", reqs[1].Method, reqs[1].ContentLength)
	}

	recs := []itemRecorder{{header: http.Header{}}, {header: http.Header{}}}
	recs[0].Header().Set("X-A", "1")
	recs[0].WriteHeader(201)
	recs[0].Header().Set("X-Late", "ignored, as net/http would")
	recs[0].Write([]byte(`{"token":"t"}`))
	// recs[1] writes nothing: a 200 with no body.
	for i := range items {
		items[i].done = make(chan fwdResult, 1)
	}
	if err := decodeAnswers(encodeAnswers(recs), items); err != nil {
		t.Fatal(err)
	}
	a, b := <-items[0].done, <-items[1].done
	if a.status != 201 || a.header.Get("X-A") != "1" || a.header.Get("X-Late") != "" || string(a.body) != `{"token":"t"}` || !a.sent {
		t.Fatalf("first answer %+v", a)
	}
	if b.status != 200 || len(b.body) != 0 {
		t.Fatalf("second answer %+v", b)
	}

	// Every truncation of a valid batch is refused, never half-decoded.
	wire := encodeBatch(items)
	for n := range len(wire) {
		if _, err := decodeBatch(leader, wire[:n]); err == nil {
			t.Fatalf("truncated batch of %d/%d bytes decoded", n, len(wire))
		}
	}
	answers := encodeAnswers(recs)
	for n := range len(answers) {
		if err := decodeAnswers(answers[:n], items); err == nil {
			t.Fatalf("truncated answers of %d/%d bytes decoded", n, len(answers))
		}
	}
	if err := decodeAnswers(answers, items[:1]); err == nil {
		t.Fatal("two answers to one request accepted")
	}
}

// postBatch sends items to the forward endpoint of a with the given key.
func postBatch(t *testing.T, a *testAPI, key string, items []*fwdItem) (int, []fwdResult) {
	t.Helper()
	req, _ := http.NewRequest("POST", a.srv.URL+forwardBatchPath, bytes.NewReader(encodeBatch(items)))
	req.Header.Set("Content-Type", batchContentType)
	if key != "" {
		req.Header.Set(cluster.KeyHeader, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	wire, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil
	}
	for _, it := range items {
		it.done = make(chan fwdResult, 1)
	}
	if err := decodeAnswers(wire, items); err != nil {
		t.Fatal(err)
	}
	out := make([]fwdResult, len(items))
	for i, it := range items {
		out[i] = <-it.done
	}
	return resp.StatusCode, out
}

func TestForwardBatchRunsEachRequestThroughTheHandlers(t *testing.T) {
	a := mustAPI(t)
	user := a.newUserToken(t, "bob@example.org")
	hdr := func(token string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}, headerForwardedBy: {"n2"}}
		if token != "" {
			h.Set("Authorization", "Token "+token)
		}
		return h
	}
	items := []*fwdItem{
		{method: "POST", uri: "/api/v1/user/token/", header: hdr(adminToken), body: []byte(`{"email":"carol@example.org"}`)},
		{method: "POST", uri: "/api/v1/user/token/", header: hdr(strings.Repeat("0", 40)), body: []byte(`{"email":"x@example.org"}`)},
		{method: "POST", uri: "/api/v1/user/token", header: hdr(user), body: []byte(`{"email":"x@example.org"}`)},
		{method: "POST", uri: "/api/v1/user/token/", header: hdr(adminToken), body: []byte(`{"email":"nope"}`)},
	}
	if code, _ := postBatch(t, a, "", items); code != http.StatusForbidden {
		t.Fatalf("batch without the member key: %d, want 403", code)
	}
	if code, _ := postBatch(t, a, "wrong", items); code != http.StatusForbidden {
		t.Fatalf("batch with a wrong member key: %d, want 403", code)
	}
	code, res := postBatch(t, a, "k", items)
	if code != 200 {
		t.Fatalf("batch: %d", code)
	}
	want := []struct {
		status int
		body   string
	}{
		{201, `{"token":"`},
		{401, `{"detail":"Invalid token."}`},
		{403, `{"detail":"You do not have permission to perform this action."}`},
		{400, `{"email":["Enter a valid email address."]}`},
	}
	for i, w := range want {
		if res[i].status != w.status || !strings.HasPrefix(string(res[i].body), w.body) {
			t.Errorf("request %d: %d %s, want %d %s", i, res[i].status, res[i].body, w.status, w.body)
		}
		if got := res[i].header.Get(headerServedBy); got != "t1" {
			t.Errorf("request %d served by %q, want t1", i, got)
		}
	}
	if res[0].header.Get(headerRaftIndex) == "" {
		t.Error("the write's answer carries no raft index")
	}
	if res[1].header.Get("WWW-Authenticate") != basicChallenge {
		t.Errorf("401 without the challenge: %v", res[1].header)
	}

	nested := []*fwdItem{{method: "POST", uri: forwardBatchPath, header: http.Header{}}}
	if code, _ := postBatch(t, a, "k", nested); code != http.StatusBadRequest {
		t.Fatalf("nested batch: %d, want 400", code)
	}
}

// fakeLeader answers batches with handle and counts them.
func fakeLeader(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) (addr string, batches *atomic.Int64) {
	batches = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		batches.Add(1)
		reqs, err := decodeBatch(r, mustRead(r.Body))
		if err != nil {
			t.Errorf("fake leader: %v", err)
		}
		handle(w, r, len(reqs))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), batches
}

func mustRead(r io.Reader) []byte {
	b, _ := io.ReadAll(r)
	return b
}

func newTestBatcher(inFlight int) *batcher {
	return newBatcher(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, func() string { return "k" }, inFlight, hclog.NewNullLogger())
}

func item() *fwdItem {
	return &fwdItem{ctx: context.Background(), method: "POST", uri: "/api/v1/user/token/", header: http.Header{}, body: []byte(`{}`)}
}

func TestBatcherCoalescesConcurrentRequests(t *testing.T) {
	release := make(chan struct{})
	var first sync.Once
	addr, batches := fakeLeader(t, func(w http.ResponseWriter, r *http.Request, n int) {
		// Hold the first batch until the others have queued behind it.
		first.Do(func() { <-release })
		recs := make([]itemRecorder, n)
		for i := range recs {
			recs[i].header = http.Header{"X-I": {"x"}}
			recs[i].WriteHeader(201)
		}
		w.Header().Set("Content-Type", batchContentType)
		w.Write(encodeAnswers(recs))
	})
	b := newTestBatcher(1)
	const n = 50
	var wg sync.WaitGroup
	results := make(chan fwdResult, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- b.do(addr, item())
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		queued := 0
		if q := b.queues[addr]; q != nil {
			queued = len(q.pending)
		}
		b.mu.Unlock()
		if queued == n-1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(results)
	for res := range results {
		if res.err != nil || res.status != 201 || res.header.Get("X-I") != "x" {
			t.Fatalf("result %+v", res)
		}
	}
	if got := batches.Load(); got != 2 {
		t.Fatalf("%d requests sent in %d batches, want 2 (one alone, then the %d that queued)", n, got, n-1)
	}
}

func TestBatcherFailures(t *testing.T) {
	// Nothing listens: the request certainly did not reach a leader.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	if res := newTestBatcher(1).do(closed, item()); res.err == nil || res.sent {
		t.Errorf("refused connection: %+v, want an error with sent=false", res)
	}

	// A node without the route: nothing ran, fall back to plain HTTP for a while.
	old, _ := fakeLeader(t, func(w http.ResponseWriter, r *http.Request, n int) { writeError(w, errNotFound()) })
	b := newTestBatcher(1)
	if res := b.do(old, item()); !errors.Is(res.err, errBatchUnsupported) || res.sent {
		t.Errorf("404 from the leader: %+v, want errBatchUnsupported", res)
	}
	if b.usable(old, nil) {
		t.Error("batches still used for a leader without the route")
	}

	// Not the leader (any more): retry elsewhere.
	notLeader, _ := fakeLeader(t, func(w http.ResponseWriter, r *http.Request, n int) { writeError(w, cluster.ErrNotLeader) })
	if res := newTestBatcher(1).do(notLeader, item()); !errors.Is(res.err, cluster.ErrNotLeader) || res.sent {
		t.Errorf("not-leader answer: %+v, want ErrNotLeader with sent=false", res)
	}

	// The leader took the batch and the connection died: in doubt, never retried.
	dropped, _ := fakeLeader(t, func(w http.ResponseWriter, r *http.Request, n int) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	})
	if res := newTestBatcher(1).do(dropped, item()); !errors.Is(res.err, errForwardInDoubt) || !res.sent {
		t.Errorf("dropped connection: %+v, want errForwardInDoubt with sent=true", res)
	}

	// Garbage in a 200: in doubt too.
	garbage, _ := fakeLeader(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", batchContentType)
		w.Write([]byte{batchWireVersion, 5})
	})
	if res := newTestBatcher(1).do(garbage, item()); !errors.Is(res.err, errForwardInDoubt) || !res.sent {
		t.Errorf("undecodable answer: %+v, want errForwardInDoubt with sent=true", res)
	}

	// A client that left before its request was sent is not sent.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	it := item()
	it.ctx = ctx
	good, batches := fakeLeader(t, func(w http.ResponseWriter, r *http.Request, n int) {})
	b = newTestBatcher(1)
	b.mu.Lock()
	b.queues[good] = &batchQueue{addr: good, inFlight: 1} // as if a batch were on its way
	b.mu.Unlock()
	done := make(chan fwdResult, 1)
	go func() { done <- b.do(good, it) }()
	res := <-done
	if res.err == nil {
		t.Errorf("cancelled request: %+v", res)
	}
	b.mu.Lock()
	batch := b.queues[good].take()
	b.mu.Unlock()
	if len(batch) != 0 || batches.Load() != 0 {
		t.Errorf("a cancelled request was batched: %d in the batch, %d sent", len(batch), batches.Load())
	}
}
