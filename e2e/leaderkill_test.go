//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

type kill struct {
	victim  string
	at      time.Time
	elected time.Duration // until a surviving node reported itself leader
	write   time.Duration // until a create invoked after the kill was acknowledged through nginx
}

// TestLeaderKillsUnderLoad (CI profile): 8 clients create schedules and
// read them back through nginx while the leader is SIGKILLed again and
// again (E2E_KILLS, default 20; with E2E_DURATION the kills go on until it
// has passed). At the end: every acknowledged create is on every node, the
// create/read history is consistent, every node has the same state at the
// same index, and every slot of every firing schedule was delivered.
func TestLeaderKillsUnderLoad(t *testing.T) {
	kills := envInt("E2E_KILLS", 20)
	soak := envDuration("E2E_DURATION", 0)
	clients := envInt("E2E_CLIENTS", 8)
	firingMax := int64(envInt("E2E_FIRING", 48))
	tick := envDuration("E2E_CLIENT_TICK", 150*time.Millisecond)
	budget := 5 * time.Minute // the kill phase; the test as a whole stays under 6
	if soak > 0 {
		budget = soak
	}
	started := time.Now()

	c := newCluster(t, 3)
	lb := startNginx(t, c)
	sk := newSink(t)
	hist := &history{}

	// ---- workload ----
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var firingLeft atomic.Int64
	firingLeft.Store(firingMax)
	var wg sync.WaitGroup
	for cl := 0; cl < clients; cl++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runClient(ctx, cl, hc, lb, sk, hist, &firingLeft, tick)
		}()
	}

	// Digest sampler: equal applied index must mean equal digest, at any time.
	dg := newDigestLog()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			dg.sample(c)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond): // sampling period
			}
		}
	}()

	// ---- nemesis: SIGKILL the leader ----
	var ks []kill
	waitFor(t, "a first acknowledged create through nginx", 30*time.Second, func() bool {
		return hist.acceptedWriteInvokedAfter(started)
	})
	for i := 0; ; i++ {
		if soak > 0 && time.Since(started) > soak {
			break
		}
		if soak == 0 && i >= kills {
			break
		}
		if time.Since(started) > budget {
			t.Errorf("only %d of %d leader kills within %v", i, kills, budget)
			break
		}
		leader := c.WaitHealthy(60 * time.Second)
		k := kill{victim: leader.id, at: time.Now()}
		c.Kill(leader)
		var nl *node
		waitFor(t, fmt.Sprintf("a new leader after killing %s (kill %d)", leader.id, i+1), 30*time.Second, func() bool {
			l, ok := c.Leader()
			nl = l
			return ok && l != leader
		})
		k.elected = time.Since(k.at)
		waitFor(t, fmt.Sprintf("an acknowledged create through nginx after kill %d", i+1), 30*time.Second, func() bool {
			return hist.acceptedWriteInvokedAfter(k.at)
		})
		ks = append(ks, k)
		t.Logf("kill %d: %s (new leader %s after %v)", i+1, leader.id, nl.id, k.elected.Round(time.Millisecond))
		c.Start(leader)
		// The restarted node must be back and the load flowing again before
		// the next kill: a few acknowledged creates on the healed cluster.
		c.WaitHealthy(60 * time.Second)
		back := time.Now()
		waitFor(t, "an acknowledged create after the restart", 30*time.Second, func() bool {
			return hist.acceptedWriteInvokedAfter(back)
		})
		// ... and the leader firing: a slot two seconds past the restart delivered.
		waitFor(t, "a delivery of a slot after the restart", 30*time.Second, func() bool {
			return sk.deliveredSlotAfter(back.Unix() + 2)
		})
	}
	c.WaitHealthy(60 * time.Second)
	// Let the workload run on the healed cluster until a write went through.
	healed := time.Now()
	waitFor(t, "an acknowledged create on the healed cluster", 30*time.Second, func() bool {
		return hist.acceptedWriteInvokedAfter(healed)
	})
	stop()
	wg.Wait()
	end := time.Now()
	endSlot := end.Unix() - 1 // every slot up to here must be delivered
	ops := hist.snapshot()
	t.Logf("workload stopped after %v", end.Sub(started).Round(time.Second))

	var violations []string
	violate := func(format string, args ...any) {
		violations = append(violations, fmt.Sprintf(format, args...))
	}

	// ---- every node holds the state up to the leader's commit index ----
	leader := c.WaitHealthy(30 * time.Second)
	li, ok := c.info(leader)
	if !ok {
		t.Fatal("leader does not answer /api/v1/cluster/")
	}
	for _, nd := range c.nodes {
		waitFor(t, fmt.Sprintf("%s to apply index %d", nd.id, li.CommitIndex), 30*time.Second, func() bool {
			ci, ok := c.info(nd)
			return ok && ci.AppliedIndex >= li.CommitIndex
		})
	}

	// ---- all schedules, by endpoint path, as each node lists them ----
	byEndpoint := map[string][]string{} // path → ids, from node 1
	idPath := map[string]string{}
	for i, nd := range c.nodes {
		items, err := listSchedules(c.hc, nd)
		if err != nil {
			t.Fatalf("list schedules on %s: %v", nd.id, err)
		}
		if i == 0 {
			for id, ep := range items {
				u, _ := url.Parse(ep)
				byEndpoint[u.Path] = append(byEndpoint[u.Path], id)
				idPath[id] = u.Path
			}
		} else if len(items) != len(idPath) {
			violate("%s lists %d schedules, %s lists %d", nd.id, len(items), c.nodes[0].id, len(idPath))
		}
	}

	// ---- creates: acknowledged ones exist once on every node; failed ones nowhere ----
	var nCreate, nOK, nUnknown, nFailed, nRead, nUnknownExisted int
	var acked []op
	for _, o := range ops {
		if o.kind == "read" {
			nRead++
			continue
		}
		nCreate++
		ids := byEndpoint[o.key]
		if len(ids) > 1 {
			violate("create applied %d times (ids %v): %v", len(ids), ids, o)
		}
		switch o.out {
		case outOK:
			nOK++
			acked = append(acked, o)
			if len(ids) == 0 || ids[0] != o.id {
				violate("acknowledged create missing from the listing (found %v): %v", ids, o)
			}
		case outFailed:
			nFailed++
			if len(ids) != 0 {
				violate("create that failed exists as %v: %v", ids, o)
			}
		default:
			nUnknown++
			if len(ids) > 0 {
				nUnknownExisted++
			}
		}
	}
	for i, nd := range c.nodes {
		q := ""
		if i == 0 {
			q = "?consistency=strong"
		}
		missing := getAll(c.hc, nd, acked, q)
		for _, m := range missing {
			violate("acknowledged create not readable on %s%s: %s", nd.id, q, m)
		}
	}
	for _, v := range checkCreateRead(ops) {
		violate("%s", v)
	}

	// ---- slots: every slot from a schedule's first delivery to the end of
	// the run is delivered at least once; re-deliveries keep their key ----
	var firingIDs []string
	for _, o := range ops {
		if o.kind == "create" && o.firing {
			for _, id := range byEndpoint[o.key] {
				firingIDs = append(firingIDs, id)
			}
		}
	}
	var slotReport slotStats
	deadline := time.Now().Add(60 * time.Second)
	for {
		slotReport = checkSlots(sk.deliveries(), firingIDs, idPath, endSlot, started)
		if len(slotReport.missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // poll interval: late slots still arriving
	}
	violations = append(violations, slotReport.missing...)
	violations = append(violations, slotReport.bad...)
	for _, o := range acked {
		if o.firing && o.ret.Before(end.Add(-5*time.Second)) && slotReport.perSchedule[o.id] == 0 {
			violate("firing schedule never delivered: %v", o)
		}
	}

	// ---- digests: compare every pair of nodes at a common index ----
	final := newDigestLog()
	waitFor(t, "every pair of nodes sampled at a common applied index", 30*time.Second, func() bool {
		final.sample(c)
		return final.pairsCovered(len(c.nodes))
	})
	dg.merge(final)
	violations = append(violations, dg.mismatches()...)

	// ---- report ----
	var gaps, elect []time.Duration
	for _, k := range ks {
		// first acknowledged create invoked after the kill, through nginx
		first := time.Duration(-1)
		for _, o := range ops {
			if o.kind == "create" && o.out == outOK && !o.invoke.Before(k.at) {
				if d := o.ret.Sub(k.at); first < 0 || d < first {
					first = d
				}
			}
		}
		gaps = append(gaps, first)
		elect = append(elect, k.elected)
	}
	t.Logf("kills: %d leader SIGKILLs in %v", len(ks), end.Sub(started).Round(time.Second))
	t.Logf("leader kill → new leader: %s", durations(elect))
	t.Logf("leader kill → first accepted write through nginx: %s", durations(gaps))
	t.Logf("ops: %d (creates %d: ok %d, failed %d, unknown %d of which %d applied; strong reads %d)",
		len(ops), nCreate, nOK, nFailed, nUnknown, nUnknownExisted, nRead)
	if sum := outcomeSummary(ops); sum != "" {
		t.Logf("answers other than ok:\n%s", sum)
	}
	if sum := lb.upstreamFailures(); sum != "" {
		t.Logf("nginx: requests an upstream failed (access log):\n%s", sum)
	}
	if sum := lb.errorLogSummary(); sum != "" {
		t.Logf("nginx error log:\n%s", sum)
	}
	for _, o := range ops {
		if o.out != outOK {
			t.Logf("first answer other than ok, %v after the start: %v", o.invoke.Sub(started).Round(time.Millisecond), o)
			break
		}
	}
	t.Logf("schedules: %d listed on every node, %d firing every second", len(idPath), len(firingIDs))
	t.Logf("slots checked: %d (up to %s), deliveries %d, re-deliveries %d (same key), digest comparisons %d",
		slotReport.slots, time.Unix(endSlot, 0).UTC().Format("15:04:05"), slotReport.deliveries, slotReport.redeliveries, dg.compared)
	t.Logf("violations: %d", len(violations))
	if len(violations) > 0 {
		sort.Strings(violations)
		if len(violations) > 200 {
			violations = append(violations[:200], fmt.Sprintf("... and %d more", len(violations)-200))
		}
		t.Errorf("violations:\n%s", strings.Join(violations, "\n"))
	}
}

