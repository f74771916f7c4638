package executor

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"

	"github.com/seedscheduler/schedulerd/cluster"
	"github.com/seedscheduler/schedulerd/executor/slots"
	"github.com/seedscheduler/schedulerd/fsm"
)

// Options configures an Executor.
type Options struct {
	Node      *cluster.Node
	Deliverer *Deliverer
	Reporter  *Reporter // nil: no seed metrics URL
	Metrics   *Metrics  // nil: no Prometheus metrics
	Logger    hclog.Logger
	// Now is the clock; time.Now by default. Slot maths never reads it.
	Now func() time.Time
	// CatchUpWindow: slots that fell due while no leader could fire are
	// fired late within it; older ones are recorded as missed.
	CatchUpWindow time.Duration
	Retain        int // runs kept per schedule
	Retry         RetryPolicy
	Workers       int // concurrent deliveries
	MaxClaim      int // slots per claim command
	WebhookToken  string
}

// Executor is the leader-only service that fires schedules.
type Executor struct {
	cfg Options
	log hclog.Logger
	f   *fsm.FSM

	mu      sync.Mutex
	changed map[string]bool // schedule ids touched since the loop last looked
	outbox  bool            // webhook outbox has new entries
	reload  bool            // the whole state was replaced (snapshot restore)
	wake    chan struct{}
}

// New builds an executor and subscribes it to FSM changes. Register it with
// cluster.Node.AddLeaderService.
func New(cfg Options) *Executor {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CatchUpWindow <= 0 {
		cfg.CatchUpWindow = 10 * time.Minute
	}
	if cfg.Retain <= 0 {
		cfg.Retain = 100
	}
	if cfg.Retry.Attempts == 0 {
		cfg.Retry = DefaultRetryPolicy()
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 256
	}
	if cfg.MaxClaim <= 0 {
		cfg.MaxClaim = 4096
	}
	e := &Executor{cfg: cfg, log: cfg.Logger.Named("executor"), f: cfg.Node.FSM(),
		changed: map[string]bool{}, wake: make(chan struct{}, 1)}
	e.f.Watch(e.onChange)
	return e
}

// Name implements cluster.LeaderService.
func (e *Executor) Name() string { return "executor" }

// onChange runs on the FSM's apply goroutine: it only records what changed.
func (e *Executor) onChange(c fsm.Change) {
	e.mu.Lock()
	if c.Restored {
		e.reload = true
	}
	for _, eff := range c.Commands {
		for _, k := range eff.Keys {
			if k == fsm.OutboxEffectKey {
				e.outbox = true
				continue
			}
			// Our own claims are followed by an explicit refresh.
			if eff.Type == fsm.CmdCreateSchedule || eff.Type == fsm.CmdUpdateSchedule || eff.Type == fsm.CmdDeleteSchedule {
				e.changed[k] = true
			}
			if eff.Type == fsm.CmdRequeueFailedTasks {
				e.changed[requeueKey] = true
			}
		}
	}
	e.mu.Unlock()
	e.poke()
}

// poke wakes the loop without blocking.
func (e *Executor) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

const requeueKey = "\x00requeue"

// takeChanges returns and clears what changed since the last call.
func (e *Executor) takeChanges() (ids []string, outbox, reload bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.changed {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	clear(e.changed)
	outbox, reload = e.outbox, e.reload
	e.outbox, e.reload = false, false
	return ids, outbox, reload
}

// entry is one schedule in the heap of next slots.
type entry struct {
	id    string
	at    int64 // unix second of the next slot
	spec  slots.Spec
	index int
}

type slotHeap []*entry

func (h slotHeap) Len() int { return len(h) }
func (h slotHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].id < h[j].id
}
func (h slotHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *slotHeap) Push(x any)   { e := x.(*entry); e.index = len(*h); *h = append(*h, e) }
func (h *slotHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}

// retry is a delivery attempt waiting for its time.
type retry struct {
	id      string
	slot    int64
	attempt int
	at      time.Time
	// base is the number of attempts made before a requeue re-opened the
	// run: the retry budget counts from there.
	base int
}

