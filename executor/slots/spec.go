package slots

import "time"

// maxSlotUnix is 9999-12-31T23:59:59Z. Interval slots stop there because
// later times cannot be written as RFC 3339 (encoding/json refuses them),
// and the bound keeps the slot arithmetic far from int64 overflow.
const maxSlotUnix = 253402300799

// Spec is what a schedule fires on: its cron, its interval, both (the union;
// a second selected by both is one slot) or neither (it never fires).
type Spec struct {
	Cron     *Cron
	Interval *Interval
	// Anchor is the time the interval was last set; interval slots are
	// Anchor + k×Every for k >= 0. It is truncated to the second here, so
	// callers may pass the raw update time.
	Anchor time.Time
}

// Next returns the first slot strictly after t, or ok=false when the
// schedule never fires again.
func (s Spec) Next(t time.Time) (time.Time, bool) {
	var next time.Time
	var found bool
	if s.Cron != nil {
		next, found = s.Cron.Next(t)
	}
	if s.Interval != nil {
		if in, ok := s.nextInterval(t); ok && (!found || in.Before(next)) {
			next, found = in, true
		}
	}
	return next, found
}

// nextInterval works in whole Unix seconds: slots are whole seconds, so
// "after t" is the same as "after t truncated to the second". An Every
// shorter than a second (only possible for a hand-built Interval) selects
// nothing rather than dividing by zero; its sub-second part is ignored.
func (s Spec) nextInterval(t time.Time) (time.Time, bool) {
	every := int64(s.Interval.Every / time.Second)
	if every <= 0 {
		return time.Time{}, false
	}
	anchor, after := s.Anchor.Unix(), t.Unix() // Unix floors, i.e. truncates to the second
	if anchor > after {
		if anchor > maxSlotUnix {
			return time.Time{}, false
		}
		return time.Unix(anchor, 0).UTC(), true
	}
	if after >= maxSlotUnix {
		return time.Time{}, false
	}
	// after >= anchor, so the difference fits in a uint64 even when the
	// anchor is absurdly far in the past; the slot itself lands in
	// (after, after+every], which fits an int64, so the wrapping sum is exact.
	k := (uint64(after)-uint64(anchor))/uint64(every) + 1
	slot := int64(uint64(anchor) + k*uint64(every))
	if slot > maxSlotUnix {
		return time.Time{}, false
	}
	return time.Unix(slot, 0).UTC(), true
}
