package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Webhook command types. Values are persisted in the raft log: never renumber.
const (
	CmdCreateWebhook CommandType = 16
	CmdUpdateWebhook CommandType = 17
	CmdDeleteWebhook CommandType = 18
)

// EventScheduleAdded is the webhook event delivered once for every created
// schedule (through the webhook outbox, see PendingWebhooks).
const EventScheduleAdded = "schedule.added"

// maxEventLen bounds an event name so that its index key always fits.
const maxEventLen = 1024

// Key layouts.
//
//	webhooks           id(8) → Webhook JSON
//	webhooks_by_event  len(event) (2 bytes big-endian) + event + id(8) → ""

// The payload of CmdCreateWebhook is a Webhook; its ID is ignored and
// assigned from the table sequence. The response is the stored Webhook.

// UpdateWebhookCmd changes the fields it sets; ErrNotFound when missing.
type UpdateWebhookCmd struct {
	ID      uint64    `json:"id"`
	Event   *string   `json:"event,omitempty"`
	Target  *string   `json:"target,omitempty"`
	Updated time.Time `json:"updated"`
}

// DeleteWebhookCmd removes a webhook; ErrNotFound when missing.
type DeleteWebhookCmd struct {
	ID uint64 `json:"id"`
}

func eventPrefix(event string) []byte {
	out := make([]byte, 2, 2+len(event)+8)
	binary.BigEndian.PutUint16(out, uint16(len(event)))
	return append(out, event...)
}

func eventKey(event string, id uint64) []byte {
	return append(eventPrefix(event), u64(id)...)
}

func checkEvent(event string) error {
	if len(event) > maxEventLen {
		return fmt.Errorf("webhook event is %d bytes, more than %d", len(event), maxEventLen)
	}
	return nil
}

func applyCreateWebhook(tx *bolt.Tx, c *Webhook) (any, []string, error) {
	if err := checkEvent(c.Event); err != nil {
		return nil, nil, err
	}
	b := tx.Bucket(BWebhooks)
	w := *c
	w.ID = b.Sequence() + 1
	buf, err := json.Marshal(w)
	if err != nil {
		return nil, nil, fmt.Errorf("encode webhook: %w", err)
	}
	if err := b.SetSequence(w.ID); err != nil {
		return nil, nil, err
	}
	if err := b.Put(u64(w.ID), buf); err != nil {
		return nil, nil, err
	}
	if err := tx.Bucket(bWebhooksByEvent).Put(eventKey(w.Event, w.ID), nil); err != nil {
		return nil, nil, err
	}
	if err := adjustCount(tx, BWebhooks, 1); err != nil {
		return nil, nil, err
	}
	return w, []string{strconv.FormatUint(w.ID, 10)}, nil
}

func applyUpdateWebhook(tx *bolt.Tx, c *UpdateWebhookCmd) (any, []string, error) {
	old, err := GetWebhook(tx, c.ID)
	if err != nil {
		return nil, nil, err
	}
	w := old
	if c.Event != nil {
		if err := checkEvent(*c.Event); err != nil {
			return nil, nil, err
		}
		w.Event = *c.Event
	}
	if c.Target != nil {
		w.Target = *c.Target
	}
	w.Updated = c.Updated
	buf, err := json.Marshal(w)
	if err != nil {
		return nil, nil, fmt.Errorf("encode webhook: %w", err)
	}
	if w.Event != old.Event {
		idx := tx.Bucket(bWebhooksByEvent)
		if err := idx.Delete(eventKey(old.Event, w.ID)); err != nil {
			return nil, nil, err
		}
		if err := idx.Put(eventKey(w.Event, w.ID), nil); err != nil {
			return nil, nil, err
		}
	}
	if err := tx.Bucket(BWebhooks).Put(u64(w.ID), buf); err != nil {
		return nil, nil, err
	}
	return w, []string{strconv.FormatUint(w.ID, 10)}, nil
}

func applyDeleteWebhook(tx *bolt.Tx, c *DeleteWebhookCmd) (any, []string, error) {
	w, err := GetWebhook(tx, c.ID)
	if err != nil {
		return nil, nil, err
	}
	if err := tx.Bucket(bWebhooksByEvent).Delete(eventKey(w.Event, w.ID)); err != nil {
		return nil, nil, err
	}
	if err := tx.Bucket(BWebhooks).Delete(u64(w.ID)); err != nil {
		return nil, nil, err
	}
	if err := adjustCount(tx, BWebhooks, -1); err != nil {
		return nil, nil, err
	}
	return nil, []string{strconv.FormatUint(w.ID, 10)}, nil
}

// DecodeWebhook decodes a row of the webhooks table (listed with
// Page(tx, BWebhooks, ...) and counted with Count(tx, BWebhooks)).
func DecodeWebhook(v []byte) (Webhook, error) {
	var w Webhook
	err := json.Unmarshal(v, &w)
	return w, err
}

// GetWebhook returns a webhook by id.
func GetWebhook(tx *bolt.Tx, id uint64) (Webhook, error) {
	var w Webhook
	ok, err := getJSON(tx.Bucket(BWebhooks), u64(id), &w)
	if err != nil {
		return w, err
	}
	if !ok {
		return w, fmt.Errorf("webhook %d: %w", id, ErrNotFound)
	}
	return w, nil
}

// WebhooksForEvent returns the webhooks subscribed to event, by ascending id.
// It reads only those webhooks (through the event index).
func WebhooksForEvent(tx *bolt.Tx, event string) ([]Webhook, error) {
	prefix := eventPrefix(event)
	var out []Webhook
	c := tx.Bucket(bWebhooksByEvent).Cursor()
	for k, _ := c.Seek(prefix); len(k) == len(prefix)+8 && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		w, err := GetWebhook(tx, binary.BigEndian.Uint64(k[len(prefix):]))
		if err != nil {
			return nil, fmt.Errorf("webhook index %x: %w", k, err)
		}
		out = append(out, w)
	}
	return out, nil
}
