package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// base is the creation time of the test schedules in unix seconds: their
// SlotsFrom, so the first due slot is after it.
var base = t0.Unix()

func (a *applier) claim(retain int, claims ...Claim) []bool {
	a.tb.Helper()
	return a.must(CmdClaimSlots, ClaimSlotsCmd{At: t0.Add(time.Hour), Retain: retain, Claims: claims}).(ClaimResult).Accepted
}

func (a *applier) outcome(os ...Outcome) {
	a.tb.Helper()
	if r := a.must(CmdRecordOutcomes, RecordOutcomesCmd{Outcomes: os}); r != nil {
		a.tb.Fatalf("record outcomes response = %v, want nil", r)
	}
}

func (a *applier) schedule(id string) Schedule {
	a.tb.Helper()
	var s Schedule
	a.view(func(tx *bolt.Tx) {
		var err error
		if s, err = GetSchedule(tx, id); err != nil {
			a.tb.Fatalf("get schedule %s: %v", id, err)
		}
	})
	return s
}

func (a *applier) run(id string, slot int64) Run {
	a.tb.Helper()
	var r Run
	a.view(func(tx *bolt.Tx) {
		var err error
		if r, err = GetRun(tx, id, slot); err != nil {
			a.tb.Fatalf("get run %s/%d: %v", id, slot, err)
		}
	})
	return r
}

func (a *applier) noRun(id string, slot int64) {
	a.tb.Helper()
	a.view(func(tx *bolt.Tx) {
		if r, err := GetRun(tx, id, slot); !errors.Is(err, ErrNotFound) {
			a.tb.Errorf("run %s/%d = %+v, %v; want ErrNotFound", id, slot, r, err)
		}
	})
}

// slotsOf lists the slots of a schedule's runs, newest first, with their states.
func (a *applier) slotsOf(id string) string {
	a.tb.Helper()
	var out []string
	a.view(func(tx *bolt.Tx) {
		p, err := ListRuns(tx, id, nil, false, 1000)
		if err != nil {
			a.tb.Fatalf("list runs of %s: %v", id, err)
		}
		for _, r := range p.Runs {
			out = append(out, fmt.Sprintf("%d:%s", r.Slot-base, r.State))
		}
		if p.Count != uint64(len(p.Runs)) {
			a.tb.Errorf("runs of %s: count %d, listed %d", id, p.Count, len(p.Runs))
		}
	})
	return strings.Join(out, " ")
}

func (a *applier) pending() string {
	a.tb.Helper()
	var out []string
	a.view(func(tx *bolt.Tx) {
		rs, err := PendingRuns(tx)
		if err != nil {
			a.tb.Fatalf("pending runs: %v", err)
		}
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s/%d:%s", r.ScheduleID[:4], r.Slot-base, r.State))
		}
	})
	return strings.Join(out, " ")
}

func delivered(id string, slot int64, n int, at time.Time) Outcome {
	return Outcome{ScheduleID: id, Slot: slot, State: RunDelivered, Attempt: Attempt{N: n, At: at, Status: 200, LatencyMs: 12.5}}
}

// checkLedger checks the fire ledger against the rest of the state: every
// run belongs to an existing schedule under the key of its own id and slot,
// the pending index holds exactly the pending runs, and the maintained run
// and outbox counts equal the rows. It also runs checkInvariants.
func checkLedger(t testing.TB, f *FSM) {
	t.Helper()
	checkInvariants(t, f)
	err := f.View(func(tx *bolt.Tx) error {
		wantPending := map[string]bool{}
		runs := map[string]uint64{}
		err := tx.Bucket(bRuns).ForEach(func(k, v []byte) error {
			var r Run
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if len(k) != runKeyLen {
				t.Errorf("run key %x is %d bytes", k, len(k))
				return nil
			}
			if ScheduleIDFromKey(k[:16]) != r.ScheduleID || int64(binary.BigEndian.Uint64(k[16:])) != r.Slot {
				t.Errorf("run %s/%d stored under key %x", r.ScheduleID, r.Slot, k)
			}
			if tx.Bucket(BSchedules).Get(k[:16]) == nil {
				t.Errorf("run %s/%d of a missing schedule", r.ScheduleID, r.Slot)
			}
			switch r.State {
			case RunClaimed, RunRetrying:
				wantPending[string(k)] = true
			case RunDelivered, RunFailed, RunMissed, RunCancelled:
			default:
				t.Errorf("run %s/%d in state %q", r.ScheduleID, r.Slot, r.State)
			}
			if r.Kind != RunKindSlot && r.Kind != RunKindRequeue {
				t.Errorf("run %s/%d of kind %q", r.ScheduleID, r.Slot, r.Kind)
			}
			runs["runs_"+hex.EncodeToString(k[:16])]++
			return nil
		})
		if err != nil {
			return err
		}
		gotPending := map[string]bool{}
		tx.Bucket(bRunsPending).ForEach(func(k, v []byte) error {
			gotPending[string(k)] = true
			if len(v) != 0 {
				t.Errorf("pending entry %x has value %x", k, v)
			}
			return nil
		})
		if !reflect.DeepEqual(gotPending, wantPending) {
			t.Errorf("pending index %x, want %x", keysOf(gotPending), keysOf(wantPending))
		}
		gotCounts := map[string]uint64{}
		tx.Bucket(bCounts).ForEach(func(k, v []byte) error {
			if strings.HasPrefix(string(k), "runs_") {
				gotCounts[string(k)] = binary.BigEndian.Uint64(v)
			}
			return nil
		})
		if !reflect.DeepEqual(gotCounts, runs) {
			t.Errorf("run counts %v, want %v", gotCounts, runs)
		}
		var outbox uint64
		err = tx.Bucket(bWebhookOutbox).ForEach(func(k, v []byte) error {
			var e OutboxEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if KeyU64(k) != e.ID || e.ID > tx.Bucket(bWebhookOutbox).Sequence() {
				t.Errorf("outbox entry %d under key %x (sequence %d)", e.ID, k, tx.Bucket(bWebhookOutbox).Sequence())
			}
			outbox++
			return nil
		})
		if got := PendingWebhooksCount(tx); got != outbox {
			t.Errorf("outbox count = %d, want %d", got, outbox)
		}
		return err
	})
	if err != nil {
		t.Fatalf("check ledger: %v", err)
	}
}

func keysOf(m map[string]bool) [][]byte {
	var out [][]byte
	for k := range m {
		out = append(out, []byte(k))
	}
	slices.SortFunc(out, bytes.Compare)
	return out
}

