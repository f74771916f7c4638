package fsm

import (
	"bytes"
	"crypto/sha256"
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
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// applier feeds commands to an FSM at consecutive raft indexes.
type applier struct {
	tb  testing.TB
	f   *FSM
	idx uint64
}

func newApplier(t *testing.T) *applier {
	t.Helper()
	return &applier{tb: t, f: mustOpen(t, filepath.Join(t.TempDir(), "fsm.db"), Options{})}
}

func encodeTB(tb testing.TB, ct CommandType, v any) []byte {
	tb.Helper()
	b, err := Encode(ct, v)
	if err != nil {
		tb.Fatalf("encode: %v", err)
	}
	return b
}

func (a *applier) log(ct CommandType, v any) *raft.Log {
	a.tb.Helper()
	a.idx++
	return &raft.Log{Index: a.idx, Term: 1, Type: raft.LogCommand, Data: encodeTB(a.tb, ct, v)}
}

func (a *applier) apply(ct CommandType, v any) any {
	a.tb.Helper()
	return a.f.ApplyBatch([]*raft.Log{a.log(ct, v)})[0]
}

func (a *applier) must(ct CommandType, v any) any {
	a.tb.Helper()
	r := a.apply(ct, v)
	if err, ok := r.(error); ok {
		a.tb.Fatalf("command %d %+v: %v", ct, v, err)
	}
	return r
}

func (a *applier) view(fn func(tx *bolt.Tx)) {
	a.tb.Helper()
	if err := a.f.View(func(tx *bolt.Tx) error { fn(tx); return nil }); err != nil {
		a.tb.Fatal(err)
	}
}

// testID returns a deterministic schedule id; ids sort unrelated to n.
func testID(n int) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprint("schedule-", n))).String()
}

func newSchedule(id string, created time.Time, endpoint string, enabled bool) Schedule {
	tok := "secret"
	return Schedule{
		ID:             id,
		CronDefinition: "25 * * * *",
		Endpoint:       endpoint,
		Payload:        json.RawMessage(`{"n": 1}`),
		AuthToken:      &tok,
		Enabled:        enabled,
		CreatedAt:      created,
		CreatedBy:      1,
		UpdatedAt:      created,
		UpdatedBy:      1,
	}
}

func ptr[T any](v T) *T { return &v }

