package main

import (
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
	procs map[string]*exec.Cmd
	hc    *http.Client
}

func newProcCluster(b *testing.B) *procCluster {
	bin := filepath.Join(b.TempDir(), "schedulerd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	c := &procCluster{b: b, bin: bin, procs: map[string]*exec.Cmd{},
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	c.specs = []nodeSpec{newSpec(b, "n1"), newSpec(b, "n2"), newSpec(b, "n3")}
	c.join = strings.Join([]string{c.specs[0].httpAddr, c.specs[1].httpAddr, c.specs[2].httpAddr}, ",")
	for _, s := range c.specs {
		c.start(s)
	}
	b.Cleanup(func() {
		for _, p := range c.procs {
			p.Process.Signal(syscall.SIGTERM)
			p.Wait()
		}
	})
	c.waitReady()
	return c
}

func (c *procCluster) start(s nodeSpec) {
	cmd := exec.Command(c.bin, "-node-id", s.id, "-data-dir", s.dir, "-http-addr", s.httpAddr, "-raft-addr", s.raftAddr,
		"-bootstrap-expect", "3", "-join", c.join, "-log-level", "error")
	cmd.Env = append(os.Environ(), "SCHEDULERD_ADMIN_TOKEN="+testToken)
	if err := cmd.Start(); err != nil {
		c.b.Fatal(err)
	}
	c.procs[s.id] = cmd
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

// BenchmarkLeaderKill: each iteration SIGKILLs the leader and measures the
// time until a write through a surviving node is accepted, then restarts
// the killed node.
//
//	go test -run '^$' -bench LeaderKill -benchtime 20x ./cmd/schedulerd/
func BenchmarkLeaderKill(b *testing.B) {
	c := newProcCluster(b)
	// One schedule fires every second throughout: after each kill, the time
	// to its next delivery says when firing is back, and at the end every
	// slot must have arrived.
	sk := newFireSink(b)
	leader := c.waitReady()
	if code, body := c.do("POST", leader.httpAddr, "/api/v1/schedule/",
		`{"endpoint": "`+sk.srv.URL+`/tick", "cron_definition": "* * * * * * *"}`); code != http.StatusCreated {
		b.Fatalf("create the ticking schedule: %d %s", code, body)
	}
	var gaps, fireGaps []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		victim := c.waitReady()
		var survivor nodeSpec
		for _, s := range c.specs {
			if s.id != victim.id {
				survivor = s
				break
			}
		}
		b.StartTimer()
		t0 := time.Now()
		c.procs[victim.id].Process.Kill()
		c.procs[victim.id].Wait()
		for n := 0; ; n++ {
			if code, _ := c.do("POST", survivor.httpAddr, "/api/v1/user/token/", fmt.Sprintf(`{"email":"kill%d-%d@example.org"}`, i, n)); code == http.StatusCreated {
				break
			}
			if time.Since(t0) > 30*time.Second {
				b.Fatalf("no write accepted within 30s of killing %s", victim.id)
			}
		}
		gaps = append(gaps, time.Since(t0))
		b.StopTimer()
		// Firing is back when a slot due after the kill arrives.
		var back time.Duration
		for deadline := time.Now().Add(30 * time.Second); back == 0; {
			sk.mu.Lock()
			for _, f := range sk.fires {
				if f.slot.After(t0) {
					back = f.at.Sub(t0)
					break
				}
			}
			sk.mu.Unlock()
			if back == 0 {
				if time.Now().After(deadline) {
					b.Fatalf("no slot after the kill of %s delivered within 30s", victim.id)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		fireGaps = append(fireGaps, back)
		c.start(victim)
		b.StartTimer()
	}
	b.StopTimer()
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	sort.Slice(fireGaps, func(i, j int) bool { return fireGaps[i] < fireGaps[j] })
	b.ReportMetric(float64(gaps[len(gaps)/2].Milliseconds()), "p50-ms-to-write")
	b.ReportMetric(float64(gaps[len(gaps)-1].Milliseconds()), "max-ms-to-write")
	b.ReportMetric(float64(fireGaps[len(fireGaps)/2].Milliseconds()), "p50-ms-to-fire")
	b.ReportMetric(float64(fireGaps[len(fireGaps)-1].Milliseconds()), "max-ms-to-fire")
	// Every slot from the first delivered to the last must have arrived.
	sk.mu.Lock()
	slots := map[int64]bool{}
	first, last := int64(1<<62), int64(0)
	for _, f := range sk.fires {
		u := f.slot.Unix()
		slots[u] = true
		first, last = min(first, u), max(last, u)
	}
	sk.mu.Unlock()
	missing := 0
	for u := first; u <= last; u++ {
		if !slots[u] {
			missing++
		}
	}
	b.ReportMetric(float64(missing), "slots-lost")
	b.ReportMetric(0, "ns/op")
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