func TestClaimSlotRules(t *testing.T) {
	a := newApplier(t)
	var effects []Effect
	a.f.Watch(func(c Change) { effects = append(effects, c.Commands...) })
	on, off, freq := testID(1), testID(2), testID(3)
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(on, t0, "http://a.example/", true)})
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(off, t0, "http://a.example/", false)})
	f := newSchedule(freq, t0, "http://a.example/", true)
	f.Frequency = ptr(int64(2))
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: f})
	effects = nil

	cases := []struct {
		name string
		c    Claim
		want bool
	}{
		{"slot at SlotsFrom", Claim{ScheduleID: on, Slot: base}, false},
		{"slot before SlotsFrom", Claim{ScheduleID: on, Slot: base - 60}, false},
		{"first due slot", Claim{ScheduleID: on, Slot: base + 60}, true},
		{"same slot again", Claim{ScheduleID: on, Slot: base + 60}, false},
		{"slot before LastSlot", Claim{ScheduleID: on, Slot: base + 30}, false},
		{"next slot", Claim{ScheduleID: on, Slot: base + 120}, true},
		{"disabled schedule", Claim{ScheduleID: off, Slot: base + 60}, false},
		{"unknown schedule", Claim{ScheduleID: testID(99), Slot: base + 60}, false},
		{"malformed id", Claim{ScheduleID: "nope", Slot: base + 60}, false},
		{"negative slot", Claim{ScheduleID: on, Slot: -1}, false},
		{"frequency 1 of 2", Claim{ScheduleID: strings.ToUpper(freq), Slot: base + 60}, true},
		{"frequency 2 of 2", Claim{ScheduleID: freq, Slot: base + 120}, true},
		{"frequency reached", Claim{ScheduleID: freq, Slot: base + 180}, false},
	}
	var claims []Claim
	for _, c := range cases {
		claims = append(claims, c.c)
	}
	got := a.claim(0, claims...)
	for i, c := range cases {
		if got[i] != c.want {
			t.Errorf("%s: accepted = %v, want %v", c.name, got[i], c.want)
		}
	}
	wantKeys := []string{on, freq}
	slices.Sort(wantKeys)
	if len(effects) != 1 || effects[0].Type != CmdClaimSlots || !reflect.DeepEqual(effects[0].Keys, wantKeys) {
		t.Errorf("effects = %+v, want one claim effect with keys %v", effects, wantKeys)
	}

	s := a.schedule(on)
	if s.LastSlot != base+120 || s.Triggered != 2 || !s.Enabled {
		t.Errorf("schedule after two claims: last slot %d triggered %d enabled %v; want %d, 2, true", s.LastSlot, s.Triggered, s.Enabled, base+120)
	}
	s = a.schedule(freq)
	if s.LastSlot != base+120 || s.Triggered != 2 || s.Enabled {
		t.Errorf("schedule at its frequency: last slot %d triggered %d enabled %v; want %d, 2, false", s.LastSlot, s.Triggered, s.Enabled, base+120)
	}
	r := a.run(on, base+60)
	want := Run{ScheduleID: on, Slot: base + 60, Kind: RunKindSlot, State: RunClaimed, ClaimedAt: t0.Add(time.Hour)}
	if jsonOf(t, r) != jsonOf(t, want) {
		t.Errorf("run = %s, want %s", jsonOf(t, r), jsonOf(t, want))
	}
	a.noRun(on, base)
	a.noRun(off, base+60)
	a.view(func(tx *bolt.Tx) {
		p, _ := ListSchedules(tx, ScheduleFilter{Enabled: ptr(false)}, nil, false, 10)
		if got := idsOf(p); len(got) != 2 || p.Count != 2 || !slices.Contains(got, freq) {
			t.Errorf("disabled schedules = %v (count %d), want %s and %s", got, p.Count, off, freq)
		}
		if n := RunsCount(tx, freq); n != 2 {
			t.Errorf("runs of the frequency schedule = %d, want 2", n)
		}
	})
	checkLedger(t, a.f)

	// Re-enabled, a schedule at its frequency still does not fire; with a
	// higher frequency it fires the slots after the re-enable.
	at := t0.Add(10 * time.Minute)
	a.must(CmdUpdateSchedule, UpdateScheduleCmd{ID: freq, At: at, Patch: SchedulePatch{Enabled: ptr(true)}})
	if got := a.claim(0, Claim{ScheduleID: freq, Slot: at.Unix() + 60}); got[0] {
		t.Errorf("claim at a reached frequency accepted")
	}
	a.must(CmdUpdateSchedule, UpdateScheduleCmd{ID: freq, At: at, Patch: SchedulePatch{SetFrequency: true, Frequency: ptr(int64(3))}})
	got = a.claim(0, Claim{ScheduleID: freq, Slot: base + 300}, Claim{ScheduleID: freq, Slot: at.Unix() + 60}, Claim{ScheduleID: freq, Slot: at.Unix() + 120})
	if fmt.Sprint(got) != "[false true false]" {
		t.Errorf("claims after re-enable = %v, want [false true false] (before SlotsFrom, due, frequency reached)", got)
	}
	if s := a.schedule(freq); s.Enabled || s.Triggered != 3 {
		t.Errorf("after the third fire: enabled %v triggered %d, want false 3", s.Enabled, s.Triggered)
	}
	checkLedger(t, a.f)

	// A command whose claims are all refused changes nothing.
	before := tablesDigest(t, a.f)
	effects = nil
	if got := a.claim(1, Claim{ScheduleID: off, Slot: base + 999}, Claim{ScheduleID: on, Slot: base + 60}); fmt.Sprint(got) != "[false false]" {
		t.Errorf("refused claims = %v", got)
	}
	if tablesDigest(t, a.f) != before {
		t.Errorf("refused claims changed the tables")
	}
	if len(effects) != 1 || effects[0].Keys != nil {
		t.Errorf("effects of refused claims = %+v, want no keys", effects)
	}
}