func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tablesDigest is Digest without the applied index, which every entry moves:
// equal values mean no command changed any table.
func tablesDigest(t testing.TB, f *FSM) string {
	t.Helper()
	h := sha256.New()
	err := f.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			fmt.Fprintf(h, "%s/%d\n", name, b.Sequence())
			return b.ForEach(func(k, v []byte) error {
				if bytes.Equal(name, bMeta) && bytes.Equal(k, kApplied) {
					return nil
				}
				fmt.Fprintf(h, "%x=%x\n", k, v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func wantErr(t testing.TB, what string, r any, want error) {
	t.Helper()
	err, _ := r.(error)
	if !errors.Is(err, want) {
		t.Errorf("%s: response %v, want %v", what, r, want)
	}
}

// checkInvariants rebuilds every index and maintained count of schedules,
// failed tasks and webhooks by scanning their tables, and compares them with
// the maintained ones.
func checkInvariants(t testing.TB, f *FSM) {
	t.Helper()
	err := f.View(func(tx *bolt.Tx) error {
		want := map[string]map[string]bool{}
		add := func(bucket []byte, key ...[]byte) {
			if want[string(bucket)] == nil {
				want[string(bucket)] = map[string]bool{}
			}
			want[string(bucket)][string(bytes.Join(key, nil))] = true
		}
		for _, b := range [][]byte{BSchedulesByCreated, bSchedulesByEnabled, bSchedulesByEndpoint,
			bSchedulesByEndpointEnabled, bFailedTasksBySchedule, bWebhooksByEvent} {
			want[string(b)] = map[string]bool{}
		}
		counts := map[string]uint64{}
		nSchedules := 0
		err := tx.Bucket(BSchedules).ForEach(func(k, v []byte) error {
			var s Schedule
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			u := uuid.MustParse(s.ID)
			if !bytes.Equal(k, u[:]) || s.ID != u.String() {
				t.Errorf("schedule %s stored under key %x", s.ID, k)
			}
			nSchedules++
			var created [8]byte
			binary.BigEndian.PutUint64(created[:], uint64(s.CreatedAt.UnixNano()))
			en := []byte{0}
			if s.Enabled {
				en[0] = 1
			}
			sum := sha256.Sum256([]byte(s.Endpoint))
			h := sum[:16]
			add(BSchedulesByCreated, created[:], k)
			add(bSchedulesByEnabled, en, created[:], k)
			add(bSchedulesByEndpoint, h, created[:], k)
			add(bSchedulesByEndpointEnabled, h, en, created[:], k)
			counts["schedules"]++
			counts[fmt.Sprintf("schedules_enabled_%d", en[0])]++
			counts["schedules_endpoint_"+hex.EncodeToString(h)]++
			counts[fmt.Sprintf("schedules_endpoint_%x_enabled_%d", h, en[0])]++
			return nil
		})
		if err != nil {
			return err
		}
		nTasks := uint64(0)
		err = tx.Bucket(BFailedTasks).ForEach(func(k, v []byte) error {
			var ft FailedTask
			if err := json.Unmarshal(v, &ft); err != nil {
				return err
			}
			if !bytes.Equal(k, U64Key(ft.ID)) {
				t.Errorf("failed task %d stored under key %x", ft.ID, k)
			}
			if ft.ID > tx.Bucket(BFailedTasks).Sequence() {
				t.Errorf("failed task %d above the table sequence", ft.ID)
			}
			u, err := uuid.Parse(ft.ScheduleID)
			if err != nil {
				t.Errorf("failed task %d: schedule %q: %v", ft.ID, ft.ScheduleID, err)
				return nil
			}
			if tx.Bucket(BSchedules).Get(u[:]) == nil {
				t.Errorf("failed task %d of missing schedule %s", ft.ID, ft.ScheduleID)
			}
			add(bFailedTasksBySchedule, u[:], k)
			nTasks++
			return nil
		})
		if err != nil {
			return err
		}
		nHooks := uint64(0)
		err = tx.Bucket(BWebhooks).ForEach(func(k, v []byte) error {
			var w Webhook
			if err := json.Unmarshal(v, &w); err != nil {
				return err
			}
			if !bytes.Equal(k, U64Key(w.ID)) {
				t.Errorf("webhook %d stored under key %x", w.ID, k)
			}
			var n [2]byte
			binary.BigEndian.PutUint16(n[:], uint16(len(w.Event)))
			add(bWebhooksByEvent, n[:], []byte(w.Event), k)
			nHooks++
			return nil
		})
		if err != nil {
			return err
		}
		for bucket, keys := range want {
			got := map[string]bool{}
			tx.Bucket([]byte(bucket)).ForEach(func(k, v []byte) error {
				got[string(k)] = true
				if len(v) != 0 {
					t.Errorf("index %s: key %x has value %x", bucket, k, v)
				}
				return nil
			})
			for k := range keys {
				if !got[k] {
					t.Errorf("index %s: missing key %x", bucket, k)
				}
			}
			for k := range got {
				if !keys[k] {
					t.Errorf("index %s: stale key %x", bucket, k)
				}
			}
		}
		gotCounts := map[string]uint64{}
		tx.Bucket(bCounts).ForEach(func(k, v []byte) error {
			if strings.HasPrefix(string(k), "schedules") {
				gotCounts[string(k)] = binary.BigEndian.Uint64(v)
			}
			return nil
		})
		if !reflect.DeepEqual(gotCounts, counts) {
			t.Errorf("schedule counts:\n got %v\nwant %v", gotCounts, counts)
		}
		if got := Count(tx, BSchedules); got != uint64(nSchedules) {
			t.Errorf("Count(schedules) = %d, want %d", got, nSchedules)
		}
		if got := Count(tx, BFailedTasks); got != nTasks {
			t.Errorf("Count(failed_tasks) = %d, want %d", got, nTasks)
		}
		if got := Count(tx, BWebhooks); got != nHooks {
			t.Errorf("Count(webhooks) = %d, want %d", got, nHooks)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("check invariants: %v", err)
	}
}

func TestScheduleCommandsApply(t *testing.T) {
	a := newApplier(t)
	var effects []Effect
	a.f.Watch(func(c Change) { effects = append(effects, c.Commands...) })

	id := testID(1)
	s := newSchedule(id, t0, "http://a.example/send", true)
	s.IntervalDefinition = "5 minutes"
	s.IntervalAnchor = t0.Truncate(time.Second)
	created := a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: s}).(Schedule)
	if created.ID != id {
		t.Fatalf("created id = %s, want %s", created.ID, id)
	}
	a.view(func(tx *bolt.Tx) {
		got, err := GetSchedule(tx, id)
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if jsonOf(t, got) != jsonOf(t, created) {
			t.Errorf("stored schedule\n%s\ndiffers from the create response\n%s", jsonOf(t, got), jsonOf(t, created))
		}
		if string(got.Payload) != `{"n":1}` {
			t.Errorf("payload = %s", got.Payload)
		}
		if _, err := GetSchedule(tx, "not-a-uuid"); !errors.Is(err, ErrNotFound) {
			t.Errorf("malformed id: %v, want ErrNotFound", err)
		}
		if _, err := GetSchedule(tx, strings.ToUpper(id)); err != nil {
			t.Errorf("upper-case id: %v", err)
		}
		if Count(tx, BSchedules) != 1 {
			t.Errorf("count = %d, want 1", Count(tx, BSchedules))
		}
	})

	// An upper-case id is stored in canonical form.
	id2 := testID(2)
	r := a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(strings.ToUpper(id2), t0, "http://b.example/", true)}).(Schedule)
	if r.ID != id2 {
		t.Errorf("upper-case create stored id %s, want %s", r.ID, id2)
	}

	// Every field of a patch.
	at := t0.Add(time.Hour)
	next := t0.Add(48 * time.Hour)
	anchor := at.Truncate(time.Second)
	u := a.must(CmdUpdateSchedule, UpdateScheduleCmd{ID: id, At: at, By: 7, Patch: SchedulePatch{
		Endpoint:     ptr("http://c.example/x"),
		SetFrequency: true, Frequency: ptr(int64(5)),
		SetCron: true, Cron: "",
		SetInterval: true, Interval: "1 minutes", IntervalAnchor: anchor,
		SetPayload: true, Payload: json.RawMessage(`[1, 2]`),
		SetAuthToken: true, AuthToken: nil,
		SetNextSendAt: true, NextSendAt: &next,
		Enabled: ptr(false),
	}}).(Schedule)
	want := s
	want.Endpoint = "http://c.example/x"
	want.Frequency = ptr(int64(5))
	want.CronDefinition = ""
	want.IntervalDefinition = "1 minutes"
	want.IntervalAnchor = anchor
	want.Payload = json.RawMessage(`[1,2]`)
	want.AuthToken = nil
	want.NextSendAt = &next
	want.Enabled = false
	want.UpdatedAt = at
	want.UpdatedBy = 7
	want.SlotsFrom = at.Unix() // the definition changed: slots due from the update on
	if jsonOf(t, u) != jsonOf(t, want) {
		t.Errorf("updated schedule\n%s\nwant\n%s", jsonOf(t, u), jsonOf(t, want))
	}
	a.view(func(tx *bolt.Tx) {
		got, _ := GetSchedule(tx, id)
		if jsonOf(t, got) != jsonOf(t, want) {
			t.Errorf("stored after update\n%s\nwant\n%s", jsonOf(t, got), jsonOf(t, want))
		}
	})

	// Repeating the interval keeps its anchor; an empty patch only touches updated_*.
	u = a.must(CmdUpdateSchedule, UpdateScheduleCmd{ID: id, At: at.Add(time.Minute), By: 8, Patch: SchedulePatch{
		SetInterval: true, Interval: "1 minutes", IntervalAnchor: at.Add(time.Minute),
	}}).(Schedule)
	if !u.IntervalAnchor.Equal(anchor) {
		t.Errorf("anchor moved to %v on an unchanged interval, want %v", u.IntervalAnchor, anchor)
	}
	want.UpdatedAt, want.UpdatedBy = at.Add(time.Minute), 8
	if jsonOf(t, u) != jsonOf(t, want) {
		t.Errorf("after repeating the interval\n%s\nwant\n%s", jsonOf(t, u), jsonOf(t, want))
	}
	u = a.must(CmdUpdateSchedule, UpdateScheduleCmd{ID: id, At: at, Patch: SchedulePatch{SetInterval: true, Interval: "", IntervalAnchor: at}}).(Schedule)
	if u.IntervalDefinition != "" || !u.IntervalAnchor.IsZero() {
		t.Errorf("cleared interval = %q anchored %v, want none", u.IntervalDefinition, u.IntervalAnchor)
	}
	checkInvariants(t, a.f)

	a.must(CmdDeleteSchedule, DeleteScheduleCmd{ID: id})
	a.view(func(tx *bolt.Tx) {
		if _, err := GetSchedule(tx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("get after delete: %v, want ErrNotFound", err)
		}
		if Count(tx, BSchedules) != 1 {
			t.Errorf("count after delete = %d, want 1", Count(tx, BSchedules))
		}
	})
	checkInvariants(t, a.f)

	wantEffects := []Effect{
		{CmdCreateSchedule, []string{id}}, {CmdCreateSchedule, []string{id2}},
		{CmdUpdateSchedule, []string{id}}, {CmdUpdateSchedule, []string{id}}, {CmdUpdateSchedule, []string{id}},
		{CmdDeleteSchedule, []string{id}},
	}
	if !reflect.DeepEqual(effects, wantEffects) {
		t.Errorf("effects = %+v, want %+v", effects, wantEffects)
	}
}

func TestScheduleBusinessErrorsLeaveStateUntouched(t *testing.T) {
	a := newApplier(t)
	id := testID(1)
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id, t0, "http://a.example/", true)})
	a.must(CmdAddFailedTask, FailedTask{ScheduleID: id, TaskID: "t", Reason: "boom"})
	a.must(CmdCreateWebhook, Webhook{Event: "schedule.added", Target: "http://hook.example/"})
	a.must(CmdRequeueFailedTasks, RequeueFailedTasksCmd{RequestedAt: t0})

	before := tablesDigest(t, a.f)
	missing := testID(99)
	cases := []struct {
		name string
		ct   CommandType
		cmd  any
		want error
	}{
		{"create existing schedule", CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id, t0.Add(time.Hour), "http://b.example/", false)}, ErrConflict},
		{"update missing schedule", CmdUpdateSchedule, UpdateScheduleCmd{ID: missing, At: t0, Patch: SchedulePatch{Enabled: ptr(false)}}, ErrNotFound},
		{"update malformed id", CmdUpdateSchedule, UpdateScheduleCmd{ID: "zzz", At: t0}, ErrNotFound},
		{"delete missing schedule", CmdDeleteSchedule, DeleteScheduleCmd{ID: missing}, ErrNotFound},
		{"delete malformed id", CmdDeleteSchedule, DeleteScheduleCmd{ID: ""}, ErrNotFound},
		{"failed task of missing schedule", CmdAddFailedTask, FailedTask{ScheduleID: missing}, ErrNotFound},
		{"failed task of malformed id", CmdAddFailedTask, FailedTask{ScheduleID: "x"}, ErrNotFound},
		{"finish unknown requeue", CmdFinishRequeue, FinishRequeueCmd{ID: 9, ScheduleIDs: []string{id}}, ErrNotFound},
		{"update missing webhook", CmdUpdateWebhook, UpdateWebhookCmd{ID: 9, Target: ptr("x")}, ErrNotFound},
		{"delete missing webhook", CmdDeleteWebhook, DeleteWebhookCmd{ID: 9}, ErrNotFound},
	}
	for _, c := range cases {
		wantErr(t, c.name, a.apply(c.ct, c.cmd), c.want)
		if got := tablesDigest(t, a.f); got != before {
			t.Fatalf("%s changed the tables", c.name)
		}
	}

	// Inside a batch with successful commands: the twin applies only the
	// successful ones, at the same indexes, and must end byte-identical.
	b := newApplier(t)
	b.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id, t0, "http://a.example/", true)})
	b.must(CmdAddFailedTask, FailedTask{ScheduleID: id, TaskID: "t", Reason: "boom"})
	b.must(CmdCreateWebhook, Webhook{Event: "schedule.added", Target: "http://hook.example/"})
	b.must(CmdRequeueFailedTasks, RequeueFailedTasksCmd{RequestedAt: t0})
	b.idx = a.idx
	id2, id3 := testID(2), testID(3)
	batch := []struct {
		ct   CommandType
		cmd  any
		want error
	}{
		{CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id2, t0, "http://a.example/", true)}, nil},
		{CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id2, t0, "http://other.example/", false)}, ErrConflict},
		{CmdUpdateSchedule, UpdateScheduleCmd{ID: id2, At: t0, Patch: SchedulePatch{Enabled: ptr(false), Endpoint: ptr("http://z.example/")}}, nil},
		{CmdDeleteSchedule, DeleteScheduleCmd{ID: missing}, ErrNotFound},
		{CmdAddFailedTask, FailedTask{ScheduleID: missing}, ErrNotFound},
		{CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id3, t0, "http://a.example/", true)}, nil},
		{CmdUpdateWebhook, UpdateWebhookCmd{ID: 9}, ErrNotFound},
		{CmdAddFailedTask, FailedTask{ScheduleID: id3, Reason: "r"}, nil},
		{CmdFinishRequeue, FinishRequeueCmd{ID: 5}, ErrNotFound},
		{CmdDeleteSchedule, DeleteScheduleCmd{ID: id2}, nil},
		{CmdDeleteSchedule, DeleteScheduleCmd{ID: id2}, ErrNotFound},
	}
	var batchA, batchB []*raft.Log
	for _, c := range batch {
		batchA = append(batchA, a.log(c.ct, c.cmd))
		if c.want == nil {
			batchB = append(batchB, b.log(c.ct, c.cmd))
		} else {
			b.idx++ // the twin never sees the failing entry
		}
	}
	// The twin's batch must end at the same index.
	batchB = append(batchB, &raft.Log{Index: a.idx, Type: raft.LogNoop})
	resp := a.f.ApplyBatch(batchA)
	for i, c := range batch {
		err, _ := resp[i].(error)
		if (c.want == nil && err != nil) || !errors.Is(err, c.want) {
			t.Errorf("batch entry %d: response %v, want %v", i, resp[i], c.want)
		}
	}
	b.f.ApplyBatch(batchB)
	if da, db := mustDigest(t, a.f), mustDigest(t, b.f); da != db {
		t.Fatalf("a batch with failing entries left different tables than the same batch without them")
	}
	checkInvariants(t, a.f)
}

