//go:build e2e

package e2e

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The per-schedule model of the linearizability check: a schedule is
// absent, or present, enabled or not, with the payload version of its
// latest update (0: as created).
type schedState struct {
	present, enabled bool
	ver              int
}

type linInput struct {
	kind string // create | read | update | disable | enable | delete
	key  string // the partition: the schedule's unique endpoint path
	ver  int    // update: the version written
}

type linOutput struct {
	unknown bool // may or may not have happened; its answer (if any) is not known
	found   bool // read: 200
	enabled bool // read found: its enabled field
	ver     int  // read found: its payload version
}

// scheduleModel: create needs an absent schedule and makes it present,
// enabled, version 0; a read answers whether it exists and, if so, its
// enabled field and version; update, disable and enable change an existing
// schedule; a delete makes it absent (a DELETE answered 404 counts as
// acknowledged, see writeSchedule). Operations whose outcome is unknown may
// take effect at any time after their invocation (their return is set to
// infinity) or never.
var scheduleModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, o := range h {
			k := o.Input.(linInput).key
			if by[k] == nil {
				keys = append(keys, k)
			}
			by[k] = append(by[k], o)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() interface{} { return schedState{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st, in, out := state.(schedState), input.(linInput), output.(linOutput)
		switch in.kind {
		case "create":
			return !st.present, schedState{present: true, enabled: true}
		case "read":
			if !out.found {
				return !st.present, st
			}
			return st.present && st.enabled == out.enabled && st.ver == out.ver, st
		case "update", "disable", "enable":
			if !st.present {
				// A PATCH of an absent schedule is answered 404: only an
				// unknown one can be linearized here, as a no-op.
				return out.unknown, st
			}
			switch in.kind {
			case "update":
				st.ver = in.ver
			default:
				st.enabled = in.kind == "enable"
			}
			return true, st
		case "delete":
			return true, schedState{}
		}
		return false, st
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(linInput), output.(linOutput)
		name := in.kind
		if in.kind == "update" {
			name = fmt.Sprintf("update v=%d", in.ver)
		}
		switch {
		case out.unknown:
			return name + " → ?"
		case in.kind == "read" && !out.found:
			return "read → 404"
		case in.kind == "read":
			return fmt.Sprintf("read → enabled=%v v=%d", out.enabled, out.ver)
		}
		return name + " → ok"
	},
}

type linStats struct {
	ops, partitions, timedOut int
	elapsed                   time.Duration
	bad                       []string
}

// checkLinearizable runs porcupine over the history, one partition (schedule) at a time so that a violation names
// its schedule's operations. Failed operations (4xx) are left out: they
// certainly did not happen; so are reads of unknown outcome (no answer to
// check). Writes of unknown outcome get an infinite return time.
func checkLinearizable(ops []op, timeout time.Duration) linStats {
	var st linStats
	t0 := time.Now()
	keyOf := map[string]string{} // id → key, from the acknowledged creates
	var base time.Time
	for _, o := range ops {
		if base.IsZero() || o.invoke.Before(base) {
			base = o.invoke
		}
		if o.kind == "create" && o.out == outOK {
			keyOf[o.id] = o.key
		}
	}
	var h []porcupine.Operation
	orig := map[string][]op{}
	for _, o := range ops {
		if o.out == outFailed || (o.kind == "read" && o.out != outOK) {
			continue
		}
		key := o.key
		if o.kind != "create" {
			key = keyOf[o.id]
		}
		if key == "" {
			continue // not of a schedule this history created
		}
		po := porcupine.Operation{ClientId: o.client, Input: linInput{kind: o.kind, key: key, ver: o.ver},
			Call: o.invoke.Sub(base).Nanoseconds(), Return: o.ret.Sub(base).Nanoseconds(),
			Output: linOutput{unknown: o.out != outOK, found: o.found, enabled: o.enabled, ver: o.ver}}
		if o.out != outOK {
			po.Return = math.MaxInt64
		}
		h = append(h, po)
		orig[key] = append(orig[key], o)
	}
	st.ops = len(h)
	parts := scheduleModel.Partition(h)
	st.partitions = len(parts)
	single := scheduleModel
	single.Partition = nil
	for _, p := range parts {
		switch porcupine.CheckOperationsTimeout(single, p, timeout) {
		case porcupine.Illegal:
			key := p[0].Input.(linInput).key
			var lines []string
			for _, o := range orig[key] {
				lines = append(lines, "    "+o.String())
			}
			st.bad = append(st.bad, fmt.Sprintf("not linearizable: schedule %s, operations:\n%s", key, strings.Join(lines, "\n")))
		case porcupine.Unknown:
			st.timedOut++
		}
	}
	st.elapsed = time.Since(t0)
	return st
}

// TestScheduleModel checks the model and checkLinearizable on small
// hand-made histories, legal and not.
func TestScheduleModel(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(1000, 0).Add(time.Duration(ms) * time.Millisecond) }
	o := func(kind, out string, found, enabled bool, call, ret int) op {
		k := ""
		if kind == "create" {
			k = "/s/x"
		}
		return op{kind: kind, key: k, id: "x", out: out, found: found, enabled: enabled, invoke: at(call), ret: at(ret)}
	}
	v := func(o op, ver int) op { o.ver = ver; return o }
	for _, tc := range []struct {
		name  string
		ops   []op
		legal bool
	}{
		{"create then read", []op{o("create", outOK, false, false, 0, 10), o("read", outOK, true, true, 20, 30)}, true},
		{"stale read after create", []op{o("create", outOK, false, false, 0, 10), o("read", outOK, false, false, 20, 30)}, false},
		{"read concurrent with create", []op{o("create", outOK, false, false, 0, 10), o("read", outOK, false, false, 5, 30)}, true},
		{"unknown create seen later", []op{o("create", outUnknown, false, false, 0, 10), o("read", outOK, true, true, 500, 600)}, true},
		{"read after delete finds it", []op{o("create", outOK, false, false, 0, 10), o("delete", outOK, false, false, 20, 30), o("read", outOK, true, true, 40, 50)}, false},
		{"read after disable sees enabled", []op{o("create", outOK, false, false, 0, 10), o("disable", outOK, false, false, 20, 30), o("read", outOK, true, true, 40, 50)}, false},
		{"unknown disable, read either way", []op{o("create", outOK, false, false, 0, 10), o("disable", outUnknown, false, false, 20, 30), o("read", outOK, true, true, 40, 50), o("read", outOK, true, false, 60, 70)}, true},
		{"disabled then enabled again", []op{o("create", outOK, false, false, 0, 10), o("disable", outUnknown, false, false, 20, 30), o("read", outOK, true, false, 40, 50), o("read", outOK, true, true, 60, 70)}, false},
		{"disable, enable, read enabled", []op{o("create", outOK, false, false, 0, 10), o("disable", outOK, false, false, 20, 30), o("enable", outOK, false, false, 40, 50), o("read", outOK, true, true, 60, 70)}, true},
		{"read after enable sees disabled", []op{o("create", outOK, false, false, 0, 10), o("disable", outOK, false, false, 20, 30), o("enable", outOK, false, false, 40, 50), o("read", outOK, true, false, 60, 70)}, false},
		{"unknown enable seen later", []op{o("create", outOK, false, false, 0, 10), o("disable", outOK, false, false, 20, 30), o("enable", outUnknown, false, false, 40, 50), o("read", outOK, true, false, 60, 70), o("read", outOK, true, true, 80, 90)}, true},
		{"update then read", []op{o("create", outOK, false, false, 0, 10), v(o("update", outOK, false, false, 20, 30), 3), v(o("read", outOK, true, true, 40, 50), 3)}, true},
		{"stale version after update", []op{o("create", outOK, false, false, 0, 10), v(o("update", outOK, false, false, 20, 30), 3), v(o("read", outOK, true, true, 40, 50), 0)}, false},
		{"read concurrent with update", []op{o("create", outOK, false, false, 0, 10), v(o("update", outOK, false, false, 20, 60), 3), v(o("read", outOK, true, true, 30, 40), 0), v(o("read", outOK, true, true, 45, 50), 3)}, true},
		{"version goes back", []op{o("create", outOK, false, false, 0, 10), v(o("update", outOK, false, false, 20, 60), 3), v(o("read", outOK, true, true, 30, 40), 3), v(o("read", outOK, true, true, 45, 50), 0)}, false},
	} {
		st := checkLinearizable(tc.ops, time.Second)
		if legal := len(st.bad) == 0; legal != tc.legal {
			t.Errorf("%s: linearizable=%v, want %v (%v)", tc.name, legal, tc.legal, st.bad)
		}
	}
}