func TestSlotsFromRules(t *testing.T) {
	a := newApplier(t)
	id := testID(1)
	s := newSchedule(id, t0, "http://a.example/", true)
	s.SlotsFrom = 12345 // decided by the FSM, not the command
	created := a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: s}).(Schedule)
	if created.SlotsFrom != base || a.schedule(id).SlotsFrom != base {
		t.Fatalf("slots from after create = %d, want %d", created.SlotsFrom, base)
	}
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	cases := []struct {
		name  string
		patch SchedulePatch
		at    time.Time
		want  int64
	}{
		{"payload only", SchedulePatch{SetPayload: true, Payload: json.RawMessage(`[]`)}, at(1), base},
		{"same cron", SchedulePatch{SetCron: true, Cron: "25 * * * *"}, at(2), base},
		{"new cron", SchedulePatch{SetCron: true, Cron: "*/5 * * * *"}, at(3), at(3).Unix()},
		{"endpoint", SchedulePatch{Endpoint: ptr("http://b.example/")}, at(4), at(3).Unix()},
		{"new interval", SchedulePatch{SetInterval: true, Interval: "2 minutes", IntervalAnchor: at(5)}, at(5), at(5).Unix()},
		{"same interval", SchedulePatch{SetInterval: true, Interval: "2 minutes", IntervalAnchor: at(6)}, at(6), at(5).Unix()},
		{"interval removed", SchedulePatch{SetInterval: true, Interval: ""}, at(7), at(7).Unix()},
		{"disabled", SchedulePatch{Enabled: ptr(false)}, at(8), at(7).Unix()},
		{"still disabled", SchedulePatch{Enabled: ptr(false)}, at(9), at(7).Unix()},
		{"re-enabled", SchedulePatch{Enabled: ptr(true)}, at(10), at(10).Unix()},
		{"enabled again", SchedulePatch{Enabled: ptr(true)}, at(11), at(10).Unix()},
	}
	for _, c := range cases {
		u := a.must(CmdUpdateSchedule, UpdateScheduleCmd{ID: id, At: c.at, Patch: c.patch}).(Schedule)
		if u.SlotsFrom != c.want || a.schedule(id).SlotsFrom != c.want {
			t.Errorf("%s: slots from = %d (stored %d), want %d", c.name, u.SlotsFrom, a.schedule(id).SlotsFrom, c.want)
		}
	}
	// What fell due while disabled is not fired after the re-enable.
	if got := a.claim(0, Claim{ScheduleID: id, Slot: at(9).Unix()}, Claim{ScheduleID: id, Slot: at(10).Unix()}, Claim{ScheduleID: id, Slot: at(15).Unix()}); fmt.Sprint(got) != "[false false true]" {
		t.Errorf("claims around the re-enable = %v, want [false false true]", got)
	}
	// Updates keep the ledger fields.
	u := a.must(CmdUpdateSchedule, UpdateScheduleCmd{ID: id, At: at(20), Patch: SchedulePatch{SetPayload: true, Payload: json.RawMessage(`1`)}}).(Schedule)
	if u.LastSlot != at(15).Unix() || u.Triggered != 1 {
		t.Errorf("after an update: last slot %d triggered %d, want %d 1", u.LastSlot, u.Triggered, at(15).Unix())
	}
	checkLedger(t, a.f)
}

func TestRequeueClaims(t *testing.T) {
	a := newApplier(t)
	id, off := testID(1), testID(2)
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id, t0, "http://a.example/", true)})
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(off, t0, "http://a.example/", false)})
	a.claim(0, Claim{ScheduleID: id, Slot: base + 30}, Claim{ScheduleID: id, Slot: base + 60})
	a.outcome(Outcome{ScheduleID: id, Slot: base + 30, State: RunFailed, TaskID: "t1", Reason: "boom",
		Attempt: Attempt{N: 1, At: t0, Status: 500}})
	a.outcome(delivered(id, base+60, 1, t0))

	// A requeue re-opens the newest failed run (its slot, its key); the
	// claim's own slot is ignored. One failed run can be re-opened once.
	got := a.claim(0,
		Claim{ScheduleID: id, Slot: base + 999, Requeue: true},
		Claim{ScheduleID: id, Requeue: true},
		Claim{ScheduleID: off, Requeue: true},
		Claim{ScheduleID: testID(9), Requeue: true},
	)
	if fmt.Sprint(got) != "[true false false false]" {
		t.Errorf("requeue claims = %v, want [true false false false]", got)
	}
	r := a.run(id, base+30)
	if r.Kind != RunKindRequeue || r.State != RunClaimed || r.RequeuedAfter != 1 || len(r.Attempts) != 1 {
		t.Errorf("re-opened run = %+v", r)
	}
	if s := a.schedule(id); s.LastSlot != base+60 || s.Triggered != 2 {
		t.Errorf("requeue moved last slot to %d, triggered to %d; want %d, 2", s.LastSlot, s.Triggered, base+60)
	}
	if got, want := a.slotsOf(id), "60:delivered 30:claimed"; got != want {
		t.Errorf("runs = %q, want %q", got, want)
	}
	checkLedger(t, a.f)
}

func TestOutcomeTransitions(t *testing.T) {
	a := newApplier(t)
	id, other := testID(1), testID(2)
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id, t0, "http://a.example/", true)})
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(other, t0, "http://a.example/", true)})
	a.claim(0, Claim{ScheduleID: id, Slot: base + 60}, Claim{ScheduleID: id, Slot: base + 120}, Claim{ScheduleID: other, Slot: base + 60})
	var effects []Effect
	a.f.Watch(func(c Change) { effects = append(effects, c.Commands...) })

	t1, t2, t3 := t0.Add(61*time.Second), t0.Add(66*time.Second), t0.Add(80*time.Second)
	next := t2
	retry := Outcome{ScheduleID: strings.ToUpper(id), Slot: base + 60, State: RunRetrying, NextAttemptAt: &next,
		Attempt: Attempt{N: 1, At: t1, Status: 503, LatencyMs: 3, LatenessMs: 400}}
	a.outcome(retry)
	r := a.run(id, base+60)
	if r.State != RunRetrying || r.NextAttemptAt == nil || !r.NextAttemptAt.Equal(next) || len(r.Attempts) != 1 || r.Attempts[0].Status != 503 {
		t.Errorf("run after a failed attempt = %+v", r)
	}
	if a.schedule(id).LastRunAt != nil {
		t.Errorf("last run at set by a failed attempt")
	}
	if got, want := a.pending(), fmt.Sprintf("%s/60:retrying %s/120:claimed %s/60:claimed", id[:4], id[:4], other[:4]); !samePending(got, want) {
		t.Errorf("pending = %q, want %q", got, want)
	}

	a.outcome(delivered(id, base+60, 2, t2))
	r = a.run(id, base+60)
	wantRun := Run{ScheduleID: id, Slot: base + 60, Kind: RunKindSlot, State: RunDelivered, ClaimedAt: t0.Add(time.Hour),
		Attempts: []Attempt{retry.Attempt, delivered(id, base+60, 2, t2).Attempt}}
	if jsonOf(t, r) != jsonOf(t, wantRun) {
		t.Errorf("delivered run\n%s\nwant\n%s", jsonOf(t, r), jsonOf(t, wantRun))
	}
	if s := a.schedule(id); s.LastRunAt == nil || !s.LastRunAt.Equal(t2) {
		t.Errorf("last run at = %v, want %v", s.LastRunAt, t2)
	}

	// Duplicate outcomes of a finished run are ignored.
	before := tablesDigest(t, a.f)
	a.outcome(delivered(id, base+60, 2, t3), Outcome{ScheduleID: id, Slot: base + 60, State: RunFailed, Attempt: Attempt{N: 3, At: t3}, TaskID: "x"})
	if tablesDigest(t, a.f) != before {
		t.Errorf("outcomes of a delivered run changed the tables")
	}
	// So are outcomes of runs that do not exist.
	a.outcome(delivered(id, base+999, 1, t3), delivered(testID(9), base+60, 1, t3), delivered("bad", base+60, 1, t3))
	if tablesDigest(t, a.f) != before {
		t.Errorf("outcomes of missing runs changed the tables")
	}

	// An earlier delivery (of an older slot reported late) does not move LastRunAt back.
	a.outcome(Outcome{ScheduleID: id, Slot: base + 120, State: RunFailed, TaskID: "task-1", Reason: "HTTP 500",
		Attempt: Attempt{N: 6, At: t3, Status: 500, Error: "HTTP 500"}})
	r = a.run(id, base+120)
	if r.State != RunFailed || len(r.Attempts) != 1 || r.NextAttemptAt != nil {
		t.Errorf("failed run = %+v", r)
	}
	a.view(func(tx *bolt.Tx) {
		ft, err := GetFailedTask(tx, 1)
		want := FailedTask{ID: 1, ScheduleID: id, TaskID: "task-1", InitiatedAt: t3, Reason: "HTTP 500"}
		if err != nil || jsonOf(t, ft) != jsonOf(t, want) {
			t.Errorf("failed task = %+v, %v; want %+v", ft, err, want)
		}
		if ids := FailedScheduleIDs(tx, ^uint64(0)); !reflect.DeepEqual(ids, []string{id}) {
			t.Errorf("failed schedules = %v, want [%s]", ids, id)
		}
	})
	a.outcome(delivered(other, base+60, 1, t1))
	if s := a.schedule(other); s.LastRunAt == nil || !s.LastRunAt.Equal(t1) {
		t.Errorf("other last run at = %v, want %v", s.LastRunAt, t1)
	}
	if got := a.pending(); got != "" {
		t.Errorf("pending after every run finished = %q", got)
	}

	// LastRunAt only moves forward.
	a.claim(0, Claim{ScheduleID: other, Slot: base + 120})
	a.outcome(delivered(other, base+120, 1, t0))
	if s := a.schedule(other); !s.LastRunAt.Equal(t1) {
		t.Errorf("last run at moved back to %v", s.LastRunAt)
	}

	// An invalid state fails the command before it writes anything.
	a.claim(0, Claim{ScheduleID: other, Slot: base + 180})
	before = tablesDigest(t, a.f)
	r2 := a.apply(CmdRecordOutcomes, RecordOutcomesCmd{Outcomes: []Outcome{delivered(other, base+180, 1, t3), {ScheduleID: other, Slot: base + 180, State: RunClaimed}}})
	if err, _ := r2.(error); err == nil || !strings.Contains(err.Error(), "invalid state") {
		t.Errorf("outcome with state claimed: response %v, want an invalid state error", r2)
	}
	if tablesDigest(t, a.f) != before {
		t.Errorf("a rejected outcome command changed the tables")
	}

	// Outcomes of a deleted schedule are skipped.
	a.must(CmdDeleteSchedule, DeleteScheduleCmd{ID: other})
	before = tablesDigest(t, a.f)
	a.outcome(delivered(other, base+180, 1, t3))
	if tablesDigest(t, a.f) != before {
		t.Errorf("outcome of a deleted schedule changed the tables")
	}

	var keys [][]string
	for _, e := range effects {
		if e.Type == CmdRecordOutcomes {
			keys = append(keys, e.Keys)
		}
	}
	want := [][]string{{id}, {id}, nil, nil, {id}, {other}, {other}, nil}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("outcome effect keys = %v, want %v", keys, want)
	}
	checkLedger(t, a.f)
}