// op is one random command with the outcome the model predicts.
type op struct {
	ct   CommandType
	cmd  any
	want error
}

type modelSchedule struct {
	id       string
	created  time.Time
	endpoint string
	enabled  bool
}

type model struct {
	scheds  map[string]*modelSchedule
	tasks   map[uint64]string // failed task id → schedule id
	taskSeq uint64
	reqs    map[uint64]uint64 // requeue id → max task id
	reqSeq  uint64
	hooks   map[uint64]string // webhook id → event
	hookSeq uint64
}

func (m *model) listed(f ScheduleFilter) []string {
	var rows []*modelSchedule
	for _, s := range m.scheds {
		if f.Enabled != nil && s.enabled != *f.Enabled || f.Endpoint != nil && s.endpoint != *f.Endpoint {
			continue
		}
		rows = append(rows, s)
	}
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].created.Equal(rows[j].created) {
			return rows[i].created.After(rows[j].created)
		}
		ki, kj := uuid.MustParse(rows[i].id), uuid.MustParse(rows[j].id)
		return bytes.Compare(ki[:], kj[:]) > 0
	})
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.id
	}
	return out
}

func randomOp(rng *rand.Rand, m *model, ids, endpoints []string) op {
	pickID := func() string {
		if rng.Intn(20) == 0 {
			return "not-a-uuid"
		}
		return ids[rng.Intn(len(ids))]
	}
	events := []string{"schedule.added", "schedule.other"}
	switch n := rng.Intn(100); {
	case n < 30:
		id := ids[rng.Intn(len(ids))]
		s := newSchedule(id, t0.Add(time.Duration(rng.Intn(15))*time.Second), endpoints[rng.Intn(len(endpoints))], rng.Intn(2) == 0)
		if _, ok := m.scheds[id]; ok {
			return op{CmdCreateSchedule, CreateScheduleCmd{Schedule: s}, ErrConflict}
		}
		m.scheds[id] = &modelSchedule{id: id, created: s.CreatedAt, endpoint: s.Endpoint, enabled: s.Enabled}
		return op{CmdCreateSchedule, CreateScheduleCmd{Schedule: s}, nil}
	case n < 60:
		id := pickID()
		var p SchedulePatch
		if rng.Intn(2) == 0 {
			p.Endpoint = ptr(endpoints[rng.Intn(len(endpoints))])
		}
		if rng.Intn(2) == 0 {
			p.Enabled = ptr(rng.Intn(2) == 0)
		}
		if rng.Intn(3) == 0 {
			p.SetInterval, p.Interval, p.IntervalAnchor = true, fmt.Sprint(rng.Intn(3), " minutes"), t0
		}
		if rng.Intn(3) == 0 {
			p.SetPayload, p.Payload = true, json.RawMessage(fmt.Sprint(rng.Intn(100)))
		}
		c := UpdateScheduleCmd{ID: id, Patch: p, At: t0.Add(time.Hour), By: 2}
		s, ok := m.scheds[id]
		if !ok {
			return op{CmdUpdateSchedule, c, ErrNotFound}
		}
		if p.Endpoint != nil {
			s.endpoint = *p.Endpoint
		}
		if p.Enabled != nil {
			s.enabled = *p.Enabled
		}
		return op{CmdUpdateSchedule, c, nil}
	case n < 72:
		id := pickID()
		if _, ok := m.scheds[id]; !ok {
			return op{CmdDeleteSchedule, DeleteScheduleCmd{ID: id}, ErrNotFound}
		}
		delete(m.scheds, id)
		for tid, sid := range m.tasks {
			if sid == id {
				delete(m.tasks, tid)
			}
		}
		return op{CmdDeleteSchedule, DeleteScheduleCmd{ID: id}, nil}
	case n < 84:
		id := pickID()
		c := FailedTask{ID: 12345, ScheduleID: id, TaskID: "task", Reason: "500", InitiatedAt: t0}
		if _, ok := m.scheds[id]; !ok {
			return op{CmdAddFailedTask, c, ErrNotFound}
		}
		m.taskSeq++
		m.tasks[m.taskSeq] = id
		return op{CmdAddFailedTask, c, nil}
	case n < 87:
		m.reqSeq++
		m.reqs[m.reqSeq] = m.taskSeq
		return op{CmdRequeueFailedTasks, RequeueFailedTasksCmd{RequestedAt: t0}, nil}
	case n < 90:
		rid := uint64(rng.Intn(int(m.reqSeq)+2)) + 1
		var list []string
		for range rng.Intn(6) {
			list = append(list, pickID())
		}
		c := FinishRequeueCmd{ID: rid, ScheduleIDs: list}
		max, ok := m.reqs[rid]
		if !ok {
			return op{CmdFinishRequeue, c, ErrNotFound}
		}
		delete(m.reqs, rid)
		for tid, sid := range m.tasks {
			if tid <= max && slices.Contains(list, sid) {
				delete(m.tasks, tid)
			}
		}
		return op{CmdFinishRequeue, c, nil}
	case n < 95:
		m.hookSeq++
		ev := events[rng.Intn(len(events))]
		m.hooks[m.hookSeq] = ev
		return op{CmdCreateWebhook, Webhook{ID: 777, Event: ev, Target: "http://hook.example/", Created: t0}, nil}
	case n < 98:
		id := uint64(rng.Intn(int(m.hookSeq)+2)) + 1
		c := UpdateWebhookCmd{ID: id, Updated: t0}
		if rng.Intn(2) == 0 {
			c.Event = ptr(events[rng.Intn(len(events))])
		}
		if _, ok := m.hooks[id]; !ok {
			return op{CmdUpdateWebhook, c, ErrNotFound}
		}
		if c.Event != nil {
			m.hooks[id] = *c.Event
		}
		return op{CmdUpdateWebhook, c, nil}
	default:
		id := uint64(rng.Intn(int(m.hookSeq)+2)) + 1
		if _, ok := m.hooks[id]; !ok {
			return op{CmdDeleteWebhook, DeleteWebhookCmd{ID: id}, ErrNotFound}
		}
		delete(m.hooks, id)
		return op{CmdDeleteWebhook, DeleteWebhookCmd{ID: id}, nil}
	}
}

