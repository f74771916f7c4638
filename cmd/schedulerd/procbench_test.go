package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Benchmarks that run real schedulerd processes: three nodes on loopback,
// each its own runtime, as in production.

type procCluster struct {
	b     *testing.B
	bin   string
	specs []nodeSpec
	join  string
	extra []string // flags every node starts with (raft timings)
	procs map[string]*exec.Cmd
	hc    *http.Client
}

// newProcCluster builds schedulerd and starts three nodes, each with the
// extra flags, and returns once all are ready.
func newProcCluster(b *testing.B, extra ...string) *procCluster {
	bin := filepath.Join(b.TempDir(), "schedulerd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	c := &procCluster{b: b, bin: bin, extra: extra, procs: map[string]*exec.Cmd{},
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	c.specs = []nodeSpec{newSpec(b, "n1"), newSpec(b, "n2"), newSpec(b, "n3")}
	c.join = strings.Join([]string{c.specs[0].httpAddr, c.specs[1].httpAddr, c.specs[2].httpAddr}, ",")
	for _, s := range c.specs {
		c.start(s)
	}
	b.Cleanup(func() {
		for _, s := range c.specs {
			c.stop(s, syscall.SIGTERM)
		}
	})
	c.waitReady()
	return c
}

func (c *procCluster) start(s nodeSpec, more ...string) {
	args := append([]string{"-node-id", s.id, "-data-dir", s.dir, "-http-addr", s.httpAddr, "-raft-addr", s.raftAddr,
		"-bootstrap-expect", "3", "-join", c.join, "-log-level", "error"}, c.extra...)
	cmd := exec.Command(c.bin, append(args, more...)...)
	cmd.Env = append(os.Environ(), "SCHEDULERD_ADMIN_TOKEN="+testToken)
	if err := cmd.Start(); err != nil {
		c.b.Fatalf("start %s: %v", s.id, err)
	}
	c.procs[s.id] = cmd
}

// stop ends one node with sig and waits for the process to exit.
func (c *procCluster) stop(s nodeSpec, sig syscall.Signal) {
	p := c.procs[s.id]
	if p == nil {
		return
	}
	p.Process.Signal(sig)
	p.Wait()
	delete(c.procs, s.id)
}

// setup sends a request that prepares a measurement and must succeed:
// while the cluster answers 503 (an election, a write of uncertain fate
// during one) or cannot be reached, it retries for up to 30 s. Retrying a
// create may store it twice, which no setup here minds.
func (c *procCluster) setup(method string, s nodeSpec, path, body string, want int) string {
	t0 := time.Now()
	for {
		code, out := c.do(method, s.httpAddr, path, body)
		if code == want {
			return out
		}
		if (code != http.StatusServiceUnavailable && code != -1) || time.Since(t0) > 30*time.Second {
			c.b.Fatalf("%s %s on %s: %d %s", method, path, s.id, code, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// follower returns a node other than leader.
func (c *procCluster) follower(leader nodeSpec) nodeSpec {
	for _, s := range c.specs {
		if s.id != leader.id {
			return s
		}
	}
	c.b.Fatal("no follower")
	return nodeSpec{}
}

// clusterView is the part of GET /api/v1/cluster/ the benchmarks read.
type clusterView struct {
	State        string `json:"state"`
	LeaderID     string `json:"leader_id"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
}

// view asks one node how it sees the cluster.
func (c *procCluster) view(s nodeSpec) (clusterView, error) {
	code, body := c.do("GET", s.httpAddr, "/api/v1/cluster/", "")
	var v clusterView
	if code != http.StatusOK {
		return v, fmt.Errorf("GET /api/v1/cluster/ on %s: %d %s", s.id, code, body)
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		return v, fmt.Errorf("GET /api/v1/cluster/ on %s: %w", s.id, err)
	}
	return v, nil
}

// pollUntil polls cond every 5 ms until it holds or within passes; it returns
// the time from t0 to the first poll that saw cond hold.
func pollUntil(b *testing.B, t0 time.Time, within time.Duration, what string, cond func() bool) time.Duration {
	for {
		if cond() {
			return time.Since(t0)
		}
		if time.Since(t0) > within {
			b.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *procCluster) do(method, addr, path, body string) (int, string) {
	req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Token "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return -1, err.Error()
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// leader returns the leader once every node is ready and registered.
func (c *procCluster) leader() (nodeSpec, bool) {
	for _, s := range c.specs {
		if code, body := c.do("GET", s.httpAddr, "/api/v1/cluster/", ""); code == 200 && strings.Contains(body, `"state":"Leader"`) &&
			strings.Count(body, `"api_addr":"127.`) == 3 {
			return s, true
		}
	}
	return nodeSpec{}, false
}

func (c *procCluster) waitReady() nodeSpec {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := 0
		for _, s := range c.specs {
			if code, _ := c.do("GET", s.httpAddr, "/readyz", ""); code == 200 {
				ready++
			}
		}
		if l, ok := c.leader(); ok && ready == len(c.specs) {
			return l
		}
		if time.Now().After(deadline) {
			c.b.Fatal("cluster not ready within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// raftTimings are the timing sets the failover benchmark compares:
// schedulerd's defaults, and shorter timeouts that still hold on a noisy
// two-core machine (the heartbeat stays 30x the commit timeout, and a GC
// pause or a busy core must last 150 ms to cost the leader its lease).
var raftTimings = []struct {
	name  string
	flags []string
}{
	{"default", nil}, // heartbeat/election 250 ms, lease 125 ms, commit 5 ms
	{"tuned", []string{"-raft-heartbeat-timeout", "150ms", "-raft-election-timeout", "150ms",
		"-raft-leader-lease-timeout", "75ms", "-raft-commit-timeout", "5ms"}},
}

// BenchmarkLeaderKill: each iteration SIGKILLs the leader and measures the
// time until a surviving node reports a new leader, the time until a write
// through a surviving node is accepted, and the time until a schedule
// firing every second is delivered again (first-slot-late: how late that
// delivery was against its slot); then it restarts the killed node. Once
// with the default raft timings and once with tuned ones, each on its own
// cluster. At the end every slot of the ticking schedule must
// have arrived (slots-lost) and re-deliveries (the same idempotency key
// twice, expected for a slot in flight at the kill) are counted.
//
//	go test -run '^$' -bench LeaderKill -benchtime 20x ./cmd/schedulerd/
func BenchmarkLeaderKill(b *testing.B) {
	for _, tm := range raftTimings {
		b.Run("timing="+tm.name, func(b *testing.B) { leaderKill(b, tm.flags) })
	}
}

func leaderKill(b *testing.B, flags []string) {
	c := newProcCluster(b, flags...)
	// One schedule fires every second throughout: after each kill, the time
	// to its next delivery says when firing is back, and at the end every
	// slot must have arrived.
	sk := newFireSink(b)
	leader := c.waitReady()
	c.setup("POST", leader, "/api/v1/schedule/", `{"endpoint": "`+sk.srv.URL+`/tick", "cron_definition": "* * * * * * *"}`, http.StatusCreated)
	var toLeader, toWrite, toFire, fireLate []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		victim := c.waitReady()
		var survivors []nodeSpec
		for _, s := range c.specs {
			if s.id != victim.id {
				survivors = append(survivors, s)
			}
		}
		b.StartTimer()
		t0 := time.Now()
		c.stop(victim, syscall.SIGKILL)
		// The new leader is seen by polling the survivors while the write
		// waits in one of them; both are bounded by the same 30 s.
		leaderSeen := make(chan time.Duration, 1)
		go func() {
			for time.Since(t0) < 30*time.Second {
				for _, s := range survivors {
					if v, err := c.view(s); err == nil && v.LeaderID != "" && v.LeaderID != victim.id {
						leaderSeen <- time.Since(t0)
						return
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
			leaderSeen <- -1
		}()
		for n := 0; ; n++ {
			if code, _ := c.do("POST", survivors[0].httpAddr, "/api/v1/user/token/", fmt.Sprintf(`{"email":"kill%d-%d@example.org"}`, i, n)); code == http.StatusCreated {
				break
			}
			if time.Since(t0) > 30*time.Second {
				b.Fatalf("no write accepted within 30s of killing %s", victim.id)
			}
		}
		toWrite = append(toWrite, time.Since(t0))
		b.StopTimer()
		tl := <-leaderSeen
		if tl < 0 {
			b.Fatalf("no survivor reported a new leader within 30s of killing %s", victim.id)
		}
		toLeader = append(toLeader, tl)
		// Firing is back when a slot due after the kill arrives; that
		// includes waiting for the next second, so its own lateness is
		// reported too.
		var back, late time.Duration
		pollUntil(b, t0, 30*time.Second, "a slot due after the kill of "+victim.id+" delivered", func() bool {
			sk.mu.Lock()
			defer sk.mu.Unlock()
			for _, f := range sk.fires {
				if f.slot.After(t0) {
					back, late = f.at.Sub(t0), f.at.Sub(f.slot)
					return true
				}
			}
			return false
		})
		toFire = append(toFire, back)
		fireLate = append(fireLate, late)
		c.start(victim)
		b.StartTimer()
	}
	b.StopTimer()
	// Let the last restarted node rejoin and the slots due meanwhile
	// arrive before counting.
	c.waitReady()
	last := time.Now().Truncate(time.Second)
	pollUntil(b, time.Now(), 30*time.Second, "slots up to the end delivered", func() bool {
		sk.mu.Lock()
		defer sk.mu.Unlock()
		for _, f := range sk.fires {
			if !f.slot.Before(last) {
				return true
			}
		}
		return false
	})
	reportDurations(b, "to-leader", toLeader)
	reportDurations(b, "to-write", toWrite)
	reportDurations(b, "to-fire", toFire)
	reportDurations(b, "first-slot-late", fireLate)
	// Every slot from the first delivered to the last must have arrived.
	sk.mu.Lock()
	slots := map[int64]bool{}
	first, lastSlot := int64(1<<62), int64(0)
	for _, f := range sk.fires {
		u := f.slot.Unix()
		slots[u] = true
		first, lastSlot = min(first, u), max(lastSlot, u)
	}
	redelivered := 0
	for _, n := range sk.keys {
		redelivered += n - 1
	}
	sk.mu.Unlock()
	missing := 0
	for u := first; u <= lastSlot; u++ {
		if !slots[u] {
			missing++
		}
	}
	b.ReportMetric(float64(missing), "slots-lost")
	b.ReportMetric(float64(redelivered), "redelivered")
	b.ReportMetric(0, "ns/op")
}

// reportDurations reports the median and the maximum of ds in ms as
// p50-ms-<what> and max-ms-<what>.
func reportDurations(b *testing.B, what string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	b.ReportMetric(float64(s[len(s)/2].Microseconds())/1000, "p50-ms-"+what)
	b.ReportMetric(float64(s[len(s)-1].Microseconds())/1000, "max-ms-"+what)
}

// BenchmarkProcessCreates: schedule creates (POST /api/v1/schedule/, a
// ~200-byte payload) through the leader and through a follower of a
// cluster of real processes. Closed loop at 1/16/64/256 clients
// (SCHEDULERD_BENCH_CLIENTS), each client sending its next create when the
// previous one is answered; open loop at fixed arrival rates
// (SCHEDULERD_BENCH_OPEN_RATES, default 1000/s), latency measured from each
// request's intended send time. The floor is ReplicatedWrites'
// raw-create: raft.Apply of the same command.
//
//	go test -run '^$' -bench ProcessCreates -benchtime 5s ./cmd/schedulerd/
func BenchmarkProcessCreates(b *testing.B) {
	c := newProcCluster(b)
	leader := c.waitReady()
	follower := c.follower(leader)
	create := func(target nodeSpec) func(int) error {
		return func(int) error {
			code, body := c.do("POST", target.httpAddr, "/api/v1/schedule/", idleCreateBody)
			if code != http.StatusCreated {
				return fmt.Errorf("create through %s: status %d: %s", target.id, code, body)
			}
			return nil
		}
	}
	targets := []struct {
		name string
		spec nodeSpec
	}{{"leader", leader}, {"follower", follower}}
	for _, clients := range envInts(b, "SCHEDULERD_BENCH_CLIENTS", []int{1, 16, 64, 256}) {
		for _, t := range targets {
			b.Run(fmt.Sprintf("closed/%s/clients=%d", t.name, clients), func(b *testing.B) { runWriters(b, clients, create(t.spec)) })
		}
	}
	for _, rate := range envInts(b, "SCHEDULERD_BENCH_OPEN_RATES", []int{1000}) {
		for _, t := range targets {
			b.Run(fmt.Sprintf("open/%s/rate=%d", t.name, rate), func(b *testing.B) {
				runOpenLoop(b, float64(rate), 512, 30*time.Second, create(t.spec))
			})
		}
	}
}

// BenchmarkProcessReads: GET one schedule through a follower of a cluster
// of real processes, served from the follower's state (local, the default)
// or by the leader after confirming its leadership and catching up with
// the commit index (?consistency=strong, forwarded), at 1/16/64 clients.
//
//	go test -run '^$' -bench ProcessReads -benchtime 5s ./cmd/schedulerd/
func BenchmarkProcessReads(b *testing.B) {
	c := newProcCluster(b)
	leader := c.waitReady()
	follower := c.follower(leader)
	// A thousand neighbours, so the read is a lookup in a table that is not
	// trivially small.
	var id string
	for i := 0; i < 1000; i++ {
		body := c.setup("POST", leader, "/api/v1/schedule/", idleCreateBody, http.StatusCreated)
		if i == 500 {
			var sc struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal([]byte(body), &sc); err != nil || sc.ID == "" {
				b.Fatalf("create answered %s: %v", body, err)
			}
			id = sc.ID
		}
	}
	// The follower must hold the schedule before local reads can find it.
	pollUntil(b, time.Now(), 10*time.Second, "schedule visible on the follower", func() bool {
		code, _ := c.do("GET", follower.httpAddr, "/api/v1/schedule/"+id+"/", "")
		return code == http.StatusOK
	})
	for _, clients := range envInts(b, "SCHEDULERD_BENCH_READ_CLIENTS", []int{1, 16, 64}) {
		for _, mode := range []struct{ name, query string }{{"local", ""}, {"strong", "?consistency=strong"}} {
			path := "/api/v1/schedule/" + id + "/" + mode.query
			b.Run(fmt.Sprintf("%s/clients=%d", mode.name, clients), func(b *testing.B) {
				runClosed(b, clients, "reads/s", func(int) error {
					if code, body := c.do("GET", follower.httpAddr, path, ""); code != http.StatusOK {
						return fmt.Errorf("GET %s: status %d: %s", path, code, body)
					}
					return nil
				})
			})
		}
	}
}

// BenchmarkProcessWrites: token writes through the leader and through a
// follower of a cluster of real processes, at 32 and 64 clients (the
// comparison point is rqlite's writes through a follower at 32 clients).
//
//	go test -run '^$' -bench ProcessWrites -benchtime 5s ./cmd/schedulerd/
func BenchmarkProcessWrites(b *testing.B) {
	c := newProcCluster(b)
	leader := c.waitReady()
	var follower nodeSpec
	for _, s := range c.specs {
		if s.id != leader.id {
			follower = s
			break
		}
	}
	var seq atomic.Int64
	for _, target := range []struct {
		name string
		spec nodeSpec
	}{{"leader", leader}, {"follower", follower}} {
		for _, clients := range []int{32, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", target.name, clients), func(b *testing.B) {
				runWriters(b, clients, func(int) error {
					code, body := c.do("POST", target.spec.httpAddr, "/api/v1/user/token/", fmt.Sprintf(`{"email":"p%d@example.org"}`, seq.Add(1)))
					if code != http.StatusCreated {
						return fmt.Errorf("status %d: %s", code, body)
					}
					return nil
				})
			})
		}
	}
}

// rssKiB reads one field of a process's /proc status: VmRSS (resident),
// RssAnon (heap and stacks) or RssFile (mapped files: the bbolt files'
// pages, which the kernel can drop and read back).
func rssKiB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return -1
}

// BenchmarkLeaderMemory creates N schedules of ~200-byte payload through
// the API and reports the leader's RSS above the empty node per schedule,
// then the time a restarted follower holding them needs to be ready.
//
//	SCHEDULERD_BENCH_SCHEDULES=100000 go test -run '^$' -bench LeaderMemory -benchtime 1x -timeout 30m ./cmd/schedulerd/
func BenchmarkLeaderMemory(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("SCHEDULERD_BENCH_SCHEDULES")); err == nil && v > 0 {
		n = v
	}
	c := newProcCluster(b)
	leader := c.waitReady()
	pid := c.procs[leader.id].Process.Pid
	base, baseAnon := rssKiB(pid, "VmRSS"), rssKiB(pid, "RssAnon")
	// Schedules that exist but never fire during the run (a far-future
	// year), so memory reflects storage and the executor's heap.
	body := `{"endpoint": "http://127.0.0.1:9/hook", "cron_definition": "0 0 1 1 * 2099", "payload": {"message": "` + strings.Repeat("x", 180) + `"}}`
	var next atomic.Int64
	var wg sync.WaitGroup
	loadStart := time.Now()
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if code, out := c.do("POST", leader.httpAddr, "/api/v1/schedule/", body); code != 201 {
					b.Errorf("create: %d %s", code, out)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.Logf("created %d schedules in %v", n, time.Since(loadStart))
	loaded, loadedAnon := rssKiB(pid, "VmRSS"), rssKiB(pid, "RssAnon")
	b.ReportMetric(float64(base), "empty-rss-KiB")
	b.ReportMetric(float64(loaded), "loaded-rss-KiB")
	b.ReportMetric(float64(loaded-base)*1024/float64(n), "rss-B/schedule")
	b.ReportMetric(float64(loadedAnon-baseAnon)*1024/float64(n), "anon-B/schedule")
	b.ReportMetric(float64(rssKiB(pid, "RssFile"))*1024/float64(n), "file-B/schedule")

	// Restart a follower holding everything: time until it is ready.
	var follower nodeSpec
	for _, s := range c.specs {
		if s.id != leader.id {
			follower = s
			break
		}
	}
	c.procs[follower.id].Process.Signal(syscall.SIGTERM)
	c.procs[follower.id].Wait()
	t0 := time.Now()
	c.start(follower)
	for {
		if code, _ := c.do("GET", follower.httpAddr, "/readyz", ""); code == 200 {
			break
		}
		if time.Since(t0) > 60*time.Second {
			b.Fatal("restarted follower not ready within 60s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "restart-to-ready-ms")
	b.ReportMetric(0, "ns/op")
}
