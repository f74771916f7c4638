package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// Schedule and failed-task command types. Values are persisted in the raft
// log: never renumber.
const (
	CmdCreateSchedule     CommandType = 10
	CmdUpdateSchedule     CommandType = 11
	CmdDeleteSchedule     CommandType = 12
	CmdAddFailedTask      CommandType = 13
	CmdRequeueFailedTasks CommandType = 14
	CmdFinishRequeue      CommandType = 15
)

// ErrInvalidPosition is returned by ListSchedules for a position that is not
// a 24-byte created key (the API answers "Invalid cursor").
var ErrInvalidPosition = errors.New("invalid page position")

// Key layouts.
//
//	schedules                      16-byte uuid → Schedule JSON
//	schedules_by_created           created(24) → ""
//	schedules_by_enabled           enabled(1) + created(24) → ""
//	schedules_by_endpoint          sha256(endpoint)[:16] + created(24) → ""
//	schedules_by_endpoint_enabled  sha256(endpoint)[:16] + enabled(1) + created(24) → ""
//	failed_tasks                   task id(8) → FailedTask JSON
//	failed_tasks_by_schedule       uuid(16) + task id(8) → ""
//	requeue_requests               request id(8) → RequeueRequest JSON
//
// where created = created_at UnixNano (8 bytes big-endian) + uuid (16): the
// position of a schedule in the newest-first list.
const (
	scheduleKeyLen   = 16
	positionLen      = 8 + scheduleKeyLen
	endpointHashLen  = 16
	failedIndexKeyLn = scheduleKeyLen + 8
)

// Count keys (in the counts table) of the schedule filters.
var (
	kCountSchedules = BSchedules // "schedules": Count(tx, BSchedules)
)

func countKeyEnabled(enabled bool) []byte {
	return []byte("schedules_enabled_" + string('0'+boolByte(enabled)))
}

func countKeyEndpoint(hash []byte) []byte {
	return []byte("schedules_endpoint_" + hex.EncodeToString(hash))
}

func countKeyEndpointEnabled(hash []byte, enabled bool) []byte {
	return []byte("schedules_endpoint_" + hex.EncodeToString(hash) + "_enabled_" + string('0'+boolByte(enabled)))
}

