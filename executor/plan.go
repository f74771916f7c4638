package executor

import (
	"time"

	"github.com/seedscheduler/schedulerd/executor/slots"
	"github.com/seedscheduler/schedulerd/fsm"
)

// maxOverdueScan bounds how many overdue slots of one schedule are walked
// after a long outage (an every-second schedule down for a day has 86,400).
const maxOverdueScan = 100_000

// firstAfter is where a schedule's next slot is searched from: after the
// newest slot already claimed and after the second its current definition
// (or its re-enabling) took effect.
func firstAfter(s fsm.Schedule) int64 {
	return max(s.LastSlot, s.SlotsFrom)
}

// nextSlot is the first slot of spec strictly after the unix second from.
func nextSlot(spec slots.Spec, from int64) (int64, bool) {
	t, ok := spec.Next(time.Unix(from, 0))
	if !ok {
		return 0, false
	}
	return t.Unix(), true
}

// plan decides what to do with the slots of one schedule that are due at
// now, starting with first (the schedule's next slot, already <= now).
// Slots within the catch-up window fire, each late with its own key. Older
// ones are missed, except the newest of them, which fires. next is the
// first slot after now, for the heap.
func plan(spec slots.Spec, first, now int64, window time.Duration) (fire, missed []int64, next int64, ok bool) {
	cutoff := now - int64(window/time.Second)
	slot := first
	var newestOld int64
	hasOld := false
	for n := 0; slot <= now; n++ {
		if slot < cutoff {
			if hasOld {
				missed = append(missed, newestOld)
			}
			newestOld, hasOld = slot, true
			if n >= maxOverdueScan {
				// Jump to the window: what lies between is missed without
				// being listed one by one.
				slot, ok = nextSlot(spec, cutoff-1)
				if !ok {
					break
				}
				continue
			}
		} else {
			fire = append(fire, slot)
		}
		slot, ok = nextSlot(spec, slot)
		if !ok {
			break
		}
	}
	if hasOld {
		fire = append([]int64{newestOld}, fire...)
	}
	if slot > now {
		return fire, missed, slot, true
	}
	return fire, missed, 0, false
}