// TestWriteWindows checks owedSpans, quietWindows and finalAllowed on a
// hand-made history of one schedule.
func TestWriteWindows(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(int64(1000+s), 0) }
	w := func(kind, out string, call, ret, ver int) op {
		return op{kind: kind, id: "x", out: out, invoke: at(call), ret: at(ret), ver: ver}
	}
	ws := []op{
		w("update", outOK, 5, 6, 1),
		w("disable", outOK, 10, 11, 0),
		w("enable", outOK, 20, 21, 0),
		w("update", outUnknown, 25, 26, 2),
		w("disable", outUnknown, 30, 31, 0),
		w("enable", outUnknown, 40, 41, 0),
		w("delete", outOK, 50, 51, 0),
	}
	got := owedSpans(ws, 1100)
	want := []span{{0, 1009}, {1022, 1029}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("owedSpans = %v, want %v", got, want)
	}
	if got := owedSpans(ws[:3], 1100); fmt.Sprint(got) != fmt.Sprint([]span{{0, 1009}, {1022, 1100}}) {
		t.Errorf("owedSpans(open) = %v", got)
	}
	qs := quietWindows(ws)
	if len(qs) != 2 || !qs[0].end.Equal(at(20)) || qs[0].stop.kind != "disable" || !qs[1].end.IsZero() || qs[1].stop.kind != "delete" {
		t.Errorf("quietWindows = %+v", qs)
	}
	vers := finalAllowed(0, ws, func(o op) (int, bool) { return o.ver, o.kind == "update" })
	if len(vers) != 2 || !vers[1] || !vers[2] {
		t.Errorf("finalAllowed versions = %v, want 1 and 2", vers)
	}
	en := finalAllowed(true, ws[:3], func(o op) (bool, bool) { return o.kind == "enable", o.kind == "enable" || o.kind == "disable" })
	if len(en) != 1 || !en[true] {
		t.Errorf("finalAllowed enabled = %v, want only true", en)
	}
	ds := []sinkDelivery{
		{key: "x:1015", scheduledAt: time.Unix(1015, 0).UTC().Format(time.RFC3339)}, // inside the first quiet window
		{key: "x:1012", scheduledAt: time.Unix(1012, 0).UTC().Format(time.RFC3339)}, // within the margin
		{key: "x:1025", scheduledAt: time.Unix(1025, 0).UTC().Format(time.RFC3339)}, // re-enabled
	}
	st := checkNoDeliveryAfterStop(ws, ds)
	if len(st.bad) != 1 || !strings.Contains(st.bad[0], "x:1015") {
		t.Errorf("checkNoDeliveryAfterStop: %v", st.bad)
	}
}