// SchedulePatch changes the fields it sets and leaves the others alone, so
// that concurrent PUT/PATCH requests merge field by field in log order.
type SchedulePatch struct {
	Endpoint       *string         `json:"endpoint,omitempty"`
	SetFrequency   bool            `json:"set_frequency,omitempty"`
	Frequency      *int64          `json:"frequency,omitempty"`
	SetCron        bool            `json:"set_cron,omitempty"`
	Cron           string          `json:"cron,omitempty"`
	SetInterval    bool            `json:"set_interval,omitempty"`
	Interval       string          `json:"interval,omitempty"`
	IntervalAnchor time.Time       `json:"interval_anchor,omitzero"`
	SetPayload     bool            `json:"set_payload,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	SetAuthToken   bool            `json:"set_auth_token,omitempty"`
	AuthToken      *string         `json:"auth_token,omitempty"`
	SetNextSendAt  bool            `json:"set_next_send_at,omitempty"`
	NextSendAt     *time.Time      `json:"next_send_at,omitempty"`
	Enabled        *bool           `json:"enabled,omitempty"`
}

// CreateScheduleCmd stores a complete schedule record built by the API
// handler; ErrConflict when the id exists.
type CreateScheduleCmd struct {
	Schedule Schedule `json:"schedule"`
}

// UpdateScheduleCmd applies a patch to a schedule; ErrNotFound when missing.
type UpdateScheduleCmd struct {
	ID    string        `json:"id"`
	Patch SchedulePatch `json:"patch"`
	At    time.Time     `json:"at"`
	By    uint64        `json:"by,omitempty"`
}

// DeleteScheduleCmd removes a schedule, its failed-task records and its fire
// ledger (runs); ErrNotFound when missing.
type DeleteScheduleCmd struct {
	ID string `json:"id"`
}

// RequeueFailedTasksCmd records a durable request to re-deliver the failed
// schedules; the executor acts on it and then finishes it.
type RequeueFailedTasksCmd struct {
	RequestedAt time.Time `json:"requested_at"`
}

// RequeueRequest is a pending requeue. MaxTaskID is the highest failed-task
// id assigned when the request was made: the request covers the failed tasks
// with an id up to it, not the ones written later (such as the failure of the
// re-delivery itself).
type RequeueRequest struct {
	ID          uint64    `json:"id"`
	RequestedAt time.Time `json:"requested_at"`
	MaxTaskID   uint64    `json:"max_task_id"`
}

// FinishRequeueCmd deletes a requeue request and, for each listed schedule,
// its failed tasks covered by the request (id ≤ the request's MaxTaskID).
// ErrNotFound when the request does not exist (already finished).
type FinishRequeueCmd struct {
	ID          uint64   `json:"id"`
	ScheduleIDs []string `json:"schedule_ids"`
}

// ScheduleKey encodes a schedule id (a UUID) as its 16-byte table key.
func ScheduleKey(id string) ([]byte, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return nil, fmt.Errorf("schedule id %q: %w", id, err)
	}
	return bytes.Clone(u[:]), nil
}

// ScheduleIDFromKey decodes a 16-byte schedule key to the lowercase hyphenated id.
func ScheduleIDFromKey(k []byte) string {
	u, err := uuid.FromBytes(k)
	if err != nil {
		return ""
	}
	return u.String()
}

// SchedulePosition returns the position (24-byte created key) of a schedule
// in the newest-first order, as ListSchedules reports it in Positions.
func SchedulePosition(s Schedule) ([]byte, error) {
	k, err := ScheduleKey(s.ID)
	if err != nil {
		return nil, err
	}
	return createdKey(s.CreatedAt, k), nil
}

func createdKey(createdAt time.Time, key []byte) []byte {
	out := make([]byte, positionLen)
	binary.BigEndian.PutUint64(out, uint64(createdAt.UnixNano()))
	copy(out[8:], key)
	return out
}

func endpointHash(endpoint string) []byte {
	h := sha256.Sum256([]byte(endpoint))
	return bytes.Clone(h[:endpointHashLen])
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func concat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// scheduleRows lists the index entries and count keys of a schedule, always
// in the same order so that an update can compare old and new position by
// position.
func scheduleRows(s Schedule, key []byte) (idx [4]indexEntry, counts [4][]byte) {
	created := createdKey(s.CreatedAt, key)
	en := []byte{boolByte(s.Enabled)}
	h := endpointHash(s.Endpoint)
	idx = [4]indexEntry{
		{BSchedulesByCreated, created},
		{bSchedulesByEnabled, concat(en, created)},
		{bSchedulesByEndpoint, concat(h, created)},
		{bSchedulesByEndpointEnabled, concat(h, en, created)},
	}
	counts = [4][]byte{
		kCountSchedules,
		countKeyEnabled(s.Enabled),
		countKeyEndpoint(h),
		countKeyEndpointEnabled(h, s.Enabled),
	}
	return idx, counts
}

type indexEntry struct {
	bucket, key []byte
}

// adjustCount adjusts a maintained count and drops it when it reaches zero,
// so that counts of endpoints no longer used do not pile up.
func adjustCount(tx *bolt.Tx, key []byte, delta int64) error {
	b := tx.Bucket(bCounts)
	n := int64(getUint(b, key)) + delta
	if n <= 0 {
		if b.Get(key) == nil {
			return nil
		}
		return b.Delete(key)
	}
	return putUint(b, key, uint64(n))
}

// normalizePayload gives a payload the form it has once stored (encoding/json
// compacts raw messages), so that a command's response equals a later read.
func normalizePayload(p json.RawMessage) (json.RawMessage, error) {
	if p == nil {
		return nil, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("schedule payload: %w", err)
	}
	return b, nil
}

// putSchedule writes a schedule record and keeps every index and count exact.
// old is the stored record being replaced, nil for a new one. Any command of
// this package that changes a schedule (enabled, endpoint...) must write it
// through here. Every check that can fail is done before the first write.
func putSchedule(tx *bolt.Tx, old *Schedule, s Schedule) error {
	key, err := ScheduleKey(s.ID)
	if err != nil {
		return err
	}
	buf, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode schedule %s: %w", s.ID, err)
	}
	idx, counts := scheduleRows(s, key)
	if old == nil {
		for _, e := range idx {
			if err := tx.Bucket(e.bucket).Put(e.key, nil); err != nil {
				return err
			}
		}
		for _, c := range counts {
			if err := adjustCount(tx, c, 1); err != nil {
				return err
			}
		}
	} else {
		oldIdx, oldCounts := scheduleRows(*old, key)
		for i := range idx {
			if bytes.Equal(oldIdx[i].key, idx[i].key) {
				continue
			}
			b := tx.Bucket(idx[i].bucket)
			if err := b.Delete(oldIdx[i].key); err != nil {
				return err
			}
			if err := b.Put(idx[i].key, nil); err != nil {
				return err
			}
		}
		for i := range counts {
			if bytes.Equal(oldCounts[i], counts[i]) {
				continue
			}
			if err := adjustCount(tx, oldCounts[i], -1); err != nil {
				return err
			}
			if err := adjustCount(tx, counts[i], 1); err != nil {
				return err
			}
		}
	}
	return tx.Bucket(BSchedules).Put(key, buf)
}

// deleteSchedule removes a schedule record, its index entries and counts.
func deleteSchedule(tx *bolt.Tx, s Schedule, key []byte) error {
	idx, counts := scheduleRows(s, key)
	for _, e := range idx {
		if err := tx.Bucket(e.bucket).Delete(e.key); err != nil {
			return err
		}
	}
	for _, c := range counts {
		if err := adjustCount(tx, c, -1); err != nil {
			return err
		}
	}
	return tx.Bucket(BSchedules).Delete(key)
}

func applyCreateSchedule(tx *bolt.Tx, c *CreateScheduleCmd) (any, []string, error) {
	s := c.Schedule
	key, err := ScheduleKey(s.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("create schedule: %w", err)
	}
	s.ID = ScheduleIDFromKey(key)
	if tx.Bucket(BSchedules).Get(key) != nil {
		return nil, nil, fmt.Errorf("schedule %s: %w", s.ID, ErrConflict)
	}
	if s.Payload, err = normalizePayload(s.Payload); err != nil {
		return nil, nil, err
	}
	s.SlotsFrom = s.CreatedAt.Unix()
	hooks, err := WebhooksForEvent(tx, EventScheduleAdded)
	if err != nil {
		return nil, nil, err
	}
	if err := putSchedule(tx, nil, s); err != nil {
		return nil, nil, err
	}
	if err := enqueueWebhooks(tx, hooks, s); err != nil {
		return nil, nil, err
	}
	if len(hooks) > 0 {
		return s, []string{s.ID, OutboxEffectKey}, nil
	}
	return s, []string{s.ID}, nil
}

func applyUpdateSchedule(tx *bolt.Tx, c *UpdateScheduleCmd) (any, []string, error) {
	old, err := GetSchedule(tx, c.ID)
	if err != nil {
		return nil, nil, err
	}
	s := old
	p := c.Patch
	if p.Endpoint != nil {
		s.Endpoint = *p.Endpoint
	}
	if p.SetFrequency {
		s.Frequency = p.Frequency
	}
	if p.SetCron {
		s.CronDefinition = p.Cron
	}
	// Setting the interval it already has keeps its anchor: a PUT that
	// repeats the interval must not shift its slots.
	if p.SetInterval && p.Interval != s.IntervalDefinition {
		s.IntervalDefinition = p.Interval
		s.IntervalAnchor = p.IntervalAnchor
		if p.Interval == "" {
			s.IntervalAnchor = time.Time{}
		}
	}
	if p.SetPayload {
		if s.Payload, err = normalizePayload(p.Payload); err != nil {
			return nil, nil, err
		}
	}
	if p.SetAuthToken {
		s.AuthToken = p.AuthToken
	}
	if p.SetNextSendAt {
		s.NextSendAt = p.NextSendAt
	}
	if p.Enabled != nil {
		s.Enabled = *p.Enabled
	}
	// A new definition applies from the next slot on; a re-enabled schedule
	// does not fire what fell due while it was disabled.
	if s.CronDefinition != old.CronDefinition || s.IntervalDefinition != old.IntervalDefinition ||
		(s.Enabled && !old.Enabled) {
		s.SlotsFrom = c.At.Unix()
	}
	s.UpdatedAt = c.At
	s.UpdatedBy = c.By
	if err := putSchedule(tx, &old, s); err != nil {
		return nil, nil, err
	}
	return s, []string{s.ID}, nil
}

func applyDeleteSchedule(tx *bolt.Tx, c *DeleteScheduleCmd) (any, []string, error) {
	s, err := GetSchedule(tx, c.ID)
	if err != nil {
		return nil, nil, err
	}
	key, err := ScheduleKey(s.ID)
	if err != nil {
		return nil, nil, err
	}
	tasks := failedTasksOf(tx, key, ^uint64(0))
	if err := deleteFailedTasks(tx, key, tasks); err != nil {
		return nil, nil, err
	}
	if err := deleteRunsOf(tx, key); err != nil {
		return nil, nil, err
	}
	if err := deleteSchedule(tx, s, key); err != nil {
		return nil, nil, err
	}
	return nil, []string{s.ID}, nil
}

// Failed tasks.

func failedIndexKey(schedKey []byte, id uint64) []byte {
	return concat(schedKey, u64(id))
}

// failedTasksOf returns the ids, ascending, of the failed tasks of a schedule
// up to maxID.
func failedTasksOf(tx *bolt.Tx, schedKey []byte, maxID uint64) []uint64 {
	var ids []uint64
	c := tx.Bucket(bFailedTasksBySchedule).Cursor()
	for k, _ := c.Seek(schedKey); len(k) == failedIndexKeyLn && bytes.HasPrefix(k, schedKey); k, _ = c.Next() {
		id := binary.BigEndian.Uint64(k[scheduleKeyLen:])
		if id > maxID {
			break
		}
		ids = append(ids, id)
	}
	return ids
}

func deleteFailedTasks(tx *bolt.Tx, schedKey []byte, ids []uint64) error {
	if len(ids) == 0 {
		return nil
	}
	tasks, idx := tx.Bucket(BFailedTasks), tx.Bucket(bFailedTasksBySchedule)
	for _, id := range ids {
		if err := tasks.Delete(u64(id)); err != nil {
			return err
		}
		if err := idx.Delete(failedIndexKey(schedKey, id)); err != nil {
			return err
		}
	}
	return adjustCount(tx, BFailedTasks, -int64(len(ids)))
}

func applyAddFailedTask(tx *bolt.Tx, c *FailedTask) (any, []string, error) {
	key, err := ScheduleKey(c.ScheduleID)
	if err != nil {
		return nil, nil, fmt.Errorf("failed task for schedule %q: %w", c.ScheduleID, ErrNotFound)
	}
	if tx.Bucket(BSchedules).Get(key) == nil {
		return nil, nil, fmt.Errorf("failed task for schedule %s: %w", c.ScheduleID, ErrNotFound)
	}
	t, err := insertFailedTask(tx, key, *c)
	if err != nil {
		return nil, nil, err
	}
	return t.ID, []string{t.ScheduleID}, nil
}

// insertFailedTask stores a failed task of the existing schedule with key
// key, under the next id of the table.
func insertFailedTask(tx *bolt.Tx, key []byte, t FailedTask) (FailedTask, error) {
	b := tx.Bucket(BFailedTasks)
	t.ID = b.Sequence() + 1
	t.ScheduleID = ScheduleIDFromKey(key)
	buf, err := json.Marshal(t)
	if err != nil {
		return t, fmt.Errorf("encode failed task: %w", err)
	}
	if err := b.SetSequence(t.ID); err != nil {
		return t, err
	}
	if err := b.Put(u64(t.ID), buf); err != nil {
		return t, err
	}
	if err := tx.Bucket(bFailedTasksBySchedule).Put(failedIndexKey(key, t.ID), nil); err != nil {
		return t, err
	}
	return t, adjustCount(tx, BFailedTasks, 1)
}

func applyRequeueFailedTasks(tx *bolt.Tx, c *RequeueFailedTasksCmd) (any, []string, error) {
	b := tx.Bucket(bRequeueRequests)
	r := RequeueRequest{ID: b.Sequence() + 1, RequestedAt: c.RequestedAt, MaxTaskID: tx.Bucket(BFailedTasks).Sequence()}
	buf, err := json.Marshal(r)
	if err != nil {
		return nil, nil, fmt.Errorf("encode requeue request: %w", err)
	}
	if err := b.SetSequence(r.ID); err != nil {
		return nil, nil, err
	}
	if err := b.Put(u64(r.ID), buf); err != nil {
		return nil, nil, err
	}
	return r.ID, []string{strconv.FormatUint(r.ID, 10)}, nil
}

func applyFinishRequeue(tx *bolt.Tx, c *FinishRequeueCmd) (any, []string, error) {
	b := tx.Bucket(bRequeueRequests)
	var r RequeueRequest
	ok, err := getJSON(b, u64(c.ID), &r)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, fmt.Errorf("requeue request %d: %w", c.ID, ErrNotFound)
	}
	// Schedules deleted since (or malformed ids) have no failed tasks left:
	// skip them. Sorted and deduplicated so the writes never depend on the
	// order the executor listed them in.
	keys := make([][]byte, 0, len(c.ScheduleIDs))
	for _, id := range c.ScheduleIDs {
		if k, err := ScheduleKey(id); err == nil {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i], keys[j]) < 0 })
	var deleted uint64
	var touched []string
	for i, k := range keys {
		if i > 0 && bytes.Equal(k, keys[i-1]) {
			continue
		}
		ids := failedTasksOf(tx, k, r.MaxTaskID)
		if len(ids) == 0 {
			continue
		}
		if err := deleteFailedTasks(tx, k, ids); err != nil {
			return nil, nil, err
		}
		deleted += uint64(len(ids))
		touched = append(touched, ScheduleIDFromKey(k))
	}
	if err := b.Delete(u64(c.ID)); err != nil {
		return nil, nil, err
	}
	return deleted, touched, nil
}

// Reads.

// DecodeSchedule decodes a row of the schedules table.
func DecodeSchedule(v []byte) (Schedule, error) {
	var s Schedule
	err := json.Unmarshal(v, &s)
	return s, err
}

// GetSchedule returns a schedule by id; ErrNotFound also for a malformed id.
func GetSchedule(tx *bolt.Tx, id string) (Schedule, error) {
	key, err := ScheduleKey(id)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %q: %w", id, ErrNotFound)
	}
	return getScheduleByKey(tx, key)
}

func getScheduleByKey(tx *bolt.Tx, key []byte) (Schedule, error) {
	var s Schedule
	ok, err := getJSON(tx.Bucket(BSchedules), key, &s)
	if err != nil {
		return s, err
	}
	if !ok {
		return s, fmt.Errorf("schedule %s: %w", ScheduleIDFromKey(key), ErrNotFound)
	}
	return s, nil
}

// ForEachSchedule calls fn for every schedule, in table (raw id) order; an
// error from fn stops the iteration and is returned.
func ForEachSchedule(tx *bolt.Tx, fn func(Schedule) error) error {
	return tx.Bucket(BSchedules).ForEach(func(k, v []byte) error {
		s, err := DecodeSchedule(v)
		if err != nil {
			return fmt.Errorf("decode schedule %x: %w", k, err)
		}
		return fn(s)
	})
}

// ScheduleFilter selects schedules in ListSchedules; nil fields select all.
type ScheduleFilter struct {
	Enabled  *bool
	Endpoint *string
}

// SchedulePage is one page of schedules, newest first.
type SchedulePage struct {
	Schedules []Schedule
	// Positions[i] is the position of Schedules[i], for cursors.
	Positions [][]byte
	// HasBefore: there are newer matching schedules than the first one (a
	// previous page). HasAfter: older ones than the last (a next page).
	HasBefore, HasAfter bool
	// Count is the number of schedules matching the filter.
	Count uint64
}

// ListSchedules returns one page in created_at-descending order (ties by id
// descending) starting strictly after position, or, when reverse, the page of
// rows just before it (a "previous" page, still returned newest first). A nil
// position is the first page (the last page when reverse). position is the
// 24-byte created key of the row where the previous page ended (started, when
// reverse); it need not still exist. Each filter has its own index and count,
// so a page costs O(limit) reads at any table size (plus skipped rows whose
// endpoint only shares the hash of the one asked for).
func ListSchedules(tx *bolt.Tx, f ScheduleFilter, position []byte, reverse bool, limit int) (SchedulePage, error) {
	if position != nil && len(position) != positionLen {
		return SchedulePage{}, fmt.Errorf("%w: %d bytes", ErrInvalidPosition, len(position))
	}
	if limit < 0 {
		limit = 0
	}
	var bucket, prefix, countKey []byte
	switch {
	case f.Endpoint != nil && f.Enabled != nil:
		h := endpointHash(*f.Endpoint)
		bucket, prefix, countKey = bSchedulesByEndpointEnabled, concat(h, []byte{boolByte(*f.Enabled)}), countKeyEndpointEnabled(h, *f.Enabled)
	case f.Endpoint != nil:
		h := endpointHash(*f.Endpoint)
		bucket, prefix, countKey = bSchedulesByEndpoint, h, countKeyEndpoint(h)
	case f.Enabled != nil:
		bucket, prefix, countKey = bSchedulesByEnabled, []byte{boolByte(*f.Enabled)}, countKeyEnabled(*f.Enabled)
	default:
		bucket, prefix, countKey = BSchedulesByCreated, nil, kCountSchedules
	}
	p := &pager{
		c:        tx.Bucket(bucket).Cursor(),
		prefix:   prefix,
		tx:       tx,
		endpoint: f.Endpoint,
	}
	page := SchedulePage{Count: Count(tx, countKey)}
	if err := p.page(&page, position, reverse, limit); err != nil {
		return SchedulePage{}, err
	}
	return page, nil
}

// pager walks the keys of one index bucket that start with prefix; each key
// is prefix + a 24-byte created key.
type pager struct {
	c        *bolt.Cursor
	prefix   []byte
	tx       *bolt.Tx
	endpoint *string // rows must have this endpoint (the index holds its hash)
}

func (p *pager) in(k []byte) bool {
	return len(k) == len(p.prefix)+positionLen && bytes.HasPrefix(k, p.prefix)
}

func (p *pager) key(position []byte) []byte { return concat(p.prefix, position) }

// load returns the schedule an index key points to, and whether it matches
// the filter.
func (p *pager) load(k []byte) (Schedule, bool, error) {
	s, err := getScheduleByKey(p.tx, k[len(p.prefix)+8:])
	if err != nil {
		return s, false, fmt.Errorf("index %x: %w", k, err)
	}
	return s, p.endpoint == nil || s.Endpoint == *p.endpoint, nil
}

func (p *pager) matches(k []byte) (bool, error) {
	if p.endpoint == nil {
		return true, nil
	}
	_, ok, err := p.load(k)
	return ok, err
}

// lastBefore moves to the greatest key < target.
func (p *pager) lastBefore(target []byte) []byte {
	k, _ := p.c.Seek(target)
	if k == nil {
		k, _ = p.c.Last()
		return k
	}
	k, _ = p.c.Prev()
	return k
}

// lastAtOrBefore moves to the greatest key ≤ target.
func (p *pager) lastAtOrBefore(target []byte) []byte {
	k, _ := p.c.Seek(target)
	if k == nil {
		k, _ = p.c.Last()
		return k
	}
	if !bytes.Equal(k, target) {
		k, _ = p.c.Prev()
	}
	return k
}

// firstAfter moves to the smallest key > target.
func (p *pager) firstAfter(target []byte) []byte {
	k, _ := p.c.Seek(target)
	if k != nil && bytes.Equal(k, target) {
		k, _ = p.c.Next()
	}
	return k
}

// anyMatch reports whether a matching row exists from k on, stepping in one
// direction while inside the prefix.
func (p *pager) anyMatch(k []byte, step func() ([]byte, []byte)) (bool, error) {
	for ; p.in(k); k, _ = step() {
		ok, err := p.matches(k)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// collect appends matching rows from k on, stepping in one direction, until
// limit rows; it then reports whether another matching row follows.
func (p *pager) collect(page *SchedulePage, k []byte, step func() ([]byte, []byte), limit int) (more bool, err error) {
	for ; p.in(k); k, _ = step() {
		if len(page.Schedules) == limit {
			return p.anyMatch(k, step)
		}
		s, ok, err := p.load(k)
		if err != nil {
			return false, err
		}
		if !ok {
			continue
		}
		page.Schedules = append(page.Schedules, s)
		page.Positions = append(page.Positions, bytes.Clone(k[len(p.prefix):]))
	}
	return false, nil
}

func (p *pager) page(page *SchedulePage, position []byte, reverse bool, limit int) error {
	var err error
	if !reverse {
		var k []byte
		if position == nil {
			k = p.lastAtOrBefore(p.key(bytes.Repeat([]byte{0xff}, positionLen)))
		} else {
			k = p.lastBefore(p.key(position))
		}
		if page.HasAfter, err = p.collect(page, k, p.c.Prev, limit); err != nil {
			return err
		}
		switch {
		case len(page.Positions) > 0:
			page.HasBefore, err = p.anyMatch(p.firstAfter(p.key(page.Positions[0])), p.c.Next)
		case position != nil:
			k, _ := p.c.Seek(p.key(position))
			page.HasBefore, err = p.anyMatch(k, p.c.Next)
		}
		return err
	}
	var k []byte
	if position == nil {
		k, _ = p.c.Seek(p.prefix)
	} else {
		k = p.firstAfter(p.key(position))
	}
	if page.HasBefore, err = p.collect(page, k, p.c.Next, limit); err != nil {
		return err
	}
	for i, j := 0, len(page.Schedules)-1; i < j; i, j = i+1, j-1 {
		page.Schedules[i], page.Schedules[j] = page.Schedules[j], page.Schedules[i]
		page.Positions[i], page.Positions[j] = page.Positions[j], page.Positions[i]
	}
	switch {
	case len(page.Positions) > 0:
		page.HasAfter, err = p.anyMatch(p.lastBefore(p.key(page.Positions[len(page.Positions)-1])), p.c.Prev)
	case position != nil:
		page.HasAfter, err = p.anyMatch(p.lastAtOrBefore(p.key(position)), p.c.Prev)
	}
	return err
}

// DecodeFailedTask decodes a row of the failed-tasks table (listed with
// Page(tx, BFailedTasks, ...) and counted with Count(tx, BFailedTasks)).
func DecodeFailedTask(v []byte) (FailedTask, error) {
	var t FailedTask
	err := json.Unmarshal(v, &t)
	return t, err
}

// GetFailedTask returns a failed task by id.
func GetFailedTask(tx *bolt.Tx, id uint64) (FailedTask, error) {
	var t FailedTask
	ok, err := getJSON(tx.Bucket(BFailedTasks), u64(id), &t)
	if err != nil {
		return t, err
	}
	if !ok {
		return t, fmt.Errorf("failed task %d: %w", id, ErrNotFound)
	}
	return t, nil
}

// PendingRequeues returns the requeue requests not yet finished, oldest first.
func PendingRequeues(tx *bolt.Tx) ([]RequeueRequest, error) {
	var out []RequeueRequest
	err := tx.Bucket(bRequeueRequests).ForEach(func(k, v []byte) error {
		var r RequeueRequest
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode requeue request %x: %w", k, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// FailedScheduleIDs returns, in raw id order, the ids of the schedules that
// have at least one failed task with an id ≤ maxTaskID (a RequeueRequest's
// MaxTaskID; ^uint64(0) for all). The cost is one seek per such schedule.
func FailedScheduleIDs(tx *bolt.Tx, maxTaskID uint64) []string {
	var out []string
	c := tx.Bucket(bFailedTasksBySchedule).Cursor()
	k, _ := c.First()
	for k != nil {
		if len(k) != failedIndexKeyLn {
			k, _ = c.Next()
			continue
		}
		sk := bytes.Clone(k[:scheduleKeyLen])
		// Keys of a schedule ascend by task id: the first is its oldest.
		if binary.BigEndian.Uint64(k[scheduleKeyLen:]) <= maxTaskID {
			out = append(out, ScheduleIDFromKey(sk))
		}
		end := concat(sk, bytes.Repeat([]byte{0xff}, 8))
		k, _ = c.Seek(end)
		if k != nil && bytes.Equal(k, end) {
			k, _ = c.Next()
		}
	}
	return out
}
