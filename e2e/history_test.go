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
	kind    string // create | read | update | disable | enable | delete
	key     string // the create's unique endpoint path: /s/c<client>-<seq>
	id      string // schedule id (create: from the answer; read: the id asked for)
	firing  bool   // create: an every-second schedule
	invoke  time.Time
	ret     time.Time
	out     string
	status  int
	found   bool // read ok: 200 (true) or 404 (false)
	enabled bool // read found: the schedule's enabled field
	ver     int  // update: the payload version written; read found: the one read
	detail  string
}

func (o op) String() string {
	s := fmt.Sprintf("c%d %s %s id=%s invoke=%s return=%s (%v) %s status=%d", o.client, o.kind, o.key, o.id,
		o.invoke.Format("15:04:05.000"), o.ret.Format("15:04:05.000"), o.ret.Sub(o.invoke).Round(time.Millisecond), o.out, o.status)
	if o.kind == "read" && o.out == outOK {
		s += fmt.Sprintf(" found=%v", o.found)
		if o.found {
			s += fmt.Sprintf(" enabled=%v v=%d", o.enabled, o.ver)
		}
	}
	if o.kind == "update" {
		s += fmt.Sprintf(" v=%d", o.ver)
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

// isWrite: an operation on an existing schedule that changes it.
func isWrite(kind string) bool {
	return kind == "update" || kind == "disable" || kind == "enable" || kind == "delete"
}

// isStop: a write after which the schedule must not fire.
func isStop(kind string) bool { return kind == "disable" || kind == "delete" }

// writesByID: the updates, disables, enables and deletes of each schedule,
// whatever their outcome, in invocation order (only the schedule's own
// client writes to it, one operation at a time).
func writesByID(ops []op) map[string][]op {
	m := map[string][]op{}
	for _, o := range ops {
		if isWrite(o.kind) {
			m[o.id] = append(m[o.id], o)
		}
	}
	for _, ws := range m {
		sort.SliceStable(ws, func(i, j int) bool { return ws[i].invoke.Before(ws[j].invoke) })
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

// quietWindow: after an acknowledged stop, no slot may be delivered from
// the acknowledgement + stopMargin until the next enable of the schedule
// was invoked (whatever its outcome; never, for a delete).
type quietWindow struct {
	stop op
	end  time.Time // zero: open-ended
}

// quietWindows of one schedule's writes (in invocation order).
func quietWindows(ws []op) []quietWindow {
	var qs []quietWindow
	for i, o := range ws {
		if !isStop(o.kind) || o.out != outOK {
			continue
		}
		q := quietWindow{stop: o}
		for _, n := range ws[i+1:] {
			if n.kind == "enable" {
				q.end = n.invoke
				break
			}
		}
		qs = append(qs, q)
	}
	return qs
}

// checkNoDeliveryAfterStop: nothing is delivered for a schedule with a slot
// later than an acknowledged disable or delete plus stopMargin, unless the
// slot is after a later enable was invoked.
func checkNoDeliveryAfterStop(ops []op, ds []sinkDelivery) stopStats {
	st := stopStats{maxLead: -time.Hour}
	windows := map[string][]quietWindow{}
	for id, ws := range writesByID(ops) {
		if qs := quietWindows(ws); len(qs) > 0 {
			windows[id] = qs
			st.checked += len(qs)
		}
	}
	for _, d := range ds {
		id, slotStr, _ := strings.Cut(d.key, ":")
		qs, ok := windows[id]
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
		for _, q := range qs {
			if slotAt.Before(q.stop.invoke.Truncate(time.Second)) || (!q.end.IsZero() && !slotAt.Before(q.end)) {
				continue
			}
			st.deliveries++
			lead := slotAt.Sub(q.stop.ret)
			st.maxLead = max(st.maxLead, lead)
			if lead > stopMargin {
				st.bad = append(st.bad, fmt.Sprintf("delivery after an acknowledged %s: key %s scheduled-at %s attempt %s arrived %s, slot %v after the acknowledgement (limit %v): %v",
					q.stop.kind, d.key, d.scheduledAt, d.attempt, d.at.Format("15:04:05.000"), lead.Round(time.Millisecond), stopMargin, q.stop))
			}
		}
	}
	return st
}

// span is a range of slots (unix seconds, inclusive) a schedule owes.
type span struct{ from, to int64 }

// owedSpans: the slots a firing schedule must deliver, given its writes in
// invocation order and the run's last slot. The first span starts at the
// schedule's first delivered slot (from = 0 here, filled by checkSlots);
// each stop (disable or delete, whatever its outcome) ends the current span
// a second before its invocation; an acknowledged enable opens a new one
// at the second after its acknowledgement (the executor resumes at slots
// after the second the enable took effect; the slots in between are not
// owed). An enable of unknown outcome opens nothing: its slots may or may
// not come.
func owedSpans(ws []op, endSlot int64) []span {
	var out []span
	cur, open := span{}, true
	for _, o := range ws {
		switch {
		case isStop(o.kind) && open:
			cur.to = min(endSlot, o.invoke.Unix()-1)
			out = append(out, cur)
			open = false
		case o.kind == "enable" && !open && o.out == outOK:
			cur, open = span{from: o.ret.Unix() + 1}, true
		}
	}
	if open {
		cur.to = endSlot
		out = append(out, cur)
	}
	return out
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
