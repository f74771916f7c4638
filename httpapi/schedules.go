package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	bolt "go.etcd.io/bbolt"

	"github.com/seedscheduler/schedulerd/executor/slots"
	"github.com/seedscheduler/schedulerd/fsm"
)

// Field limits of the contract.
const (
	maxEndpointLen  = 500
	maxCronLen      = 500
	maxIntervalLen  = 100
	maxAuthTokenLen = 500
)

// formatTime renders a datetime as the contract does: RFC 3339 in UTC with
// Z, microseconds only when non-zero.
func formatTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 != 0 {
		return t.Format("2006-01-02T15:04:05.000000Z07:00")
	}
	return t.Format("2006-01-02T15:04:05Z07:00")
}

func nullableTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return formatTime(*t)
}

func nullableString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func schedulePath(id string) string { return "/api/v1/schedule/" + id + "/" }

// now is the API's clock, truncated to what the contract renders.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// scheduleSpec is the firing rule of a stored schedule. Definitions were
// validated on the way in; one that no longer parses never fires.
func scheduleSpec(s fsm.Schedule) slots.Spec {
	var spec slots.Spec
	if s.CronDefinition != "" {
		spec.Cron = parsedCron(s.CronDefinition)
	}
	if s.IntervalDefinition != "" {
		if iv, err := slots.ParseInterval(s.IntervalDefinition); err == nil {
			spec.Interval = &iv
			spec.Anchor = s.IntervalAnchor
		}
	}
	return spec
}

// cronCache keeps parsed definitions: a page of 1000 schedules mostly
// shares a few, and parsing dominated rendering. It stops growing at
// cronCacheMax entries (definitions are client input).
var (
	cronCache     sync.Map
	cronCacheSize atomic.Int64
)

const cronCacheMax = 10_000

func parsedCron(def string) *slots.Cron {
	if c, ok := cronCache.Load(def); ok {
		return c.(*slots.Cron)
	}
	c, err := slots.ParseCron(def)
	if err != nil {
		return nil
	}
	if cronCacheSize.Load() < cronCacheMax {
		if _, loaded := cronCache.LoadOrStore(def, c); !loaded {
			cronCacheSize.Add(1)
		}
	}
	return c
}

// nextRunAt is the next slot the schedule will fire, null when it will not.
func nextRunAt(s fsm.Schedule, at time.Time) any {
	if !s.Enabled || (s.Frequency != nil && s.Triggered >= *s.Frequency) {
		return nil
	}
	// Where the executor will search from: after the newest claimed slot
	// and after the second the definition took effect.
	from := time.Unix(max(s.LastSlot, s.SlotsFrom), 0)
	if s.LastSlot == 0 && s.SlotsFrom == 0 {
		from = at
	}
	next, ok := scheduleSpec(s).Next(from)
	if !ok {
		return nil
	}
	return formatTime(next)
}

func (s *Server) renderSchedule(r *http.Request, sc fsm.Schedule, at time.Time) *orderedObject {
	userURL := func(id uint64) any {
		if id == 0 {
			return nil
		}
		return absURL(r, userPath(id))
	}
	var authToken any
	if sc.AuthToken != nil {
		authToken = *sc.AuthToken
	}
	payload := sc.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("{}")
	}
	var freq any
	if sc.Frequency != nil {
		freq = *sc.Frequency
	}
	return newObject().
		set("url", absURL(r, schedulePath(sc.ID))).
		set("id", sc.ID).
		set("frequency", freq).
		set("cron_definition", nullableString(sc.CronDefinition)).
		set("interval_definition", nullableString(sc.IntervalDefinition)).
		set("endpoint", sc.Endpoint).
		set("payload", payload).
		set("auth_token", authToken).
		set("next_send_at", nullableTime(sc.NextSendAt)).
		set("enabled", sc.Enabled).
		set("created_at", formatTime(sc.CreatedAt)).
		set("created_by", userURL(sc.CreatedBy)).
		set("updated_at", formatTime(sc.UpdatedAt)).
		set("updated_by", userURL(sc.UpdatedBy)).
		set("triggered", sc.Triggered).
		set("last_run_at", nullableTime(sc.LastRunAt)).
		set("next_run_at", nextRunAt(sc, at))
}

