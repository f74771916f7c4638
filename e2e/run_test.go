//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loadRun is the client workload and the digest sampler of one test, shared
// by every nemesis test: start it with startLoad, inject faults, then
// finish and check.
type loadRun struct {
	t       *testing.T
	c       *cluster
	lb      *loadBalancer
	sk      *sink
	hist    *history
	dg      *digestLog
	started time.Time
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// startRun starts three nodes, nginx in front of them, the sink and the
// workload: what every nemesis test begins with.
func startRun(t *testing.T) (*cluster, *loadRun) {
	t.Helper()
	started := time.Now()
	c := newCluster(t, 3)
	lb := startNginx(t, c)
	return c, startLoad(t, c, lb, newSink(t), started)
}

// startLoad starts E2E_CLIENTS clients through nginx and the digest
// sampler, and waits for a first acknowledged create.
func startLoad(t *testing.T, c *cluster, lb *loadBalancer, sk *sink, started time.Time) *loadRun {
	t.Helper()
	clients := envInt("E2E_CLIENTS", 8)
	firingMax := int64(envInt("E2E_FIRING", 48))
	tick := envDuration("E2E_CLIENT_TICK", 150*time.Millisecond)
	ctx, stop := context.WithCancel(context.Background())
	lr := &loadRun{t: t, c: c, lb: lb, sk: sk, hist: &history{}, dg: newDigestLog(), started: started, stop: stop}
	t.Cleanup(func() {
		stop()
		lr.wg.Wait()
		if t.Failed() {
			lr.keep()
		}
	})
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var firingLeft atomic.Int64
	firingLeft.Store(firingMax)
	for cl := 0; cl < clients; cl++ {
		lr.wg.Add(1)
		go func() {
			defer lr.wg.Done()
			runClient(ctx, cl, hc, lb, sk, lr.hist, &firingLeft, tick)
		}()
	}
	// Digest sampler: equal applied index must mean equal digest, at any time.
	lr.wg.Add(1)
	go func() {
		defer lr.wg.Done()
		for ctx.Err() == nil {
			lr.dg.sample(c)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond): // sampling period
			}
		}
	}()
	lr.waitWrite("a first acknowledged create through nginx", started)
	return lr
}

// keep copies the run's history, deliveries, node logs and nginx logs to
// E2E_KEEP_DIR/<test>-<start time>/ (when set): a failed soak is then
// studied from its files, and a passing one leaves nothing behind.
func (lr *loadRun) keep() {
	root := os.Getenv("E2E_KEEP_DIR")
	if root == "" {
		return
	}
	dir := filepath.Join(root, strings.ReplaceAll(lr.t.Name(), "/", "_")+"-"+lr.started.Format("20060102-150405"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		lr.t.Logf("keeping the failed run's files: %v", err)
		return
	}
	var h strings.Builder
	for _, o := range lr.hist.snapshot() {
		h.WriteString(o.String() + "\n")
	}
	var d strings.Builder
	for _, x := range lr.sk.deliveries() {
		fmt.Fprintf(&d, "%s %s key=%s scheduled-at=%s attempt=%s\n", x.at.Format("15:04:05.000"), x.path, x.key, x.scheduledAt, x.attempt)
	}
	files := map[string][]byte{"history.txt": []byte(h.String()), "deliveries.txt": []byte(d.String())}
	for _, nd := range lr.c.nodes {
		if b, err := os.ReadFile(nd.logPath); err == nil {
			files[nd.id+".log"] = b
		}
	}
	for _, n := range []string{"access.log", "error.log"} {
		if b, err := os.ReadFile(filepath.Join(lr.lb.dir, n)); err == nil {
			files["nginx-"+n] = b
		}
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			lr.t.Logf("keeping %s: %v", n, err)
		}
	}
	lr.t.Logf("history, deliveries and logs of the failed run kept in %s", dir)
}

// waitWrite waits (30 s) for an acknowledged create invoked after t.
func (lr *loadRun) waitWrite(what string, after time.Time) {
	lr.t.Helper()
	waitFor(lr.t, what, 30*time.Second, func() bool { return lr.hist.acceptedWriteInvokedAfter(after) })
}

// waitRecovered waits for every node ready with a leader, an acknowledged
// create invoked after that, and the leader firing again: a slot two
// seconds past it delivered. Returns the leader seen first.
func (lr *loadRun) waitRecovered(after string) *node {
	lr.t.Helper()
	l := lr.c.WaitHealthy(60 * time.Second)
	back := time.Now()
	lr.waitWrite("an acknowledged create after "+after, back)
	waitFor(lr.t, "a delivery of a slot after "+after, 30*time.Second, func() bool {
		return lr.sk.deliveredSlotAfter(back.Unix() + 2)
	})
	return l
}