func TestRandomOperationsKeepIndexesExact(t *testing.T) {
	a := newApplier(t)
	rng := rand.New(rand.NewSource(1))
	var ids []string
	for i := range 30 {
		ids = append(ids, testID(i))
	}
	endpoints := []string{"http://a.example/", "http://b.example/", "http://c.example/hook", "https://d.example/"}
	m := &model{scheds: map[string]*modelSchedule{}, tasks: map[uint64]string{}, reqs: map[uint64]uint64{}, hooks: map[uint64]string{}}
	for done := 0; done < 500; {
		n := 1 + rng.Intn(8)
		if done+n > 500 {
			n = 500 - done
		}
		var ops []op
		var logs []*raft.Log
		for range n {
			o := randomOp(rng, m, ids, endpoints)
			ops = append(ops, o)
			logs = append(logs, a.log(o.ct, o.cmd))
		}
		resp := a.f.ApplyBatch(logs)
		for i, o := range ops {
			err, _ := resp[i].(error)
			if (o.want == nil && err != nil) || !errors.Is(err, o.want) {
				t.Fatalf("op %d (%d %+v): response %v, want %v", done+i, o.ct, o.cmd, resp[i], o.want)
			}
		}
		done += n
		checkInvariants(t, a.f)
		if t.Failed() {
			t.Fatalf("invariants broken after op %d", done)
		}
	}

	a.view(func(tx *bolt.Tx) {
		got := map[string]modelSchedule{}
		ForEachSchedule(tx, func(s Schedule) error {
			got[s.ID] = modelSchedule{id: s.ID, created: s.CreatedAt, endpoint: s.Endpoint, enabled: s.Enabled}
			return nil
		})
		if len(got) != len(m.scheds) {
			t.Errorf("%d schedules, model has %d", len(got), len(m.scheds))
		}
		for id, s := range m.scheds {
			if g, ok := got[id]; !ok || g.endpoint != s.endpoint || g.enabled != s.enabled || !g.created.Equal(s.created) {
				t.Errorf("schedule %s = %+v, model %+v", id, g, *s)
			}
		}
		gotTasks := map[uint64]string{}
		tx.Bucket(BFailedTasks).ForEach(func(k, v []byte) error {
			ft, _ := DecodeFailedTask(v)
			gotTasks[ft.ID] = ft.ScheduleID
			return nil
		})
		if !reflect.DeepEqual(gotTasks, m.tasks) {
			t.Errorf("failed tasks = %v, model %v", gotTasks, m.tasks)
		}
		reqs, _ := PendingRequeues(tx)
		gotReqs := map[uint64]uint64{}
		for _, r := range reqs {
			gotReqs[r.ID] = r.MaxTaskID
		}
		if !reflect.DeepEqual(gotReqs, m.reqs) {
			t.Errorf("pending requeues = %v, model %v", gotReqs, m.reqs)
		}
		gotHooks := map[uint64]string{}
		tx.Bucket(BWebhooks).ForEach(func(k, v []byte) error {
			w, _ := DecodeWebhook(v)
			gotHooks[w.ID] = w.Event
			return nil
		})
		if !reflect.DeepEqual(gotHooks, m.hooks) {
			t.Errorf("webhooks = %v, model %v", gotHooks, m.hooks)
		}
		for _, f := range filtersFor(endpoints) {
			p, err := ListSchedules(tx, f, nil, false, 1000)
			if err != nil {
				t.Fatal(err)
			}
			want := m.listed(f)
			if got := idsOf(p); !reflect.DeepEqual(got, want) && len(want)+len(got) > 0 {
				t.Errorf("list %s = %v, want %v", filterName(f), got, want)
			}
			if p.Count != uint64(len(want)) {
				t.Errorf("count %s = %d, want %d", filterName(f), p.Count, len(want))
			}
		}
	})
	if len(m.scheds) == 0 || len(m.tasks) == 0 {
		t.Errorf("the random sequence ended with %d schedules and %d failed tasks: it tests too little", len(m.scheds), len(m.tasks))
	}
}

