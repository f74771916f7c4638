package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"

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

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	q := func(p float64) float64 {
		if len(l.d) == 0 {
			return 0
		}
		return float64(l.d[int(p*float64(len(l.d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(l.d))/elapsed.Seconds(), "writes/s")
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// runWriters runs b.N operations split over n goroutines.
func runWriters(b *testing.B, n int, op func(i int) error) {
	var next atomic.Int64
	var failed atomic.Int64
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
		b.Fatalf("%d of %d writes failed", f, b.N)
	}
	lat.report(b, elapsed)
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
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("raw/writers=%d", writers), func(b *testing.B) { runWriters(b, writers, raw) })
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
		return fsm.Schedule{ID: id.String(), CronDefinition: "*/5 * * * *", Endpoint: fmt.Sprintf("http://e%d.example.org/hook", n%100),
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
		body := `{"endpoint": "http://e1.example.org/hook", "cron_definition": "*/5 * * * *", "payload": {"message": "` + strings.Repeat("x", 180) + `"}}`
		return func(int) error { return benchRequest(hc, "POST", url, body, http.StatusCreated) }
	}
	b.Run("create-raw/writers=64", func(b *testing.B) { runWriters(b, 64, raw) })
	b.Run("create-follower/writers=64", func(b *testing.B) { runWriters(b, 64, create(follower)) })
}

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

func (s *fireSink) report(b *testing.B, prefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sort.Slice(s.late, func(i, j int) bool { return s.late[i] < s.late[j] })
	q := func(p float64) float64 { return float64(s.late[int(p*float64(len(s.late)-1))].Milliseconds()) }
	b.ReportMetric(q(0.5), prefix+"p50-late-ms")
	b.ReportMetric(q(0.99), prefix+"p99-late-ms")
	b.ReportMetric(q(1), prefix+"max-late-ms")
	dup := 0
	for _, n := range s.keys {
		dup += n - 1
	}
	b.ReportMetric(float64(dup), prefix+"duplicates")
}

// loadSchedules creates n schedules on the leader with raw raft applies (64
// writers), each from mk.
func loadSchedules(b *testing.B, leader *daemon, n int, mk func(i int) fsm.Schedule) {
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
				if _, _, err := leader.node.ApplyCommand(context.Background(), fsm.CmdCreateSchedule, fsm.CreateScheduleCmd{Schedule: mk(i)}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
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
// delivery at a local sink and the time until the last one arrived.
//
//	go test -run '^$' -bench FireAligned -benchtime 1x ./cmd/schedulerd/
func BenchmarkFireAligned(b *testing.B) {
	const n = 10_000
	for range b.N {
		ds := benchCluster(b)
		leader := leaderOfBench(ds)
		sk := newFireSink(b)
		created := time.Now().UTC()
		due := created.Add(20 * time.Second).Truncate(time.Second)
		cron := fmt.Sprintf("%d %d %d %d %d * %d", due.Second(), due.Minute(), due.Hour(), due.Day(), int(due.Month()), due.Year())
		loadSchedules(b, leader, n, func(i int) fsm.Schedule {
			s := benchSchedule(sk.srv.URL+"/aligned", created)
			s.CronDefinition = cron
			return s
		})
		if time.Now().After(due) {
			b.Fatalf("loading %d schedules took past the due second", n)
		}
		deadline := due.Add(60 * time.Second)
		for sk.count() < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := sk.count(); got < n {
			b.Fatalf("%d of %d delivered within 60 s of the due second", got, n)
		}
		sk.report(b, "")
		b.ReportMetric(0, "ns/op")
	}
}

// BenchmarkFireSustained: schedules firing every second so that the
// cluster delivers `rate` fires/s for `dur`; reports the achieved rate and
// lateness.
//
//	go test -run '^$' -bench FireSustained -benchtime 1x ./cmd/schedulerd/
func BenchmarkFireSustained(b *testing.B) {
	const rate = 2000
	const dur = 60 * time.Second
	for range b.N {
		ds := benchCluster(b)
		leader := leaderOfBench(ds)
		sk := newFireSink(b)
		created := time.Now().UTC()
		loadSchedules(b, leader, rate, func(i int) fsm.Schedule {
			s := benchSchedule(sk.srv.URL+"/sustained", created)
			s.IntervalDefinition = "1 seconds"
			s.IntervalAnchor = created
			return s
		})
		// Measure a steady window after the warm-up.
		time.Sleep(3 * time.Second)
		sk.mu.Lock()
		sk.late = sk.late[:0]
		sk.mu.Unlock()
		start := time.Now()
		for time.Since(start) < dur {
			time.Sleep(100 * time.Millisecond)
		}
		got := sk.count()
		b.ReportMetric(float64(got)/time.Since(start).Seconds(), "fires/s")
		sk.report(b, "")
		b.ReportMetric(0, "ns/op")
	}
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
