package main

import (
	"math"
	"strings"
	"testing"
)

// Lines copied from real runs of go test -bench ./cmd/schedulerd/.
const sample = `goos: linux
goarch: amd64
pkg: github.com/seedscheduler/schedulerd/cmd/schedulerd
cpu: Intel(R) Xeon(R) Processor
BenchmarkReplicatedWrites/raw/writers=1-2         	     668	         1.810 p50-ms	         3.426 p99-ms	       530.1 writes/s
BenchmarkReplicatedWrites/leader/writers=1-2      	     558	         2.013 p50-ms	         3.549 p99-ms	       481.6 writes/s
BenchmarkReplicatedWrites/follower/writers=1-2    	     121	         9.547 p50-ms	        12.85 p99-ms	       103.8 writes/s
BenchmarkReplicatedWrites/raw/writers=64-2        	    9886	         7.581 p50-ms	        12.98 p99-ms	      8292 writes/s
BenchmarkReplicatedWrites/leader/writers=64-2     	    5396	        14.46 p50-ms	        26.60 p99-ms	      4266 writes/s
BenchmarkReplicatedWrites/follower/writers=64-2   	    3799	        20.81 p50-ms	        38.82 p99-ms	      2926 writes/s
BenchmarkReplicatedWrites/follower/writers=64-2   	    3512	        22.10 p50-ms	        40.11 p99-ms	      2700 writes/s
BenchmarkReplicatedWrites/follower/writers=64-2   	    3650	        21.00 p50-ms	        39.00 p99-ms	      2800 writes/s
BenchmarkSchedules/create-raw/writers=64-2        	    7000	         9.100 p50-ms	        20.00 p99-ms	      2521 writes/s
BenchmarkSchedules/create-follower/writers=64-2   	    7000	        11.00 p50-ms	        25.00 p99-ms	      2609 writes/s
BenchmarkFireAligned-2   	       1	       347.0 duplicates	       725.0 max-late-ms	       347.0 p50-late-ms	       724.0 p99-late-ms
BenchmarkLeaderKill-2
2026/11/27 13:29:01 [node 2] some log line that interleaves
       5	       921.0 max-ms-to-write	       578.0 p50-ms-to-write
BenchmarkLeaderMemory-2   	       1	       508.0 anon-B/schedule	    4200 empty-rss-KiB	      1979 file-B/schedule	  240000 loaded-rss-KiB	       442.0 restart-to-ready-ms	      2349 rss-B/schedule
PASS
ok  	github.com/seedscheduler/schedulerd/cmd/schedulerd	10.266s
`

func TestParseLine(t *testing.T) {
	l, ok := ParseLine("BenchmarkReplicatedWrites/follower/writers=64-2   	    3799	        20.81 p50-ms	        38.82 p99-ms	      2926 writes/s")
	if !ok {
		t.Fatal("not parsed")
	}
	if l.Name != "ReplicatedWrites/follower/writers=64" || l.Procs != 2 || l.Iterations != 3799 {
		t.Fatalf("got %+v", l)
	}
	if l.Metrics["writes/s"] != 2926 || l.Metrics["p50-ms"] != 20.81 || l.Metrics["p99-ms"] != 38.82 {
		t.Fatalf("metrics %v", l.Metrics)
	}
	if strings.Join(l.Units, ",") != "p50-ms,p99-ms,writes/s" {
		t.Fatalf("units %v", l.Units)
	}
	for _, s := range []string{"PASS", "ok  	github.com/x	1.2s", "goos: linux", "BenchmarkLeaderKill-2", "BenchmarkX-2 	 abc 	 1 ns/op", "BenchmarkX-2 5 1.0"} {
		if _, ok := ParseLine(s); ok {
			t.Errorf("%q parsed as a result", s)
		}
	}
	// Without a GOMAXPROCS suffix (GOMAXPROCS=1).
	l, ok = ParseLine("BenchmarkFireSustained 	 1 	 2000 fires/s 	 39.00 p50-late-ms")
	if !ok || l.Name != "FireSustained" || l.Procs != 0 || l.Metrics["fires/s"] != 2000 {
		t.Fatalf("got %+v %v", l, ok)
	}
}

func TestParseOutputAndGroup(t *testing.T) {
	lines := ParseOutput(strings.NewReader(sample))
	if len(lines) != 13 {
		t.Fatalf("%d lines, want 13", len(lines))
	}
	rs := Group(lines)
	if len(rs) != 11 {
		t.Fatalf("%d results, want 11", len(rs))
	}
	by := map[string]Result{}
	for _, r := range rs {
		by[r.Name] = r
	}
	f := by["ReplicatedWrites/follower/writers=64"]
	if f.Group != "ReplicatedWrites" || f.Repeats != 3 {
		t.Fatalf("got %+v", f)
	}
	if s := f.Metrics["writes/s"]; s.Median != 2800 || s.Min != 2700 || s.Max != 2926 || s.N != 3 {
		t.Fatalf("writes/s %+v", s)
	}
	lk := by["LeaderKill"]
	if lk.Metrics["p50-ms-to-write"].Median != 578 || lk.Metrics["max-ms-to-write"].Median != 921 {
		t.Fatalf("LeaderKill %+v", lk)
	}
	if by["LeaderMemory"].Metrics["rss-B/schedule"].Median != 2349 {
		t.Fatalf("LeaderMemory %+v", by["LeaderMemory"])
	}
}

