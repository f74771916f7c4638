package httpapi

import (
	"errors"
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
	c, size, err := pageParams(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var pos []byte
	reverse := false
	if c != nil {
		pos, reverse = c.Position, c.Reverse
	}
	var page fsm.RunPage
	err = s.node.FSM().View(func(tx *bolt.Tx) (err error) {
		page, err = fsm.ListRuns(tx, id, pos, reverse, size)
		return err
	})
	if errors.Is(err, fsm.ErrInvalidPosition) {
		writeError(w, errInvalidCursor())
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	results := make([]any, 0, len(page.Runs))
	for _, run := range page.Runs {
		results = append(results, renderRun(run))
	}
	next, prev := pageLinks(r, page.Positions, page.HasBefore, page.HasAfter)
	writeJSON(w, http.StatusOK, pageBody(page.Count, next, prev, results))
}
