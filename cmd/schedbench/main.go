// Command schedbench runs the Go benchmarks of cmd/schedulerd on the machine
// at hand and writes a reproducible report: the machine, the library
// versions, the disk's fsync floor measured in the same run, one table per
// workload (median and min/max over -count repeats) and ratios against the
// floors of the same run.
//
//	go run ./cmd/schedbench -profile quick   # within 5 minutes (make bench)
//	go run ./cmd/schedbench -profile full    # about half an hour
//	go run ./cmd/schedbench -only LeaderKill # one benchmark of the profile
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// Bench is one `go test -bench` invocation.
type Bench struct {
	Name      string   `json:"name"`      // top-level benchmark, e.g. ReplicatedWrites
	Benchtime string   `json:"benchtime"` // -benchtime
	Env       []string `json:"env,omitempty"`
}

// Profiles: quick stays within five minutes on the project's two-core
// machine; full takes about half an hour there (docs/benchmarks.md lists
// what each runs). Sizes are passed to the benchmarks through their
// SCHEDULERD_BENCH_* variables.
var profiles = map[string][]Bench{
	"quick": {
		{Name: "ReplicatedWrites", Benchtime: "2s"},
		{Name: "ProcessCreates", Benchtime: "1s", Env: []string{"SCHEDULERD_BENCH_CLIENTS=1,16,64,256", "SCHEDULERD_BENCH_OPEN_RATES=1000"}},
		{Name: "ProcessReads", Benchtime: "1s", Env: []string{"SCHEDULERD_BENCH_READ_CLIENTS=1,16,64"}},
		{Name: "LeaderKill", Benchtime: "5x"},
		{Name: "FireAligned", Benchtime: "1x", Env: []string{"SCHEDULERD_BENCH_FIRE_SCHEDULES=1000,10000"}},
		{Name: "FireSustained", Benchtime: "1x", Env: []string{"SCHEDULERD_BENCH_FIRE_SCHEDULES=1000,10000", "SCHEDULERD_BENCH_FIRE_WINDOW=10s"}},
		{Name: "ScheduleScale", Benchtime: "1x", Env: []string{"SCHEDULERD_BENCH_SCALE_STEPS=0,10000"}},
	},
	"full": {
		{Name: "ReplicatedWrites", Benchtime: "5s"},
		{Name: "ProcessWrites", Benchtime: "5s"},
		{Name: "ProcessCreates", Benchtime: "5s", Env: []string{"SCHEDULERD_BENCH_CLIENTS=1,16,64,256", "SCHEDULERD_BENCH_OPEN_RATES=500,1000"}},
		{Name: "ProcessReads", Benchtime: "5s", Env: []string{"SCHEDULERD_BENCH_READ_CLIENTS=1,16,64"}},
		{Name: "LeaderKill", Benchtime: "20x"},
		{Name: "Schedules", Benchtime: "3s"},
		{Name: "FireAligned", Benchtime: "1x", Env: []string{"SCHEDULERD_BENCH_FIRE_SCHEDULES=1000,10000,100000"}},
		{Name: "FireSustained", Benchtime: "1x", Env: []string{"SCHEDULERD_BENCH_FIRE_SCHEDULES=1000,10000,100000", "SCHEDULERD_BENCH_FIRE_WINDOW=60s"}},
		{Name: "ScheduleScale", Benchtime: "1x", Env: []string{"SCHEDULERD_BENCH_SCALE_STEPS=0,10000,100000,1000000"}},
	},
}

// Run records one invocation and how it went.
type Run struct {
	Bench
	Command  string  `json:"command"`
	ElapsedS float64 `json:"elapsed_s"`
	OK       bool    `json:"ok"`
	Error    string  `json:"error,omitempty"`
}

// Report is what the JSON file holds.
type Report struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Profile  string    `json:"profile"`
	Count    int       `json:"count"`
	Machine  Machine   `json:"machine"`
	Runs     []Run     `json:"runs"`
	Results  []Result  `json:"results"`
	Ratios   []Ratio   `json:"ratios"`
	Plots    []string  `json:"plots,omitempty"`
}