func filtersFor(endpoints []string) []ScheduleFilter {
	out := []ScheduleFilter{{}, {Enabled: ptr(true)}, {Enabled: ptr(false)}}
	for _, e := range append(endpoints, "http://nowhere.example/") {
		out = append(out, ScheduleFilter{Endpoint: ptr(e)},
			ScheduleFilter{Endpoint: ptr(e), Enabled: ptr(true)},
			ScheduleFilter{Endpoint: ptr(e), Enabled: ptr(false)})
	}
	return out
}

func filterName(f ScheduleFilter) string {
	var parts []string
	if f.Endpoint != nil {
		parts = append(parts, "endpoint="+*f.Endpoint)
	}
	if f.Enabled != nil {
		parts = append(parts, fmt.Sprint("enabled=", *f.Enabled))
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, ",")
}

func idsOf(p SchedulePage) []string {
	var out []string
	for _, s := range p.Schedules {
		out = append(out, s.ID)
	}
	return out
}

func mustList(t testing.TB, tx *bolt.Tx, f ScheduleFilter, pos []byte, reverse bool, limit int) SchedulePage {
	t.Helper()
	p, err := ListSchedules(tx, f, pos, reverse, limit)
	if err != nil {
		t.Fatalf("list %s: %v", filterName(f), err)
	}
	if len(p.Positions) != len(p.Schedules) {
		t.Fatalf("list %s: %d positions for %d schedules", filterName(f), len(p.Positions), len(p.Schedules))
	}
	for i, s := range p.Schedules {
		want, _ := SchedulePosition(s)
		if !bytes.Equal(p.Positions[i], want) {
			t.Fatalf("list %s: position %x of %s, want %x", filterName(f), p.Positions[i], s.ID, want)
		}
	}
	return p
}

func TestListSchedulesPaging(t *testing.T) {
	a := newApplier(t)
	endpoints := []string{"http://a.example/", "http://b.example/", "http://c.example/"}
	m := &model{scheds: map[string]*modelSchedule{}}
	var logs []*raft.Log
	for i := range 23 {
		// Groups of three share a created_at: ties are broken by id.
		s := newSchedule(testID(i), t0.Add(time.Duration(i/3)*time.Second), endpoints[i%3], i%4 != 0)
		m.scheds[s.ID] = &modelSchedule{id: s.ID, created: s.CreatedAt, endpoint: s.Endpoint, enabled: s.Enabled}
		logs = append(logs, a.log(CmdCreateSchedule, CreateScheduleCmd{Schedule: s}))
	}
	a.f.ApplyBatch(logs)

	a.view(func(tx *bolt.Tx) {
		for _, f := range filtersFor(endpoints) {
			want := m.listed(f)
			for _, size := range []int{1, 2, 3, 6, 7} {
				name := fmt.Sprintf("%s size %d", filterName(f), size)
				var pages [][]string
				var firsts [][]byte
				var pos []byte
				var all []string
				for i := 0; ; i++ {
					p := mustList(t, tx, f, pos, false, size)
					if p.Count != uint64(len(want)) {
						t.Errorf("%s: count %d, want %d", name, p.Count, len(want))
					}
					if p.HasBefore != (i > 0) {
						t.Errorf("%s: page %d HasBefore = %v", name, i, p.HasBefore)
					}
					got := idsOf(p)
					all = append(all, got...)
					if p.HasAfter != (len(all) < len(want)) {
						t.Errorf("%s: page %d HasAfter = %v after %d of %d rows", name, i, p.HasAfter, len(all), len(want))
					}
					if len(got) == 0 {
						if len(want) != 0 {
							t.Errorf("%s: empty page %d", name, i)
						}
						break
					}
					pages = append(pages, got)
					firsts = append(firsts, p.Positions[0])
					pos = p.Positions[len(p.Positions)-1]
					if !p.HasAfter || i > len(want) {
						break
					}
				}
				if !reflect.DeepEqual(all, want) && len(want) > 0 {
					t.Errorf("%s: walked %v, want %v", name, all, want)
				}
				// And back: from the first row of each page, the previous page.
				for i := len(pages) - 1; i > 0; i-- {
					p := mustList(t, tx, f, firsts[i], true, size)
					if got := idsOf(p); !reflect.DeepEqual(got, pages[i-1]) {
						t.Errorf("%s: previous of page %d = %v, want %v", name, i, got, pages[i-1])
					}
					if p.HasBefore != (i-1 > 0) || !p.HasAfter {
						t.Errorf("%s: previous page %d before=%v after=%v", name, i-1, p.HasBefore, p.HasAfter)
					}
				}
				// A reverse page with no position is the last page.
				if len(want) > 0 {
					p := mustList(t, tx, f, nil, true, size)
					n := min(size, len(want))
					if got := idsOf(p); !reflect.DeepEqual(got, want[len(want)-n:]) {
						t.Errorf("%s: reverse from nil = %v, want %v", name, got, want[len(want)-n:])
					}
					if p.HasAfter || p.HasBefore != (len(want) > size) {
						t.Errorf("%s: reverse from nil before=%v after=%v", name, p.HasBefore, p.HasAfter)
					}
				}
			}
		}
		empty := mustList(t, tx, ScheduleFilter{Endpoint: ptr("http://nowhere/")}, nil, false, 10)
		if len(empty.Schedules) != 0 || empty.Count != 0 || empty.HasBefore || empty.HasAfter {
			t.Errorf("empty filter page = %+v", empty)
		}
		if _, err := ListSchedules(tx, ScheduleFilter{}, []byte("short"), false, 10); !errors.Is(err, ErrInvalidPosition) {
			t.Errorf("short position: %v, want ErrInvalidPosition", err)
		}
		p := mustList(t, tx, ScheduleFilter{}, nil, false, 0)
		if len(p.Schedules) != 0 || !p.HasAfter || p.HasBefore || p.Count != 23 {
			t.Errorf("limit 0 = %d rows before=%v after=%v count=%d", len(p.Schedules), p.HasBefore, p.HasAfter, p.Count)
		}
	})
}