// samePending compares two space-separated lists regardless of order (the
// pending list is in raw key order, which the test ids do not predict).
func samePending(got, want string) bool {
	g, w := strings.Fields(got), strings.Fields(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func TestPendingRuns(t *testing.T) {
	a := newApplier(t)
	ids := []string{testID(1), testID(2), testID(3)}
	for _, id := range ids {
		a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id, t0, "http://a.example/", true)})
	}
	var claims []Claim
	for _, id := range ids {
		for k := int64(1); k <= 3; k++ {
			claims = append(claims, Claim{ScheduleID: id, Slot: base + 60*k})
		}
	}
	a.claim(0, claims...)
	next := t0.Add(2 * time.Hour)
	a.outcome(
		delivered(ids[0], base+60, 1, t0),
		Outcome{ScheduleID: ids[0], Slot: base + 120, State: RunRetrying, NextAttemptAt: &next, Attempt: Attempt{N: 1, At: t0}},
		Outcome{ScheduleID: ids[1], Slot: base + 180, State: RunFailed, Attempt: Attempt{N: 6, At: t0}},
		delivered(ids[2], base+60, 1, t0), delivered(ids[2], base+120, 1, t0), delivered(ids[2], base+180, 1, t0),
	)
	a.must(CmdRecordMissed, RecordMissedCmd{At: t0, Missed: []Claim{{ScheduleID: ids[2], Slot: base + 240}}})
	var got []string
	a.view(func(tx *bolt.Tx) {
		rs, err := PendingRuns(tx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			got = append(got, fmt.Sprintf("%s/%d:%s", r.ScheduleID, r.Slot-base, r.State))
		}
	})
	want := []string{ids[0] + "/120:retrying", ids[0] + "/180:claimed", ids[1] + "/60:claimed", ids[1] + "/120:claimed"}
	// Listed by raw schedule key, then slot.
	slices.SortStableFunc(want, func(x, y string) int { return strings.Compare(x[:36], y[:36]) })
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pending runs\n%v\nwant\n%v", got, want)
	}
	checkLedger(t, a.f)
}

func TestRetentionPruning(t *testing.T) {
	a := newApplier(t)
	id, other := testID(1), testID(2)
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id, t0, "http://a.example/", true)})
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(other, t0, "http://a.example/", true)})
	for k := int64(1); k <= 4; k++ {
		a.claim(0, Claim{ScheduleID: other, Slot: base + k})
	}
	for k := int64(1); k <= 6; k++ {
		a.claim(3, Claim{ScheduleID: id, Slot: base + k})
		if k != 2 {
			a.outcome(delivered(id, base+k, 1, t0))
		}
	}
	// Slot 2 is still in flight: kept beyond the newest 3.
	if got, want := a.slotsOf(id), "6:delivered 5:delivered 4:delivered 2:claimed"; got != want {
		t.Errorf("runs after pruning = %q, want %q", got, want)
	}
	a.outcome(delivered(id, base+2, 1, t0))
	a.claim(3, Claim{ScheduleID: id, Slot: base + 7})
	if got, want := a.slotsOf(id), "7:claimed 6:delivered 5:delivered"; got != want {
		t.Errorf("runs after pruning = %q, want %q", got, want)
	}
	// Missed slots count, and are pruned, like the others; a claim
	// with Retain 0 prunes nothing; other schedules are not pruned.
	a.must(CmdRecordMissed, RecordMissedCmd{At: t0, Retain: 0, Missed: []Claim{{ScheduleID: id, Slot: base + 8}, {ScheduleID: id, Slot: base + 9}}})
	if got, want := a.slotsOf(id), "9:missed 8:missed 7:claimed 6:delivered 5:delivered"; got != want {
		t.Errorf("runs after missed slots = %q, want %q", got, want)
	}
	a.must(CmdRecordMissed, RecordMissedCmd{At: t0, Retain: 2, Missed: []Claim{{ScheduleID: id, Slot: base + 10}}})
	if got, want := a.slotsOf(id), "10:missed 9:missed 7:claimed"; got != want {
		t.Errorf("runs after missed slots with retain 2 = %q, want %q", got, want)
	}
	if got, want := a.slotsOf(other), "4:claimed 3:claimed 2:claimed 1:claimed"; got != want {
		t.Errorf("runs of the other schedule = %q, want %q", got, want)
	}
	checkLedger(t, a.f)
}

