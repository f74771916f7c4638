package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/seedscheduler/schedulerd/fsm"
)

// maxTargetLen is the contract's limit on a webhook target (the original's
// URLField(max_length=255)).
const maxTargetLen = 255

// webhookEvents are the events a webhook may subscribe to.
var webhookEvents = []string{fsm.EventScheduleAdded}

// webhookRoutes registers the routes of this file.
func (s *Server) webhookRoutes(handle func(path string, res resource)) {
	handle("/api/v1/webhook/", resource{auth: authUser, methods: map[string]http.HandlerFunc{
		"GET": s.read(s.listWebhooks), "POST": s.onLeader(s.createWebhook)}})
	handle("/api/v1/webhook/{id}/", resource{auth: authUser, methods: map[string]http.HandlerFunc{
		"GET": s.read(s.getWebhook), "PUT": s.onLeader(s.updateWebhook(false)),
		"PATCH": s.onLeader(s.updateWebhook(true)), "DELETE": s.onLeader(s.deleteWebhook)}})
}

// renderWebhook is the contract's item, keys in its order; user is the
// creating user's integer id.
func renderWebhook(h fsm.Webhook) *orderedObject {
	return newObject().
		set("id", h.ID).
		set("created", formatTime(h.Created)).
		set("updated", formatTime(h.Updated)).
		set("event", h.Event).
		set("target", h.Target).
		set("user", h.UserID)
}

// webhookInput validates a webhook body. partial (PATCH) validates only the
// fields present; otherwise (POST, PUT) both fields are required. A nil
// result means "not given".
func webhookInput(body map[string]json.RawMessage, partial bool) (event, target *string, fe fieldErrors) {
	fe = fieldErrors{}
	if raw, ok := body["event"]; ok || !partial {
		switch {
		case !ok:
			fe.add("event", "This field is required.")
		case string(raw) == "null":
			fe.add("event", "This field may not be null.")
		default:
			// DRF's ChoiceField: no trimming, "" is not a choice either.
			v := choiceText(raw)
			if slices.Contains(webhookEvents, v) {
				event = &v
			} else {
				fe.add("event", `"`+v+`" is not a valid choice.`)
			}
		}
	}
	if raw, ok := body["target"]; ok || !partial {
		if v, ok := stringValue(fe, "target", raw, ok, false, maxTargetLen); ok {
			switch {
			case v == "":
				fe.add("target", "This field may not be blank.")
			case !validURL(v):
				fe.add("target", "Enter a valid URL.")
			default:
				target = &v
			}
		}
	}
	return event, target, fe
}

// choiceText is the text DRF's ChoiceField compares and echoes: str() of
// the parsed value.
func choiceText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	switch t := strings.TrimSpace(string(raw)); t {
	case "true":
		return "True"
	case "false":
		return "False"
	default:
		return t
	}
}

// webhookID parses the path id; a malformed one is a 404.
func webhookID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	id, ok := pathID(r, "id")
	if !ok {
		writeError(w, errNotFound())
	}
	return id, ok
}

func (s *Server) loadWebhook(id uint64) (fsm.Webhook, error) {
	var h fsm.Webhook
	err := s.node.FSM().View(func(tx *bolt.Tx) (err error) {
		h, err = fsm.GetWebhook(tx, id)
		return err
	})
	return h, err
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	s.listTable(w, r, fsm.BWebhooks, func(_, v []byte) (any, error) {
		h, err := fsm.DecodeWebhook(v)
		return renderWebhook(h), err
	})
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) {
	id, ok := webhookID(w, r)
	if !ok {
		return
	}
	h, err := s.loadWebhook(id)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, renderWebhook(h))
}

// createWebhook: POST /api/v1/webhook/ {"event", "target"} → 201 with the
// item. The id is assigned by the state machine.
func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := decodeBody(r, false)
	if err != nil {
		writeError(w, err)
		return
	}
	event, target, fe := webhookInput(body, false)
	if len(fe) > 0 {
		writeError(w, &apiError{Status: http.StatusBadRequest, Fields: fe})
		return
	}
	at := now()
	h := fsm.Webhook{Created: at, Updated: at, Event: *event, Target: *target, UserID: principalFrom(r).UserID}
	resp, err := s.apply(w, r, fsm.CmdCreateWebhook, h)
	if err != nil {
		writeError(w, err)
		return
	}
	stored, ok := resp.(fsm.Webhook)
	if !ok {
		writeError(w, errors.New("create returned no webhook"))
		return
	}
	writeJSON(w, http.StatusCreated, renderWebhook(stored))
}

// updateWebhook serves PUT (both fields required) and PATCH (partial). As in
// DRF, a missing webhook is a 404 before the body is looked at.
func (s *Server) updateWebhook(partial bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := webhookID(w, r)
		if !ok {
			return
		}
		if _, err := s.loadWebhook(id); err != nil {
			writeError(w, err)
			return
		}
		body, err := decodeBody(r, false)
		if err != nil {
			writeError(w, err)
			return
		}
		event, target, fe := webhookInput(body, partial)
		if len(fe) > 0 {
			writeError(w, &apiError{Status: http.StatusBadRequest, Fields: fe})
			return
		}
		resp, err := s.apply(w, r, fsm.CmdUpdateWebhook, fsm.UpdateWebhookCmd{ID: id, Event: event, Target: target, Updated: now()})
		if err != nil {
			writeError(w, err)
			return
		}
		h, ok := resp.(fsm.Webhook)
		if !ok {
			writeError(w, errors.New("update returned no webhook"))
			return
		}
		writeJSON(w, http.StatusOK, renderWebhook(h))
	}
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	id, ok := webhookID(w, r)
	if !ok {
		return
	}
	if _, err := s.apply(w, r, fsm.CmdDeleteWebhook, fsm.DeleteWebhookCmd{ID: id}); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