// runClient creates schedules through nginx and reads each back with a
// linearizable read, plus one earlier schedule of its own, until ctx ends.
func runClient(ctx context.Context, cl int, hc *http.Client, lb *loadBalancer, sk *sink, hist *history, firingLeft *atomic.Int64, tick time.Duration) {
	rng := rand.New(rand.NewPCG(uint64(cl), 7))
	var mine []string
	tk := time.NewTicker(tick) // the client's request rate
	defer tk.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		key := fmt.Sprintf("/s/c%d-%d", cl, seq)
		firing := firingLeft.Add(-1) >= 0
		body := map[string]any{"endpoint": sk.url(key), "payload": map[string]any{"client": cl, "seq": seq}}
		if firing {
			body["interval_definition"] = "1 seconds"
		} else {
			body["cron_definition"] = "0 0 1 1 * 2099" // never fires during the run
		}
		o := op{client: cl, kind: "create", key: key, firing: firing, invoke: time.Now()}
		r := do(hc, "POST", lb.url("/api/v1/schedule/"), body)
		o.ret, o.status = time.Now(), r.status
		var created struct{ ID string }
		switch {
		case r.status == 201 && r.decode(&created) == nil && created.ID != "":
			o.out, o.id = outOK, created.ID
			mine = append(mine, created.ID)
		case r.status >= 400 && r.status < 500:
			o.out, o.detail = outFailed, r.String()
		default:
			o.out, o.detail = outUnknown, r.String()
		}
		if firing && o.out != outOK {
			// Soft cap: a create that may not have happened gives its
			// firing slot back (one that did happen fires all the same).
			firingLeft.Add(1)
		}
		hist.add(o)
		if o.out == outOK {
			read(hc, lb, hist, cl, key, o.id)
		}
		if len(mine) > 0 {
			read(hc, lb, hist, cl, "", mine[rng.IntN(len(mine))])
		}
	}
}