func TestRecordMissed(t *testing.T) {
	a := newApplier(t)
	id, off := testID(1), testID(2)
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id, t0, "http://a.example/", true)})
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(off, t0, "http://a.example/", false)})
	a.claim(0, Claim{ScheduleID: id, Slot: base + 60})
	var effects []Effect
	a.f.Watch(func(c Change) { effects = append(effects, c.Commands...) })
	at := t0.Add(3 * time.Hour)
	a.must(CmdRecordMissed, RecordMissedCmd{At: at, Missed: []Claim{
		{ScheduleID: id, Slot: base + 60},  // exists: skipped
		{ScheduleID: id, Slot: base + 120}, // missed
		{ScheduleID: id, Slot: base + 180}, // missed
		{ScheduleID: off, Slot: base + 60}, // disabled schedules are recorded too
		{ScheduleID: testID(9), Slot: base + 60},
		{ScheduleID: "bad", Slot: base + 60},
	}})
	if got, want := a.slotsOf(id), "180:missed 120:missed 60:claimed"; got != want {
		t.Errorf("runs = %q, want %q", got, want)
	}
	want := Run{ScheduleID: id, Slot: base + 120, Kind: RunKindSlot, State: RunMissed, ClaimedAt: at}
	if r := a.run(id, base+120); jsonOf(t, r) != jsonOf(t, want) {
		t.Errorf("missed run = %s, want %s", jsonOf(t, r), jsonOf(t, want))
	}
	if s := a.schedule(id); s.LastSlot != base+60 || s.Triggered != 1 {
		t.Errorf("missed slots moved last slot to %d, triggered to %d", s.LastSlot, s.Triggered)
	}
	wantKeys := []string{id, off}
	slices.Sort(wantKeys)
	if len(effects) != 1 || !reflect.DeepEqual(effects[0].Keys, wantKeys) {
		t.Errorf("effects = %+v, want keys %v", effects, wantKeys)
	}
	// A missed slot after LastSlot (the leader died before claiming the
	// newest overdue slot) can still be claimed: the claim replaces it.
	if got := a.claim(0, Claim{ScheduleID: id, Slot: base + 120}); !got[0] {
		t.Errorf("claim of a missed slot refused")
	}
	if got, want := a.slotsOf(id), "180:missed 120:claimed 60:claimed"; got != want {
		t.Errorf("runs = %q, want %q", got, want)
	}
	checkLedger(t, a.f)
}

func TestListRunsPaging(t *testing.T) {
	a := newApplier(t)
	ids := []string{testID(1), testID(2), testID(3)}
	for _, id := range ids {
		a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id, t0, "http://a.example/", true)})
	}
	var claims []Claim
	for _, id := range ids {
		for k := int64(1); k <= 7; k++ {
			if id == ids[1] {
				claims = append(claims, Claim{ScheduleID: id, Slot: base + 10*k})
			} else {
				claims = append(claims, Claim{ScheduleID: id, Slot: base + k})
			}
		}
	}
	a.claim(0, claims...)
	id := ids[1]
	slotsOf := func(p RunPage) string {
		var out []string
		for i, r := range p.Runs {
			if r.ScheduleID != id {
				t.Errorf("run of %s listed for %s", r.ScheduleID, id)
			}
			if !bytes.Equal(p.Positions[i], RunPosition(r.Slot)) {
				t.Errorf("position %x of slot %d", p.Positions[i], r.Slot)
			}
			out = append(out, fmt.Sprint((r.Slot-base)/10))
		}
		return strings.Join(out, " ")
	}
	pos := func(k int64) []byte { return RunPosition(base + 10*k) }
	cases := []struct {
		name    string
		pos     []byte
		reverse bool
		limit   int
		slots   string
		before  bool
		after   bool
	}{
		{"first page", nil, false, 3, "7 6 5", false, true},
		{"second page", pos(5), false, 3, "4 3 2", true, true},
		{"last page", pos(2), false, 3, "1", true, false},
		{"after the last", pos(1), false, 3, "", true, false},
		{"previous of the last", pos(1), true, 3, "4 3 2", true, true},
		{"back to the first", pos(4), true, 3, "7 6 5", false, true},
		{"before the first", pos(7), true, 3, "", false, true},
		{"reverse from nil", nil, true, 3, "3 2 1", true, false},
		{"between slots", RunPosition(base + 45), false, 2, "4 3", true, true},
		{"between slots reverse", RunPosition(base + 45), true, 2, "6 5", true, true},
		{"beyond the newest", RunPosition(base + 1000), false, 10, "7 6 5 4 3 2 1", false, false},
		{"whole", nil, false, 100, "7 6 5 4 3 2 1", false, false},
		{"limit 0", nil, false, 0, "", false, true},
	}
	a.view(func(tx *bolt.Tx) {
		for _, c := range cases {
			p, err := ListRuns(tx, id, c.pos, c.reverse, c.limit)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if got := slotsOf(p); got != c.slots || p.HasBefore != c.before || p.HasAfter != c.after || p.Count != 7 {
				t.Errorf("%s: slots %q before %v after %v count %d; want %q %v %v 7", c.name, got, p.HasBefore, p.HasAfter, p.Count, c.slots, c.before, c.after)
			}
		}
		if _, err := ListRuns(tx, id, []byte{1, 2}, false, 3); !errors.Is(err, ErrInvalidPosition) {
			t.Errorf("short position: %v, want ErrInvalidPosition", err)
		}
		if _, err := ListRuns(tx, testID(9), nil, false, 3); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown schedule: %v, want ErrNotFound", err)
		}
		if _, err := ListRuns(tx, "bad", nil, false, 3); !errors.Is(err, ErrNotFound) {
			t.Errorf("malformed id: %v, want ErrNotFound", err)
		}
		if _, err := GetRun(tx, "bad", base); !errors.Is(err, ErrNotFound) {
			t.Errorf("run of a malformed id: %v, want ErrNotFound", err)
		}
		if n := RunsCount(tx, "bad"); n != 0 {
			t.Errorf("runs count of a malformed id = %d", n)
		}
	})
	// Following next pages, then previous pages, visits every run once.
	var forward, back []string
	var p RunPage
	var position []byte
	for {
		a.view(func(tx *bolt.Tx) { p, _ = ListRuns(tx, id, position, false, 2) })
		forward = append(forward, slotsOf(p))
		if !p.HasAfter {
			break
		}
		position = p.Positions[len(p.Positions)-1]
	}
	for p.HasBefore {
		position = p.Positions[0]
		a.view(func(tx *bolt.Tx) { p, _ = ListRuns(tx, id, position, true, 2) })
		back = append([]string{slotsOf(p)}, back...)
	}
	if strings.Join(forward, "|") != "7 6|5 4|3 2|1" || strings.Join(back, "|") != "7 6|5 4|3 2" {
		t.Errorf("walk forward %q, back %q", forward, back)
	}
	// An empty schedule lists nothing.
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(testID(4), t0, "http://a.example/", true)})
	a.view(func(tx *bolt.Tx) {
		for _, reverse := range []bool{false, true} {
			p, err := ListRuns(tx, testID(4), nil, reverse, 3)
			if err != nil || len(p.Runs) != 0 || p.HasBefore || p.HasAfter || p.Count != 0 {
				t.Errorf("runs of a new schedule (reverse %v) = %+v, %v", reverse, p, err)
			}
		}
	})
}

