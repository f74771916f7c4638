package httpapi

import (
	"net/http"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/seedscheduler/schedulerd/fsm"
)

// renderRun is one entry of the fire ledger (ext): a slot, what became of
// it, and every delivery attempt.
func renderRun(r fsm.Run) *orderedObject {
	attempts := make([]any, 0, len(r.Attempts))
	for _, a := range r.Attempts {
		var status any
		if a.Status != 0 {
			status = a.Status
		}
		attempts = append(attempts, newObject().set("attempt", a.N).set("at", formatTime(a.At)).
			set("status_code", status).set("error", nullableString(a.Error)).
			set("latency_ms", a.LatencyMs).set("lateness_ms", a.LatenessMs))
	}
	return newObject().
		set("slot", formatTime(time.Unix(r.Slot, 0))).
		set("idempotency_key", r.ScheduleID+":"+strconv.FormatInt(r.Slot, 10)).
		set("kind", r.Kind).
		set("state", r.State).
		set("claimed_at", formatTime(r.ClaimedAt)).
		set("next_attempt_at", nullableTime(r.NextAttemptAt)).
		set("attempts", attempts)
}

// listRuns: GET /api/v1/schedule/{id}/runs/, newest slot first.
func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	id, ok := scheduleID(r)
	if !ok {
		writeError(w, errNotFound())
		return
	}
	s.servePage(w, r, func(tx *bolt.Tx, pos []byte, reverse bool, size int) (page, error) {
		p, err := fsm.ListRuns(tx, id, pos, reverse, size)
		out := page{positions: p.Positions, hasBefore: p.HasBefore, hasAfter: p.HasAfter, count: p.Count}
		for _, run := range p.Runs {
			out.items = append(out.items, renderRun(run))
		}
		return out, err
	})
}
