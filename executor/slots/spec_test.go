package slots

import (
	"testing"
	"time"
)

func TestSpecNext(t *testing.T) {
	every := func(d time.Duration) *Interval { return &Interval{Every: d} }
	anchor := "2026-01-01T10:00:00Z"
	tests := []struct {
		name   string
		cron   string // "" = none
		iv     *Interval
		anchor string
		from   string
		want   []string // successive slots
		open   bool     // more slots follow
	}{
		{"neither", "", nil, anchor, "2026-01-01T00:00:00Z", nil, false},
		{"cron only", "0 * * * *", nil, anchor, "2026-01-01T10:30:00Z", []string{"2026-01-01T11:00:00Z"}, true},
		{"cron only, exhausted", "0 0 1 1 * 2020", nil, anchor, "2026-01-01T00:00:00Z", nil, false},

		{"interval from anchor", "", every(90 * time.Second), anchor, "2026-01-01T10:00:00Z", []string{"2026-01-01T10:01:30Z", "2026-01-01T10:03:00Z", "2026-01-01T10:04:30Z"}, true},
		{"interval just before a slot", "", every(time.Minute), anchor, "2026-01-01T10:04:59.999Z", []string{"2026-01-01T10:05:00Z"}, true},
		{"interval on a slot", "", every(time.Minute), anchor, "2026-01-01T10:05:00Z", []string{"2026-01-01T10:06:00Z"}, true},
		{"interval sub-second after a slot", "", every(time.Minute), anchor, "2026-01-01T10:05:00.3Z", []string{"2026-01-01T10:06:00Z"}, true},
		{"interval far after anchor", "", every(3 * 24 * time.Hour), anchor, "2026-03-01T00:00:00Z", []string{"2026-03-02T10:00:00Z", "2026-03-05T10:00:00Z"}, true},
		{"anchor in the future is a slot", "", every(time.Hour), "2026-06-01T08:00:00Z", "2026-01-01T00:00:00Z", []string{"2026-06-01T08:00:00Z", "2026-06-01T09:00:00Z"}, true},
		{"anchor truncated", "", every(10 * time.Second), "2026-01-01T10:00:00.999Z", "2026-01-01T10:00:00Z", []string{"2026-01-01T10:00:10Z", "2026-01-01T10:00:20Z"}, true},
		{"anchor not yet reached with fraction", "", every(10 * time.Second), "2026-01-01T10:00:05.5Z", "2026-01-01T10:00:04.9Z", []string{"2026-01-01T10:00:05Z"}, true},
		{"anchor in another zone", "", every(time.Hour), "2026-01-01T12:30:00+02:00", "2026-01-01T10:00:00Z", []string{"2026-01-01T10:30:00Z", "2026-01-01T11:30:00Z"}, true},
		{"t before 1970", "", every(24 * time.Hour), "1960-01-01T00:00:00Z", "1965-01-01T12:00:00Z", []string{"1965-01-02T00:00:00Z"}, true},
		{"interval up to 9999", "", every(24 * time.Hour), anchor, "9999-12-30T12:00:00Z", []string{"9999-12-31T10:00:00Z"}, false},
		{"interval past 9999", "", every(time.Second), anchor, "9999-12-31T23:59:59Z", nil, false},
		{"zero interval never fires", "", every(0), anchor, "2026-01-01T00:00:00Z", nil, false},
		{"sub-second interval never fires", "", every(time.Millisecond), anchor, "2026-01-01T00:00:00Z", nil, false},

		// Cron every 15 min, interval every 10 min from 10:00: 10:10 10:15 10:20 10:30(both) 10:40 10:45 10:50 11:00(both).
		{"union", "*/15 * * * *", every(10 * time.Minute), anchor, "2026-01-01T10:00:00Z",
			[]string{"2026-01-01T10:10:00Z", "2026-01-01T10:15:00Z", "2026-01-01T10:20:00Z", "2026-01-01T10:30:00Z", "2026-01-01T10:40:00Z", "2026-01-01T10:45:00Z", "2026-01-01T10:50:00Z", "2026-01-01T11:00:00Z"}, true},
		{"union with exhausted cron", "0 0 1 1 * 2020", every(time.Hour), anchor, "2026-01-01T10:00:00Z", []string{"2026-01-01T11:00:00Z"}, true},
		{"union with past interval bound", "0 0 1 1 *", every(24 * time.Hour), anchor, "9999-12-31T10:00:00Z", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Spec{Interval: tt.iv, Anchor: ts(t, tt.anchor)}
			if tt.cron != "" {
				s.Cron = mustCron(t, tt.cron)
			}
			at := ts(t, tt.from)
			for i, w := range tt.want {
				got, ok := s.Next(at)
				if !ok || !got.Equal(ts(t, w)) || got.Location() != time.UTC {
					t.Fatalf("slot %d after %s: got %v ok=%v, want %s", i, at, got, ok, w)
				}
				at = got
			}
			if got, ok := s.Next(at); ok != tt.open {
				t.Fatalf("after %s: got %v ok=%v, want ok=%v", at, got, ok, tt.open)
			}
		})
	}
}

// An interval always yields anchor + k×every, k >= 0, and never skips one.
func TestSpecIntervalSlotsAreAnchored(t *testing.T) {
	for _, def := range []string{"7 seconds", "13 minutes", "5 hours", "2 days"} {
		iv, err := ParseInterval(def)
		if err != nil {
			t.Fatal(err)
		}
		a := time.Date(2026, 2, 3, 4, 5, 6, 700, time.UTC)
		s := Spec{Interval: &iv, Anchor: a}
		at := a.Add(-time.Hour)
		for k := 0; k < 50; k++ {
			got, ok := s.Next(at)
			want := a.Truncate(time.Second).Add(time.Duration(k) * iv.Every)
			if !ok || !got.Equal(want) {
				t.Fatalf("%s slot %d: got %v ok=%v, want %v", def, k, got, ok, want)
			}
			at = got.Add(time.Duration(k%3) * 100 * time.Millisecond) // sub-second offsets must not matter
		}
	}
}

// Anchors far from t (the zero time, or further back) must still give an
// exact anchored slot: the arithmetic must not overflow.
func TestSpecIntervalExtremeAnchors(t *testing.T) {
	from := time.Date(2026, 5, 5, 10, 7, 30, 0, time.UTC)
	for _, a := range []time.Time{{}, time.Date(-1_000_000_000, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0)} {
		for _, every := range []time.Duration{time.Second, 7 * time.Second, 36500 * 24 * time.Hour} {
			s := Spec{Interval: &Interval{Every: every}, Anchor: a}
			got, ok := s.Next(from)
			if !ok || !got.After(from) || got.Sub(from) > every {
				t.Fatalf("anchor %v every %v: Next(%v) = %v ok=%v", a, every, from, got, ok)
			}
			if every < time.Hour {
				// (got - anchor) must be a whole number of intervals; checked
				// in seconds since the span exceeds time.Duration.
				if d := got.Unix() - a.Unix(); d%int64(every/time.Second) != 0 {
					t.Fatalf("anchor %v every %v: slot %v is not anchored", a, every, got)
				}
			}
		}
	}
}