// scheduleInput validates a schedule body into a patch. requireEndpoint is
// set for POST and PUT; a PATCH validates only what it carries.
func scheduleInput(body map[string]json.RawMessage, requireEndpoint bool, at time.Time) (fsm.SchedulePatch, fieldErrors) {
	var p fsm.SchedulePatch
	fe := fieldErrors{}

	if raw, ok := body["endpoint"]; ok || requireEndpoint {
		if v, ok := stringValue(fe, "endpoint", raw, ok, false, maxEndpointLen); ok {
			if v == "" {
				fe.add("endpoint", "This field may not be blank.")
			} else if !validURL(v) {
				fe.add("endpoint", "Enter a valid URL.")
			} else {
				p.Endpoint = &v
			}
		}
	}
	if raw, ok := body["cron_definition"]; ok {
		if v, ok := definition(fe, "cron_definition", raw, maxCronLen, func(v string) error {
			_, err := slots.ParseCron(v)
			return err
		}); ok {
			p.SetCron, p.Cron = true, v
		}
	}
	if raw, ok := body["interval_definition"]; ok {
		if v, ok := definition(fe, "interval_definition", raw, maxIntervalLen, func(v string) error {
			_, err := slots.ParseInterval(v)
			return err
		}); ok {
			p.SetInterval, p.Interval = true, v
			if v != "" {
				// Interval slots are anchored at the time the interval was set.
				p.IntervalAnchor = at.Truncate(time.Second)
			}
		}
	}
	if raw, ok := body["frequency"]; ok {
		if string(raw) == "null" {
			p.SetFrequency = true
		} else if n, ok := intValue(raw); !ok {
			fe.add("frequency", "A valid integer is required.")
		} else if n < 1 {
			fe.add("frequency", "Ensure this value is greater than or equal to 1.")
		} else {
			p.SetFrequency, p.Frequency = true, &n
		}
	}
	if raw, ok := body["auth_token"]; ok {
		if string(raw) == "null" {
			p.SetAuthToken = true
		} else if v, ok := stringValue(fe, "auth_token", raw, true, true, maxAuthTokenLen); ok {
			p.SetAuthToken, p.AuthToken = true, &v
		}
	}
	if raw, ok := body["payload"]; ok {
		if string(raw) == "null" {
			fe.add("payload", "This field may not be null.")
		} else {
			var compact bytes.Buffer
			if err := json.Compact(&compact, raw); err != nil {
				fe.add("payload", "Value must be valid JSON.")
			} else {
				p.SetPayload, p.Payload = true, compact.Bytes()
			}
		}
	}
	if raw, ok := body["next_send_at"]; ok {
		if string(raw) == "null" {
			p.SetNextSendAt = true
		} else if t, ok := timeValue(raw); ok {
			p.SetNextSendAt, p.NextSendAt = true, &t
		} else {
			fe.add("next_send_at", "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].")
		}
	}
	if raw, ok := body["enabled"]; ok {
		if string(raw) == "null" {
			fe.add("enabled", "This field may not be null.")
		} else if b, ok := boolValue(raw); ok {
			p.Enabled = &b
		} else {
			fe.add("enabled", "Must be a valid boolean.")
		}
	}
	return p, fe
}

// definition validates an optional cron or interval definition: null and ""
// both mean none.
func definition(fe fieldErrors, name string, raw json.RawMessage, maxLen int, parse func(string) error) (string, bool) {
	v, ok := stringValue(fe, name, raw, true, true, maxLen)
	if !ok || v == "" {
		return "", ok
	}
	if err := parse(v); err != nil {
		fe.add(name, validationMessage(err))
		return "", false
	}
	return v, true
}

func validationMessage(err error) string {
	var ve *slots.ValidationError
	if errors.As(err, &ve) {
		return ve.Message
	}
	return err.Error()
}

// stringValue decodes a string field the way DRF's CharField does: trimmed,
// length-checked. ok is false when the field produced an error or is null
// (allowNull) — callers treat a null as "none".
func stringValue(fe fieldErrors, name string, raw json.RawMessage, present, allowNull bool, maxLen int) (string, bool) {
	switch {
	case !present:
		fe.add(name, "This field is required.")
		return "", false
	case string(raw) == "null":
		if allowNull {
			return "", true
		}
		fe.add(name, "This field may not be null.")
		return "", false
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		// DRF accepts numbers for a CharField and turns them into text.
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			fe.add(name, "Not a valid string.")
			return "", false
		}
		v = n.String()
	}
	v = strings.TrimSpace(v)
	if utf8.RuneCountInString(v) > maxLen {
		fe.add(name, "Ensure this field has no more than "+strconv.Itoa(maxLen)+" characters.")
		return "", false
	}
	return v, true
}

func validURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return false
	}
	return !strings.ContainsAny(s, " \t\r\n")
}

// intValue accepts a JSON integer, an integral float ("5.0") or a string
// holding one, as DRF's IntegerField does.
func intValue(raw json.RawMessage) (int64, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(strings.TrimSpace(s))
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	if err != nil || f != float64(int64(f)) {
		return 0, false
	}
	return int64(f), true
}

func boolValue(raw json.RawMessage) (bool, bool) {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return false, false
		}
		s = n.String()
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on", "t", "y":
		return true, true
	case "false", "0", "no", "off", "f", "n":
		return false, true
	}
	return false, false
}