func main() {
	profile := flag.String("profile", "quick", "quick or full")
	count := flag.Int("count", 1, "repeats of each benchmark (go test -count)")
	outDir := flag.String("out-dir", "docs", "directory for bench-report.md/.json (relative to the module root)")
	benchFilter := flag.String("only", "", "comma-separated benchmark names of the profile to run (default all)")
	dataDir := flag.String("data-dir", os.TempDir(), "directory for the fsync measurement (the benchmarks' data dirs live under the temp dir)")
	timeout := flag.Duration("timeout", 60*time.Minute, "go test -timeout per benchmark")
	fromJSON := flag.String("from-json", "", "re-render the report (and plots) from a bench-report.json without running anything")
	flag.Parse()

	benches, ok := profiles[*profile]
	if !ok {
		fatalf("unknown profile %q (quick or full)", *profile)
	}
	if *benchFilter != "" {
		want := map[string]bool{}
		for _, n := range strings.Split(*benchFilter, ",") {
			want[strings.TrimSpace(n)] = true
		}
		var sel []Bench
		for _, b := range benches {
			if want[b.Name] {
				sel = append(sel, b)
			}
		}
		benches = sel
	}
	root, err := moduleRoot()
	if err != nil {
		fatalf("finding the module root: %v", err)
	}
	if !filepath.IsAbs(*outDir) {
		*outDir = filepath.Join(root, *outDir)
	}
	if *fromJSON != "" {
		b, err := os.ReadFile(*fromJSON)
		if err != nil {
			fatalf("%v", err)
		}
		var rep Report
		if err := json.Unmarshal(b, &rep); err != nil {
			fatalf("%s: %v", *fromJSON, err)
		}
		writeReport(rep, *outDir)
		return
	}

	rep := Report{Started: time.Now().UTC(), Profile: *profile, Count: *count}
	progress("machine")
	rep.Machine = recordMachine(root)
	progress("B0 fsync floor: 500 x 4 KiB write + fdatasync in %s", *dataDir)
	rep.Machine.Fsync, err = measureFsync(*dataDir, 500)
	if err != nil {
		progress("fsync measurement failed: %v", err)
		rep.Machine.Fsync.Error = err.Error()
	} else {
		progress("fsync p50 %.3f ms, p99 %.3f ms", rep.Machine.Fsync.P50Ms, rep.Machine.Fsync.P99Ms)
	}

	var lines []Line
	for i, b := range benches {
		progress("[%d/%d] %s -benchtime %s -count %d", i+1, len(benches), b.Name, b.Benchtime, *count)
		run, ls := runBench(root, b, *count, *timeout)
		rep.Runs = append(rep.Runs, run)
		lines = append(lines, ls...)
		status := "ok"
		if !run.OK {
			status = "FAILED: " + run.Error
		}
		progress("[%d/%d] %s done in %s, %d result lines, %s", i+1, len(benches), b.Name, time.Duration(run.ElapsedS*float64(time.Second)).Round(time.Second), len(ls), status)
	}
	rep.Results = Group(lines)
	rep.Ratios = ComputeRatios(rep.Results, rep.Machine.Fsync)
	rep.Finished = time.Now().UTC()

	writeReport(rep, *outDir)
	for _, r := range rep.Runs {
		if !r.OK {
			os.Exit(1)
		}
	}
}

// writeReport writes bench-report.json, bench-report.md and the plots into dir.
func writeReport(rep Report, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fatalf("%v", err)
	}
	rep.Plots = drawPlots(rep, dir)
	if err := writeJSON(filepath.Join(dir, "bench-report.json"), rep); err != nil {
		fatalf("%v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench-report.md"), []byte(Markdown(rep)), 0o644); err != nil {
		fatalf("%v", err)
	}
	progress("wrote %s and %s", filepath.Join(dir, "bench-report.md"), filepath.Join(dir, "bench-report.json"))
}

var t0 = time.Now()

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "schedbench %7s  %s\n", time.Since(t0).Round(time.Second), fmt.Sprintf(format, args...))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "schedbench: "+format+"\n", args...)
	os.Exit(1)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// runBench runs one benchmark, echoing its output with elapsed times and a
