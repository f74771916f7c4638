package main

import (
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		live uint64
		want int
	}{
		{0, 2000},
		{1 * mib, 2000},
		{16 * mib, 400},
		{64 * mib, 100},
		{500 * mib, 100},
	}
	for _, c := range cases {
		if got := gcPercentFor(c.live, 64*mib); got != c.want {
			t.Errorf("live %d MiB: GOGC %d, want %d", c.live/mib, got, c.want)
		}
	}
}

func TestGCTunerSetsGOGCFromTheLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tr := &gcTuner{headroom: 1 << 40, percent: 100, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	tr.adjust()
	if got := debug.SetGCPercent(100); tr.percent != 2000 || got != 2000 {
		t.Fatalf("GOGC after adjust: %d (tuner says %d), want 2000 for a heap far below the headroom", got, tr.percent)
	}
	tr.headroom = 0
	tr.adjust()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC with no headroom wanted: %d, want 100", got)
	}
}
