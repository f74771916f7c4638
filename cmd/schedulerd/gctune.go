package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// minGCHeadroom is the least the heap may grow between collections.
//
// With GOGC=100 a node holding little (a few MiB live) collects after every
// few MiB allocated, and at thousands of writes a second that is a large
// share of its CPU: with the three nodes and the client on two cores, GOGC=400
// took 12-17 % off the CPU per forwarded write. A fixed GOGC=400 would also
// multiply the heap of a node holding a million schedules, whose budget is
// 1.5 KiB a schedule, so instead the heap goal is kept at least this far
// above the live heap: a small heap behaves as with a high GOGC, a live heap
// over minGCHeadroom exactly as with GOGC=100.
const minGCHeadroom = 64 << 20

// gcTuner re-derives GOGC after every collection from the live heap.
type gcTuner struct {
	headroom uint64
	percent  int
	sample   []metrics.Sample
}

// tuneGC starts the tuner for this process unless the operator set GOGC,
// which then wins. Tests run several nodes in one process and do not call
// it: it is process-wide.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") != "" {
		return
	}
	t := &gcTuner{headroom: minGCHeadroom, percent: 100, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.arm()
}

// gcSentinel is garbage from the moment it is made; its finalizer runs
// once the next collection has found that, which is the hook the runtime
// offers for "after each GC".
type gcSentinel struct{ _ [16]byte }

func (t *gcTuner) arm() {
	runtime.SetFinalizer(&gcSentinel{}, func(*gcSentinel) {
		t.adjust()
		t.arm()
	})
}

func (t *gcTuner) adjust() {
	metrics.Read(t.sample)
	if t.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	p := gcPercentFor(t.sample[0].Value.Uint64(), t.headroom)
	// SetGCPercent is cheap but not free; ignore small moves.
	if p != t.percent && (p > t.percent*21/20 || p < t.percent*19/20 || p == 100) {
		debug.SetGCPercent(p)
		t.percent = p
	}
}

// gcPercentFor is the GOGC that puts the heap goal headroom above live, and
// never below the default 100; it is capped so that a nearly empty heap does
// not wait for headroom bytes of garbage on every cycle forever.
func gcPercentFor(live, headroom uint64) int {
	const maxPercent = 2000
	if live == 0 {
		return maxPercent
	}
	p := headroom * 100 / live
	return int(min(max(p, 100), maxPercent))
}