func TestDeleteScheduleRemovesRuns(t *testing.T) {
	a := newApplier(t)
	id, other := testID(1), testID(2)
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id, t0, "http://a.example/", true)})
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(other, t0, "http://a.example/", true)})
	a.claim(0, Claim{ScheduleID: id, Slot: base + 1}, Claim{ScheduleID: id, Slot: base + 2}, Claim{ScheduleID: id, Slot: base + 3, Requeue: true},
		Claim{ScheduleID: other, Slot: base + 1})
	a.outcome(delivered(id, base+1, 1, t0))
	a.must(CmdRecordMissed, RecordMissedCmd{At: t0, Missed: []Claim{{ScheduleID: id, Slot: base + 9}}})
	checkLedger(t, a.f)
	a.must(CmdDeleteSchedule, DeleteScheduleCmd{ID: id})
	checkLedger(t, a.f)
	a.view(func(tx *bolt.Tx) {
		if n := RunsCount(tx, id); n != 0 {
			t.Errorf("runs count of a deleted schedule = %d", n)
		}
		if k, _ := ScheduleKey(id); tx.Bucket(bCounts).Get(runCountKey(k)) != nil {
			t.Errorf("run count of the deleted schedule left in the counts table")
		}
		rs, _ := PendingRuns(tx)
		if len(rs) != 1 || rs[0].ScheduleID != other {
			t.Errorf("pending runs after delete = %+v, want the other schedule's", rs)
		}
	})
	for _, slot := range []int64{1, 2, 3, 9} {
		a.noRun(id, base+slot)
	}
	if got := a.slotsOf(other); got != "1:claimed" {
		t.Errorf("runs of the other schedule = %q", got)
	}
}

func TestWebhookOutbox(t *testing.T) {
	a := newApplier(t)
	var effects []Effect
	a.f.Watch(func(c Change) { effects = append(effects, c.Commands...) })
	id1, id2, id3 := testID(1), testID(2), testID(3)
	// No hook yet: no outbox entry and only the schedule id as effect.
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id1, t0, "http://a.example/", true)})
	a.must(CmdCreateWebhook, Webhook{Event: EventScheduleAdded, Target: "http://h1/"})
	a.must(CmdCreateWebhook, Webhook{Event: "schedule.other", Target: "http://h2/"})
	a.must(CmdCreateWebhook, Webhook{Event: EventScheduleAdded, Target: "http://h3/"})
	t1 := t0.Add(time.Minute)
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id2, t1, "http://a.example/", false)})
	before := tablesDigest(t, a.f)
	wantErr(t, "create existing schedule", a.apply(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id2, t1, "http://a.example/", true)}), ErrConflict)
	if tablesDigest(t, a.f) != before {
		t.Errorf("a conflicting create changed the tables")
	}
	a.must(CmdDeleteWebhook, DeleteWebhookCmd{ID: 1})
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id3, t1, "http://a.example/", true)})

	var got []OutboxEntry
	a.view(func(tx *bolt.Tx) {
		var err error
		if got, err = PendingWebhooks(tx, 0); err != nil {
			t.Fatal(err)
		}
		if n := PendingWebhooksCount(tx); n != 3 {
			t.Errorf("outbox count = %d, want 3", n)
		}
		if two, _ := PendingWebhooks(tx, 2); len(two) != 2 || two[1].ID != 2 {
			t.Errorf("first two outbox entries = %+v", two)
		}
	})
	want := []OutboxEntry{
		{ID: 1, HookID: 1, ScheduleID: id2, CreatedAt: t1},
		{ID: 2, HookID: 3, ScheduleID: id2, CreatedAt: t1},
		{ID: 3, HookID: 3, ScheduleID: id3, CreatedAt: t1},
	}
	if jsonOf(t, got) != jsonOf(t, want) {
		t.Errorf("outbox\n%s\nwant\n%s", jsonOf(t, got), jsonOf(t, want))
	}
	checkLedger(t, a.f)

	if r := a.must(CmdWebhookDone, WebhookDoneCmd{IDs: []uint64{2, 99, 2}}); r != nil {
		t.Errorf("webhook done response = %v", r)
	}
	a.must(CmdWebhookDone, WebhookDoneCmd{IDs: []uint64{2}})
	a.view(func(tx *bolt.Tx) {
		got, _ := PendingWebhooks(tx, 10)
		if len(got) != 2 || got[0].ID != 1 || got[1].ID != 3 || PendingWebhooksCount(tx) != 2 {
			t.Errorf("outbox after done = %+v (count %d), want entries 1 and 3", got, PendingWebhooksCount(tx))
		}
	})
	a.must(CmdWebhookDone, WebhookDoneCmd{IDs: []uint64{3, 1}})
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(testID(4), t1, "http://a.example/", true)})
	a.view(func(tx *bolt.Tx) {
		got, _ := PendingWebhooks(tx, 10)
		if len(got) != 1 || got[0].ID != 4 {
			t.Errorf("outbox = %+v, want entry 4 only (ids are never reused)", got)
		}
	})
	checkLedger(t, a.f)

	var creates [][]string
	for _, e := range effects {
		if e.Type == CmdCreateSchedule {
			creates = append(creates, e.Keys)
		}
	}
	wantCreates := [][]string{{id1}, {id2, OutboxEffectKey}, {id3, OutboxEffectKey}, {testID(4), OutboxEffectKey}}
	if !reflect.DeepEqual(creates, wantCreates) {
		t.Errorf("create effects = %v, want %v", creates, wantCreates)
	}
}

