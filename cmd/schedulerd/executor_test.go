package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/seedscheduler/schedulerd/executor"
)

// sink records every delivery it receives.
type sink struct {
	mu    sync.Mutex
	got   []delivery
	fail  map[string]int // path → status to answer (0: 200)
	srv   *httptest.Server
	hooks []string // bodies of webhook calls
}

type delivery struct {
	path, key, scheduledAt, auth, userAgent, contentType, body string
	attempt                                                    int
	at                                                         time.Time
}

func newSink(t *testing.T) *sink {
	s := &sink{fail: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.URL.Path == "/hook-target" {
			s.hooks = append(s.hooks, r.Header.Get("Authorization")+" "+string(b))
			return
		}
		n, _ := strconv.Atoi(r.Header.Get("X-Scheduler-Attempt"))
		s.got = append(s.got, delivery{path: r.URL.Path, key: r.Header.Get("Idempotency-Key"),
			scheduledAt: r.Header.Get("X-Scheduler-Scheduled-At"), auth: r.Header.Get("Authorization"),
			userAgent: r.Header.Get("User-Agent"), contentType: r.Header.Get("Content-Type"), body: string(b),
			attempt: n, at: time.Now()})
		if code := s.fail[r.URL.Path]; code != 0 {
			w.WriteHeader(code)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) setFail(path string, code int) {
	s.mu.Lock()
	s.fail[path] = code
	s.mu.Unlock()
}

func (s *sink) deliveries(path string) []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []delivery
	for _, d := range s.got {
		if d.path == path {
			out = append(out, d)
		}
	}
	return out
}

// startDaemon runs one in-process node with a short retry policy, as the
// tests of retries need.
func startDaemon(t *testing.T, s nodeSpec, retry executor.RetryPolicy, extra ...string) *daemon {
	t.Helper()
	return startDaemonWith(t, s, retry, nil, extra...)
}

// startDaemonWith lets the test adjust the daemon before it starts.
func startDaemonWith(t *testing.T, s nodeSpec, retry executor.RetryPolicy, adjust func(*daemon), extra ...string) *daemon {
	t.Helper()
	cfg, err := ParseConfig(s.args(extra...), func(k string) string {
		switch k {
		case "SCHEDULERD_ADMIN_TOKEN":
			return testToken
		case "SCHEDULERD_WEBHOOK_TOKEN":
			return "hooktoken"
		}
		return ""
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cfg: cfg, stdout: io.Discard, fatal: make(chan error, 1), retry: retry}
	d.log = hclog.New(&hclog.LoggerOptions{Name: s.id, Level: hclog.Warn, Output: testLogOutput})
	if adjust != nil {
		adjust(d)
	}
	if err := d.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.shutdown)
	return d
}

func (d *daemon) url(path string) string { return "http://" + d.cfg.HTTPAdvertise + path }

func createSchedule(t *testing.T, url string, body map[string]any) map[string]any {
	t.Helper()
	r := call(t, "POST", url+"/api/v1/schedule/", testToken, body)
	if r.status != http.StatusCreated {
		t.Fatalf("create schedule: %d %s", r.status, r.body)
	}
	return r.json(t)
}

func baseURL(d *daemon) string { return "http://" + d.cfg.HTTPAdvertise }

var fastRetry = executor.RetryPolicy{First: 100 * time.Millisecond, Cap: 200 * time.Millisecond, Attempts: 3}

func TestExecutorDeliversEverySlotWithTheContractRequest(t *testing.T) {
	sk := newSink(t)
	d := startDaemon(t, newSpec(t, "x1"), fastRetry, "-bootstrap")
	waitFor(t, "ready", 10*time.Second, func() bool { return call(t, "GET", d.url("/api/v1/"), testToken, nil).status == 200 })
	sc := createSchedule(t, baseURL(d), map[string]any{"endpoint": sk.srv.URL + "/every", "interval_definition": "1 seconds",
		"payload": map[string]any{"hello": []int{1, 2}}, "auth_token": "blah", "frequency": 3})
	id := sc["id"].(string)
	waitFor(t, "three deliveries", 10*time.Second, func() bool { return len(sk.deliveries("/every")) >= 3 })

	got := sk.deliveries("/every")
	slotsSeen := map[int64]bool{}
	for _, g := range got {
		slotStr, ok := strings.CutPrefix(g.key, id+":")
		if !ok {
			t.Fatalf("Idempotency-Key %q is not <schedule id>:<slot>", g.key)
		}
		slot, _ := strconv.ParseInt(slotStr, 10, 64)
		slotsSeen[slot] = true
		if want := time.Unix(slot, 0).UTC().Format(time.RFC3339); g.scheduledAt != want {
			t.Errorf("X-Scheduler-Scheduled-At = %q, want %q", g.scheduledAt, want)
		}
		if g.attempt != 1 || g.auth != "Token blah" || g.contentType != "application/json" ||
			!strings.HasPrefix(g.userAgent, "seed-scheduler/") || g.body != `{"hello":[1,2]}` {
			t.Errorf("delivery %+v does not match the contract", g)
		}
		if late := g.at.Sub(time.Unix(slot, 0)); late < 0 || late > time.Second {
			t.Errorf("slot %d delivered %v after its time", slot, late)
		}
	}
	if len(slotsSeen) != 3 {
		t.Fatalf("slots delivered: %v, want 3 distinct", slotsSeen)
	}
	// frequency 3: no fourth delivery, and the schedule is disabled.
	waitFor(t, "the schedule to be disabled", 5*time.Second, func() bool {
		r := call(t, "GET", d.url("/api/v1/schedule/"+id+"/"), testToken, nil)
		m := r.json(t)
		return m["enabled"] == false && m["triggered"] == float64(3) && m["last_run_at"] != nil && m["next_run_at"] == nil
	})
	// The ledger shows three delivered runs (outcomes are recorded in
	// batches, shortly after the deliveries).
	var runs struct {
		Count   int
		Results []struct {
			State    string
			Attempts []struct {
				StatusCode int `json:"status_code"`
			}
		}
	}
	waitFor(t, "three delivered runs in the ledger", 5*time.Second, func() bool {
		r := call(t, "GET", d.url("/api/v1/schedule/"+id+"/runs/"), testToken, nil)
		json.Unmarshal(r.body, &runs)
		return runs.Count == 3 && !strings.Contains(string(r.body), `"state":"claimed"`)
	})
	for _, run := range runs.Results {
		if run.State != "delivered" || len(run.Attempts) != 1 || run.Attempts[0].StatusCode != 200 {
			t.Fatalf("run %+v, want delivered in one attempt", run)
		}
	}
	if n := len(sk.deliveries("/every")); n != 3 {
		t.Fatalf("%d deliveries, want exactly 3 (frequency)", n)
	}
}

func TestExecutorRetriesThenRecordsFailureAndRequeues(t *testing.T) {
	sk := newSink(t)
	sk.setFail("/flaky", 500)
	d := startDaemon(t, newSpec(t, "x1"), fastRetry, "-bootstrap")
	waitFor(t, "ready", 10*time.Second, func() bool { return call(t, "GET", d.url("/api/v1/"), testToken, nil).status == 200 })
	sc := createSchedule(t, baseURL(d), map[string]any{"endpoint": sk.srv.URL + "/flaky", "interval_definition": "1 seconds", "frequency": 1})
	id := sc["id"].(string)
	waitFor(t, "a failed task", 10*time.Second, func() bool {
		r := call(t, "GET", d.url("/api/v1/failed-tasks/"), testToken, nil)
		return r.status == 200 && r.json(t)["count"] == float64(1)
	})
	got := sk.deliveries("/flaky")
	if len(got) != 3 {
		t.Fatalf("%d attempts, want 3", len(got))
	}
	for i, g := range got {
		if g.attempt != i+1 || g.key != got[0].key {
			t.Fatalf("attempt %d: %+v, want attempt %d with key %s", i, g, i+1, got[0].key)
		}
		if i > 0 && g.at.Sub(got[i-1].at) < 80*time.Millisecond {
			t.Fatalf("retry %d came %v after the previous attempt, before the backoff", i, g.at.Sub(got[i-1].at))
		}
	}
	// The schedule is still enabled? No: frequency 1 disabled it at the
	// claim. Re-enable it so a requeue re-delivers (disabled ones are not).
	if r := call(t, "PATCH", d.url("/api/v1/schedule/"+id+"/"), testToken, map[string]any{"enabled": true, "interval_definition": "1 days"}); r.status != 200 || r.json(t)["enabled"] != true {
		t.Fatalf("re-enable: %d %s", r.status, r.body)
	}
	sk.setFail("/flaky", 0)
	if r := call(t, "POST", d.url("/api/v1/failed-tasks/"), testToken, nil); r.status != 201 {
		t.Fatalf("requeue: %d %s", r.status, r.body)
	}
	waitFor(t, "the requeued delivery and the failure record gone", 10*time.Second, func() bool {
		r := call(t, "GET", d.url("/api/v1/failed-tasks/"), testToken, nil)
		return len(sk.deliveries("/flaky")) == 4 && r.json(t)["count"] == float64(0)
	})
	// The failed slot is sent again: same key, attempts numbered on.
	if g := sk.deliveries("/flaky")[3]; g.attempt != 4 || g.key != got[0].key {
		t.Fatalf("requeued delivery %+v: want attempt 4 with key %s", g, got[0].key)
	}
	waitFor(t, "the requeued run recorded as delivered", 5*time.Second, func() bool {
		r := call(t, "GET", d.url("/api/v1/schedule/"+id+"/runs/"), testToken, nil)
		return strings.Contains(string(r.body), `"kind":"requeue","state":"delivered"`)
	})
}

func TestWebhookScheduleAddedFiresOnce(t *testing.T) {
	sk := newSink(t)
	d := startDaemon(t, newSpec(t, "x1"), fastRetry, "-bootstrap")
	waitFor(t, "ready", 10*time.Second, func() bool { return call(t, "GET", d.url("/api/v1/"), testToken, nil).status == 200 })
	waitFor(t, "the first admin", 10*time.Second, func() bool { return call(t, "GET", d.url("/api/v1/"), testToken, nil).status == 200 })
	if r := call(t, "POST", d.url("/api/v1/webhook/"), testToken, map[string]any{"event": "schedule.added", "target": sk.srv.URL + "/hook-target"}); r.status != 201 {
		t.Fatalf("create webhook: %d %s", r.status, r.body)
	}
	for i := 0; i < 2; i++ {
		createSchedule(t, baseURL(d), map[string]any{"endpoint": "http://example.org/", "auth_token": "secret-token"})
	}
	waitFor(t, "two webhook calls", 10*time.Second, func() bool {
		sk.mu.Lock()
		defer sk.mu.Unlock()
		return len(sk.hooks) == 2
	})
	sk.mu.Lock()
	hooks := append([]string(nil), sk.hooks...)
	sk.mu.Unlock()
	for _, h := range hooks {
		if !strings.HasPrefix(h, `Token hooktoken {"hook":{"id":1,"event":"schedule.added","target":"`) ||
			strings.Contains(h, "secret-token") || !strings.Contains(h, `"next_send_at":null`) {
			t.Errorf("webhook call %s", h)
		}
	}
}

// TestFailoverDeliversEverySlot stops the leader of a 3-node cluster while
// schedules fire every second: every slot due during the run is delivered
// at least once, and re-deliveries carry the same key.
func TestFailoverDeliversEverySlot(t *testing.T) {
	sk := newSink(t)
	specs := []nodeSpec{newSpec(t, "n1"), newSpec(t, "n2"), newSpec(t, "n3")}
	join := strings.Join([]string{specs[0].httpAddr, specs[1].httpAddr, specs[2].httpAddr}, ",")
	var ds []*daemon
	for _, s := range specs {
		ds = append(ds, startDaemon(t, s, fastRetry, "-bootstrap-expect", "3", "-join", join))
	}
	var leader *daemon
	waitFor(t, "a leader", 20*time.Second, func() bool {
		for _, d := range ds {
			if d.node.IsLeader() && call(t, "GET", d.url("/readyz"), "", nil).status == 200 {
				leader = d
				return true
			}
		}
		return false
	})
	waitFor(t, "the first admin", 10*time.Second, func() bool { return call(t, "GET", leader.url("/api/v1/"), testToken, nil).status == 200 })
	var ids []string
	for i := 0; i < 5; i++ {
		sc := createSchedule(t, baseURL(leader), map[string]any{"endpoint": sk.srv.URL + fmt.Sprintf("/s%d", i), "cron_definition": "* * * * * * *"})
		ids = append(ids, sc["id"].(string))
	}
	start := time.Now().Unix() + 1
	waitFor(t, "a few slots", 10*time.Second, func() bool { return time.Now().Unix() >= start+3 })
	leader.shutdown()
	var rest []*daemon
	for _, d := range ds {
		if d != leader {
			rest = append(rest, d)
		}
	}
	waitFor(t, "a new leader", 10*time.Second, func() bool { return rest[0].node.IsLeader() || rest[1].node.IsLeader() })
	end := time.Now().Unix() + 3
	waitFor(t, "slots after the failover", 15*time.Second, func() bool {
		for i := range ids {
			last := int64(0)
			for _, g := range sk.deliveries(fmt.Sprintf("/s%d", i)) {
				s, _ := strconv.ParseInt(g.key[strings.LastIndex(g.key, ":")+1:], 10, 64)
				last = max(last, s)
			}
			if last < end {
				return false
			}
		}
		return true
	})
	redelivered := 0
	for i, id := range ids {
		seen := map[int64]int{}
		for _, g := range sk.deliveries(fmt.Sprintf("/s%d", i)) {
			slotStr, ok := strings.CutPrefix(g.key, id+":")
			if !ok {
				t.Fatalf("key %q of schedule %s", g.key, id)
			}
			s, _ := strconv.ParseInt(slotStr, 10, 64)
			seen[s]++
		}
		var missing []int64
		for s := start; s <= end; s++ {
			if seen[s] == 0 {
				missing = append(missing, s)
			}
			if seen[s] > 1 {
				redelivered++
			}
		}
		if len(missing) > 0 {
			keys := make([]int64, 0, len(seen))
			for s := range seen {
				keys = append(keys, s)
			}
			sort.Slice(keys, func(a, b int) bool { return keys[a] < keys[b] })
			t.Errorf("schedule %d: slots %v never delivered (delivered: %v)", i, missing, keys)
		}
	}
	t.Logf("slots %d..%d of %d schedules all delivered; %d re-deliveries (same key)", start, end, len(ids), redelivered)

	// Stop firing, let the last outcomes land, then every surviving node
	// must hold the same ledger (and the same everything else).
	for _, id := range ids {
		if r := call(t, "PATCH", rest[0].url("/api/v1/schedule/"+id+"/"), testToken, map[string]any{"enabled": false}); r.status != 200 {
			t.Fatalf("disable: %d %s", r.status, r.body)
		}
	}
	// A slot claimed ahead of the disabling is closed (cancelled) at its
	// time; after that nothing is in flight.
	waitFor(t, "no runs in flight after disabling", 10*time.Second, func() bool {
		for _, id := range ids {
			r := call(t, "GET", rest[0].url("/api/v1/schedule/"+id+"/runs/?page_size=1000"), testToken, nil)
			if strings.Contains(string(r.body), `"state":"claimed"`) || strings.Contains(string(r.body), `"state":"retrying"`) {
				return false
			}
		}
		return true
	})
	waitFor(t, "the survivors to agree on the whole state", 15*time.Second, func() bool {
		a, b := rest[0].node.FSM(), rest[1].node.FSM()
		if a.AppliedIndex() != b.AppliedIndex() {
			return false
		}
		da, errA := a.Digest()
		db, errB := b.Digest()
		return errA == nil && errB == nil && da == db && a.AppliedIndex() == b.AppliedIndex()
	})
}

var testLogOutput io.Writer = io.Discard
