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
// absent, present and enabled, or present and disabled.
const (
	schedAbsent = iota
	schedEnabled
	schedDisabled
)

type linInput struct {
	kind string // create | read | disable | delete
	key  string // the partition: the schedule's unique endpoint path
}

type linOutput struct {
	unknown bool // may or may not have happened; its answer (if any) is not known
	found   bool // read: 200
	enabled bool // read found: its enabled field
}

// scheduleModel: create needs an absent schedule and makes it enabled; a
// read answers whether it exists and whether it is enabled; a disable makes
// an existing schedule disabled; a delete makes it absent (a DELETE
// answered 404 counts as acknowledged, see stopSchedule). Operations whose
// outcome is unknown may take effect at any time after their invocation
// (their return is set to infinity) or never.
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
	Init: func() interface{} { return schedAbsent },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st, in, out := state.(int), input.(linInput), output.(linOutput)
		switch in.kind {
		case "create":
			return st == schedAbsent, schedEnabled
		case "read":
			if !out.found {
				return st == schedAbsent, st
			}
			if out.enabled {
				return st == schedEnabled, st
			}
			return st == schedDisabled, st
		case "disable":
			if st == schedAbsent {
				// A PATCH of an absent schedule is answered 404: only an
				// unknown one can be linearized here, as a no-op.
				return out.unknown, st
			}
			return true, schedDisabled
		case "delete":
			return true, schedAbsent
		}
		return false, st
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(linInput), output.(linOutput)
		switch {
		case out.unknown:
			return in.kind + " → ?"
		case in.kind == "read" && !out.found:
			return "read → 404"
		case in.kind == "read":
			return fmt.Sprintf("read → enabled=%v", out.enabled)
		}
		return in.kind + " → ok"
	},
}

type linStats struct {
	ops, partitions, timedOut int
	elapsed                   time.Duration
	bad                       []string
}

// checkLinearizable runs porcupine over the create/read/disable/delete
// history, one partition (schedule) at a time so that a violation names
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
		po := porcupine.Operation{ClientId: o.client, Input: linInput{kind: o.kind, key: key},
			Call: o.invoke.Sub(base).Nanoseconds(), Return: o.ret.Sub(base).Nanoseconds(),
			Output: linOutput{unknown: o.out != outOK, found: o.found, enabled: o.enabled}}
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
	} {
		st := checkLinearizable(tc.ops, time.Second)
		if legal := len(st.bad) == 0; legal != tc.legal {
			t.Errorf("%s: linearizable=%v, want %v (%v)", tc.name, legal, tc.legal, st.bad)
		}
	}
}
