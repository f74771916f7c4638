//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
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
	budget := 5 * time.Minute // the kill phase; the test as a whole stays under 6
	if soak > 0 {
		budget = soak
	}
	c, lr := startRun(t)
	started := lr.started

	// ---- nemesis: SIGKILL the leader ----
	var ks []kill
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
		lr.waitWrite(fmt.Sprintf("an acknowledged create through nginx after kill %d", i+1), k.at)
		ks = append(ks, k)
		t.Logf("kill %d: %s (new leader %s after %v)", i+1, leader.id, nl.id, k.elected.Round(time.Millisecond))
		c.Start(leader)
		// The restarted node must be back and the load flowing again before
		// the next kill.
		lr.waitRecovered("the restart")
	}
	ops, end := lr.finish()

	// ---- report of the nemesis ----
	var gaps, elect []time.Duration
	for _, k := range ks {
		gaps = append(gaps, firstAckAfter(ops, k.at))
		elect = append(elect, k.elected)
	}
	t.Logf("kills: %d leader SIGKILLs in %v", len(ks), end.Sub(started).Round(time.Second))
	t.Logf("leader kill → new leader: %s", durations(elect))
	t.Logf("leader kill → first accepted write through nginx: %s", durations(gaps))
	lr.check(ops, end)
}

// runClient creates schedules through nginx and reads each back with a
// linearizable read, plus one earlier schedule of its own, until ctx ends.
// About one iteration in eight it also updates the payload of one of its
// schedules (PATCH {"payload": {..., "v": n}}, n unique per client).
// Odd-numbered clients also stop and restart their own firing schedules:
// about one iteration in ten, either one disabled at least 3 s ago is
// re-enabled (PATCH {"enabled": true}), or the oldest live firing schedule
// at least 3 s old is disabled (PATCH {"enabled": false}) or deleted,
// alternately. A disabled schedule keeps its firing place until it is
// enabled again; an acknowledged delete gives its place back, so new
// firing schedules keep being created.
func runClient(ctx context.Context, cl int, hc *http.Client, lb *loadBalancer, sk *sink, hist *history, firingLeft *atomic.Int64, tick time.Duration) {
	rng := rand.New(rand.NewPCG(uint64(cl), 7))
	var mine []string         // every schedule it created, for reads
	var updatable []string    // those not deleted
	gone := map[string]bool{} // delete attempted
	type live struct {
		id string
		at time.Time
	}
	var firingMine []live   // firing schedules not stopped
	var disabledMine []live // firing schedules disabled (or perhaps: unknown outcome)
	stops, ver := 0, 0
	tk := time.NewTicker(tick) // the client's request rate
	defer tk.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		key := fmt.Sprintf("/s/c%d-%d", cl, seq)
		firing := takeFiring(firingLeft)
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
			updatable = append(updatable, created.ID)
			if firing {
				firingMine = append(firingMine, live{created.ID, o.ret})
			}
		case r.status >= 400 && r.status < 500:
			o.out, o.detail = outFailed, r.String()
		default:
			o.out, o.detail = outUnknown, r.String()
		}
		if firing && o.out != outOK {
			// Soft cap: a create that may not have happened gives its
			// firing place back (one that did happen fires all the same).
			firingLeft.Add(1)
		}
		hist.add(o)
		if o.out == outOK {
			read(hc, lb, hist, cl, key, o.id)
		}
		if len(mine) > 0 {
			read(hc, lb, hist, cl, "", mine[rng.IntN(len(mine))])
		}
		if len(updatable) > 0 && rng.IntN(8) == 0 {
			ver++
			id := updatable[rng.IntN(len(updatable))]
			if !gone[id] {
				writeSchedule(hc, lb, hist, op{client: cl, kind: "update", id: id, ver: ver},
					map[string]any{"payload": map[string]any{"client": cl, "seq": seq, "v": ver}})
			}
		}
		if cl%2 == 0 || rng.IntN(10) != 0 {
			continue
		}
		if len(disabledMine) > 0 && time.Since(disabledMine[0].at) > 3*time.Second && rng.IntN(2) == 0 {
			// A disabled schedule kept its firing place for this.
			id := disabledMine[0].id
			disabledMine = disabledMine[1:]
			switch writeSchedule(hc, lb, hist, op{client: cl, kind: "enable", id: id}, map[string]any{"enabled": true}) {
			case outFailed:
				firingLeft.Add(1)
			default: // ok, or perhaps enabled: it may fire, so it may be stopped again
				firingMine = append(firingMine, live{id, time.Now()})
			}
			continue
		}
		if len(firingMine) > 0 && time.Since(firingMine[0].at) > 3*time.Second {
			id := firingMine[0].id
			firingMine = firingMine[1:]
			stops++
			if stops%2 == 0 {
				gone[id] = true
				if writeSchedule(hc, lb, hist, op{client: cl, kind: "delete", id: id}, nil) == outOK {
					firingLeft.Add(1)
				}
				continue
			}
			writeSchedule(hc, lb, hist, op{client: cl, kind: "disable", id: id}, map[string]any{"enabled": false})
			disabledMine = append(disabledMine, live{id, time.Now()})
		}
	}
}

