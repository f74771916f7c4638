//go:build e2e

package e2e

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// outcome of a recorded operation.
const (
	outOK      = "ok"
	outFailed  = "failed"  // certainly did not happen (4xx)
	outUnknown = "unknown" // timeout, connection error or 5xx: may or may not have happened
)

// op is one client operation as the client saw it.
type op struct {
	client  int
	kind    string // create | read | disable | delete
	key     string // the create's unique endpoint path: /s/c<client>-<seq>
	id      string // schedule id (create: from the answer; read: the id asked for)
	firing  bool   // create: an every-second schedule
	invoke  time.Time
	ret     time.Time
	out     string
	status  int
	found   bool // read ok: 200 (true) or 404 (false)
	enabled bool // read found: the schedule's enabled field
	detail  string
}

func (o op) String() string {
	s := fmt.Sprintf("c%d %s %s id=%s invoke=%s return=%s (%v) %s status=%d", o.client, o.kind, o.key, o.id,
		o.invoke.Format("15:04:05.000"), o.ret.Format("15:04:05.000"), o.ret.Sub(o.invoke).Round(time.Millisecond), o.out, o.status)
	if o.kind == "read" && o.out == outOK {
		s += fmt.Sprintf(" found=%v", o.found)
		if o.found {
			s += fmt.Sprintf(" enabled=%v", o.enabled)
		}
	}
	if o.detail != "" {
		s += " " + strings.TrimSpace(o.detail)
	}
	return s
}

type history struct {
	mu  sync.Mutex
	ops []op
	// lastOKCreateInvoke: invoke time of the newest acknowledged create, to
	// let the nemesis wait for write progress.
	lastOKCreateInvoke time.Time
}

func (h *history) add(o op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, o)
	if o.kind == "create" && o.out == outOK && o.invoke.After(h.lastOKCreateInvoke) {
		h.lastOKCreateInvoke = o.invoke
	}
}

// acceptedWriteInvokedAfter: an acknowledged create invoked after t has returned.
func (h *history) acceptedWriteInvokedAfter(t time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastOKCreateInvoke.After(t)
}

func (h *history) snapshot() []op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]op(nil), h.ops...)
}

// stopsByID: the disable and delete operations of each schedule, whatever
// their outcome.
func stopsByID(ops []op) map[string][]op {
	m := map[string][]op{}
	for _, o := range ops {
		if o.kind == "disable" || o.kind == "delete" {
			m[o.id] = append(m[o.id], o)
		}
	}
	return m
}

// checkCreateRead is the per-schedule register check of a create/read/
// delete history (every read here is ?consistency=strong): a read invoked
// after a create was acknowledged must find the schedule, unless a delete
// of it was invoked before the read returned; a read invoked after a delete
// was acknowledged must not find it. Returns the violations.
func checkCreateRead(ops []op) []string {
	ackAt := map[string]time.Time{}
	delInvoke := map[string]time.Time{} // earliest delete invoke, any outcome
	delAck := map[string]op{}
	for _, o := range ops {
		switch {
		case o.kind == "create" && o.out == outOK:
			ackAt[o.id] = o.ret
		case o.kind == "delete":
			if at, ok := delInvoke[o.id]; !ok || o.invoke.Before(at) {
				delInvoke[o.id] = o.invoke
			}
			if o.out == outOK {
				delAck[o.id] = o
			}
		}
	}
	var bad []string
	for _, o := range ops {
		if o.kind != "read" || o.out != outOK {
			continue
		}
		if d, ok := delAck[o.id]; ok && o.found && o.invoke.After(d.ret) {
			bad = append(bad, fmt.Sprintf("read found a deleted schedule: %v (delete acknowledged: %v)", o, d))
		}
		if o.found {
			continue
		}
		if di, ok := delInvoke[o.id]; ok && di.Before(o.ret) {
			continue
		}
		if at, ok := ackAt[o.id]; ok && o.invoke.After(at) {
			bad = append(bad, fmt.Sprintf("stale read: %v (create acknowledged at %s)", o, at.Format("15:04:05.000")))
		}
	}
	return bad
}

// stopMargin: a delivery of a stopped schedule is a violation when its
// slot (X-Scheduler-Scheduled-At, whole seconds) is later than the stop's
// acknowledgement + 1 s (a slot claimed just before the stop, up to 0.7 s
// ahead of its time, may still be sent) + 1 tick (1 s).
const stopMargin = 2 * time.Second

type stopStats struct {
	checked, deliveries int
	maxLead             time.Duration // latest delivered slot relative to its stop's acknowledgement
	bad                 []string
}

// checkNoDeliveryAfterStop: nothing is delivered for a schedule with a slot
// later than its acknowledged disable or delete plus stopMargin.
func checkNoDeliveryAfterStop(ops []op, ds []sinkDelivery) stopStats {
	st := stopStats{maxLead: -time.Hour}
	acked := map[string]op{} // id → earliest acknowledged stop
	for _, o := range ops {
		if (o.kind == "disable" || o.kind == "delete") && o.out == outOK {
			if p, ok := acked[o.id]; !ok || o.ret.Before(p.ret) {
				acked[o.id] = o
			}
		}
	}
	st.checked = len(acked)
	for _, d := range ds {
		id, slotStr, _ := strings.Cut(d.key, ":")
		o, ok := acked[id]
		if !ok {
			continue
		}
		// The slot's time as the delivery states it (checkSlots checks
		// that it agrees with the key).
		slotAt, err := time.Parse(time.RFC3339, d.scheduledAt)
		if err != nil {
			slot, kerr := strconv.ParseInt(slotStr, 10, 64)
			if kerr != nil {
				continue // reported by checkSlots
			}
			slotAt = time.Unix(slot, 0)
		}
		st.deliveries++
		lead := slotAt.Sub(o.ret)
		st.maxLead = max(st.maxLead, lead)
		if lead > stopMargin {
			st.bad = append(st.bad, fmt.Sprintf("delivery after an acknowledged %s: key %s scheduled-at %s attempt %s arrived %s, slot %v after the acknowledgement (limit %v): %v",
				o.kind, d.key, d.scheduledAt, d.attempt, d.at.Format("15:04:05.000"), lead.Round(time.Millisecond), stopMargin, o))
		}
	}
	return st
}

func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("p50 %v, max %v (n=%d)", s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), len(s))
}

// outcomeSummary counts the non-ok answers by status and detail (first 80
// characters), for the report.
func outcomeSummary(ops []op) string {
	n := map[string]int{}
	for _, o := range ops {
		if o.out != outOK {
			d := o.detail
			if len(d) > 80 {
				d = d[:80]
			}
			n[fmt.Sprintf("%s %s %s", o.kind, o.out, d)]++
		}
	}
	var lines []string
	for k, v := range n {
		lines = append(lines, fmt.Sprintf("  %5d × %s", v, k))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
