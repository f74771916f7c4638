package fsm

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The fire ledger: only the leader fires schedules, and it claims every slot
// through raft before delivering it, then records the outcome of every
// attempt. A new leader therefore knows which slots were claimed, delivered,
// are being retried or failed, and resumes the in-flight ones (PendingRuns).
//
// Key layouts.
//
//	runs            schedule uuid(16) + slot unix seconds(8, big-endian) → Run JSON
//	runs_pending    same key → "" for the runs in state claimed or retrying
//	webhook_outbox  entry id(8, the bucket sequence) → OutboxEntry JSON
//
// Maintained counts (counts table): "runs_<hex uuid>" per schedule (RunsCount),
// "webhook_outbox" (PendingWebhooksCount).

// Fire-ledger command types. Values are persisted in the raft log: never
// renumber.
const (
	CmdClaimSlots     CommandType = 19
	CmdRecordOutcomes CommandType = 20
	CmdRecordMissed   CommandType = 21
	CmdWebhookDone    CommandType = 22
)

// Run states.
const (
	RunClaimed   = "claimed"   // claimed, no outcome recorded yet (pending)
	RunRetrying  = "retrying"  // an attempt failed, another is due at NextAttemptAt (pending)
	RunDelivered = "delivered" // an attempt succeeded (final)
	RunFailed    = "failed"    // the last attempt failed; a failed task was written (final)
	RunMissed    = "missed"    // fell due while no leader could fire it, not delivered (final)
	// RunCancelled: claimed (possibly ahead of its time), then not sent
	// because the schedule was disabled first (final).
	RunCancelled = "cancelled"
)

// Run kinds.
const (
	RunKindSlot    = "slot"    // a slot of the schedule's cron/interval
	RunKindRequeue = "requeue" // a re-delivery asked for through the failed-tasks API
)

// OutboxEffectKey is added to the effect keys of a CmdCreateSchedule that
// wrote webhook outbox entries, so the executor knows to look at
// PendingWebhooks.
const OutboxEffectKey = "webhook_outbox"

const (
	slotKeyLen = 8
	runKeyLen  = scheduleKeyLen + slotKeyLen
)

// Attempt is one delivery attempt of a run.
type Attempt struct {
	N          int       `json:"n"`
	At         time.Time `json:"at"`
	Status     int       `json:"status,omitempty"`
	Error      string    `json:"error,omitempty"`
	LatencyMs  float64   `json:"latency_ms"`
	LatenessMs float64   `json:"lateness_ms"`
}

// Run is the ledger record of one slot (or requeue) of a schedule.
type Run struct {
	ScheduleID    string     `json:"schedule_id"`
	Slot          int64      `json:"slot"`
	Kind          string     `json:"kind"`  // RunKindSlot or RunKindRequeue
	State         string     `json:"state"` // RunClaimed, RunRetrying, RunDelivered, RunFailed, RunMissed, RunCancelled
	ClaimedAt     time.Time  `json:"claimed_at"`
	Attempts      []Attempt  `json:"attempts,omitempty"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// RequeuedAfter is the number of attempts the run had when a requeue
	// re-opened it: the retry budget counts from there.
	RequeuedAfter int `json:"requeued_after,omitempty"`
}

// Pending reports whether the run is still in flight (claimed or retrying).
func (r Run) Pending() bool { return runStatePending(r.State) }

func runStatePending(state string) bool { return state == RunClaimed || state == RunRetrying }

// Claim asks for one slot of a schedule. A requeue claim is a re-delivery of
// a failed schedule: Slot is then the second the executor chose for it.
type Claim struct {
	ScheduleID string `json:"schedule_id"`
	Slot       int64  `json:"slot"`
	Requeue    bool   `json:"requeue,omitempty"`
}

// ClaimSlotsCmd claims the slots due in one executor tick. Each claim is
// accepted or refused on its own, in order (see applyClaimSlots); a refused
// claim is not an error. After the inserts, each schedule with an accepted
// claim keeps only its newest Retain runs (0: keep all) plus any run still
// pending.
type ClaimSlotsCmd struct {
	At     time.Time `json:"at"`
	Retain int       `json:"retain,omitempty"`
	Claims []Claim   `json:"claims"`
}

// ClaimResult is the response of CmdClaimSlots: Accepted[i] answers Claims[i].
type ClaimResult struct {
	Accepted []bool
	// Slots[i] is the slot claimed by claim i: the claim's own slot, or for
	// an accepted requeue claim the slot of the failed run it re-opened.
	Slots []int64
}

// Outcome records one attempt of a pending run. State is RunDelivered,
// RunRetrying or RunFailed; TaskID and Reason describe the failed task
// written for RunFailed. RunCancelled closes a run that was not sent (no
// attempt is recorded).
type Outcome struct {
	ScheduleID    string     `json:"schedule_id"`
	Slot          int64      `json:"slot"`
	Attempt       Attempt    `json:"attempt"`
	State         string     `json:"state"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	TaskID        string     `json:"task_id,omitempty"`
	Reason        string     `json:"reason,omitempty"`
}