func TestSummarize(t *testing.T) {
	cases := []struct {
		in            []float64
		med, min, max float64
	}{
		{[]float64{5}, 5, 5, 5},
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
	}
	for _, c := range cases {
		s := Summarize(c.in)
		if s.Median != c.med || s.Min != c.min || s.Max != c.max || s.N != len(c.in) {
			t.Errorf("Summarize(%v) = %+v", c.in, s)
		}
	}
	if s := Summarize(nil); !math.IsNaN(s.Median) || s.N != 0 {
		t.Errorf("Summarize(nil) = %+v", s)
	}
	in := []float64{3, 1, 2}
	Summarize(in)
	if in[0] != 3 {
		t.Error("Summarize reordered its input")
	}
}

func TestComputeRatios(t *testing.T) {
	rs := Group(ParseOutput(strings.NewReader(sample)))
	ratios := ComputeRatios(rs, Fsync{P50Ms: 0.25, P99Ms: 0.5})
	got := map[string]float64{}
	for _, r := range ratios {
		got[r.Numerator+" / "+r.Floor] = r.Ratio
	}
	near := func(key string, want float64) {
		t.Helper()
		v, ok := got[key]
		if !ok {
			t.Fatalf("no ratio %q in %v", key, got)
		}
		if math.Abs(v-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", key, v, want)
		}
	}
	near("ReplicatedWrites/follower/writers=64 writes/s / ReplicatedWrites/raw/writers=64 writes/s", 2800.0/8292)
	near("ReplicatedWrites/leader/writers=1 writes/s / ReplicatedWrites/raw/writers=1 writes/s", 481.6/530.1)
	near("ReplicatedWrites/follower/writers=1 writes/s / ReplicatedWrites/raw/writers=1 writes/s", 103.8/530.1)
	near("Schedules/create-follower/writers=64 writes/s / Schedules/create-raw/writers=64 writes/s", 2609.0/2521)
	near("FireAligned p50-late-ms / B0 fsync p50 ms", 347/0.25)
	near("FireAligned p99-late-ms / B0 fsync p50 ms", 724/0.25)
	// No ratio across different writer counts, none for latency units.
	for k := range got {
		if strings.Contains(k, "writers=1 ") && strings.Contains(k, "writers=64") {
			t.Errorf("ratio across writer counts: %s", k)
		}
		if strings.Contains(k, "p50-ms /") {
			t.Errorf("latency ratio: %s", k)
		}
	}
	if n := len(ComputeRatios(rs, Fsync{Error: "no disk"})); n != 5 {
		t.Errorf("%d ratios without fsync floor, want 5 throughput ratios", n)
	}
}

func TestMarkdown(t *testing.T) {
	rs := Group(ParseOutput(strings.NewReader(sample)))
	rep := Report{Profile: "quick", Count: 1, Results: rs, Machine: Machine{Cores: 2, Fsync: Fsync{Samples: 500, P50Ms: 0.25, P99Ms: 0.5}}}
	rep.Ratios = ComputeRatios(rs, rep.Machine.Fsync)
	md := Markdown(rep)
	for _, want := range []string{"## ReplicatedWrites", "| follower/writers=64 | 3 | 21 (20.8–22.1) | 39 (38.8–40.1) | 2,800 (2,700–2,926) |", "## Ratios", "| FireAligned p50-late-ms | B0 fsync p50 ms | 347 | 0.25 | 1388× |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestParseMemTotal(t *testing.T) {
	if got := parseMemTotal("MemTotal:       25165824 kB\nMemFree: 1 kB\n"); got != "24.0 GiB (25165824 kB)" {
		t.Errorf("got %q", got)
	}
	if got := parseMemTotal(""); got != "unknown" {
		t.Errorf("got %q", got)
	}
}

func TestDrawPlots(t *testing.T) {
	rs := Group(ParseOutput(strings.NewReader(sample)))
	dir := t.TempDir()
	got := drawPlots(Report{Results: rs, Machine: Machine{Fsync: Fsync{P50Ms: 0.25}}}, dir)
	want := "replicatedwrites-throughput.png,firealigned-lateness.png"
	if strings.Join(got, ",") != want {
		t.Fatalf("plots %v, want %s", got, want)
	}
}
