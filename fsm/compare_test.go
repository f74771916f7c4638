package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The design choice of DESIGN.md: this bbolt FSM against an in-memory FSM
// persisted only through snapshots, on the operations that matter at scale.
//
//	go test -run '^$' -bench 'Compare' -benchtime 3x ./fsm/
//
// memFSM is the in-memory alternative reduced to what a schedule create and
// a restart need: decode, a map by id, and a created-order index.
type memFSM struct {
	byID    map[string]*Schedule
	created []string
	applied uint64
}

func newMemFSM() *memFSM { return &memFSM{byID: map[string]*Schedule{}} }

func (m *memFSM) ApplyBatch(logs []*raft.Log) {
	for _, l := range logs {
		var c CreateScheduleCmd
		if err := json.Unmarshal(l.Data[1:], &c); err != nil {
			panic(err)
		}
		s := c.Schedule
		m.byID[s.ID] = &s
		m.created = append(m.created, s.ID)
		m.applied = l.Index
	}
}

// snapshot writes every schedule as one JSON stream, as Persist would.
func (m *memFSM) snapshot(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, id := range m.created {
		if err := enc.Encode(m.byID[id]); err != nil {
			return err
		}
	}
	return nil
}

func restoreMem(r io.Reader) (*memFSM, error) {
	m := newMemFSM()
	dec := json.NewDecoder(r)
	for dec.More() {
		var s Schedule
		if err := dec.Decode(&s); err != nil {
			return nil, err
		}
		m.byID[s.ID] = &s
		m.created = append(m.created, s.ID)
	}
	return m, nil
}

// compareLogs builds n schedule creates in raft batches of 64, with ids that
// grow with time as the API issues them (UUIDv7).
func compareLogs(b *testing.B, n int) [][]*raft.Log {
	var batches [][]*raft.Log
	var cur []*raft.Log
	for i := 0; i < n; i++ {
		s := newSchedule(seqID(i), t0.Add(time.Duration(i)*time.Millisecond), fmt.Sprint("http://e", i%100, ".example/hook"), true)
		s.Payload = json.RawMessage(`{"message":"` + string(bytes.Repeat([]byte("x"), 160)) + `"}`)
		data, err := Encode(CmdCreateSchedule, CreateScheduleCmd{Schedule: s})
		if err != nil {
			b.Fatal(err)
		}
		cur = append(cur, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data})
		if len(cur) == 64 {
			batches = append(batches, cur)
			cur = nil
		}
	}
	if cur != nil {
		batches = append(batches, cur)
	}
	return batches
}

func seqID(n int) string {
	return fmt.Sprintf("%08x-0000-7000-8000-%012x", n>>16, n)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func BenchmarkCompareFSM(b *testing.B) {
	const n = 100_000
	batches := compareLogs(b, n)
	perOp := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / n }

	b.Run("bbolt", func(b *testing.B) {
		for range b.N {
			path := filepath.Join(b.TempDir(), "fsm.db")
			base := heapInUse()
			f, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			for _, batch := range batches {
				f.ApplyBatch(batch)
			}
			apply := time.Since(start)
			heap := heapInUse() - base

			snap, _ := f.Snapshot()
			sink := &memSink{}
			start = time.Now()
			if err := snap.Persist(sink); err != nil {
				b.Fatal(err)
			}
			persist := time.Since(start)
			size := sink.Len()
			f.Close()

			start = time.Now()
			g, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			reopen := time.Since(start)
			g.Close()

			b.ReportMetric(perOp(apply), "apply-ns/schedule")
			b.ReportMetric(float64(heap)/n, "heap-B/schedule")
			b.ReportMetric(float64(persist.Milliseconds()), "snapshot-ms")
			b.ReportMetric(float64(size)/n, "snapshot-B/schedule")
			b.ReportMetric(float64(reopen.Microseconds())/1000, "restart-ms")
		}
	})

	b.Run("memory", func(b *testing.B) {
		for range b.N {
			base := heapInUse()
			m := newMemFSM()
			start := time.Now()
			for _, batch := range batches {
				m.ApplyBatch(batch)
			}
			apply := time.Since(start)
			heap := heapInUse() - base

			var buf bytes.Buffer
			start = time.Now()
			if err := m.snapshot(&buf); err != nil {
				b.Fatal(err)
			}
			persist := time.Since(start)

			start = time.Now()
			r, err := restoreMem(bytes.NewReader(buf.Bytes()))
			if err != nil {
				b.Fatal(err)
			}
			restore := time.Since(start)
			if len(r.byID) != n {
				b.Fatalf("restored %d schedules, want %d", len(r.byID), n)
			}
			sort.Strings(r.created) // keep r alive through the measurement

			b.ReportMetric(perOp(apply), "apply-ns/schedule")
			b.ReportMetric(float64(heap)/n, "heap-B/schedule")
			b.ReportMetric(float64(persist.Milliseconds()), "snapshot-ms")
			b.ReportMetric(float64(buf.Len())/n, "snapshot-B/schedule")
			b.ReportMetric(float64(restore.Milliseconds()), "restart-ms")
		}
	})
}