type retryHeap []retry

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(retry)) }
func (h *retryHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}

// term is the executor's state for one leadership term; nothing survives it.
type term struct {
	e       *Executor
	ctx     context.Context
	heap    slotHeap
	byID    map[string]*entry
	retries retryHeap
	crons   map[string]*slots.Cron
	sem     chan struct{}
	wg      sync.WaitGroup
	results chan fsm.Outcome
	retryCh chan retry
	flushed chan struct{}
	loading bool
	// outboxBusy: a batch of webhook notifications is being delivered.
	outboxBusy atomic.Bool
}

// RunLeader implements cluster.LeaderService: it runs until ctx ends.
func (e *Executor) RunLeader(ctx context.Context) {
	t := &term{e: e, ctx: ctx, byID: map[string]*entry{}, crons: map[string]*slots.Cron{},
		sem: make(chan struct{}, e.cfg.Workers), results: make(chan fsm.Outcome, 4096), retryCh: make(chan retry, 4096),
		flushed: make(chan struct{})}
	e.takeChanges() // the load below reads everything
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.LeaderChanges.Inc()
	}
	go t.recordLoop()
	if err := t.load(); err != nil {
		e.log.Error("cannot load schedules; leader-only work stops for this term", "error", err)
	} else {
		t.loop()
	}
	t.wg.Wait()
	close(t.results)
	<-t.flushed
	e.log.Info("executor stopped")
}

func (t *term) now() time.Time { return t.e.cfg.Now() }