// RecordOutcomesCmd records a batch of attempt outcomes. An outcome whose run
// does not exist (schedule deleted, run pruned) or is no longer pending is
// skipped. An outcome with another State fails the whole command (nothing is
// written).
type RecordOutcomesCmd struct {
	Outcomes []Outcome `json:"outcomes"`
}

// RecordMissedCmd records slots that fell due while no leader could fire
// them and that the executor will not fire. Unknown schedules and slots that
// already have a run are skipped. LastSlot is not changed.
type RecordMissedCmd struct {
	At     time.Time `json:"at"`
	Retain int       `json:"retain,omitempty"`
	Missed []Claim   `json:"missed"`
}

// WebhookDoneCmd deletes delivered (or abandoned) webhook outbox entries;
// unknown ids are ignored.
type WebhookDoneCmd struct {
	IDs []uint64 `json:"ids"`
}

// OutboxEntry is a schedule.added webhook delivery still to be made: one per
// created schedule and subscribed hook.
type OutboxEntry struct {
	ID         uint64    `json:"id"`
	HookID     uint64    `json:"hook_id"`
	ScheduleID string    `json:"schedule_id"`
	CreatedAt  time.Time `json:"created_at"` // the schedule's CreatedAt
}

// RunPage is one page of a schedule's runs, newest slot first.
type RunPage struct {
	Runs []Run
	// Positions[i] is the position (8-byte slot key) of Runs[i], for cursors.
	Positions [][]byte
	// HasBefore: there are newer runs than the first one (a previous page).
	// HasAfter: older ones than the last (a next page).
	HasBefore, HasAfter bool
	// Count is the number of runs of the schedule.
	Count uint64
}

func init() {
	register(CmdClaimSlots, "claim_slots", applyClaimSlots)
	register(CmdRecordOutcomes, "record_outcomes", applyRecordOutcomes)
	register(CmdRecordMissed, "record_missed", applyRecordMissed)
	register(CmdWebhookDone, "webhook_done", applyWebhookDone)
}

// RunPosition returns the position of a slot in ListRuns.
func RunPosition(slot int64) []byte { return u64(uint64(slot)) }

func runKey(schedKey []byte, slot int64) []byte { return concat(schedKey, RunPosition(slot)) }

func runCountKey(schedKey []byte) []byte { return []byte("runs_" + hex.EncodeToString(schedKey)) }

func getRun(tx *bolt.Tx, key []byte) (Run, bool, error) {
	var r Run
	ok, err := getJSON(tx.Bucket(bRuns), key, &r)
	return r, ok, err
}

// putRun writes a run and keeps its pending entry in line with its state.
func putRun(tx *bolt.Tx, key []byte, r Run) error {
	if err := putJSON(tx.Bucket(bRuns), key, r); err != nil {
		return err
	}
	if r.Pending() {
		return tx.Bucket(bRunsPending).Put(key, nil)
	}
	return tx.Bucket(bRunsPending).Delete(key)
}

// insertRun writes a run at a key that had none.
func insertRun(tx *bolt.Tx, schedKey []byte, r Run) error {
	if err := putRun(tx, runKey(schedKey, r.Slot), r); err != nil {
		return err
	}
	return adjustCount(tx, runCountKey(schedKey), 1)
}

