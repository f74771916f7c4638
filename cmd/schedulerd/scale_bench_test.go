package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkScheduleScale grows one cluster of three real processes to each
// schedule count of SCHEDULERD_BENCH_SCALE_STEPS (default 0,10000; counts
// ascending) and, at each count, reports:
//
//   - memory (B6): the leader's RSS, its anonymous and file-backed parts
//     (/proc), the Go heap in use (go_memstats_heap_inuse_bytes from
//     /metrics/), and the sizes of the state file and the raft log;
//   - restart-ms: a follower restarted on its data dir, to /readyz 200;
//   - snapshot-MiB: the raft snapshot of all of it. There is no endpoint that
//     forces a snapshot, so the follower is restarted once more with
//     -raft-snapshot-threshold 1 -raft-snapshot-interval 1s and the benchmark
//     waits for the snapshot covering the current commit index;
//   - restore-ms: that follower started on a data dir holding only the
//     snapshot (state file and raft log gone): it restores the state from the
//     snapshot, catches up from the leader and answers /readyz 200;
//   - cold restart (B7): all three SIGKILLed and started again; time from
//     the start to a leader, and to the first write accepted.
//
// Schedules are created through the leader's API by 128 clients (~200-byte
// payload, a cron that does not fire during the run); the load rate is
// reported as creates/s.
//
//	SCHEDULERD_BENCH_SCALE_STEPS=0,10000,100000 go test -run '^$' -bench ScheduleScale -benchtime 1x -timeout 60m ./cmd/schedulerd/
func BenchmarkScheduleScale(b *testing.B) {
	steps := envInts(b, "SCHEDULERD_BENCH_SCALE_STEPS", []int{0, 10_000})
	for i := 1; i < len(steps); i++ {
		if steps[i] < steps[i-1] {
			b.Fatalf("SCHEDULERD_BENCH_SCALE_STEPS must ascend, got %v", steps)
		}
	}
	c := newProcCluster(b)
	var emptyRSS int64
	loaded := 0
	for _, n := range steps {
		b.Run(fmt.Sprintf("schedules=%d", n), func(b *testing.B) {
			// The parent's cluster outlives this sub-benchmark: its
			// failures must stop the parent, not a copy of it.
			c.b = b
			leader := c.waitReady()
			if n > loaded {
				t0 := time.Now()
				c.load(leader, n-loaded)
				b.ReportMetric(float64(n-loaded)/time.Since(t0).Seconds(), "creates/s")
				loaded = n
			}
			commit := c.settle()
			leader = c.waitReady()
			pid := c.procs[leader.id].Process.Pid
			rss := rssKiB(pid, "VmRSS")
			if n == 0 {
				emptyRSS = rss
			}
			b.ReportMetric(float64(rss)/1024, "rss-MiB")
			b.ReportMetric(float64(rssKiB(pid, "RssAnon"))/1024, "anon-MiB")
			b.ReportMetric(float64(rssKiB(pid, "RssFile"))/1024, "file-MiB")
			// Per schedule only above a measured empty node (a 0 step).
			if n > 0 && emptyRSS > 0 {
				b.ReportMetric(float64(rss-emptyRSS)*1024/float64(n), "rss-B/schedule")
			}
			b.ReportMetric(c.heapInuse(leader)/(1<<20), "heap-MiB")
			b.ReportMetric(fileMiB(filepath.Join(leader.dir, "fsm.db")), "statefile-MiB")
			b.ReportMetric(fileMiB(filepath.Join(leader.dir, "raft.db")), "raftlog-MiB")

			f := c.follower(leader)
			c.stop(f, syscall.SIGTERM)
			t0 := time.Now()
			c.start(f)
			b.ReportMetric(ms(c.waitNodeReady(f, t0, 120*time.Second)), "restart-ms")

			c.stop(f, syscall.SIGTERM)
			c.start(f, "-raft-snapshot-threshold", "1", "-raft-snapshot-interval", "1s")
			snap := c.waitSnapshot(f, commit)
			b.ReportMetric(float64(snap.Size)/(1<<20), "snapshot-MiB")

			c.stop(f, syscall.SIGTERM)
			keepOnlySnapshots(b, f.dir)
			t0 = time.Now()
			c.start(f)
			b.ReportMetric(ms(c.waitNodeReady(f, t0, 300*time.Second)), "restore-ms")
			if v, err := c.view(f); err != nil || v.AppliedIndex < commit {
				b.Fatalf("restored follower at applied index %d, want >= %d (%v)", v.AppliedIndex, commit, err)
			}

			toLeader, toWrite := c.coldRestart()
			b.ReportMetric(ms(toLeader), "cold-to-leader-ms")
			b.ReportMetric(ms(toWrite), "cold-to-write-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// load creates n schedules through the leader's API with 128 clients. A
// create answered 503 (an election on a busy machine) is retried, so the
// count may end a few above n. The load is bounded in count (n creates)
// and in time: a deadline of a minute plus one second per 500 schedules, a
// rate far below any this benchmark has seen.
func (c *procCluster) load(leader nodeSpec, n int) {
	const clients = 128
	deadline := time.Now().Add(time.Minute + time.Duration(n)*2*time.Millisecond)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				for {
					code, out := c.do("POST", leader.httpAddr, "/api/v1/schedule/", idleCreateBody)
					if code == http.StatusCreated {
						break
					}
					if (code != http.StatusServiceUnavailable && code != -1) || time.Now().After(deadline) {
						failed.CompareAndSwap(nil, fmt.Sprintf("create through %s: %d %s", leader.id, code, out))
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				if failed.Load() != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f != nil {
		c.b.Fatalf("loading %d schedules: %v", n, f)
	}
}

// settle waits until every node has applied the leader's commit index and
// returns that index: memory and sizes are read on a quiet cluster.
func (c *procCluster) settle() uint64 {
	leader := c.waitReady()
	lv, err := c.view(leader)
	if err != nil {
		c.b.Fatal(err)
	}
	pollUntil(c.b, time.Now(), 120*time.Second, "every node applied the commit index", func() bool {
		for _, s := range c.specs {
			if v, err := c.view(s); err != nil || v.AppliedIndex < lv.CommitIndex {
				return false
			}
		}
		return true
	})
	return lv.CommitIndex
}

// waitNodeReady polls one node's /readyz until 200 and returns the time
// since t0.
func (c *procCluster) waitNodeReady(s nodeSpec, t0 time.Time, within time.Duration) time.Duration {
	return pollUntil(c.b, t0, within, s.id+" ready", func() bool {
		code, _ := c.do("GET", s.httpAddr, "/readyz", "")
		return code == http.StatusOK
	})
}

// heapInuse reads go_memstats_heap_inuse_bytes from a node's /metrics/.
func (c *procCluster) heapInuse(s nodeSpec) float64 {
	code, body := c.do("GET", s.httpAddr, "/metrics/", "")
	if code != http.StatusOK {
		c.b.Fatalf("GET /metrics/ on %s: %d", s.id, code)
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				c.b.Fatalf("go_memstats_heap_inuse_bytes on %s: %v", s.id, err)
			}
			return v
		}
	}
	c.b.Fatalf("no go_memstats_heap_inuse_bytes in /metrics/ of %s", s.id)
	return 0
}

func fileMiB(path string) float64 {
	st, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return float64(st.Size()) / (1 << 20)
}

// snapshotMeta is the part of a raft file snapshot's meta.json read here.
type snapshotMeta struct {
	ID    string
	Index uint64
	Size  int64
}

// newestSnapshot lists dir/snapshots/*/meta.json and returns the complete
// snapshot with the highest index (ok false when there is none). A
// snapshot being written lives in a directory ending in .tmp, whose meta
// does not have its size yet.
func newestSnapshot(dir string) (snapshotMeta, bool) {
	metas, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "meta.json"))
	var best snapshotMeta
	found := false
	for _, p := range metas {
		if strings.HasSuffix(filepath.Dir(p), ".tmp") {
			continue
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			continue // renamed or reaped meanwhile; the next poll sees it
		}
		var m snapshotMeta
		if json.Unmarshal(raw, &m) == nil && (!found || m.Index > best.Index) {
			best, found = m, true
		}
	}
	return best, found
}

// waitSnapshot waits until s holds a snapshot at index >= commit.
func (c *procCluster) waitSnapshot(s nodeSpec, commit uint64) snapshotMeta {
	var m snapshotMeta
	pollUntil(c.b, time.Now(), 600*time.Second, fmt.Sprintf("snapshot at index >= %d on %s", commit, s.id), func() bool {
		var ok bool
		m, ok = newestSnapshot(s.dir)
		return ok && m.Index >= commit
	})
	return m
}

// keepOnlySnapshots empties a stopped node's data dir except its
// snapshots: the state file and raft log are gone, as after a disk
// replaced from a backup of the snapshots.
func keepOnlySnapshots(b *testing.B, dir string) {
	old := dir + ".old"
	if err := os.Rename(dir, old); err != nil {
		b.Fatalf("move data dir aside: %v", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatalf("recreate data dir: %v", err)
	}
	if err := os.Rename(filepath.Join(old, "snapshots"), filepath.Join(dir, "snapshots")); err != nil {
		b.Fatalf("keep the snapshots: %v", err)
	}
	if err := os.RemoveAll(old); err != nil {
		b.Fatalf("remove the old data dir: %v", err)
	}
}

// coldRestart SIGKILLs all three nodes, starts them again and returns the
// time from the start to the first leader any node reports, and to the
// first schedule create accepted by any node.
func (c *procCluster) coldRestart() (toLeader, toWrite time.Duration) {
	for _, s := range c.specs {
		c.stop(s, syscall.SIGKILL)
	}
	t0 := time.Now()
	for _, s := range c.specs {
		c.start(s)
	}
	toLeader = pollUntil(c.b, t0, 300*time.Second, "a leader after the cold restart", func() bool {
		for _, s := range c.specs {
			if v, err := c.view(s); err == nil && v.LeaderID != "" {
				return true
			}
		}
		return false
	})
	i := 0
	toWrite = pollUntil(c.b, t0, 300*time.Second, "a write accepted after the cold restart", func() bool {
		s := c.specs[i%len(c.specs)]
		i++
		code, _ := c.do("POST", s.httpAddr, "/api/v1/schedule/", idleCreateBody)
		return code == http.StatusCreated
	})
	return toLeader, toWrite
}