func read(hc *http.Client, lb *loadBalancer, hist *history, cl int, key, id string) {
	o := op{client: cl, kind: "read", key: key, id: id, invoke: time.Now()}
	r := do(hc, "GET", lb.url("/api/v1/schedule/"+id+"/?consistency=strong"), nil)
	o.ret, o.status = time.Now(), r.status
	var got struct{ ID string }
	switch {
	case r.status == 200 && r.decode(&got) == nil && got.ID == id:
		o.out, o.found = outOK, true
	case r.status == 404:
		o.out = outOK
	case r.status >= 400 && r.status < 500:
		o.out, o.detail = outFailed, r.String()
	default:
		o.out, o.detail = outUnknown, r.String()
	}
	hist.add(o)
}

// listSchedules pages through GET /api/v1/schedule/ on one node (local
// reads): id → endpoint.
func listSchedules(hc *http.Client, nd *node) (map[string]string, error) {
	out := map[string]string{}
	next := "http://" + nd.httpAddr + "/api/v1/schedule/"
	for next != "" {
		r := do(hc, "GET", next, nil)
		if r.status != 200 {
			return nil, fmt.Errorf("%s: %v", next, r)
		}
		var page struct {
			Next    *string
			Results []struct{ ID, Endpoint string }
		}
		if err := r.decode(&page); err != nil {
			return nil, err
		}
		for _, it := range page.Results {
			out[it.ID] = it.Endpoint
		}
		next = ""
		if page.Next != nil {
			next = *page.Next
		}
	}
	return out, nil
}