// applyClaimSlots accepts a normal claim when the schedule exists, is
// enabled, the slot is after both LastSlot and SlotsFrom, the frequency is
// not reached, and no run at that key is in flight (a finished run there,
// which can only be a missed slot or a requeue, is replaced). An accepted
// claim writes a claimed run, sets LastSlot, increments Triggered and
// disables the schedule when Triggered reaches Frequency. A requeue claim is
// accepted when the schedule exists, is enabled and has no run at that key;
// it leaves LastSlot and Triggered alone. Negative slots are refused.
func applyClaimSlots(tx *bolt.Tx, c *ClaimSlotsCmd) (any, []string, error) {
	res := ClaimResult{Accepted: make([]bool, len(c.Claims)), Slots: make([]int64, len(c.Claims))}
	var touched [][]byte
	for i, cl := range c.Claims {
		var key []byte
		var ok bool
		var err error
		res.Slots[i] = cl.Slot
		if cl.Requeue {
			key, res.Slots[i], ok, err = reopenFailedRun(tx, c.At, cl.ScheduleID)
		} else {
			key, ok, err = claimSlot(tx, c.At, cl)
		}
		if err != nil {
			return nil, nil, err
		}
		if ok {
			res.Accepted[i] = true
			touched = append(touched, key)
		}
	}
	touched = sortedUniqueKeys(touched)
	if err := pruneRuns(tx, touched, c.Retain); err != nil {
		return nil, nil, err
	}
	return res, scheduleIDs(touched), nil
}

func claimSlot(tx *bolt.Tx, at time.Time, cl Claim) ([]byte, bool, error) {
	key, err := ScheduleKey(cl.ScheduleID)
	if err != nil || cl.Slot < 0 {
		return nil, false, nil
	}
	s, err := getScheduleByKey(tx, key)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !s.Enabled {
		return nil, false, nil
	}
	rk := runKey(key, cl.Slot)
	existing, exists, err := getRun(tx, rk)
	if err != nil {
		return nil, false, err
	}
	run := Run{ScheduleID: s.ID, Slot: cl.Slot, Kind: RunKindSlot, State: RunClaimed, ClaimedAt: at}
	if cl.Slot <= s.LastSlot || cl.Slot <= s.SlotsFrom ||
		(s.Frequency != nil && s.Triggered >= *s.Frequency) ||
		(exists && existing.Pending()) {
		return nil, false, nil
	}
	if exists {
		if err := putRun(tx, rk, run); err != nil {
			return nil, false, err
		}
	} else if err := insertRun(tx, key, run); err != nil {
		return nil, false, err
	}
	old := s
	s.LastSlot = cl.Slot
	s.Triggered++
	if s.Frequency != nil && s.Triggered >= *s.Frequency {
		s.Enabled = false
	}
	return key, true, putSchedule(tx, &old, s)
}

// pruneRuns keeps, for each schedule key, its newest retain runs and every
// pending one; retain ≤ 0 keeps everything. The cost is the number of runs
// beyond retain (plus the old pending ones skipped).
func pruneRuns(tx *bolt.Tx, schedKeys [][]byte, retain int) error {
	if retain <= 0 {
		return nil
	}
	runs, pending := tx.Bucket(bRuns), tx.Bucket(bRunsPending)
	for _, sk := range schedKeys {
		n := getUint(tx.Bucket(bCounts), runCountKey(sk))
		if n <= uint64(retain) {
			continue
		}
		excess := n - uint64(retain)
		var drop [][]byte
		c := runs.Cursor()
		for k, _ := c.Seek(sk); excess > 0 && isRunOf(k, sk); k, _ = c.Next() {
			excess--
			if !hasKey(pending, k) {
				drop = append(drop, bytes.Clone(k))
			}
		}
		for _, k := range drop {
			if err := runs.Delete(k); err != nil {
				return err
			}
		}
		if err := adjustCount(tx, runCountKey(sk), -int64(len(drop))); err != nil {
			return err
		}
	}
	return nil
}

// hasKey reports whether a key exists. Index entries have empty values, and
// Bucket.Get returns nil for an empty value written earlier in the same
// transaction: existence must be tested on the key.
func hasKey(b *bolt.Bucket, key []byte) bool {
	k, _ := b.Cursor().Seek(key)
	return k != nil && bytes.Equal(k, key)
}

func isRunOf(k, schedKey []byte) bool {
	return len(k) == runKeyLen && bytes.HasPrefix(k, schedKey)
}

