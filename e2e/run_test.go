//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
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

// startLoad starts E2E_CLIENTS clients through nginx and the digest
// sampler, and waits for a first acknowledged create.
func startLoad(t *testing.T, c *cluster, lb *loadBalancer, sk *sink, started time.Time) *loadRun {
	t.Helper()
	clients := envInt("E2E_CLIENTS", 8)
	firingMax := int64(envInt("E2E_FIRING", 48))
	tick := envDuration("E2E_CLIENT_TICK", 150*time.Millisecond)
	ctx, stop := context.WithCancel(context.Background())
	lr := &loadRun{t: t, c: c, lb: lb, sk: sk, hist: &history{}, dg: newDigestLog(), started: started, stop: stop}
	t.Cleanup(func() { stop(); lr.wg.Wait() })
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

// waitWrite waits (30 s) for an acknowledged create invoked after t.
func (lr *loadRun) waitWrite(what string, after time.Time) {
	lr.t.Helper()
	waitFor(lr.t, what, 30*time.Second, func() bool { return lr.hist.acceptedWriteInvokedAfter(after) })
}

// waitRecovered waits for every node ready with a leader, an acknowledged
// create invoked after that, and the leader firing again: a slot two
// seconds past it delivered.
func (lr *loadRun) waitRecovered(after string) {
	lr.t.Helper()
	lr.c.WaitHealthy(60 * time.Second)
	back := time.Now()
	lr.waitWrite("an acknowledged create after "+after, back)
	waitFor(lr.t, "a delivery of a slot after "+after, 30*time.Second, func() bool {
		return lr.sk.deliveredSlotAfter(back.Unix() + 2)
	})
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
		slotReport = checkSlots(sk.deliveries(), firingIDs, idPath, endSlot, lr.started)
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
	lr.dg.merge(final)
	violations = append(violations, lr.dg.mismatches()...)

	// ---- report ----
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
			t.Logf("first answer other than ok, %v after the start: %v", o.invoke.Sub(lr.started).Round(time.Millisecond), o)
			break
		}
	}
	t.Logf("schedules: %d listed on every node, %d firing every second", len(idPath), len(firingIDs))
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