func TestListSchedulesDeletedRowsBetweenPages(t *testing.T) {
	for _, f := range []ScheduleFilter{{}, {Enabled: ptr(true)}, {Endpoint: ptr("http://a.example/")}, {Endpoint: ptr("http://a.example/"), Enabled: ptr(true)}} {
		t.Run(filterName(f), func(t *testing.T) {
			a := newApplier(t)
			var ids []string // newest first
			for i := 9; i >= 0; i-- {
				ids = append(ids, testID(i))
			}
			for i := range 10 {
				a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(testID(i), t0.Add(time.Duration(i)*time.Second), "http://a.example/", true)})
				if f.Enabled != nil || f.Endpoint != nil {
					// Rows outside the filter, interleaved.
					a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(testID(100+i), t0.Add(time.Duration(i)*time.Second), "http://b.example/", false)})
				}
			}
			var page1 SchedulePage
			a.view(func(tx *bolt.Tx) { page1 = mustList(t, tx, f, nil, false, 3) })
			if got := idsOf(page1); !reflect.DeepEqual(got, ids[:3]) {
				t.Fatalf("page 1 = %v, want %v", got, ids[:3])
			}
			end := page1.Positions[2]
			// Delete the row the page ended on and the next one.
			a.must(CmdDeleteSchedule, DeleteScheduleCmd{ID: ids[2]})
			a.must(CmdDeleteSchedule, DeleteScheduleCmd{ID: ids[3]})
			a.view(func(tx *bolt.Tx) {
				p := mustList(t, tx, f, end, false, 3)
				if got := idsOf(p); !reflect.DeepEqual(got, ids[4:7]) || !p.HasBefore || !p.HasAfter || p.Count != 8 {
					t.Errorf("page 2 = %v before=%v after=%v count=%d, want %v", got, p.HasBefore, p.HasAfter, p.Count, ids[4:7])
				}
				prev := mustList(t, tx, f, p.Positions[0], true, 3)
				if got := idsOf(prev); !reflect.DeepEqual(got, ids[:2]) || prev.HasBefore || !prev.HasAfter {
					t.Errorf("back from page 2 = %v before=%v after=%v, want %v", got, prev.HasBefore, prev.HasAfter, ids[:2])
				}
				prev = mustList(t, tx, f, end, true, 3)
				if got := idsOf(prev); !reflect.DeepEqual(got, ids[:2]) || prev.HasBefore || !prev.HasAfter {
					t.Errorf("back from the deleted row = %v before=%v after=%v, want %v", got, prev.HasBefore, prev.HasAfter, ids[:2])
				}
				first, _ := SchedulePosition(newSchedule(ids[0], t0.Add(9*time.Second), "", true))
				prev = mustList(t, tx, f, first, true, 3)
				if len(prev.Schedules) != 0 || prev.HasBefore || !prev.HasAfter {
					t.Errorf("back from the first row = %v before=%v after=%v, want an empty page with a next", idsOf(prev), prev.HasBefore, prev.HasAfter)
				}
			})
			// Delete everything after the position: an empty page that still
			// links back.
			for _, id := range ids[4:] {
				a.must(CmdDeleteSchedule, DeleteScheduleCmd{ID: id})
			}
			a.view(func(tx *bolt.Tx) {
				p := mustList(t, tx, f, end, false, 3)
				if len(p.Schedules) != 0 || !p.HasBefore || p.HasAfter || p.Count != 2 {
					t.Errorf("page after everything was deleted = %v before=%v after=%v count=%d", idsOf(p), p.HasBefore, p.HasAfter, p.Count)
				}
			})
			checkInvariants(t, a.f)
		})
	}
}