// deleteRunsOf removes every run of a schedule, its pending entries and its
// run count.
func deleteRunsOf(tx *bolt.Tx, schedKey []byte) error {
	runs, pending := tx.Bucket(bRuns), tx.Bucket(bRunsPending)
	var keys [][]byte
	c := runs.Cursor()
	for k, _ := c.Seek(schedKey); isRunOf(k, schedKey); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := runs.Delete(k); err != nil {
			return err
		}
		if err := pending.Delete(k); err != nil {
			return err
		}
	}
	return adjustCount(tx, runCountKey(schedKey), -int64(len(keys)))
}

func applyRecordOutcomes(tx *bolt.Tx, c *RecordOutcomesCmd) (any, []string, error) {
	for i, o := range c.Outcomes {
		switch o.State {
		case RunDelivered, RunRetrying, RunFailed, RunCancelled:
		default:
			return nil, nil, fmt.Errorf("outcome %d for schedule %s slot %d: invalid state %q", i, o.ScheduleID, o.Slot, o.State)
		}
	}
	var touched [][]byte
	for _, o := range c.Outcomes {
		key, ok, err := recordOutcome(tx, o)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			touched = append(touched, key)
		}
	}
	return nil, scheduleIDs(sortedUniqueKeys(touched)), nil
}

func recordOutcome(tx *bolt.Tx, o Outcome) ([]byte, bool, error) {
	key, err := ScheduleKey(o.ScheduleID)
	if err != nil || o.Slot < 0 {
		return nil, false, nil
	}
	rk := runKey(key, o.Slot)
	run, exists, err := getRun(tx, rk)
	if err != nil {
		return nil, false, err
	}
	if !exists || !run.Pending() {
		// Deleted or pruned, or already final: a re-sent in-doubt slot
		// may report twice.
		return nil, false, nil
	}
	s, err := getScheduleByKey(tx, key)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if o.State != RunCancelled {
		run.Attempts = append(run.Attempts, o.Attempt)
	}
	run.State = o.State
	run.NextAttemptAt = o.NextAttemptAt
	if err := putRun(tx, rk, run); err != nil {
		return nil, false, err
	}
	switch o.State {
	case RunDelivered:
		if s.LastRunAt == nil || o.Attempt.At.After(*s.LastRunAt) {
			old := s
			at := o.Attempt.At
			s.LastRunAt = &at
			if err := putSchedule(tx, &old, s); err != nil {
				return nil, false, err
			}
		}
	case RunFailed:
		if _, err := insertFailedTask(tx, key, FailedTask{ScheduleID: s.ID, TaskID: o.TaskID,
			InitiatedAt: o.Attempt.At, Reason: o.Reason}); err != nil {
			return nil, false, err
		}
	}
	return key, true, nil
}

func applyRecordMissed(tx *bolt.Tx, c *RecordMissedCmd) (any, []string, error) {
	var touched [][]byte
	for _, m := range c.Missed {
		key, err := ScheduleKey(m.ScheduleID)
		if err != nil || m.Slot < 0 {
			continue
		}
		if tx.Bucket(BSchedules).Get(key) == nil || tx.Bucket(bRuns).Get(runKey(key, m.Slot)) != nil {
			continue
		}
		run := Run{ScheduleID: ScheduleIDFromKey(key), Slot: m.Slot, Kind: RunKindSlot, State: RunMissed, ClaimedAt: c.At}
		if err := insertRun(tx, key, run); err != nil {
			return nil, nil, err
		}
		touched = append(touched, key)
	}
	touched = sortedUniqueKeys(touched)
	if err := pruneRuns(tx, touched, c.Retain); err != nil {
		return nil, nil, err
	}
	return nil, scheduleIDs(touched), nil
}

// enqueueWebhooks writes one outbox entry per hook for a created schedule.
func enqueueWebhooks(tx *bolt.Tx, hooks []Webhook, s Schedule) error {
	b := tx.Bucket(bWebhookOutbox)
	for _, h := range hooks {
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := putJSON(b, u64(id), OutboxEntry{ID: id, HookID: h.ID, ScheduleID: s.ID, CreatedAt: s.CreatedAt}); err != nil {
			return err
		}
	}
	return adjustCount(tx, bWebhookOutbox, int64(len(hooks)))
}