// getAll GETs every acknowledged schedule on one node; returns the misses.
func getAll(hc *http.Client, nd *node, acked []op, query string) []string {
	var mu sync.Mutex
	var missing []string
	work := make(chan op)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				var r resp
				for attempt := 0; attempt < 3; attempt++ {
					if r = do(hc, "GET", "http://"+nd.httpAddr+"/api/v1/schedule/"+o.id+"/"+query, nil); r.status == 200 || r.status == 404 {
						break
					}
				}
				if r.status != 200 {
					mu.Lock()
					missing = append(missing, fmt.Sprintf("%v: %v", o, r))
					mu.Unlock()
				}
			}
		}()
	}
	for _, o := range acked {
		work <- o
	}
	close(work)
	wg.Wait()
	return missing
}

type slotStats struct {
	slots, deliveries, redeliveries int
	perSchedule                     map[string]int
	missing, bad                    []string
}

// checkSlots: for every firing schedule, every slot from its first delivered
// slot to endSlot was delivered at least once; every delivery's key is
// <id>:<slot>, it came to the schedule's own endpoint, and its scheduled
// time is the slot's.
func checkSlots(ds []sinkDelivery, firingIDs []string, idPath map[string]string, endSlot int64, started time.Time) slotStats {
	st := slotStats{perSchedule: map[string]int{}}
	seen := map[string]map[int64]int{}
	for _, id := range firingIDs {
		seen[id] = map[int64]int{}
	}
	for _, d := range ds {
		st.deliveries++
		id, slotStr, ok := strings.Cut(d.key, ":")
		slot, err := strconv.ParseInt(slotStr, 10, 64)
		if !ok || err != nil {
			st.bad = append(st.bad, fmt.Sprintf("delivery with a malformed Idempotency-Key %q to %s", d.key, d.path))
			continue
		}
		if p, known := idPath[id]; !known || p != d.path {
			st.bad = append(st.bad, fmt.Sprintf("delivery of %q to %s, the schedule's endpoint is %q", d.key, d.path, p))
		}
		if want := time.Unix(slot, 0).UTC().Format(time.RFC3339); d.scheduledAt != want {
			st.bad = append(st.bad, fmt.Sprintf("delivery of %q says scheduled at %q, want %q", d.key, d.scheduledAt, want))
		}
		if seen[id] == nil {
			seen[id] = map[int64]int{}
		}
		if seen[id][slot] > 0 {
			st.redeliveries++
		}
		seen[id][slot]++
		st.perSchedule[id]++
	}
	for id, slots := range seen {
		if len(slots) == 0 {
			continue
		}
		first := int64(1 << 62)
		for s := range slots {
			first = min(first, s)
		}
		var miss []string
		for s := first; s <= endSlot; s++ {
			st.slots++
			if slots[s] == 0 {
				miss = append(miss, time.Unix(s, 0).UTC().Format("15:04:05"))
			}
		}
		if len(miss) > 0 {
			st.missing = append(st.missing, fmt.Sprintf("schedule %s (%s): %d slots never delivered: %v", id, idPath[id], len(miss), miss))
		}
	}
	return st
}

// digestLog keeps every (node, applied index, digest) sample.
type digestLog struct {
	mu       sync.Mutex
	at       map[uint64]map[string]string // index → node → digest
	compared int
}

func newDigestLog() *digestLog { return &digestLog{at: map[uint64]map[string]string{}} }

func (l *digestLog) sample(c *cluster) {
	var wg sync.WaitGroup
	for _, nd := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d, ok := c.digest(nd); ok {
				l.mu.Lock()
				if l.at[d.AppliedIndex] == nil {
					l.at[d.AppliedIndex] = map[string]string{}
				}
				l.at[d.AppliedIndex][d.NodeID] = d.Digest
				l.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// pairsCovered: every pair of the n nodes was seen at one common index.
func (l *digestLog) pairsCovered(n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	pairs := map[[2]string]bool{}
	for _, m := range l.at {
		for a := range m {
			for b := range m {
				if a < b {
					pairs[[2]string{a, b}] = true
				}
			}
		}
	}
	return len(pairs) >= n*(n-1)/2
}

func (l *digestLog) merge(o *digestLog) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for idx, m := range o.at {
		if l.at[idx] == nil {
			l.at[idx] = map[string]string{}
		}
		for n, d := range m {
			l.at[idx][n] = d
		}
	}
}

func (l *digestLog) mismatches() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var bad []string
	for idx, m := range l.at {
		if len(m) < 2 {
			continue
		}
		l.compared++
		ref := ""
		for _, d := range m {
			if ref == "" {
				ref = d
			} else if d != ref {
				bad = append(bad, fmt.Sprintf("nodes differ at applied index %d: %v", idx, m))
				break
			}
		}
	}
	return bad
}
