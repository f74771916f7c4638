//go:build e2e

package e2e

import (
	"fmt"
	"sort"
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
	client int
	kind   string // create | read
	key    string // the create's unique endpoint path: /s/c<client>-<seq>
	id     string // schedule id (create: from the answer; read: the id asked for)
	firing bool   // create: an every-second schedule
	invoke time.Time
	ret    time.Time
	out    string
	status int
	found  bool // read ok: 200 (true) or 404 (false)
	detail string
}

func (o op) String() string {
	s := fmt.Sprintf("c%d %s %s id=%s invoke=%s return=%s (%v) %s status=%d", o.client, o.kind, o.key, o.id,
		o.invoke.Format("15:04:05.000"), o.ret.Format("15:04:05.000"), o.ret.Sub(o.invoke).Round(time.Millisecond), o.out, o.status)
	if o.kind == "read" && o.out == outOK {
		s += fmt.Sprintf(" found=%v", o.found)
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

// checkCreateRead is the per-schedule register check of a create/read
// history: a read invoked after a create was acknowledged must find the
// schedule (every read here is ?consistency=strong), and a read must never
// find a schedule whose create certainly failed. Returns the violations.
func checkCreateRead(ops []op) []string {
	ackAt := map[string]time.Time{}
	for _, o := range ops {
		if o.kind == "create" && o.out == outOK {
			ackAt[o.id] = o.ret
		}
	}
	var bad []string
	for _, o := range ops {
		if o.kind != "read" || o.out != outOK || o.found {
			continue
		}
		if at, ok := ackAt[o.id]; ok && o.invoke.After(at) {
			bad = append(bad, fmt.Sprintf("stale read: %v (create acknowledged at %s)", o, at.Format("15:04:05.000")))
		}
	}
	return bad
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
