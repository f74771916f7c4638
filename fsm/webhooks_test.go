package fsm

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestWebhookCommands(t *testing.T) {
	a := newApplier(t)
	var effects []Effect
	a.f.Watch(func(c Change) { effects = append(effects, c.Commands...) })
	hooks := []Webhook{
		{ID: 42, Event: "schedule.added", Target: "http://one.example/", Created: t0, Updated: t0, UserID: 1},
		{Event: "schedule.other", Target: "http://two.example/", Created: t0, Updated: t0, UserID: 2},
		{Event: "schedule.added", Target: "http://three.example/", Created: t0, Updated: t0, UserID: 1},
	}
	for i, h := range hooks {
		got := a.must(CmdCreateWebhook, h).(Webhook)
		want := h
		want.ID = uint64(i + 1)
		if got != want {
			t.Errorf("create %d = %+v, want %+v", i, got, want)
		}
	}
	forEvent := func(tx *bolt.Tx, event string) []uint64 {
		ws, err := WebhooksForEvent(tx, event)
		if err != nil {
			t.Fatalf("webhooks for %s: %v", event, err)
		}
		var ids []uint64
		for _, w := range ws {
			if w.Event != event {
				t.Errorf("webhook %d for %s has event %s", w.ID, event, w.Event)
			}
			ids = append(ids, w.ID)
		}
		return ids
	}
	a.view(func(tx *bolt.Tx) {
		w, err := GetWebhook(tx, 2)
		if err != nil || w.Target != "http://two.example/" || w.UserID != 2 {
			t.Errorf("webhook 2 = %+v, %v", w, err)
		}
		if _, err := GetWebhook(tx, 9); !errors.Is(err, ErrNotFound) {
			t.Errorf("webhook 9: %v, want ErrNotFound", err)
		}
		if got := forEvent(tx, "schedule.added"); fmt.Sprint(got) != "[1 3]" {
			t.Errorf("schedule.added hooks = %v, want [1 3]", got)
		}
		if got := forEvent(tx, "schedule"); len(got) != 0 {
			t.Errorf("hooks for a prefix of an event = %v, want none", got)
		}
		if Count(tx, BWebhooks) != 3 {
			t.Errorf("count = %d, want 3", Count(tx, BWebhooks))
		}
	})

	later := t0.Add(time.Hour)
	got := a.must(CmdUpdateWebhook, UpdateWebhookCmd{ID: 2, Event: ptr("schedule.added"), Updated: later}).(Webhook)
	want := Webhook{ID: 2, Event: "schedule.added", Target: "http://two.example/", Created: t0, Updated: later, UserID: 2}
	if got != want {
		t.Errorf("update event = %+v, want %+v", got, want)
	}
	got = a.must(CmdUpdateWebhook, UpdateWebhookCmd{ID: 1, Target: ptr("http://uno.example/"), Updated: later}).(Webhook)
	if got.Target != "http://uno.example/" || got.Event != "schedule.added" || !got.Updated.Equal(later) {
		t.Errorf("update target = %+v", got)
	}
	a.must(CmdUpdateWebhook, UpdateWebhookCmd{ID: 3, Event: ptr("schedule.other"), Updated: later})
	if r := a.must(CmdDeleteWebhook, DeleteWebhookCmd{ID: 1}); r != nil {
		t.Errorf("delete response = %v, want nil", r)
	}
	a.view(func(tx *bolt.Tx) {
		if got := forEvent(tx, "schedule.added"); fmt.Sprint(got) != "[2]" {
			t.Errorf("schedule.added hooks = %v, want [2]", got)
		}
		if got := forEvent(tx, "schedule.other"); fmt.Sprint(got) != "[3]" {
			t.Errorf("schedule.other hooks = %v, want [3]", got)
		}
		p := Page(tx, BWebhooks, nil, false, 10)
		var ids []uint64
		for i, k := range p.Keys {
			w, err := DecodeWebhook(p.Values[i])
			if err != nil || w.ID != KeyU64(k) {
				t.Errorf("row %x = %+v, %v", k, w, err)
			}
			ids = append(ids, KeyU64(k))
		}
		if fmt.Sprint(ids) != "[3 2]" || Count(tx, BWebhooks) != 2 {
			t.Errorf("webhook page = %v count %d, want [3 2] count 2", ids, Count(tx, BWebhooks))
		}
	})
	checkInvariants(t, a.f)

	before := tablesDigest(t, a.f)
	wantErr(t, "update deleted webhook", a.apply(CmdUpdateWebhook, UpdateWebhookCmd{ID: 1, Target: ptr("x"), Updated: later}), ErrNotFound)
	wantErr(t, "delete deleted webhook", a.apply(CmdDeleteWebhook, DeleteWebhookCmd{ID: 1}), ErrNotFound)
	if tablesDigest(t, a.f) != before {
		t.Errorf("failed webhook commands changed the tables")
	}
	// Ids are never reused.
	if got := a.must(CmdCreateWebhook, Webhook{Event: "schedule.added", Target: "http://four.example/"}).(Webhook); got.ID != 4 {
		t.Errorf("next webhook id = %d, want 4", got.ID)
	}

	wantEffects := []Effect{
		{CmdCreateWebhook, []string{"1"}}, {CmdCreateWebhook, []string{"2"}}, {CmdCreateWebhook, []string{"3"}},
		{CmdUpdateWebhook, []string{"2"}}, {CmdUpdateWebhook, []string{"1"}}, {CmdUpdateWebhook, []string{"3"}},
		{CmdDeleteWebhook, []string{"1"}}, {CmdCreateWebhook, []string{"4"}},
	}
	if !reflect.DeepEqual(effects, wantEffects) {
		t.Errorf("effects = %v, want %v", effects, wantEffects)
	}
}
