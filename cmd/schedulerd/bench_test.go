package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"

	"github.com/seedscheduler/schedulerd/cluster"
	"github.com/seedscheduler/schedulerd/fsm"
)

// Benchmarks of the replicated write path on a three-node loopback cluster.
//
//	go test -run '^$' -bench . -benchtime 5s ./cmd/schedulerd/
//
// Each sub-benchmark reports writes/s and p50/p99 latency; "raw" is
// raft.Apply on the leader with the same command, the floor the HTTP paths
// are compared with.

// benchCluster starts three in-process daemons with the production timing
// defaults and returns them once every member is registered.
func benchCluster(b *testing.B) []*daemon {
	b.Helper()
	specs := []nodeSpec{newSpec(b, "n1"), newSpec(b, "n2"), newSpec(b, "n3")}
	join := strings.Join([]string{specs[0].httpAddr, specs[1].httpAddr, specs[2].httpAddr}, ",")
	var ds []*daemon
	for _, s := range specs {
		args := []string{"-node-id", s.id, "-data-dir", s.dir, "-http-addr", s.httpAddr, "-raft-addr", s.raftAddr,
			"-bootstrap-expect", "3", "-join", join, "-log-level", "error"}
		cfg, err := ParseConfig(args, func(k string) string {
			if k == "SCHEDULERD_ADMIN_TOKEN" {
				return testToken
			}
			return ""
		}, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		d := &daemon{cfg: cfg, stdout: io.Discard, fatal: make(chan error, 1)}
		d.log = hclog.NewNullLogger()
		if err := d.start(context.Background()); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, d)
		b.Cleanup(d.shutdown)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		registered := 0
		for _, d := range ds {
			st, err := d.node.Status()
			if err == nil && st.LeaderID != "" {
				ok := true
				for _, m := range st.Members {
					ok = ok && m.APIAddr != ""
				}
				if ok && len(st.Members) == 3 {
					registered++
				}
			}
		}
		if registered == 3 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("cluster did not form within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ds
}

// latencies collects per-operation durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, elapsed time.Duration) { l.reportAs(b, elapsed, "writes/s") }

// reportAs reports the rate in unit and the latency percentiles; p99.9 is
// only meaningful with a few thousand samples, which the report's sample
// count lets a reader check.
func (l *latencies) reportAs(b *testing.B, elapsed time.Duration, unit string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	q := func(p float64) float64 {
		if len(l.d) == 0 {
			return 0
		}
		return float64(l.d[int(p*float64(len(l.d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(l.d))/elapsed.Seconds(), unit)
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(0.999), "p99.9-ms")
	b.ReportMetric(0, "ns/op")
}

// runWriters runs b.N operations split over n goroutines (closed loop: each
// goroutine sends its next request when the previous one is answered).
func runWriters(b *testing.B, n int, op func(i int) error) { runClosed(b, n, "writes/s", op) }

func runClosed(b *testing.B, n int, unit string, op func(i int) error) {
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	lat := &latencies{}
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := op(int(i)); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				lat.add(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d operations failed, first: %v", f, b.N, firstErr.Load())
	}
	lat.reportAs(b, elapsed, unit)
}

// runOpenLoop sends b.N operations at a fixed arrival rate, whatever the
// answers take, and measures each latency from the request's intended send
// time: a stalled server delays the requests queued behind it, and that
// delay counts (no coordinated omission). At most maxInFlight requests are
// outstanding; a request that finds them all busy waits, and its wait
// counts too. The run gives up grace after its last intended send time.
func runOpenLoop(b *testing.B, rate float64, maxInFlight int, grace time.Duration, op func(i int) error) {
	interval := time.Duration(float64(time.Second) / rate)
	lat := &latencies{}
	var failed, late atomic.Int64
	var firstErr atomic.Value
	jobs := make(chan int)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	deadline := start.Add(time.Duration(b.N)*interval + grace)
	for w := 0; w < maxInFlight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				intended := start.Add(time.Duration(i) * interval)
				if time.Now().After(deadline) {
					late.Add(1)
					continue
				}
				if err := op(i); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				lat.add(time.Since(intended))
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		// Pacing, not waiting for a condition: the schedule is the
		// workload.
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f, l := failed.Load(), late.Load(); f > 0 || l > 0 {
		b.Fatalf("%d of %d operations failed (first: %v), %d not sent within %v of their time", f, b.N, firstErr.Load(), l, grace)
	}
	b.ReportMetric(rate, "offered/s")
	lat.reportAs(b, elapsed, "writes/s")
}

func BenchmarkReplicatedWrites(b *testing.B) {
	ds := benchCluster(b)
	var leader *daemon
	var follower *daemon
	for _, d := range ds {
		if d.node.IsLeader() {
			leader = d
		} else if follower == nil {
			follower = d
		}
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	var seq atomic.Int64
	post := func(d *daemon) func(int) error {
		url := "http://" + d.cfg.HTTPAdvertise + "/api/v1/user/token/"
		return func(int) error {
			return benchRequest(hc, "POST", url, fmt.Sprintf(`{"email":"u%d@example.org"}`, seq.Add(1)), http.StatusCreated)
		}
	}
	raw := func(int) error {
		n := seq.Add(1)
		_, _, err := leader.node.ApplyCommand(context.Background(), fsm.CmdIssueToken, fsm.IssueTokenCmd{
			Username: fmt.Sprintf("u%d@example.org", n), Email: fmt.Sprintf("u%d@example.org", n),
			TokenDigest: []byte(fmt.Sprintf("%032d", n)), At: time.Now().UTC()})
		return err
	}
	// The same write as a raw schedule create: the floor of the schedule
	// create benchmarks (ProcessCreates).
	rawCreate := func(int) error {
		_, _, err := leader.node.ApplyCommand(context.Background(), fsm.CmdCreateSchedule,
			fsm.CreateScheduleCmd{Schedule: idleSchedule(time.Now().UTC())})
		return err
	}
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("raw/writers=%d", writers), func(b *testing.B) { runWriters(b, writers, raw) })
		b.Run(fmt.Sprintf("raw-create/writers=%d", writers), func(b *testing.B) { runWriters(b, writers, rawCreate) })
		b.Run(fmt.Sprintf("leader/writers=%d", writers), func(b *testing.B) { runWriters(b, writers, post(leader)) })
		b.Run(fmt.Sprintf("follower/writers=%d", writers), func(b *testing.B) { runWriters(b, writers, post(follower)) })
	}
}

// BenchmarkSchedules measures the schedule API at 100k stored schedules:
// a page of 1000, one schedule, a count (page_size=1), and creates through
// a follower at 64 clients next to raw raft.Apply of the same command.
//
//	go test -run '^$' -bench Schedules -benchtime 2000x ./cmd/schedulerd/
func BenchmarkSchedules(b *testing.B) {
	ds := benchCluster(b)
	var leader, follower *daemon
	for _, d := range ds {
		if d.node.IsLeader() {
			leader = d
		} else if follower == nil {
			follower = d
		}
	}
	newSchedule := func(n int64) fsm.Schedule {
		id, _ := uuid.NewV7()
		now := time.Now().UTC()
		return fsm.Schedule{ID: id.String(), CronDefinition: idleCron, Endpoint: fmt.Sprintf("http://127.0.0.1:9/hook%d", n%100),
			Payload: json.RawMessage(`{"message":"` + strings.Repeat("x", 180) + `"}`), Enabled: true,
			CreatedAt: now, UpdatedAt: now, CreatedBy: 1, UpdatedBy: 1}
	}
	var seq atomic.Int64
	raw := func(int) error {
		_, _, err := leader.node.ApplyCommand(context.Background(), fsm.CmdCreateSchedule,
			fsm.CreateScheduleCmd{Schedule: newSchedule(seq.Add(1))})
		return err
	}
	const stored = 100_000
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq.Load() < stored {
				if err := raw(0); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.Logf("loaded %d schedules in %v", seq.Load(), time.Since(start))

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	get := func(d *daemon, path string) func(int) error {
		url := "http://" + d.cfg.HTTPAdvertise + path
		return func(int) error { return benchRequest(hc, "GET", url, "", http.StatusOK) }
	}
	var one fsm.Schedule
	follower.node.FSM().View(func(tx *bolt.Tx) error {
		p, err := fsm.ListSchedules(tx, fsm.ScheduleFilter{}, nil, false, 1)
		if err == nil && len(p.Schedules) == 1 {
			one = p.Schedules[0]
		}
		return err
	})
	b.Run("page-1000", func(b *testing.B) { runWriters(b, 1, get(follower, "/api/v1/schedule/")) })
	b.Run("get-one", func(b *testing.B) { runWriters(b, 1, get(follower, "/api/v1/schedule/"+one.ID+"/")) })
	b.Run("count", func(b *testing.B) { runWriters(b, 1, get(follower, "/api/v1/schedule/?page_size=1&enabled=true")) })
	create := func(d *daemon) func(int) error {
		url := "http://" + d.cfg.HTTPAdvertise + "/api/v1/schedule/"
		body := idleCreateBody
		return func(int) error { return benchRequest(hc, "POST", url, body, http.StatusCreated) }
	}
	b.Run("create-raw/writers=64", func(b *testing.B) { runWriters(b, 64, raw) })
	b.Run("create-follower/writers=64", func(b *testing.B) { runWriters(b, 64, create(follower)) })
}

// idleCreateBody is the request body of a schedule create in the write
// benchmarks: a ~200-byte payload and a cron that does not fire in a run.
var idleCreateBody = `{"endpoint": "http://127.0.0.1:9/hook", "cron_definition": "` + idleCron + `", "payload": {"message": "` + strings.Repeat("x", 180) + `"}}`

// fireSink counts deliveries and records each one's lateness.
type fireSink struct {
	mu    sync.Mutex
	late  []time.Duration
	keys  map[string]int
	fires []fire
	srv   *httptest.Server
}

// fire is one delivery: its slot and when it arrived.
type fire struct{ slot, at time.Time }

func newFireSink(b *testing.B) *fireSink {
	s := &fireSink{keys: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		io.Copy(io.Discard, r.Body)
		slot, err := time.Parse(time.RFC3339, r.Header.Get("X-Scheduler-Scheduled-At"))
		s.mu.Lock()
		if err == nil {
			s.late = append(s.late, at.Sub(slot))
			s.fires = append(s.fires, fire{slot, at})
		}
		s.keys[r.Header.Get("Idempotency-Key")]++
		s.mu.Unlock()
	}))
	b.Cleanup(s.srv.Close)
	return s
}

func (s *fireSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.late)
}

// lateQuantiles are the fire lateness percentiles reported: enough points
// for schedbench to draw the lateness CDF.
var lateQuantiles = []struct {
	name string
	p    float64
}{{"p10", 0.10}, {"p25", 0.25}, {"p50", 0.50}, {"p75", 0.75}, {"p90", 0.90}, {"p99", 0.99}, {"p99.9", 0.999}, {"max", 1}}

func (s *fireSink) report(b *testing.B, prefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.late) == 0 {
		b.Fatal("no deliveries to report on")
	}
	sort.Slice(s.late, func(i, j int) bool { return s.late[i] < s.late[j] })
	for _, q := range lateQuantiles {
		b.ReportMetric(float64(s.late[int(q.p*float64(len(s.late)-1))].Microseconds())/1000, prefix+q.name+"-late-ms")
	}
	dup := 0
	for _, n := range s.keys {
		dup += n - 1
	}
	b.ReportMetric(float64(dup), prefix+"duplicates")
}

// envInts reads a comma-separated list of counts from the environment
// (sizes of a benchmark's sub-benchmarks), def when unset.
func envInts(b *testing.B, name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			b.Fatalf("%s=%q: want comma-separated counts", name, v)
		}
		out = append(out, n)
	}
	return out
}