// ledgerLog touches every ledger table and the schedule fields the ledger
// changes.
func ledgerLog(t *testing.T) []*raft.Log {
	a := &applier{tb: t}
	var logs []*raft.Log
	add := func(ct CommandType, v any) { logs = append(logs, a.log(ct, v)) }
	add(CmdCreateWebhook, Webhook{Event: EventScheduleAdded, Target: "http://h1/", Created: t0, Updated: t0, UserID: 1})
	add(CmdCreateWebhook, Webhook{Event: EventScheduleAdded, Target: "http://h2/", Created: t0, Updated: t0, UserID: 1})
	for i := range 8 {
		s := newSchedule(testID(i), t0.Add(time.Duration(i)*time.Second), fmt.Sprint("http://e", i%2, ".example/"), i != 7)
		if i%3 == 0 {
			s.Frequency = ptr(int64(3))
		}
		add(CmdCreateSchedule, CreateScheduleCmd{Schedule: s})
	}
	at := t0.Add(time.Hour)
	next := at.Add(time.Minute)
	for round := int64(1); round <= 5; round++ {
		var claims []Claim
		for i := range 8 {
			claims = append(claims, Claim{ScheduleID: testID(i), Slot: base + 60*round})
		}
		claims = append(claims, Claim{ScheduleID: testID(1), Slot: base + 60*round + 7, Requeue: true})
		add(CmdClaimSlots, ClaimSlotsCmd{At: at, Retain: 3, Claims: claims})
		var outs []Outcome
		for i := range 8 {
			slot := base + 60*round
			switch (i + int(round)) % 4 {
			case 0:
				outs = append(outs, delivered(testID(i), slot, 1, at.Add(time.Duration(round)*time.Minute)))
			case 1:
				outs = append(outs, Outcome{ScheduleID: testID(i), Slot: slot, State: RunRetrying, NextAttemptAt: &next, Attempt: Attempt{N: 1, At: at, Status: 502}})
			case 2:
				outs = append(outs, Outcome{ScheduleID: testID(i), Slot: slot, State: RunFailed, TaskID: fmt.Sprint("t", i), Reason: "timeout", Attempt: Attempt{N: 6, At: at, Error: "timeout"}})
			}
		}
		add(CmdRecordOutcomes, RecordOutcomesCmd{Outcomes: outs})
	}
	add(CmdRecordMissed, RecordMissedCmd{At: at, Retain: 3, Missed: []Claim{{ScheduleID: testID(2), Slot: base + 400}, {ScheduleID: testID(4), Slot: base + 30}}})
	add(CmdUpdateSchedule, UpdateScheduleCmd{ID: testID(5), At: at, Patch: SchedulePatch{SetCron: true, Cron: "* * * * *"}})
	add(CmdDeleteSchedule, DeleteScheduleCmd{ID: testID(3)})
	add(CmdWebhookDone, WebhookDoneCmd{IDs: []uint64{1, 4, 5}})
	add(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(testID(8), at, "http://e0.example/", true)})
	return logs
}

func TestLedgerSameTablesAnyBatchShape(t *testing.T) {
	dir := t.TempDir()
	a := mustOpen(t, filepath.Join(dir, "a.db"), Options{})
	b := mustOpen(t, filepath.Join(dir, "b.db"), Options{})
	logs := ledgerLog(t)
	for i, r := range a.ApplyBatch(logs) {
		if err, ok := r.(error); ok {
			t.Fatalf("entry %d: %v", i+1, err)
		}
	}
	for i := 0; i < len(logs); i += 2 {
		b.ApplyBatch(logs[i:min(i+2, len(logs))])
	}
	if da, db := mustDigest(t, a), mustDigest(t, b); da != db {
		t.Fatalf("digests differ: %s vs %s", da, db)
	}
	checkLedger(t, a)
	// The log must exercise the ledger, or the comparison proves little.
	a.View(func(tx *bolt.Tx) error {
		rs, _ := PendingRuns(tx)
		hooks, _ := PendingWebhooks(tx, 0)
		var states []string
		tx.Bucket(bRuns).ForEach(func(k, v []byte) error {
			var r Run
			json.Unmarshal(v, &r)
			if !slices.Contains(states, r.State) {
				states = append(states, r.State)
			}
			return nil
		})
		slices.Sort(states)
		if len(rs) == 0 || len(hooks) == 0 || Count(tx, BFailedTasks) == 0 || len(states) != 5 {
			t.Errorf("ledger log leaves %d pending runs, %d outbox entries, %d failed tasks, run states %v", len(rs), len(hooks), Count(tx, BFailedTasks), states)
		}
		return nil
	})
}

func TestLedgerSnapshotRestoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := mustOpen(t, filepath.Join(dir, "a.db"), Options{})
	src.ApplyBatch(ledgerLog(t))
	want := mustDigest(t, src)
	read := func(f *FSM) string {
		var out []string
		f.View(func(tx *bolt.Tx) error {
			rs, _ := PendingRuns(tx)
			hooks, _ := PendingWebhooks(tx, 0)
			p, _ := ListRuns(tx, testID(1), nil, false, 100)
			out = append(out, jsonOf(t, rs), jsonOf(t, hooks), jsonOf(t, p))
			return nil
		})
		return strings.Join(out, "\n")
	}
	wantRead := read(src)

	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	src.Apply(&raft.Log{Index: 1000, Type: raft.LogCommand, Data: mustEncode(t, CmdClaimSlots,
		ClaimSlotsCmd{At: t0, Claims: []Claim{{ScheduleID: testID(1), Slot: base + 9999}}})})
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	snap.Release()

	dst := mustOpen(t, filepath.Join(dir, "b.db"), Options{})
	dst.ApplyBatch([]*raft.Log{{Index: 1, Data: mustEncode(t, CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(testID(77), t0, "stale", true)})}})
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := mustDigest(t, dst); got != want {
		t.Fatalf("digest after restore = %s, want %s", got, want)
	}
	if got := read(dst); got != wantRead {
		t.Errorf("ledger reads after restore\n%s\nwant\n%s", got, wantRead)
	}
	checkLedger(t, dst)
}