// A SHA-256 prefix collision cannot be produced, so one is planted: index
// entries under the hash of endpoint X pointing at schedules of endpoint Y.
func TestListSchedulesSkipsEndpointHashCollisions(t *testing.T) {
	a := newApplier(t)
	x, y := "http://x.example/", "http://y.example/"
	var planted []Schedule
	for i := range 5 {
		ep := y
		if i%2 == 1 {
			ep = x
		}
		s := newSchedule(testID(i), t0.Add(time.Duration(i)*time.Second), ep, true)
		a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: s})
		if ep == y {
			planted = append(planted, s)
		}
	}
	err := a.f.db.Update(func(tx *bolt.Tx) error {
		h := endpointHash(x)
		for _, s := range planted {
			pos, _ := SchedulePosition(s)
			if err := tx.Bucket(bSchedulesByEndpoint).Put(concat(h, pos), nil); err != nil {
				return err
			}
			if err := tx.Bucket(bSchedulesByEndpointEnabled).Put(concat(h, []byte{1}, pos), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []ScheduleFilter{{Endpoint: &x}, {Endpoint: &x, Enabled: ptr(true)}} {
		a.view(func(tx *bolt.Tx) {
			name := filterName(f)
			p1 := mustList(t, tx, f, nil, false, 1)
			if got := idsOf(p1); !reflect.DeepEqual(got, []string{testID(3)}) || p1.HasBefore || !p1.HasAfter {
				t.Errorf("%s page 1 = %v before=%v after=%v", name, got, p1.HasBefore, p1.HasAfter)
			}
			p2 := mustList(t, tx, f, p1.Positions[0], false, 1)
			if got := idsOf(p2); !reflect.DeepEqual(got, []string{testID(1)}) || !p2.HasBefore || p2.HasAfter {
				t.Errorf("%s page 2 = %v before=%v after=%v", name, got, p2.HasBefore, p2.HasAfter)
			}
			back := mustList(t, tx, f, p2.Positions[0], true, 1)
			if got := idsOf(back); !reflect.DeepEqual(got, []string{testID(3)}) || back.HasBefore || !back.HasAfter {
				t.Errorf("%s back = %v before=%v after=%v", name, got, back.HasBefore, back.HasAfter)
			}
			all := mustList(t, tx, f, nil, false, 10)
			if got := idsOf(all); !reflect.DeepEqual(got, []string{testID(3), testID(1)}) || all.HasAfter || all.HasBefore {
				t.Errorf("%s all = %v before=%v after=%v", name, got, all.HasBefore, all.HasAfter)
			}
		})
	}
}

func TestDeleteScheduleRemovesFailedTasks(t *testing.T) {
	a := newApplier(t)
	s1, s2 := testID(1), testID(2)
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(s1, t0, "http://a.example/", true)})
	a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(s2, t0, "http://a.example/", true)})
	var effects []Effect
	a.f.Watch(func(c Change) { effects = append(effects, c.Commands...) })
	for i, sid := range []string{s1, s2, s1, s2, s1} {
		got := a.must(CmdAddFailedTask, FailedTask{ID: 99, ScheduleID: strings.ToUpper(sid), TaskID: fmt.Sprint("task", i), InitiatedAt: t0, Reason: "HTTP 500"})
		if got != uint64(i+1) {
			t.Fatalf("failed task %d got id %v", i+1, got)
		}
	}
	if len(effects) != 5 || effects[0].Type != CmdAddFailedTask || !reflect.DeepEqual(effects[0].Keys, []string{s1}) {
		t.Errorf("failed-task effects = %+v", effects)
	}
	a.view(func(tx *bolt.Tx) {
		ft, err := GetFailedTask(tx, 2)
		want := FailedTask{ID: 2, ScheduleID: s2, TaskID: "task1", InitiatedAt: t0, Reason: "HTTP 500"}
		if err != nil || jsonOf(t, ft) != jsonOf(t, want) {
			t.Errorf("failed task 2 = %+v, %v; want %+v", ft, err, want)
		}
		if Count(tx, BFailedTasks) != 5 {
			t.Errorf("count = %d, want 5", Count(tx, BFailedTasks))
		}
	})
	checkInvariants(t, a.f)
	a.must(CmdDeleteSchedule, DeleteScheduleCmd{ID: s1})
	checkInvariants(t, a.f)
	a.view(func(tx *bolt.Tx) {
		for _, id := range []uint64{1, 3, 5} {
			if _, err := GetFailedTask(tx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("failed task %d of the deleted schedule: %v, want ErrNotFound", id, err)
			}
		}
		p := Page(tx, BFailedTasks, nil, false, 10)
		var got []uint64
		for i, k := range p.Keys {
			got = append(got, KeyU64(k))
			ft, _ := DecodeFailedTask(p.Values[i])
			if ft.ScheduleID != s2 {
				t.Errorf("remaining task %d belongs to %s", ft.ID, ft.ScheduleID)
			}
		}
		if fmt.Sprint(got) != "[4 2]" || Count(tx, BFailedTasks) != 2 {
			t.Errorf("remaining failed tasks = %v count %d, want [4 2] count 2", got, Count(tx, BFailedTasks))
		}
	})
	// Ids are never reused.
	if got := a.must(CmdAddFailedTask, FailedTask{ScheduleID: s2}); got != uint64(6) {
		t.Errorf("next failed task id = %v, want 6", got)
	}
}

func TestRequeueFailedTasks(t *testing.T) {
	a := newApplier(t)
	s1, s2, s3, gone := testID(1), testID(2), testID(3), testID(4)
	for _, id := range []string{s1, s2, s3, gone} {
		a.must(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(id, t0, "http://a.example/", true)})
	}
	for _, sid := range []string{s1, s2, s1, s3, gone} {
		a.must(CmdAddFailedTask, FailedTask{ScheduleID: sid, Reason: "timeout"})
	}
	a.must(CmdDeleteSchedule, DeleteScheduleCmd{ID: gone})
	if got := a.must(CmdRequeueFailedTasks, RequeueFailedTasksCmd{RequestedAt: t0}); got != uint64(1) {
		t.Fatalf("requeue id = %v, want 1", got)
	}
	// A failure recorded after the request (say, of the re-delivery itself)
	// is not covered by it.
	a.must(CmdAddFailedTask, FailedTask{ScheduleID: s1, Reason: "again"})
	var req RequeueRequest
	a.view(func(tx *bolt.Tx) {
		reqs, err := PendingRequeues(tx)
		if err != nil || len(reqs) != 1 {
			t.Fatalf("pending = %+v, %v", reqs, err)
		}
		req = reqs[0]
		if req.ID != 1 || req.MaxTaskID != 5 || !req.RequestedAt.Equal(t0) {
			t.Errorf("request = %+v, want id 1 covering tasks up to 5", req)
		}
		want := []string{s1, s2, s3}
		sort.Slice(want, func(i, j int) bool {
			a, b := uuid.MustParse(want[i]), uuid.MustParse(want[j])
			return bytes.Compare(a[:], b[:]) < 0
		})
		if got := FailedScheduleIDs(tx, req.MaxTaskID); !reflect.DeepEqual(got, want) {
			t.Errorf("failed schedules = %v, want %v", got, want)
		}
		if got := FailedScheduleIDs(tx, 1); !reflect.DeepEqual(got, []string{s1}) {
			t.Errorf("failed schedules up to task 1 = %v, want [%s]", got, s1)
		}
	})
	// The executor lists what it re-delivered; order, duplicates, deleted
	// and malformed ids do not matter.
	r := a.must(CmdFinishRequeue, FinishRequeueCmd{ID: req.ID, ScheduleIDs: []string{s2, s1, "nope", gone, s1}})
	if r != uint64(3) {
		t.Errorf("finish deleted %v tasks, want 3", r)
	}
	a.view(func(tx *bolt.Tx) {
		var left []uint64
		tx.Bucket(BFailedTasks).ForEach(func(k, v []byte) error { left = append(left, KeyU64(k)); return nil })
		if fmt.Sprint(left) != "[4 6]" {
			t.Errorf("failed tasks left = %v, want [4 6] (s3's, and s1's newer one)", left)
		}
		if reqs, _ := PendingRequeues(tx); len(reqs) != 0 {
			t.Errorf("pending after finish = %+v", reqs)
		}
	})
	checkInvariants(t, a.f)
	before := tablesDigest(t, a.f)
	wantErr(t, "finish twice", a.apply(CmdFinishRequeue, FinishRequeueCmd{ID: req.ID, ScheduleIDs: []string{s3}}), ErrNotFound)
	if tablesDigest(t, a.f) != before {
		t.Errorf("a second finish changed the tables")
	}
	if got := a.must(CmdRequeueFailedTasks, RequeueFailedTasksCmd{RequestedAt: t0}); got != uint64(2) {
		t.Errorf("second requeue id = %v, want 2", got)
	}
}