// load builds the heap from the FSM and re-sends what an earlier leader left
// in flight: claimed slots with the same key and the next attempt number,
// retries at their time.
func (t *term) load() error {
	var pending []fsm.Run
	t.loading = true
	defer func() { t.loading = false }()
	err := t.e.f.View(func(tx *bolt.Tx) error {
		if err := fsm.ForEachSchedule(tx, func(s fsm.Schedule) error {
			t.upsert(s)
			return nil
		}); err != nil {
			return err
		}
		var err error
		pending, err = fsm.PendingRuns(tx)
		t.requeue(tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("load schedules: %w", err)
	}
	heap.Init(&t.heap)
	now := t.now()
	for _, r := range pending {
		// A slot claimed ahead of its time is sent at its time.
		at := maxTime(now, time.Unix(r.Slot, 0))
		if r.State == fsm.RunRetrying && r.NextAttemptAt != nil && r.NextAttemptAt.After(now) {
			at = *r.NextAttemptAt
		}
		heap.Push(&t.retries, retry{id: r.ScheduleID, slot: r.Slot, attempt: len(r.Attempts) + 1, at: at, base: r.RequeuedAfter})
	}
	t.e.log.Info("executor started", "schedules", len(t.heap), "in_flight", len(pending))
	return nil
}

// spec builds a schedule's firing rule, sharing parsed crons between
// schedules with the same definition.
func (t *term) spec(s fsm.Schedule) slots.Spec {
	var spec slots.Spec
	if s.CronDefinition != "" {
		c, ok := t.crons[s.CronDefinition]
		if !ok {
			c, _ = slots.ParseCron(s.CronDefinition)
			t.crons[s.CronDefinition] = c
		}
		spec.Cron = c
	}
	if s.IntervalDefinition != "" {
		if iv, err := slots.ParseInterval(s.IntervalDefinition); err == nil {
			spec.Interval = &iv
			spec.Anchor = s.IntervalAnchor
		}
	}
	return spec
}

// upsert places a schedule in the heap at its next slot, or takes it out
// when it will not fire.
func (t *term) upsert(s fsm.Schedule) {
	old := t.byID[s.ID]
	if !s.Enabled || capped(s) {
		t.remove(s.ID)
		return
	}
	spec := t.spec(s)
	at, ok := nextSlot(spec, firstAfter(s))
	if !ok {
		t.remove(s.ID)
		return
	}
	if old != nil {
		old.spec, old.at = spec, at
		heap.Fix(&t.heap, old.index)
		return
	}
	e := &entry{id: s.ID, at: at, spec: spec, index: len(t.heap)}
	t.byID[s.ID] = e
	if t.loading {
		t.heap = append(t.heap, e) // heap.Init follows the load
		return
	}
	heap.Push(&t.heap, e)
}

func (t *term) remove(id string) {
	if e, ok := t.byID[id]; ok {
		heap.Remove(&t.heap, e.index)
		delete(t.byID, id)
	}
}

// refresh re-reads changed schedules from the FSM.
func (t *term) refresh(ids []string) {
	_ = t.e.f.View(func(tx *bolt.Tx) error {
		for _, id := range ids {
			if id == requeueKey {
				t.requeue(tx)
				continue
			}
			s, err := fsm.GetSchedule(tx, id)
			if errors.Is(err, fsm.ErrNotFound) {
				t.remove(id)
				continue
			}
			if err == nil {
				t.upsert(s)
			}
		}
		return nil
	})
}

// loop wakes at the next slot, on FSM changes and when retries are due.
func (t *term) loop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	t.deliverOutbox()
	for {
		ids, outbox, reload := t.e.takeChanges()
		if reload {
			t.heap, t.byID, t.retries = nil, map[string]*entry{}, nil
			if err := t.load(); err != nil {
				t.e.log.Error("reload after restore failed", "error", err)
				return
			}
		} else if len(ids) > 0 {
			t.refresh(ids)
		}
		if outbox {
			t.deliverOutbox()
		}
		now := t.now()
		t.fireDue(now)
		t.retryDue(now)

		wait := time.Hour
		if len(t.heap) > 0 {
			wait = min(wait, time.Unix(t.heap[0].at, 0).Add(-claimAhead).Sub(now))
		}
		if len(t.retries) > 0 {
			wait = min(wait, t.retries[0].at.Sub(now))
		}
		wait = max(wait, 0)
		timer.Reset(wait)
		select {
		case <-t.ctx.Done():
			return
		case <-t.e.wake:
		case r := <-t.retryCh:
			heap.Push(&t.retries, r)
		case <-timer.C:
		}
		// Drain retries scheduled by finished deliveries.
		for drained := false; !drained; {
			select {
			case r := <-t.retryCh:
				heap.Push(&t.retries, r)
			default:
				drained = true
			}
		}
	}
}

// claimAhead is how long before its time a slot is claimed. Committing a
// claim of thousands of slots takes a few hundred milliseconds on a busy
// cluster; claiming ahead takes that off the lateness. A failover in between
// is harmless: the new leader finds the claim pending and sends the slot at
// its time with the same key.
const claimAhead = 700 * time.Millisecond

// fireDue claims every slot due within claimAhead (in commands of at most
// MaxClaim slots) and starts or schedules the deliveries of the accepted ones.
func (t *term) fireDue(now time.Time) {
	horizon := now.Add(claimAhead).Unix()
	for len(t.heap) > 0 && t.heap[0].at <= horizon {
		var claims []fsm.Claim
		var missed []fsm.Claim
		var batch []*entry
		for len(t.heap) > 0 && t.heap[0].at <= horizon && len(claims) < t.e.cfg.MaxClaim {
			e := heap.Pop(&t.heap).(*entry)
			delete(t.byID, e.id)
			// The claims move LastSlot; the refresh below re-reads the
			// schedules for their next slot, so plan's own is not needed.
			fire, miss, _, _ := plan(e.spec, e.at, horizon, t.e.cfg.CatchUpWindow+claimAhead)
			for _, s := range fire {
				claims = append(claims, fsm.Claim{ScheduleID: e.id, Slot: s})
			}
			if len(miss) > t.e.cfg.Retain {
				miss = miss[len(miss)-t.e.cfg.Retain:]
			}
			for _, s := range miss {
				missed = append(missed, fsm.Claim{ScheduleID: e.id, Slot: s})
			}
			batch = append(batch, e)
		}
		if len(missed) > 0 {
			if t.e.cfg.Metrics != nil {
				t.e.cfg.Metrics.Missed.Add(float64(len(missed)))
			}
			t.apply(fsm.CmdRecordMissed, fsm.RecordMissedCmd{At: now, Retain: t.e.cfg.Retain, Missed: missed})
		}
		resp, err := t.apply(fsm.CmdClaimSlots, fsm.ClaimSlotsCmd{At: now, Retain: t.e.cfg.Retain, Claims: claims})
		if err != nil {
			// Not leader any more, or the claim failed: put the schedules
			// back untouched; a new leader derives the same slots.
			for _, e := range batch {
				t.byID[e.id] = e
				heap.Push(&t.heap, e)
			}
			if t.ctx.Err() == nil {
				t.e.log.Warn("claiming slots failed; retrying", "slots", len(claims), "error", err)
				sleep(t.ctx, 100*time.Millisecond) // the slots are due: retry soon, without spinning
			}
			return
		}
		res, _ := resp.(fsm.ClaimResult)
		refused := map[string]int64{}
		for i, c := range claims {
			if i >= len(res.Accepted) || !res.Accepted[i] {
				refused[c.ScheduleID] = max(refused[c.ScheduleID], c.Slot)
				continue
			}
			r := retry{id: c.ScheduleID, slot: c.Slot, attempt: 1, at: time.Unix(c.Slot, 0)}
			if c.Slot > now.Unix() {
				heap.Push(&t.retries, r) // sent at its time
			} else {
				t.deliver(r, now)
			}
		}
		// The claim changed LastSlot (and maybe disabled the schedule):
		// re-read those schedules rather than trusting the plan.
		ids := make([]string, 0, len(batch))
		for _, e := range batch {
			ids = append(ids, e.id)
		}
		t.refresh(ids)
		// A schedule whose slot was refused and that still wants the same
		// slot would be claimed again at once, forever: park it until the
		// next change to it.
		for id, slot := range refused {
			if e := t.byID[id]; e != nil && e.at <= slot {
				t.e.log.Warn("claim refused; schedule parked until it changes", "schedule", id, "slot", slot)
				t.remove(id)
			}
		}
	}
}

func (t *term) apply(ct fsm.CommandType, payload any) (any, error) {
	ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
	defer cancel()
	resp, _, err := t.e.cfg.Node.ApplyCommand(ctx, ct, payload)
	return resp, err
}

func (t *term) retryDue(now time.Time) {
	for len(t.retries) > 0 && !t.retries[0].at.After(now) {
		r := heap.Pop(&t.retries).(retry)
		t.deliver(r, now)
	}
}

// deliver runs one attempt on the worker pool.
func (t *term) deliver(r retry, now time.Time) {
	select {
	case t.sem <- struct{}{}:
	case <-t.ctx.Done():
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer func() { <-t.sem }()
		t.attempt(r)
	}()
}

func (t *term) attempt(r retry) {
	e := t.e
	id, slot, n := r.id, r.slot, r.attempt
	var s fsm.Schedule
	err := e.f.View(func(tx *bolt.Tx) (err error) {
		s, err = fsm.GetSchedule(tx, id)
		return err
	})
	if err != nil {
		return // deleted: its runs went with it
	}
	if !s.Enabled && !capped(s) {
		// Disabled by a user after the claim (which may have been made
		// ahead of the slot): nothing is sent, and the run is closed.
		select {
		case t.results <- fsm.Outcome{ScheduleID: id, Slot: slot, State: fsm.RunCancelled}:
		case <-t.ctx.Done():
		}
		return
	}
	started := t.now()
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.InFlight.Inc()
	}
	res := e.cfg.Deliverer.Deliver(t.ctx, Delivery{ScheduleID: id, Slot: time.Unix(slot, 0).UTC(), Attempt: n,
		Endpoint: s.Endpoint, AuthToken: s.AuthToken, Payload: s.Payload})
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.InFlight.Dec()
	}
	if res.Kind == KindCancelled {
		return // leadership lost: the next leader re-sends this slot
	}
	lateness := started.Sub(time.Unix(slot, 0))
	a := fsm.Attempt{N: n, At: started.UTC(), Status: res.Status, LatencyMs: ms(res.Latency), LatenessMs: ms(lateness)}
	out := fsm.Outcome{ScheduleID: id, Slot: slot, Attempt: a}
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.observe(res, n, lateness)
	}
	switch {
	case res.OK():
		out.State = fsm.RunDelivered
	case n-r.base < e.cfg.Retry.Attempts:
		out.State = fsm.RunRetrying
		a.Error = res.Err.Error()
		next := started.Add(e.cfg.Retry.Delay(n, rand.Float64())).UTC()
		out.NextAttemptAt = &next
		out.Attempt = a
		select {
		case t.retryCh <- retry{id: id, slot: slot, attempt: n + 1, at: next, base: r.base}:
		case <-t.ctx.Done():
		}
	default:
		out.State = fsm.RunFailed
		a.Error = res.Err.Error()
		out.Attempt = a
		out.TaskID = uuid.NewString()
		out.Reason = res.Err.Error()
		if e.cfg.Metrics != nil {
			e.cfg.Metrics.Failed.Inc()
		}
	}
	if !res.OK() {
		e.cfg.Reporter.Report(res.MetricName())
	}
	select {
	case t.results <- out:
	case <-t.ctx.Done():
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// recordLinger is how long outcomes are gathered before they are recorded.
const recordLinger = 50 * time.Millisecond

// recordLoop batches outcomes into RecordOutcomes commands. An outcome that
// cannot be committed (leadership lost) is dropped: the run stays pending
// and the next leader re-sends it with the same key.
func (t *term) recordLoop() {
	defer close(t.flushed)
	const maxBatch = 2048
	var batch []fsm.Outcome
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if _, err := t.apply(fsm.CmdRecordOutcomes, fsm.RecordOutcomesCmd{Outcomes: batch}); err != nil && t.ctx.Err() == nil {
			t.e.log.Warn("recording delivery outcomes failed", "outcomes", len(batch), "error", err)
		}
		batch = batch[:0]
	}
	for {
		o, ok := <-t.results
		if !ok {
			flush()
			return
		}
		batch = append(batch, o)
		// Gather for a moment, then commit in one command: deliveries come
		// in bursts at second boundaries, and one large command costs the
		// cluster far less than many small ones while the burst is sent.
		linger := time.NewTimer(recordLinger)
	gather:
		for len(batch) < maxBatch {
			select {
			case o, ok := <-t.results:
				if !ok {
					linger.Stop()
					flush()
					return
				}
				batch = append(batch, o)
			case <-linger.C:
				break gather
			}
		}
		linger.Stop()
		flush()
	}
}