func timeValue(raw json.RawMessage) (time.Time, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return time.Time{}, false
	}
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04Z07:00",
		"2006-01-02T15:04", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Truncate(time.Microsecond), true
		}
	}
	return time.Time{}, false
}

// createSchedule: POST /api/v1/schedule/ → 201 with the item and Location.
func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request) {
	body, err := decodeBody(r, false)
	if err != nil {
		writeError(w, err)
		return
	}
	at := now()
	p, fe := scheduleInput(body, true, at)
	if len(fe) > 0 {
		writeError(w, &apiError{Status: http.StatusBadRequest, Fields: fe})
		return
	}
	by := principalFrom(r).UserID
	// Version 7 ids grow with time, so new rows append to the end of the
	// schedules table instead of dirtying a random page each.
	id, err := uuid.NewV7()
	if err != nil {
		writeError(w, fmt.Errorf("new schedule id: %w", err))
		return
	}
	sc := fsm.Schedule{
		ID: id.String(), Frequency: p.Frequency, CronDefinition: p.Cron, IntervalDefinition: p.Interval,
		IntervalAnchor: p.IntervalAnchor, Endpoint: *p.Endpoint, Payload: json.RawMessage("{}"), AuthToken: p.AuthToken,
		NextSendAt: p.NextSendAt, Enabled: true, CreatedAt: at, CreatedBy: by, UpdatedAt: at, UpdatedBy: by,
	}
	if p.SetPayload {
		sc.Payload = p.Payload
	}
	if p.Enabled != nil {
		sc.Enabled = *p.Enabled
	}
	resp, err := s.apply(w, r, fsm.CmdCreateSchedule, fsm.CreateScheduleCmd{Schedule: sc})
	if err != nil {
		writeError(w, err)
		return
	}
	if stored, ok := resp.(fsm.Schedule); ok {
		sc = stored
	}
	w.Header().Set("Location", absURL(r, schedulePath(sc.ID)))
	writeJSON(w, http.StatusCreated, s.renderSchedule(r, sc, time.Now()))
}

// scheduleID validates the path id; a malformed one is a 404.
func scheduleID(r *http.Request) (string, bool) {
	id, err := uuid.Parse(mux.Vars(r)["id"])
	if err != nil {
		return "", false
	}
	return id.String(), true
}

func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) {
	id, ok := scheduleID(r)
	if !ok {
		writeError(w, errNotFound())
		return
	}
	var sc fsm.Schedule
	err := s.node.FSM().View(func(tx *bolt.Tx) (err error) {
		sc, err = fsm.GetSchedule(tx, id)
		return err
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.renderSchedule(r, sc, time.Now()))
}

// updateSchedule serves PUT (endpoint required, omitted fields kept) and
// PATCH (partial).
func (s *Server) updateSchedule(requireEndpoint bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := scheduleID(r)
		if !ok {
			writeError(w, errNotFound())
			return
		}
		body, err := decodeBody(r, false)
		if err != nil {
			writeError(w, err)
			return
		}
		at := now()
		p, fe := scheduleInput(body, requireEndpoint, at)
		if len(fe) > 0 {
			writeError(w, &apiError{Status: http.StatusBadRequest, Fields: fe})
			return
		}
		resp, err := s.apply(w, r, fsm.CmdUpdateSchedule, fsm.UpdateScheduleCmd{ID: id, Patch: p, At: at, By: principalFrom(r).UserID})
		if err != nil {
			writeError(w, err)
			return
		}
		sc, ok := resp.(fsm.Schedule)
		if !ok {
			writeError(w, errors.New("update returned no schedule"))
			return
		}
		writeJSON(w, http.StatusOK, s.renderSchedule(r, sc, time.Now()))
	}
}

func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) {
	id, ok := scheduleID(r)
	if !ok {
		writeError(w, errNotFound())
		return
	}
	if _, err := s.apply(w, r, fsm.CmdDeleteSchedule, fsm.DeleteScheduleCmd{ID: id}); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listSchedules: newest first, with the enabled and endpoint filters served
// from their own indexes and counts.
func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) {
	var f fsm.ScheduleFilter
	q := r.URL.Query()
	if v := queryLast(q, "enabled"); v != "" {
		if b, ok := boolValue(json.RawMessage(strconv.Quote(v))); ok {
			f.Enabled = &b
		}
	}
	if _, ok := q["endpoint"]; ok {
		v := queryLast(q, "endpoint")
		f.Endpoint = &v
	}
	at := time.Now()
	s.servePage(w, r, func(tx *bolt.Tx, pos []byte, reverse bool, size int) (page, error) {
		p, err := fsm.ListSchedules(tx, f, pos, reverse, size)
		out := page{positions: p.Positions, hasBefore: p.HasBefore, hasAfter: p.HasAfter, count: p.Count}
		for _, sc := range p.Schedules {
			out.items = append(out.items, s.renderSchedule(r, sc, at))
		}
		return out, err
	})
}