// heartbeat while it is silent, and returns the parsed result lines.
func runBench(root string, b Bench, count int, timeout time.Duration) (Run, []Line) {
	args := []string{"test", "-run", "^$", "-bench", "^Benchmark" + b.Name + "$", "-benchtime", b.Benchtime,
		"-count", fmt.Sprint(count), "-timeout", timeout.String(), "./cmd/schedulerd/"}
	run := Run{Bench: b, Command: strings.TrimSpace(strings.Join(b.Env, " ") + " go " + shellJoin(args))}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), b.Env...)
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	var buf bytes.Buffer
	var mu sync.Mutex
	last := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			t := sc.Text()
			buf.WriteString(t + "\n")
			mu.Lock()
			last = time.Now()
			mu.Unlock()
			progress("  %s", t)
		}
		io.Copy(io.Discard, pr)
	}()
	start := time.Now()
	stop := make(chan struct{})
	go func() {
		tk := time.NewTicker(15 * time.Second)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				mu.Lock()
				quiet := time.Since(last)
				mu.Unlock()
				if quiet >= 15*time.Second {
					progress("  ... %s running for %s", b.Name, time.Since(start).Round(time.Second))
				}
			}
		}
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	close(stop)
	run.ElapsedS = time.Since(start).Seconds()
	lines := ParseOutput(&buf)
	run.OK = err == nil && len(lines) > 0
	if err != nil {
		run.Error = err.Error()
	} else if len(lines) == 0 {
		run.Error = "no benchmark result lines"
	}
	return run, lines
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^$*|() ") {
			a = "'" + a + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// Machine describes where the numbers came from.
type Machine struct {
	Cores     int               `json:"cores"`
	CPU       string            `json:"cpu"`
	MemTotal  string            `json:"mem_total"`
	Kernel    string            `json:"kernel"`
	GoVersion string            `json:"go_version"`
	GOOS      string            `json:"goos"`
	GOARCH    string            `json:"goarch"`
	Commit    string            `json:"commit"`
	Modules   map[string]string `json:"modules"`
	Fsync     Fsync             `json:"fsync"`
}

var recordedModules = []string{"github.com/hashicorp/raft", "github.com/hashicorp/raft-boltdb/v2", "go.etcd.io/bbolt"}

func recordMachine(root string) Machine {
	m := Machine{Cores: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Modules: map[string]string{}}
	m.MemTotal = "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemTotal = parseMemTotal(string(b))
	}
	m.Kernel = "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.CPU = "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	m.GoVersion = runtime.Version()
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out)) // the toolchain that builds the benchmarks
	}
	m.Commit = "unknown"
	if out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	for _, mod := range recordedModules {
		m.Modules[mod] = "unknown"
		cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", mod)
		cmd.Dir = root
		if out, err := cmd.Output(); err == nil && strings.TrimSpace(string(out)) != "" {
			m.Modules[mod] = strings.TrimSpace(string(out))
		}
	}
	return m
}

// parseMemTotal returns the MemTotal line of /proc/meminfo as "N GiB (K kB)".
func parseMemTotal(meminfo string) string {
	for _, l := range strings.Split(meminfo, "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb); err == nil {
				return fmt.Sprintf("%.1f GiB (%d kB)", float64(kb)/(1<<20), kb)
			}
		}
	}
	return "unknown"
}

// Fsync is the B0 disk floor.
type Fsync struct {
	Dir     string  `json:"dir"`
	Samples int     `json:"samples"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
	Error   string  `json:"error,omitempty"`
}

// measureFsync appends n 4 KiB blocks to a fresh file in dir, each followed
// by fdatasync, and returns the latency percentiles of write+fdatasync.
func measureFsync(dir string, n int) (Fsync, error) {
	res := Fsync{Dir: dir, Samples: n}
	f, err := os.CreateTemp(dir, "schedbench-fsync-*")
	if err != nil {
		return res, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := bytes.Repeat([]byte{0xa5}, 4096)
	lat := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		t := time.Now()
		if _, err := f.Write(block); err != nil {
			return res, err
		}
		if err := datasync(f); err != nil {
			return res, err
		}
		lat = append(lat, float64(time.Since(t).Nanoseconds())/1e6)
	}
	sort.Float64s(lat)
	res.P50Ms = quantile(lat, 0.50)
	res.P99Ms = quantile(lat, 0.99)
	res.MaxMs = lat[len(lat)-1]
	return res, nil
}

// quantile of sorted xs, nearest rank below (as the benchmarks compute theirs).
func quantile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p*float64(len(sorted)-1))]
}
