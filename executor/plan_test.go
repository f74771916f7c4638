package executor

import (
	"fmt"
	"testing"
	"time"

	"github.com/seedscheduler/schedulerd/executor/slots"
	"github.com/seedscheduler/schedulerd/fsm"
)

func mustSpec(t *testing.T, cron, interval string, anchor time.Time) slots.Spec {
	t.Helper()
	var s slots.Spec
	if cron != "" {
		c, err := slots.ParseCron(cron)
		if err != nil {
			t.Fatal(err)
		}
		s.Cron = c
	}
	if interval != "" {
		iv, err := slots.ParseInterval(interval)
		if err != nil {
			t.Fatal(err)
		}
		s.Interval, s.Anchor = &iv, anchor
	}
	return s
}

func TestPlanCatchUp(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Unix()
	everySecond := mustSpec(t, "", "1 seconds", time.Unix(base, 0))
	everyMinute := mustSpec(t, "* * * * *", "", time.Time{})
	cases := []struct {
		name       string
		spec       slots.Spec
		first, now int64
		window     time.Duration
		fire, miss string
		next       int64
		ok         bool
	}{
		{"on time", everySecond, base + 5, base + 5, 10 * time.Minute, "[5]", "[]", base + 6, true},
		{"three late, all in the window", everySecond, base + 5, base + 7, 10 * time.Minute, "[5 6 7]", "[]", base + 8, true},
		{"older than the window: newest old one fires, others missed", everySecond, base + 1, base + 10, 5 * time.Second,
			"[4 5 6 7 8 9 10]", "[1 2 3]", base + 11, true},
		{"minute cron after an hour down, 10 minute window", everyMinute, base + 60, base + 3600, 10 * time.Minute,
			"[2940 3000 3060 3120 3180 3240 3300 3360 3420 3480 3540 3600]", "[60 120 180 240 300 360 420 480 540 600 660 720 780 840 900 960 1020 1080 1140 1200 1260 1320 1380 1440 1500 1560 1620 1680 1740 1800 1860 1920 1980 2040 2100 2160 2220 2280 2340 2400 2460 2520 2580 2640 2700 2760 2820 2880]",
			base + 3660, true},
		{"no more slots", mustSpec(t, "0 0 1 1 * 2026", "", time.Time{}), base - 86400*59, base, time.Hour, "[-5097600]", "[]", 0, false},
	}
	rel := func(xs []int64) string {
		out := make([]int64, len(xs))
		for i, x := range xs {
			out[i] = x - base
		}
		if len(out) == 0 {
			return "[]"
		}
		return fmt.Sprint(out)
	}
	for _, c := range cases {
		fire, miss, next, ok := plan(c.spec, c.first, c.now, c.window)
		if rel(fire) != c.fire || rel(miss) != c.miss || next != c.next || ok != c.ok {
			t.Errorf("%s: fire %s miss %s next %d ok %v; want fire %s miss %s next %d ok %v", c.name,
				rel(fire), rel(miss), next-base, ok, c.fire, c.miss, c.next-base, c.ok)
		}
	}
}

func TestFirstAfter(t *testing.T) {
	cases := []struct {
		s    fsm.Schedule
		want int64
	}{
		{fsm.Schedule{SlotsFrom: 100}, 100},
		{fsm.Schedule{SlotsFrom: 100, LastSlot: 160}, 160},
		{fsm.Schedule{SlotsFrom: 200, LastSlot: 160}, 200}, // definition changed after the last claim
	}
	for _, c := range cases {
		if got := firstAfter(c.s); got != c.want {
			t.Errorf("firstAfter(%+v) = %d, want %d", c.s, got, c.want)
		}
	}
}