// requeue re-delivers each failed schedule once per pending requeue request.
func (t *term) requeue(tx *bolt.Tx) {
	reqs, err := fsm.PendingRequeues(tx)
	if err != nil || len(reqs) == 0 {
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.runRequeues(reqs)
	}()
}

func (t *term) runRequeues(reqs []fsm.RequeueRequest) {
	for _, req := range reqs {
		var ids []string
		_ = t.e.f.View(func(tx *bolt.Tx) error {
			ids = fsm.FailedScheduleIDs(tx, req.MaxTaskID)
			return nil
		})
		var claims []fsm.Claim
		for _, id := range ids {
			claims = append(claims, fsm.Claim{ScheduleID: id, Requeue: true})
		}
		now := t.now()
		if len(claims) > 0 {
			resp, err := t.apply(fsm.CmdClaimSlots, fsm.ClaimSlotsCmd{At: now, Retain: t.e.cfg.Retain, Claims: claims})
			if err != nil {
				return
			}
			res, _ := resp.(fsm.ClaimResult)
			for i, c := range claims {
				if i >= len(res.Accepted) || !res.Accepted[i] {
					continue
				}
				// The failed run is re-opened: same slot and key, attempts
				// numbered on from its history.
				var run fsm.Run
				err := t.e.f.View(func(tx *bolt.Tx) (err error) {
					run, err = fsm.GetRun(tx, c.ScheduleID, res.Slots[i])
					return err
				})
				if err == nil {
					t.deliver(retry{id: c.ScheduleID, slot: run.Slot, attempt: len(run.Attempts) + 1, base: run.RequeuedAfter}, now)
				}
			}
		}
		if _, err := t.apply(fsm.CmdFinishRequeue, fsm.FinishRequeueCmd{ID: req.ID, ScheduleIDs: ids}); err != nil {
			return
		}
	}
}