// scheduleLog touches every table of this file.
func scheduleLog(t *testing.T) []*raft.Log {
	a := &applier{tb: t}
	var logs []*raft.Log
	for i := range 20 {
		s := newSchedule(testID(i), t0.Add(time.Duration(i%7)*time.Second), fmt.Sprint("http://e", i%3, ".example/"), i%2 == 0)
		logs = append(logs, a.log(CmdCreateSchedule, CreateScheduleCmd{Schedule: s}))
	}
	for i := range 20 {
		if i%3 == 0 {
			logs = append(logs, a.log(CmdUpdateSchedule, UpdateScheduleCmd{ID: testID(i), At: t0.Add(time.Hour), By: 2,
				Patch: SchedulePatch{Enabled: ptr(i%2 == 1), Endpoint: ptr("http://moved.example/")}}))
		}
		logs = append(logs, a.log(CmdAddFailedTask, FailedTask{ScheduleID: testID(i), Reason: "x"}))
	}
	logs = append(logs,
		a.log(CmdDeleteSchedule, DeleteScheduleCmd{ID: testID(4)}),
		a.log(CmdRequeueFailedTasks, RequeueFailedTasksCmd{RequestedAt: t0}),
		a.log(CmdFinishRequeue, FinishRequeueCmd{ID: 1, ScheduleIDs: []string{testID(5), testID(1)}}),
		a.log(CmdRequeueFailedTasks, RequeueFailedTasksCmd{RequestedAt: t0}),
		a.log(CmdCreateWebhook, Webhook{Event: "schedule.added", Target: "http://h1/", Created: t0, Updated: t0, UserID: 1}),
		a.log(CmdCreateWebhook, Webhook{Event: "schedule.added", Target: "http://h2/", Created: t0, Updated: t0, UserID: 1}),
		a.log(CmdUpdateWebhook, UpdateWebhookCmd{ID: 1, Target: ptr("http://h3/"), Updated: t0}),
		a.log(CmdDeleteWebhook, DeleteWebhookCmd{ID: 2}),
		a.log(CmdCreateSchedule, CreateScheduleCmd{Schedule: newSchedule(testID(1), t0, "dup", true)}), // conflict
	)
	return logs
}

func TestScheduleSnapshotRestoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := mustOpen(t, filepath.Join(dir, "a.db"), Options{})
	logs := scheduleLog(t)
	src.ApplyBatch(logs)
	checkInvariants(t, src)
	want := mustDigest(t, src)
	var wantPage SchedulePage
	src.View(func(tx *bolt.Tx) error {
		wantPage = mustList(t, tx, ScheduleFilter{Endpoint: ptr("http://moved.example/")}, nil, false, 100)
		return nil
	})

	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	src.Apply(&raft.Log{Index: 1000, Type: raft.LogCommand, Data: mustEncode(t, CmdDeleteSchedule, DeleteScheduleCmd{ID: testID(0)})})
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
	checkInvariants(t, dst)
	dst.View(func(tx *bolt.Tx) error {
		p := mustList(t, tx, ScheduleFilter{Endpoint: ptr("http://moved.example/")}, nil, false, 100)
		if jsonOf(t, p) != jsonOf(t, wantPage) || len(p.Schedules) == 0 {
			t.Errorf("restored list differs:\n%s\nwant\n%s", jsonOf(t, p), jsonOf(t, wantPage))
		}
		return nil
	})
}

func TestScheduleLogSameTablesAnyBatchShape(t *testing.T) {
	dir := t.TempDir()
	a := mustOpen(t, filepath.Join(dir, "a.db"), Options{})
	b := mustOpen(t, filepath.Join(dir, "b.db"), Options{})
	logs := scheduleLog(t)
	a.ApplyBatch(logs)
	for i := 0; i < len(logs); i += 3 {
		b.ApplyBatch(logs[i:min(i+3, len(logs))])
	}
	if da, db := mustDigest(t, a), mustDigest(t, b); da != db {
		t.Fatalf("digests differ: %s vs %s", da, db)
	}
}

func openBench(b *testing.B) *applier {
	f, err := Open(filepath.Join(b.TempDir(), "fsm.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return &applier{tb: b, f: f}
}

func benchID(n int) string {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[8:], uint64(n))
	binary.BigEndian.PutUint64(u[:8], uint64(n)*0x9e3779b97f4a7c15)
	return u.String()
}

// BenchmarkCreateSchedule: one op is one raft batch of 64 creates.
func BenchmarkCreateSchedule(b *testing.B) {
	a := openBench(b)
	n := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		logs := make([]*raft.Log, 64)
		for i := range logs {
			s := newSchedule(benchID(n), t0.Add(time.Duration(n)*time.Millisecond), fmt.Sprint("http://e", n%100, ".example/"), n%5 != 0)
			logs[i] = a.log(CmdCreateSchedule, CreateScheduleCmd{Schedule: s})
			n++
		}
		b.StartTimer()
		for _, r := range a.f.ApplyBatch(logs) {
			if err, ok := r.(error); ok {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/schedule")
}

// BenchmarkListSchedulesPage: a page of 1000 from the middle of 100k schedules.
func BenchmarkListSchedulesPage(b *testing.B) {
	a := openBench(b)
	const total = 100_000
	for start := 0; start < total; start += 1000 {
		logs := make([]*raft.Log, 0, 1000)
		for n := start; n < start+1000; n++ {
			s := newSchedule(benchID(n), t0.Add(time.Duration(n)*time.Millisecond), fmt.Sprint("http://e", n%10, ".example/"), n%5 != 0)
			logs = append(logs, a.log(CmdCreateSchedule, CreateScheduleCmd{Schedule: s}))
		}
		a.f.ApplyBatch(logs)
	}
	var mid Schedule
	a.f.View(func(tx *bolt.Tx) error {
		var err error
		mid, err = GetSchedule(tx, benchID(total/2))
		return err
	})
	pos, _ := SchedulePosition(mid)
	for _, f := range []ScheduleFilter{{}, {Enabled: ptr(true)}, {Endpoint: ptr("http://e3.example/")}, {Endpoint: ptr("http://e3.example/"), Enabled: ptr(true)}} {
		b.Run(strings.ReplaceAll(filterName(f), "/", "_"), func(b *testing.B) {
			for range b.N {
				err := a.f.View(func(tx *bolt.Tx) error {
					p, err := ListSchedules(tx, f, pos, false, 1000)
					if err == nil && len(p.Schedules) != 1000 {
						err = fmt.Errorf("page of %d", len(p.Schedules))
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