// TestRandomLedgerOperations applies random claims, outcomes, missed slots,
// updates and deletes in random batch shapes, checks every invariant after
// each batch and compares LastSlot/Triggered/Enabled with a model.
func TestRandomLedgerOperations(t *testing.T) {
	a := newApplier(t)
	rng := rand.New(rand.NewSource(7))
	type mstate struct {
		exists, enabled        bool
		last, from, trig, freq int64
		runs                   map[int64]string
		lastRunAt              time.Time
	}
	const n = 6
	m := make([]*mstate, n)
	at := func(step int) time.Time { return t0.Add(time.Duration(step) * time.Second) }
	create := func(i, step int) (CommandType, any) {
		s := newSchedule(testID(i), at(step), "http://a.example/", true)
		m[i] = &mstate{exists: true, enabled: true, from: at(step).Unix(), runs: map[int64]string{}}
		if i%2 == 0 {
			s.Frequency = ptr(int64(4 + i))
			m[i].freq = int64(4 + i)
		}
		return CmdCreateSchedule, CreateScheduleCmd{Schedule: s}
	}
	var logs []*raft.Log
	for i := range n {
		ct, cmd := create(i, 0)
		logs = append(logs, a.log(ct, cmd))
	}
	a.f.ApplyBatch(logs)
	const retain = 4
	var accepted, finished, missed int
	prune := func(s *mstate) {
		var slots []int64
		for sl := range s.runs {
			slots = append(slots, sl)
		}
		slices.Sort(slots)
		for j := 0; j < len(slots)-retain; j++ {
			if st := s.runs[slots[j]]; st != RunClaimed && st != RunRetrying {
				delete(s.runs, slots[j])
			}
		}
	}
	for step := 1; step <= 1500; {
		var logs []*raft.Log
		var wantAccepted [][]bool
		for range 1 + rng.Intn(4) {
			step++
			i := rng.Intn(n)
			s := m[i]
			id := testID(i)
			switch op := rng.Intn(10); {
			case op < 4: // claims of a few slots around the current ones
				var claims []Claim
				var acc []bool
				touched := false
				for range 1 + rng.Intn(3) {
					slot := at(step).Unix() - int64(rng.Intn(20))
					req := rng.Intn(5) == 0
					claims = append(claims, Claim{ScheduleID: id, Slot: slot, Requeue: req})
					st, has := s.runs[slot]
					ok := s.exists && s.enabled
					if req {
						newest := int64(-1)
						for sl, st := range s.runs {
							if st == RunFailed && sl > newest {
								newest = sl
							}
						}
						ok = ok && newest >= 0
						if ok {
							slot = newest
						}
					} else {
						ok = ok && slot > s.last && slot > s.from && (s.freq == 0 || s.trig < s.freq) &&
							!(has && (st == RunClaimed || st == RunRetrying))
					}
					acc = append(acc, ok)
					if ok {
						accepted++
						touched = true
						s.runs[slot] = RunClaimed
						if !req {
							s.last = slot
							s.trig++
							if s.freq != 0 && s.trig >= s.freq {
								s.enabled = false
							}
						}
					}
				}
				if touched {
					prune(s)
				}
				logs = append(logs, a.log(CmdClaimSlots, ClaimSlotsCmd{At: at(step), Retain: retain, Claims: claims}))
				wantAccepted = append(wantAccepted, acc)
			case op < 7: // an outcome for one of its runs (or a missing one)
				slot := at(step).Unix() // no run there, unless one is picked
				var slots []int64
				for sl := range s.runs {
					slots = append(slots, sl)
				}
				slices.Sort(slots)
				if len(slots) > 0 && rng.Intn(4) != 0 {
					slot = slots[rng.Intn(len(slots))]
				}
				state := []string{RunDelivered, RunRetrying, RunFailed}[rng.Intn(3)]
				o := Outcome{ScheduleID: id, Slot: slot, State: state, Attempt: Attempt{N: 1, At: at(step)}, TaskID: "t", Reason: "r"}
				if st, has := s.runs[slot]; s.exists && has && (st == RunClaimed || st == RunRetrying) {
					finished++
					s.runs[slot] = state
					if state == RunDelivered {
						s.lastRunAt = at(step)
					}
				}
				logs = append(logs, a.log(CmdRecordOutcomes, RecordOutcomesCmd{Outcomes: []Outcome{o}}))
			case op < 8:
				slot := at(step).Unix() - int64(rng.Intn(30))
				if _, has := s.runs[slot]; s.exists && !has {
					missed++
					s.runs[slot] = RunMissed
					prune(s)
				}
				logs = append(logs, a.log(CmdRecordMissed, RecordMissedCmd{At: at(step), Retain: retain, Missed: []Claim{{ScheduleID: id, Slot: slot}}}))
			case op < 9:
				if !s.exists {
					continue
				}
				en := rng.Intn(3) != 0
				if en && !s.enabled {
					s.from = at(step).Unix()
				}
				s.enabled = en
				logs = append(logs, a.log(CmdUpdateSchedule, UpdateScheduleCmd{ID: id, At: at(step), Patch: SchedulePatch{Enabled: &en}}))
			default:
				if s.exists {
					logs = append(logs, a.log(CmdDeleteSchedule, DeleteScheduleCmd{ID: id}))
					s.exists = false
				} else {
					ct, cmd := create(i, step)
					logs = append(logs, a.log(ct, cmd))
				}
			}
		}
		resp := a.f.ApplyBatch(logs)
		k := 0
		for i, r := range resp {
			if err, ok := r.(error); ok {
				t.Fatalf("step %d entry %d: %v", step, i, err)
			}
			if cr, ok := r.(ClaimResult); ok {
				if !reflect.DeepEqual(cr.Accepted, wantAccepted[k]) {
					t.Fatalf("step %d: accepted %v, model %v", step, cr.Accepted, wantAccepted[k])
				}
				k++
			}
		}
		checkLedger(t, a.f)
		if t.Failed() {
			t.Fatalf("invariants broken at step %d", step)
		}
		a.view(func(tx *bolt.Tx) {
			for i, s := range m {
				got, err := GetSchedule(tx, testID(i))
				if !s.exists {
					if !errors.Is(err, ErrNotFound) {
						t.Fatalf("step %d: deleted schedule %d: %v", step, i, err)
					}
					continue
				}
				if got.LastSlot != s.last || got.Triggered != s.trig || got.Enabled != s.enabled || got.SlotsFrom != s.from ||
					(s.lastRunAt.IsZero() != (got.LastRunAt == nil)) || (got.LastRunAt != nil && !got.LastRunAt.Equal(s.lastRunAt)) {
					t.Fatalf("step %d: schedule %d = last %d trig %d enabled %v from %d last run %v; model %+v",
						step, i, got.LastSlot, got.Triggered, got.Enabled, got.SlotsFrom, got.LastRunAt, *s)
				}
				p, _ := ListRuns(tx, testID(i), nil, false, 1000)
				gotRuns := map[int64]string{}
				for _, r := range p.Runs {
					gotRuns[r.Slot] = r.State
				}
				if !reflect.DeepEqual(gotRuns, s.runs) {
					t.Fatalf("step %d: runs of %d = %v, model %v", step, i, gotRuns, s.runs)
				}
			}
		})
	}
	if accepted < 50 || finished < 50 || missed < 10 {
		t.Errorf("the random sequence accepted %d claims, recorded %d outcomes and %d missed slots: it tests too little", accepted, finished, missed)
	}
	t.Logf("%d claims accepted, %d outcomes recorded, %d missed slots", accepted, finished, missed)
}

func TestCancelledOutcomeClosesTheRun(t *testing.T) {
	a := newApplier(t)
	id := testID(1)
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id, t0, "http://a.example/", true)})
	a.claim(0, Claim{ScheduleID: id, Slot: base + 30})
	a.outcome(Outcome{ScheduleID: id, Slot: base + 30, State: RunCancelled})
	r := a.run(id, base+30)
	if r.State != RunCancelled || len(r.Attempts) != 0 {
		t.Fatalf("cancelled run = %+v", r)
	}
	a.view(func(tx *bolt.Tx) {
		if rs, _ := PendingRuns(tx); len(rs) != 0 {
			t.Errorf("a cancelled run is still pending: %+v", rs)
		}
		if n := Count(tx, BFailedTasks); n != 0 {
			t.Errorf("cancelling wrote %d failed tasks", n)
		}
	})
	checkLedger(t, a.f)
}