// finish lets the workload run on the healed cluster until a write went
// through, then stops it; returns the history and the end time.
func (lr *loadRun) finish() ([]op, time.Time) {
	lr.t.Helper()
	lr.c.WaitHealthy(60 * time.Second)
	lr.waitWrite("an acknowledged create on the healed cluster", time.Now())
	lr.stop()
	lr.wg.Wait()
	end := time.Now()
	lr.t.Logf("workload stopped after %v", end.Sub(lr.started).Round(time.Second))
	return lr.hist.snapshot(), end
}

// firstAckAfter: how long after t the first acknowledged create invoked
// at or after t returned (-1 if none).
func firstAckAfter(ops []op, t time.Time) time.Duration {
	first := time.Duration(-1)
	for _, o := range ops {
		if o.kind == "create" && o.out == outOK && !o.invoke.Before(t) {
			if d := o.ret.Sub(t); first < 0 || d < first {
				first = d
			}
		}
	}
	return first
}

// check runs every end-of-run invariant over the history, the nodes' state
// and the sink, logs the report and fails the test with every violation.
func (lr *loadRun) check(ops []op, end time.Time) {
	t, c, lb, sk := lr.t, lr.c, lr.lb, lr.sk
	t.Helper()
	endSlot := end.Unix() - 1 // every slot up to here must be delivered
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

	// ---- creates: acknowledged ones exist once on every node (unless a
	// delete of them was attempted; an acknowledged delete: on no node);
	// failed ones nowhere ----
	writes := writesByID(ops)
	deleted := func(id string) (attempted, acked bool) {
		for _, s := range writes[id] {
			if s.kind == "delete" {
				attempted = true
				acked = acked || s.out == outOK
			}
		}
		return
	}
	var nCreate, nOK, nUnknown, nFailed, nRead, nUnknownExisted int
	writeOut := map[string]int{} // "disable ok" → n
	var acked []op
	for _, o := range ops {
		switch {
		case o.kind == "read":
			nRead++
			continue
		case isWrite(o.kind):
			writeOut[o.kind+" "+o.out]++
			if o.status == 200 && o.out != outOK {
				violate("write answered 200 without its change: %v", o)
			}
			continue
		}
		nCreate++
		ids := byEndpoint[o.key]
		if len(ids) > 1 {
			violate("create applied %d times (ids %v): %v", len(ids), ids, o)
		}
		if o.out == outOK {
			if _, known := idPath[o.id]; !known {
				idPath[o.id] = o.key // deleted: for the sink's checks
			}
		}
		switch o.out {
		case outOK:
			nOK++
			delTried, delAcked := deleted(o.id)
			switch {
			case delAcked && len(ids) > 0:
				violate("deleted schedule still listed (as %v): %v; writes: %v", ids, o, writes[o.id])
			case !delTried && (len(ids) == 0 || ids[0] != o.id):
				violate("acknowledged create missing from the listing (found %v): %v", ids, o)
			}
			if !delTried {
				acked = append(acked, o)
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
	lin := checkLinearizable(ops, 10*time.Second)
	violations = append(violations, lin.bad...)
	if lin.timedOut > 0 {
		t.Logf("linearizability: %d partitions not decided within 10s each", lin.timedOut)
	}
	// Every schedule reads, on every node, as its acknowledged writes left
	// it (or as a write of unknown outcome may have).
	for i, nd := range c.nodes {
		q := ""
		if i == 0 {
			q = "?consistency=strong"
		}
		for _, m := range checkFinal(c.hc, nd, acked, writes, q) {
			violate("final state wrong on %s%s: %s", nd.id, q, m)
		}
	}

	// ---- slots: every slot from a schedule's first delivery to the end of
	// the run is delivered at least once; re-deliveries keep their key ----
	var firingIDs []string
	for _, o := range ops {
		if o.kind == "create" && o.firing {
			ids := byEndpoint[o.key]
			if len(ids) == 0 && o.out == outOK {
				ids = []string{o.id} // deleted
			}
			firingIDs = append(firingIDs, ids...)
		}
	}
	// A stopped schedule owes no slot from a second before its stop was
	// invoked until after an acknowledged re-enable (owedSpans).
	owed := map[string][]span{}
	for id, ws := range writes {
		owed[id] = owedSpans(ws, endSlot)
	}
	var slotReport slotStats
	deadline := time.Now().Add(60 * time.Second)
	for {
		slotReport = checkSlots(sk.deliveries(), firingIDs, idPath, endSlot, owed)
		if len(slotReport.missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // poll interval: late slots still arriving
	}
	violations = append(violations, slotReport.missing...)
	violations = append(violations, slotReport.bad...)
	for _, o := range acked {
		if o.firing && o.ret.Before(end.Add(-5*time.Second)) && slotReport.perSchedule[o.id] == 0 && !anyStop(writes[o.id]) {
			violate("firing schedule never delivered: %v", o)
		}
	}

	// ---- nothing delivered for a schedule after its acknowledged disable
	// or delete (slot time, plus stopMargin) ----
	stopReport := checkNoDeliveryAfterStop(ops, sk.deliveries())
	violations = append(violations, stopReport.bad...)

	// ---- digests: compare every pair of nodes at a common index ----
	final := newDigestLog()
	waitFor(t, "every pair of nodes sampled at a common applied index", 30*time.Second, func() bool {
		final.sample(c)
		return final.pairsCovered(len(c.nodes))
	})
	lr.dg.merge(final)
	violations = append(violations, lr.dg.mismatches()...)

	// ---- report ----
	t.Logf("ops: %d (creates %d: ok %d, failed %d, unknown %d of which %d applied; strong reads %d)",
		len(ops), nCreate, nOK, nFailed, nUnknown, nUnknownExisted, nRead)
	var so []string
	for k, n := range writeOut {
		so = append(so, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(so)
	t.Logf("writes to existing schedules: %s; %d acknowledged stops checked against %d deliveries of theirs, latest delivered slot %v after its stop's acknowledgement (limit %v)",
		strings.Join(so, ", "), stopReport.checked, stopReport.deliveries, stopReport.maxLead.Round(time.Millisecond), stopMargin)
	t.Logf("linearizability (porcupine, per schedule): %d operations in %d partitions checked in %v, %d undecided, %d not linearizable",
		lin.ops, lin.partitions, lin.elapsed.Round(time.Millisecond), lin.timedOut, len(lin.bad))
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
			t.Logf("first answer other than ok, %v after the start: %v", o.invoke.Sub(lr.started).Round(time.Millisecond), o)
			break
		}
	}
	t.Logf("schedules: %d created (%d listed on every node at the end), %d firing every second at some point", len(idPath), len(byIDListed(byEndpoint)), len(firingIDs))
	t.Logf("slots checked: %d (up to %s), deliveries %d, re-deliveries %d (same key), digest comparisons %d",
		slotReport.slots, time.Unix(endSlot, 0).UTC().Format("15:04:05"), slotReport.deliveries, slotReport.redeliveries, lr.dg.compared)
	t.Logf("violations: %d", len(violations))
	if len(violations) > 0 {
		sort.Strings(violations)
		if len(violations) > 200 {
			violations = append(violations[:200], fmt.Sprintf("... and %d more", len(violations)-200))
		}
		t.Errorf("violations:\n%s", strings.Join(violations, "\n"))
	}
}

func byIDListed(byEndpoint map[string][]string) map[string]bool {
	m := map[string]bool{}
	for _, ids := range byEndpoint {
		for _, id := range ids {
			m[id] = true
		}
	}
	return m
}

func anyStop(ws []op) bool {
	for _, o := range ws {
		if isStop(o.kind) {
			return true
		}
	}
	return false
}

// finalAllowed: the values a field may hold once every write is done: the
// last acknowledged one (or the initial value), or that of any write of
// unknown outcome, which may take effect at any time after it was invoked.
func finalAllowed[T comparable](initial T, ws []op, field func(op) (T, bool)) map[T]bool {
	last := initial
	allowed := map[T]bool{}
	for _, o := range ws {
		v, ok := field(o)
		if !ok {
			continue
		}
		switch o.out {
		case outOK:
			last = v
		case outUnknown:
			allowed[v] = true
		}
	}
	allowed[last] = true
	return allowed
}

// checkFinal GETs every acknowledged schedule of no delete attempt on one
// node and compares its enabled field and payload version with what its
// writes allow; returns the mismatches.
func checkFinal(hc *http.Client, nd *node, acked []op, writes map[string][]op, query string) []string {
	var bad []string
	for _, o := range acked {
		ws := writes[o.id]
		if len(ws) == 0 {
			continue // getAll checked that it exists; nothing else changed
		}
		enabled := finalAllowed(true, ws, func(w op) (bool, bool) {
			return w.kind == "enable", w.kind == "enable" || w.kind == "disable"
		})
		vers := finalAllowed(0, ws, func(w op) (int, bool) { return w.ver, w.kind == "update" })
		var r resp
		for attempt := 0; attempt < 3; attempt++ {
			if r = do(hc, "GET", "http://"+nd.httpAddr+"/api/v1/schedule/"+o.id+"/"+query, nil); r.status == 200 || r.status == 404 {
				break
			}
		}
		var got scheduleState
		if r.status != 200 || r.decode(&got) != nil || got.Enabled == nil {
			bad = append(bad, fmt.Sprintf("%v: %v", o, r))
			continue
		}
		if !enabled[*got.Enabled] || !vers[got.Payload.V] {
			bad = append(bad, fmt.Sprintf("reads enabled=%v v=%d, allowed enabled %v v %v: %v; writes: %v", *got.Enabled, got.Payload.V, enabled, vers, o, ws))
		}
	}
	return bad
}