// takeFiring takes one firing slot from the budget, if any is left (never
// below zero, so a slot given back is taken again by the next create).
func takeFiring(left *atomic.Int64) bool {
	for {
		v := left.Load()
		if v <= 0 {
			return false
		}
		if left.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

// scheduleState is what the checks read of a schedule.
type scheduleState struct {
	ID      string
	Enabled *bool
	Payload struct {
		V int `json:"v"`
	}
}

// writeSchedule PATCHes (update, disable, enable) or DELETEs one of the
// client's schedules through nginx and records it; returns the outcome.
// A DELETE answered 404 counts as acknowledged: only this client deletes
// its schedules, and nginx may have retried the DELETE (an idempotent
// method) on another node after a first attempt that was applied. A PATCH
// is acknowledged by a 200 whose body shows the change.
func writeSchedule(hc *http.Client, lb *loadBalancer, hist *history, o op, patch map[string]any) string {
	o.invoke = time.Now()
	var r resp
	if o.kind == "delete" {
		r = do(hc, "DELETE", lb.url("/api/v1/schedule/"+o.id+"/"), nil)
	} else {
		r = do(hc, "PATCH", lb.url("/api/v1/schedule/"+o.id+"/"), patch)
	}
	o.ret, o.status = time.Now(), r.status
	var got scheduleState
	applied := func() bool {
		if r.status != 200 || r.decode(&got) != nil || got.Enabled == nil {
			return false
		}
		switch o.kind {
		case "update":
			return got.Payload.V == o.ver
		case "enable":
			return *got.Enabled
		default:
			return !*got.Enabled
		}
	}
	switch {
	case o.kind == "delete" && (r.status == 204 || r.status == 404):
		o.out = outOK
	case o.kind != "delete" && applied():
		o.out = outOK
	case r.status >= 400 && r.status < 500:
		o.out, o.detail = outFailed, r.String()
	default:
		o.out, o.detail = outUnknown, r.String()
	}
	hist.add(o)
	return o.out
}

func read(hc *http.Client, lb *loadBalancer, hist *history, cl int, key, id string) {
	o := op{client: cl, kind: "read", key: key, id: id, invoke: time.Now()}
	r := do(hc, "GET", lb.url("/api/v1/schedule/"+id+"/?consistency=strong"), nil)
	o.ret, o.status = time.Now(), r.status
	var got scheduleState
	switch {
	case r.status == 200 && r.decode(&got) == nil && got.ID == id && got.Enabled != nil:
		o.out, o.found, o.enabled, o.ver = outOK, true, *got.Enabled, got.Payload.V
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

// checkSlots: for every firing schedule, every slot it owes was delivered
// at least once; every delivery's key is <id>:<slot>, it came to the
// schedule's own endpoint, and its scheduled time is the slot's. A schedule
// owes the slots of its spans (owedSpans); one without writes owes every
// slot from its first delivered one to endSlot. The first span's start (0)
// is the schedule's first delivered slot.
func checkSlots(ds []sinkDelivery, firingIDs []string, idPath map[string]string, endSlot int64, owed map[string][]span) slotStats {
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
		spans, ok := owed[id]
		if !ok {
			spans = []span{{to: endSlot}}
		}
		var miss []string
		for i, sp := range spans {
			if i == 0 && sp.from == 0 {
				sp.from = first
			}
			for s := sp.from; s <= min(sp.to, endSlot); s++ {
				st.slots++
				if slots[s] == 0 {
					miss = append(miss, time.Unix(s, 0).UTC().Format("15:04:05"))
				}
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