// deliverOutbox sends pending schedule.added notifications, one batch at a
// time: a batch still in flight is not read again (that would send twice);
// when it finishes, the outbox is looked at once more.
func (t *term) deliverOutbox() {
	if !t.outboxBusy.CompareAndSwap(false, true) {
		t.e.mu.Lock()
		t.e.outbox = true
		t.e.mu.Unlock()
		return
	}
	var entries []fsm.OutboxEntry
	hooks := map[uint64]fsm.Webhook{}
	schedules := map[string]fsm.Schedule{}
	_ = t.e.f.View(func(tx *bolt.Tx) error {
		var err error
		entries, err = fsm.PendingWebhooks(tx, 1000)
		for _, en := range entries {
			if h, err := fsm.GetWebhook(tx, en.HookID); err == nil {
				hooks[en.HookID] = h
			}
			if s, err := fsm.GetSchedule(tx, en.ScheduleID); err == nil {
				schedules[en.ScheduleID] = s
			}
		}
		return err
	})
	if len(entries) == 0 {
		t.outboxBusy.Store(false)
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer func() {
			t.outboxBusy.Store(false)
			t.e.mu.Lock()
			t.e.outbox = true
			t.e.mu.Unlock()
			t.e.poke()
		}()
		var done []uint64
		for _, en := range entries {
			h, okH := hooks[en.HookID]
			s, okS := schedules[en.ScheduleID]
			if okH && okS {
				data, _ := json.Marshal(webhookData(s))
				for n := 1; n <= t.e.cfg.Retry.Attempts; n++ {
					res := t.e.cfg.Deliverer.DeliverWebhook(t.ctx, h.ID, h.Event, h.Target, data, t.e.cfg.WebhookToken)
					if res.OK() || res.Kind == KindCancelled {
						break
					}
					t.e.log.Warn("webhook delivery failed", "hook", h.ID, "attempt", n, "error", res.Err)
					if n == t.e.cfg.Retry.Attempts || !sleep(t.ctx, t.e.cfg.Retry.Delay(n, rand.Float64())) {
						break
					}
				}
			}
			if t.ctx.Err() != nil {
				break
			}
			done = append(done, en.ID)
		}
		if len(done) > 0 {
			t.apply(fsm.CmdWebhookDone, fsm.WebhookDoneCmd{IDs: done})
		}
	}()
}

func sleep(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// webhookData is the schedule as hooks receive it: the API item without
// auth_token (and without links, which need a request to be absolute).
func webhookData(s fsm.Schedule) map[string]any {
	var freq any
	if s.Frequency != nil {
		freq = *s.Frequency
	}
	str := func(v string) any {
		if v == "" {
			return nil
		}
		return v
	}
	tm := func(v *time.Time) any {
		if v == nil {
			return nil
		}
		return v.UTC().Format(time.RFC3339Nano)
	}
	created, updated := s.CreatedAt, s.UpdatedAt
	return map[string]any{
		"id": s.ID, "frequency": freq, "cron_definition": str(s.CronDefinition),
		"interval_definition": str(s.IntervalDefinition), "endpoint": s.Endpoint, "payload": s.Payload,
		"next_send_at": tm(s.NextSendAt), "enabled": s.Enabled, "created_at": tm(&created), "updated_at": tm(&updated),
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// capped: the schedule has fired as often as its frequency allows. Such a
// schedule never fires again, even if re-enabled (the FSM refuses its
// claims), so it stays out of the heap.
func capped(s fsm.Schedule) bool {
	return s.Frequency != nil && s.Triggered >= *s.Frequency
}