func applyWebhookDone(tx *bolt.Tx, c *WebhookDoneCmd) (any, []string, error) {
	b := tx.Bucket(bWebhookOutbox)
	var n int64
	for _, id := range c.IDs {
		if b.Get(u64(id)) == nil {
			continue
		}
		if err := b.Delete(u64(id)); err != nil {
			return nil, nil, err
		}
		n++
	}
	return nil, nil, adjustCount(tx, bWebhookOutbox, -n)
}

func sortedUniqueKeys(keys [][]byte) [][]byte {
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i], keys[j]) < 0 })
	out := keys[:0]
	for i, k := range keys {
		if i == 0 || !bytes.Equal(k, keys[i-1]) {
			out = append(out, k)
		}
	}
	return out
}

func scheduleIDs(keys [][]byte) []string {
	if len(keys) == 0 {
		return nil
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = ScheduleIDFromKey(k)
	}
	return out
}

// Reads.

// GetRun returns the run of a schedule's slot; ErrNotFound when there is
// none (or the id is malformed).
func GetRun(tx *bolt.Tx, scheduleID string, slot int64) (Run, error) {
	key, err := ScheduleKey(scheduleID)
	if err != nil {
		return Run{}, fmt.Errorf("run %q/%d: %w", scheduleID, slot, ErrNotFound)
	}
	r, ok, err := getRun(tx, runKey(key, slot))
	if err != nil {
		return r, err
	}
	if !ok {
		return r, fmt.Errorf("run %s/%d: %w", ScheduleIDFromKey(key), slot, ErrNotFound)
	}
	return r, nil
}

// RunsCount returns the number of runs a schedule has in the ledger.
func RunsCount(tx *bolt.Tx, scheduleID string) uint64 {
	key, err := ScheduleKey(scheduleID)
	if err != nil {
		return 0
	}
	return getUint(tx.Bucket(bCounts), runCountKey(key))
}

// ListRuns returns one page of a schedule's runs, newest slot first, starting
// strictly after position (an older slot), or, when reverse, the page of runs
// just before it (newer; still returned newest first). A nil position is the
// first page (the last one when reverse). position is the 8-byte slot key
// reported in Positions (RunPosition); it need not still exist. ErrNotFound
// when the schedule does not exist, ErrInvalidPosition for a position that is
// not 8 bytes. The cost is O(limit).
func ListRuns(tx *bolt.Tx, scheduleID string, position []byte, reverse bool, limit int) (RunPage, error) {
	key, err := ScheduleKey(scheduleID)
	if err != nil {
		return RunPage{}, fmt.Errorf("schedule %q: %w", scheduleID, ErrNotFound)
	}
	if tx.Bucket(BSchedules).Get(key) == nil {
		return RunPage{}, fmt.Errorf("schedule %s: %w", ScheduleIDFromKey(key), ErrNotFound)
	}
	if position != nil && len(position) != slotKeyLen {
		return RunPage{}, fmt.Errorf("%w: %d bytes", ErrInvalidPosition, len(position))
	}
	if limit < 0 {
		limit = 0
	}
	page := RunPage{Count: getUint(tx.Bucket(bCounts), runCountKey(key))}
	c := tx.Bucket(bRuns).Cursor()
	in := func(k []byte) bool { return isRunOf(k, key) }
	full := func(pos []byte) []byte { return concat(key, pos) }
	collect := func(k, v []byte, step func() ([]byte, []byte)) (bool, error) {
		for ; in(k); k, v = step() {
			if len(page.Runs) == limit {
				return true, nil
			}
			var r Run
			if err := json.Unmarshal(v, &r); err != nil {
				return false, fmt.Errorf("decode run %x: %w", k, err)
			}
			page.Runs = append(page.Runs, r)
			page.Positions = append(page.Positions, bytes.Clone(k[scheduleKeyLen:]))
		}
		return false, nil
	}
	if !reverse {
		var k, v []byte
		if position == nil {
			k, v = seekLastAtOrBefore(c, full(bytes.Repeat([]byte{0xff}, slotKeyLen)))
		} else {
			k, v = seekLastBefore(c, full(position))
		}
		if page.HasAfter, err = collect(k, v, c.Prev); err != nil {
			return RunPage{}, err
		}
		switch {
		case len(page.Positions) > 0:
			k, _ = seekFirstAfter(c, full(page.Positions[0]))
			page.HasBefore = in(k)
		case position != nil:
			k, _ = c.Seek(full(position))
			page.HasBefore = in(k)
		}
		return page, nil
	}
	var k, v []byte
	if position == nil {
		k, v = c.Seek(key)
	} else {
		k, v = seekFirstAfter(c, full(position))
	}
	if page.HasBefore, err = collect(k, v, c.Next); err != nil {
		return RunPage{}, err
	}
	for i, j := 0, len(page.Runs)-1; i < j; i, j = i+1, j-1 {
		page.Runs[i], page.Runs[j] = page.Runs[j], page.Runs[i]
		page.Positions[i], page.Positions[j] = page.Positions[j], page.Positions[i]
	}
	switch {
	case len(page.Positions) > 0:
		k, _ = seekLastBefore(c, full(page.Positions[len(page.Positions)-1]))
		page.HasAfter = in(k)
	case position != nil:
		k, _ = seekLastAtOrBefore(c, full(position))
		page.HasAfter = in(k)
	}
	return page, nil
}