// envDuration reads a duration from the environment, def when unset.
func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}

// loadSchedules creates n schedules with raw raft applies on the leader of
// ds (64 writers), each from mk. On a busy machine the leader can lose its
// lease under this load: a create refused or cut off by a leadership change
// is retried on the new leader with the same schedule, and a conflict on
// such a retry means the first attempt was applied. Bounded by n creates
// and a deadline of a minute plus one second per 500 schedules.
func loadSchedules(b *testing.B, ds []*daemon, n int, mk func(i int) fsm.Schedule) {
	deadline := time.Now().Add(time.Minute + time.Duration(n)*2*time.Millisecond)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				s := mk(i)
				for retry := false; ; retry = true {
					leader := leaderOfBench(ds)
					if leader == nil {
						if time.Now().After(deadline) {
							b.Errorf("no leader to load schedule %d of %d", i, n)
							return
						}
						time.Sleep(10 * time.Millisecond)
						continue
					}
					_, _, err := leader.node.ApplyCommand(context.Background(), fsm.CmdCreateSchedule, fsm.CreateScheduleCmd{Schedule: s})
					if err == nil || (retry && errors.Is(err, fsm.ErrConflict)) {
						break
					}
					if !(errors.Is(err, cluster.ErrNotLeader) || errors.Is(err, cluster.ErrLeadershipLost)) || time.Now().After(deadline) {
						b.Errorf("load schedule %d of %d: %v", i, n, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

// idleCron names a second in 2099: schedules with it are stored, indexed
// and planned like any other but never fire during a run, so a write
// benchmark measures writes only and nothing leaves the machine.
const idleCron = "0 0 1 1 * 2099"

// idleSchedule is a schedule that never fires during a run, pointed at the
// discard port of the loopback interface all the same.
func idleSchedule(created time.Time) fsm.Schedule {
	s := benchSchedule("http://127.0.0.1:9/hook", created)
	s.CronDefinition = idleCron
	return s
}

func benchSchedule(endpoint string, created time.Time) fsm.Schedule {
	id, _ := uuid.NewV7()
	return fsm.Schedule{ID: id.String(), Endpoint: endpoint, Enabled: true, CreatedAt: created, UpdatedAt: created,
		Payload: json.RawMessage(`{"message":"` + strings.Repeat("x", 180) + `"}`)}
}

func leaderOfBench(ds []*daemon) *daemon {
	for _, d := range ds {
		if d.node.IsLeader() {
			return d
		}
	}
	return nil
}

// BenchmarkFireAligned: N schedules all due the same second (a 7-field cron
// naming that second) on a 3-node cluster; reports the lateness of every
// delivery at a local sink. N from SCHEDULERD_BENCH_FIRE_SCHEDULES
// (default 1000,10000).
//
//	go test -run '^$' -bench FireAligned -benchtime 1x ./cmd/schedulerd/
func BenchmarkFireAligned(b *testing.B) {
	for _, n := range envInts(b, "SCHEDULERD_BENCH_FIRE_SCHEDULES", []int{1000, 10_000}) {
		b.Run(fmt.Sprintf("schedules=%d", n), func(b *testing.B) {
			for range b.N {
				fireAligned(b, n)
			}
		})
	}
}

func fireAligned(b *testing.B, n int) {
	ds := benchCluster(b)
	sk := newFireSink(b)
	created := time.Now().UTC()
	// Room to load them all first: raw creates run at a few thousand per
	// second on the project's machine, so one second per thousand is ample.
	due := created.Add(5*time.Second + time.Duration(n)*time.Millisecond).Truncate(time.Second).Add(time.Second)
	cron := fmt.Sprintf("%d %d %d %d %d * %d", due.Second(), due.Minute(), due.Hour(), due.Day(), int(due.Month()), due.Year())
	loadSchedules(b, ds, n, func(i int) fsm.Schedule {
		s := benchSchedule(sk.srv.URL+"/aligned", created)
		s.CronDefinition = cron
		return s
	})
	if time.Now().After(due) {
		b.Fatalf("loading %d schedules took past the due second", n)
	}
	deadline := due.Add(60*time.Second + time.Duration(n)*time.Millisecond)
	for sk.count() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := sk.count(); got < n {
		b.Fatalf("%d of %d delivered by %v after the due second", got, n, deadline.Sub(due))
	}
	sk.report(b, "")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkFireSustained: N schedules spread evenly over the seconds of a
// period P = N/2000 s (at least 1 s), each firing every P seconds, so the
// cluster delivers 2,000 fires/s (N/s below 2,000 schedules); reports the
// achieved rate and lateness over a window of SCHEDULERD_BENCH_FIRE_WINDOW
// (default 60s) after every schedule has fired once. N from
// SCHEDULERD_BENCH_FIRE_SCHEDULES (default 1000,10000).
//
//	go test -run '^$' -bench FireSustained -benchtime 1x ./cmd/schedulerd/
func BenchmarkFireSustained(b *testing.B) {
	const rate = 2000
	window := envDuration(b, "SCHEDULERD_BENCH_FIRE_WINDOW", 60*time.Second)
	for _, n := range envInts(b, "SCHEDULERD_BENCH_FIRE_SCHEDULES", []int{1000, 10_000}) {
		b.Run(fmt.Sprintf("schedules=%d", n), func(b *testing.B) {
			for range b.N {
				fireSustained(b, n, (n+rate-1)/rate, window)
			}
		})
	}
}

func fireSustained(b *testing.B, n, period int, window time.Duration) {
	ds := benchCluster(b)
	sk := newFireSink(b)
	created := time.Now().UTC()
	anchor := created.Truncate(time.Second)
	loadSchedules(b, ds, n, func(i int) fsm.Schedule {
		s := benchSchedule(sk.srv.URL+"/sustained", created)
		s.IntervalDefinition = fmt.Sprintf("%d seconds", period)
		s.IntervalAnchor = anchor.Add(-time.Duration(i%period) * time.Second)
		return s
	})
	// Measure a steady window once every schedule has had a slot, so that
	// first-slot catch-up after the load is not in it.
	warm := time.Now().Add(time.Duration(period)*time.Second + 3*time.Second)
	for time.Now().Before(warm) {
		time.Sleep(100 * time.Millisecond)
	}
	sk.mu.Lock()
	sk.late = sk.late[:0]
	sk.mu.Unlock()
	start := time.Now()
	for time.Since(start) < window {
		time.Sleep(100 * time.Millisecond)
	}
	got := sk.count()
	b.ReportMetric(float64(got)/time.Since(start).Seconds(), "fires/s")
	b.ReportMetric(float64(n)/float64(period), "due/s")
	sk.report(b, "")
	b.ReportMetric(0, "ns/op")
}

// benchRequest sends one authenticated request and checks its status.
func benchRequest(hc *http.Client, method, url, body string, want int) error {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Token "+testToken)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d", method, url, resp.StatusCode, want)
	}
	return nil
}
