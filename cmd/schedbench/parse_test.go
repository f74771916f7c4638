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
	want := "replicatedwrites-throughput.png,firealigned-lateness.png,leaderkill-failover.png"
	if strings.Join(got, ",") != want {
		t.Fatalf("plots %v, want %s", got, want)
	}
	got = drawPlots(Report{Results: Group(ParseOutput(strings.NewReader(sample2))), Machine: Machine{Fsync: Fsync{P50Ms: 0.16}}}, dir)
	want = "replicatedwrites-throughput.png,processcreates-throughput.png,processreads-throughput.png,leaderkill-failover.png," +
		"firealigned-lateness.png,firesustained-lateness.png,schedulescale-memory.png,schedulescale-restart.png"
	if strings.Join(got, ",") != want {
		t.Fatalf("plots %v, want %s", got, want)
	}
}

// Lines of the newer benchmarks, copied from real runs with small sizes.
const sample2 = `BenchmarkReplicatedWrites/raw-create/writers=1-2  	     200	         2.237 p50-ms	         7.428 p99-ms	         9.216 p99.9-ms	       388.5 writes/s
BenchmarkReplicatedWrites/raw-create/writers=16-2 	     200	         5.093 p50-ms	         9.020 p99-ms	         9.025 p99.9-ms	      2835 writes/s
BenchmarkProcessCreates/closed/leader/clients=1-2         	     500	         2.826 p50-ms	         7.362 p99-ms	         8.765 p99.9-ms	       321.0 writes/s
BenchmarkProcessCreates/closed/follower/clients=1-2       	     500	        11.13 p50-ms	        23.35 p99-ms	        30.73 p99.9-ms	        86.39 writes/s
BenchmarkProcessCreates/closed/leader/clients=16-2        	     500	        20.27 p50-ms	        54.39 p99-ms	        64.36 p99.9-ms	       693.6 writes/s
BenchmarkProcessCreates/closed/follower/clients=16-2      	     500	        25.85 p50-ms	        75.24 p99-ms	        75.45 p99.9-ms	       511.4 writes/s
BenchmarkProcessCreates/closed/leader/clients=256-2       	     500	       176.4 p50-ms	       273.7 p99-ms	       273.8 p99.9-ms	      1199 writes/s
BenchmarkProcessCreates/open/follower/rate=500-2          	     500	       500.0 offered/s	        75.98 p50-ms	       140.4 p99-ms	       147.8 p99.9-ms	       467.1 writes/s
BenchmarkProcessReads/local/clients=1-2         	    1000	         0.1600 p50-ms	         0.8370 p99-ms	         4.010 p99.9-ms	      4815 reads/s
BenchmarkProcessReads/strong/clients=1-2        	    1000	         0.5010 p50-ms	         2.101 p99-ms	         5.084 p99.9-ms	      1737 reads/s
BenchmarkProcessReads/local/clients=16-2        	    1000	         1.243 p50-ms	        10.63 p99-ms	        10.71 p99.9-ms	      8612 reads/s
BenchmarkProcessReads/strong/clients=16-2       	    1000	         3.788 p50-ms	        16.14 p99-ms	        23.84 p99.9-ms	      3167 reads/s
BenchmarkLeaderKill/timing=default-2         	       3	       970.6 max-ms-to-fire	       481.8 max-ms-to-leader	       578.8 max-ms-to-write	       944.2 p50-ms-to-fire	       466.5 p50-ms-to-leader	       571.0 p50-ms-to-write	         2.000 redelivered	         0 slots-lost
BenchmarkLeaderKill/timing=tuned-2           	       3	       918.8 max-ms-to-fire	       273.2 max-ms-to-leader	       319.7 max-ms-to-write	       881.0 p50-ms-to-fire	       208.2 p50-ms-to-leader	       216.4 p50-ms-to-write	         0 redelivered	         0 slots-lost
BenchmarkFireAligned/schedules=500-2         	       1	         0 duplicates	        70.76 max-late-ms	        27.28 p10-late-ms	        33.23 p25-late-ms	        56.46 p50-late-ms	        59.77 p75-late-ms	        67.03 p90-late-ms	        70.54 p99-late-ms	        70.74 p99.9-late-ms
BenchmarkFireSustained/schedules=3000-2      	       1	      1500 due/s	         0 duplicates	      1489 fires/s	       148.4 max-late-ms	        17.51 p10-late-ms	        27.34 p25-late-ms	        41.18 p50-late-ms	        54.91 p75-late-ms	        88.53 p90-late-ms	       147.1 p99-late-ms	       148.2 p99.9-late-ms
BenchmarkScheduleScale/schedules=0-2         	       1	         4.184 anon-MiB	       369.7 cold-to-leader-ms	       384.1 cold-to-write-ms	        13.11 file-MiB	         4.336 heap-MiB	         0.03125 raftlog-MiB	        18.04 restart-ms	        26.92 restore-ms	        17.29 rss-MiB	         0.01953 snapshot-MiB	        16.02 statefile-MiB
BenchmarkScheduleScale/schedules=3000-2      	       1	        16.53 anon-MiB	       428.8 cold-to-leader-ms	       548.7 cold-to-write-ms	      1241 creates/s	        20.52 file-MiB	        12.97 heap-MiB	         4.000 raftlog-MiB	        82.39 restart-ms	        42.76 restore-ms	      6904 rss-B/schedule	        37.05 rss-MiB	         5.188 snapshot-MiB	        16.02 statefile-MiB
`

func TestComputeRatiosNewer(t *testing.T) {
	rs := Group(ParseOutput(strings.NewReader(sample2)))
	got := map[string]float64{}
	for _, r := range ComputeRatios(rs, Fsync{P50Ms: 0.16}) {
		got[r.Numerator+" / "+r.Floor] = r.Ratio
	}
	for key, want := range map[string]float64{
		"ProcessCreates/closed/follower/clients=16 writes/s / ReplicatedWrites/raw-create/writers=16 writes/s": 511.4 / 2835,
		"ProcessCreates/closed/leader/clients=1 writes/s / ReplicatedWrites/raw-create/writers=1 writes/s":     321.0 / 388.5,
		"ProcessReads/strong/clients=16 reads/s / ProcessReads/local/clients=16 reads/s":                       3167.0 / 8612,
		"FireSustained/schedules=3000 fires/s / FireSustained/schedules=3000 due/s":                            1489.0 / 1500,
		"ProcessCreates/open/follower/rate=500 writes/s / ProcessCreates/open/follower/rate=500 offered/s":     467.1 / 500,
		"FireAligned/schedules=500 p99-late-ms / B0 fsync p50 ms":                                              70.54 / 0.16,
	} {
		if v, ok := got[key]; !ok || math.Abs(v-want) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	for k := range got {
		// No floor at 256 clients, and lateness percentiles other than
		// p50/p99/max are for the CDF only.
		if strings.Contains(k, "clients=256") || strings.Contains(k, "p10-late") || strings.Contains(k, "p99.9-late") {
			t.Errorf("unexpected ratio %s", k)
		}
	}
}