// seekLastBefore moves to the greatest key < target.
func seekLastBefore(c *bolt.Cursor, target []byte) ([]byte, []byte) {
	if k, _ := c.Seek(target); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// seekLastAtOrBefore moves to the greatest key ≤ target.
func seekLastAtOrBefore(c *bolt.Cursor, target []byte) ([]byte, []byte) {
	k, v := c.Seek(target)
	if k == nil {
		return c.Last()
	}
	if !bytes.Equal(k, target) {
		return c.Prev()
	}
	return k, v
}

// seekFirstAfter moves to the smallest key > target.
func seekFirstAfter(c *bolt.Cursor, target []byte) ([]byte, []byte) {
	k, v := c.Seek(target)
	if k != nil && bytes.Equal(k, target) {
		return c.Next()
	}
	return k, v
}

// PendingRuns returns every run still in flight (claimed or retrying), by
// schedule key then slot, reading only those runs: what a new leader must
// resume.
func PendingRuns(tx *bolt.Tx) ([]Run, error) {
	var out []Run
	err := tx.Bucket(bRunsPending).ForEach(func(k, _ []byte) error {
		r, ok, err := getRun(tx, k)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("pending run %x has no record", k)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// PendingWebhooks returns up to limit webhook outbox entries (all when
// limit ≤ 0), oldest first.
func PendingWebhooks(tx *bolt.Tx, limit int) ([]OutboxEntry, error) {
	var out []OutboxEntry
	c := tx.Bucket(bWebhookOutbox).Cursor()
	for k, v := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
		var e OutboxEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("decode webhook outbox entry %x: %w", k, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// PendingWebhooksCount returns the number of webhook outbox entries.
func PendingWebhooksCount(tx *bolt.Tx) uint64 {
	return getUint(tx.Bucket(bCounts), bWebhookOutbox)
}

// reopenFailedRun serves a requeue claim: the newest failed run of an
// enabled schedule goes back to claimed, so the same slot is delivered again
// with the same Idempotency-Key and a fresh retry budget. A schedule without
// a failed run in its ledger (pruned, or never failed) is refused.
func reopenFailedRun(tx *bolt.Tx, at time.Time, scheduleID string) ([]byte, int64, bool, error) {
	key, err := ScheduleKey(scheduleID)
	if err != nil {
		return nil, 0, false, nil
	}
	s, err := getScheduleByKey(tx, key)
	if errors.Is(err, ErrNotFound) || (err == nil && !s.Enabled) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	c := tx.Bucket(bRuns).Cursor()
	// Runs of a schedule are keyed by slot: start after its last one and
	// walk back to its newest failed run.
	k, v := c.Seek(concat(key, bytes.Repeat([]byte{0xff}, slotKeyLen)))
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, key); k, v = c.Prev() {
		var r Run
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, 0, false, fmt.Errorf("decode run %x: %w", k, err)
		}
		if r.State != RunFailed {
			continue
		}
		r.State, r.Kind, r.ClaimedAt, r.NextAttemptAt, r.RequeuedAfter = RunClaimed, RunKindRequeue, at, nil, len(r.Attempts)
		return key, r.Slot, true, putRun(tx, bytes.Clone(k), r)
	}
	return nil, 0, false, nil
}
