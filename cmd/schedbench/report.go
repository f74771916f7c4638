package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Ratio is a number next to the floor measured in the same run.
type Ratio struct {
	Name      string  `json:"name"`
	Numerator string  `json:"numerator"`   // result name and unit
	Floor     string  `json:"floor"`       // result name and unit, or "fsync p50"
	Value     float64 `json:"value"`       // numerator median
	FloorVal  float64 `json:"floor_value"` // floor median
	Ratio     float64 `json:"ratio"`       // Value / FloorVal
}

// floorSegment maps a path segment of a sub-benchmark to the segment of
// its floor sibling at the same writer (client) count: the raw raft.Apply
// of the same command, or for strong reads the local read.
var floorSegment = map[string]string{
	"leader":          "raw",
	"follower":        "raw",
	"create-follower": "create-raw",
	"strong":          "local",
}

// crossFloors maps the results of one benchmark to their floor in another
// of the same run: B2's HTTP creates and token writes of real processes
// against B1's raw raft.Apply of the same command at the same load.
var crossFloors = []struct {
	re    *regexp.Regexp
	floor string // with $1 the path and $2 the count
}{
	{regexp.MustCompile(`^ProcessCreates/closed/(leader|follower)/clients=(\d+)$`), "ReplicatedWrites/raw-create/writers=$2"},
	{regexp.MustCompile(`^ProcessWrites/(leader|follower)/clients=(\d+)$`), "ReplicatedWrites/raw/writers=$2"},
}

// ratePairs are rates of one result compared with another rate of the same
// result: what was done against what was asked for.
var ratePairs = [][2]string{{"fires/s", "due/s"}, {"writes/s", "offered/s"}}

// latenessFloorUnits are the fire lateness percentiles put next to the
// fsync floor (the others are for the CDF plot).
var latenessFloorUnits = map[string]bool{"p50-late-ms": true, "p99-late-ms": true, "max-late-ms": true}

// ComputeRatios pairs every leader/follower throughput with the raw
// raft.Apply throughput at the same writer count (same run, same or
// another benchmark), strong reads with local reads, achieved rates with
// offered ones, and fire lateness percentiles with the disk's fsync
// latency (B0).
func ComputeRatios(results []Result, fs Fsync) []Ratio {
	byName := map[string]Result{}
	for _, r := range results {
		byName[r.Name] = r
	}
	var out []Ratio
	addRates := func(r, floor Result) {
		for _, u := range r.Units {
			if !strings.HasSuffix(u, "/s") {
				continue
			}
			num, ok1 := r.Metrics[u]
			den, ok2 := floor.Metrics[u]
			if !ok1 || !ok2 || den.Median == 0 {
				continue
			}
			out = append(out, Ratio{
				Name:      fmt.Sprintf("%s as a fraction of %s", r.Name, floor.Name),
				Numerator: r.Name + " " + u, Floor: floor.Name + " " + u,
				Value: num.Median, FloorVal: den.Median, Ratio: num.Median / den.Median,
			})
		}
	}
	for _, r := range results {
		segs := strings.Split(r.Name, "/")
		for i, s := range segs {
			raw, ok := floorSegment[s]
			if !ok {
				continue
			}
			fl := append([]string(nil), segs...)
			fl[i] = raw
			if floor, ok := byName[strings.Join(fl, "/")]; ok {
				addRates(r, floor)
			}
		}
		for _, cf := range crossFloors {
			if m := cf.re.FindStringSubmatchIndex(r.Name); m != nil {
				name := string(cf.re.ExpandString(nil, cf.floor, r.Name, m))
				if floor, ok := byName[name]; ok {
					addRates(r, floor)
				}
			}
		}
		for _, pair := range ratePairs {
			num, ok1 := r.Metrics[pair[0]]
			den, ok2 := r.Metrics[pair[1]]
			if ok1 && ok2 && den.Median != 0 {
				out = append(out, Ratio{
					Name:      fmt.Sprintf("%s %s as a fraction of %s", r.Name, pair[0], pair[1]),
					Numerator: r.Name + " " + pair[0], Floor: r.Name + " " + pair[1],
					Value: num.Median, FloorVal: den.Median, Ratio: num.Median / den.Median,
				})
			}
		}
	}
	if fs.Error == "" && fs.P50Ms > 0 {
		for _, r := range results {
			for _, u := range r.Units {
				if !latenessFloorUnits[u] {
					continue
				}
				out = append(out, Ratio{
					Name:      fmt.Sprintf("%s %s in fsync p50s", r.Name, u),
					Numerator: r.Name + " " + u, Floor: "B0 fsync p50 ms",
					Value: r.Metrics[u].Median, FloorVal: fs.P50Ms, Ratio: r.Metrics[u].Median / fs.P50Ms,
				})
			}
		}
	}
	return out
}

func writeJSON(path string, rep Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// fmtNum prints a metric readably: thousands separators above 1000, three
// significant digits below.
func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.Abs(v) >= 1000:
		return thousands(int64(math.Round(v)))
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtStat(s Stat) string {
	if s.N > 1 && s.Min != s.Max {
		return fmt.Sprintf("%s (%s–%s)", fmtNum(s.Median), fmtNum(s.Min), fmtNum(s.Max))
	}
	return fmtNum(s.Median)
}

// workloadTitles say which workload of the suite (B0–B7 in
// docs/benchmarks.md) each benchmark measures.
var workloadTitles = map[string]string{
	"ReplicatedWrites": "B1 raw raft.Apply, and token writes over HTTP (in-process)",
	"ProcessWrites":    "B2 token writes, real processes",
	"ProcessCreates":   "B2 schedule creates, real processes, closed and open loop",
	"ProcessReads":     "B3 reads through a follower, local and strong",
	"LeaderKill":       "B4 leader SIGKILL, default and tuned raft timings",
	"Schedules":        "the schedule API at 100,000 schedules (in-process)",
	"FireAligned":      "B5 fire lateness, all schedules due the same second",
	"FireSustained":    "B5 fire lateness, schedules spread over a period",
	"ScheduleScale":    "B6 memory, snapshot and restore, B7 cold restart, against schedules stored",
	"LeaderMemory":     "leader memory at one size",
}

// Markdown renders the report.
func Markdown(rep Report) string {
	var b strings.Builder
	m := rep.Machine
	fmt.Fprintf(&b, "# Benchmark report (%s profile)\n\n", rep.Profile)
	mk := "make bench"
	if rep.Profile != "quick" {
		mk += " PROFILE=" + rep.Profile
	}
	fmt.Fprintf(&b, "Generated by `go run ./cmd/schedbench -profile %s -count %d` (`%s`), %s – %s UTC. ",
		rep.Profile, rep.Count, mk, rep.Started.Format("2006-01-02 15:04"), rep.Finished.Format("15:04"))
	b.WriteString("Each cell is the median over the repeats, with the min–max spread in parentheses when there is more than one. " +
		"Absolute numbers depend on the machine; the ratios against floors measured in the same run are what carry across machines. " +
		"The method of each benchmark is described in `docs/benchmarks.md` and in its doc comment in `cmd/schedulerd/*bench_test.go`.\n\n")

	b.WriteString("## Machine\n\n| | |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| cores (runtime.NumCPU) | %d |\n", m.Cores)
	fmt.Fprintf(&b, "| CPU | %s |\n", m.CPU)
	fmt.Fprintf(&b, "| memory | %s |\n", m.MemTotal)
	fmt.Fprintf(&b, "| kernel | %s (%s/%s) |\n", m.Kernel, m.GOOS, m.GOARCH)
	fmt.Fprintf(&b, "| Go | %s |\n", m.GoVersion)
	fmt.Fprintf(&b, "| commit | %s |\n", m.Commit)
	mods := make([]string, 0, len(m.Modules))
	for k := range m.Modules {
		mods = append(mods, k)
	}
	sort.Strings(mods)
	for _, k := range mods {
		fmt.Fprintf(&b, "| `%s` | %s |\n", k, m.Modules[k])
	}
	if m.Fsync.Error != "" {
		fmt.Fprintf(&b, "| B0 disk fsync floor | failed: %s |\n", m.Fsync.Error)
	} else {
		fmt.Fprintf(&b, "| B0 disk fsync floor (%d × 4 KiB write + fdatasync in `%s`) | p50 %.3f ms, p99 %.3f ms, max %.3f ms |\n",
			m.Fsync.Samples, m.Fsync.Dir, m.Fsync.P50Ms, m.Fsync.P99Ms, m.Fsync.MaxMs)
	}
	b.WriteString("\n")

	b.WriteString("## Runs\n\n| benchmark | command | time | status |\n| --- | --- | --- | --- |\n")
	for _, r := range rep.Runs {
		st := "ok"
		if !r.OK {
			st = "failed: " + r.Error
		}
		fmt.Fprintf(&b, "| %s | `%s` | %.0f s | %s |\n", r.Name, r.Command, r.ElapsedS, st)
	}
	b.WriteString("\n")

	// One table per workload: rows are sub-benchmarks, columns the units.
	groups, byGroup := groupResults(rep.Results)
	for _, g := range groups {
		rs := byGroup[g]
		var units []string
		seen := map[string]bool{}
		for _, r := range rs {
			for _, u := range r.Units {
				if !seen[u] && !(u == "ns/op" && allZero(rs, u)) {
					seen[u] = true
					units = append(units, u)
				}
			}
		}
		title := g
		if t, ok := workloadTitles[g]; ok {
			title = g + ": " + t
		}
		fmt.Fprintf(&b, "## %s\n\n| benchmark | repeats | %s |\n|%s\n", title, strings.Join(units, " | "), strings.Repeat(" --- |", len(units)+2))
		for _, r := range rs {
			sub := strings.TrimPrefix(strings.TrimPrefix(r.Name, g), "/")
			if sub == "" {
				sub = g
			}
			cells := make([]string, len(units))
			for i, u := range units {
				if s, ok := r.Metrics[u]; ok {
					cells[i] = fmtStat(s)
				} else {
					cells[i] = ""
				}
			}
			fmt.Fprintf(&b, "| %s | %d | %s |\n", sub, r.Repeats, strings.Join(cells, " | "))
		}
		for _, p := range rep.Plots {
			if strings.HasPrefix(p, strings.ToLower(g)+"-") {
				fmt.Fprintf(&b, "\n![%s](%s)\n", p, p)
			}
		}
		b.WriteString("\n")
	}

	if len(rep.Ratios) > 0 {
		b.WriteString("## Ratios against floors of the same run\n\n| number | floor | value | floor value | ratio |\n| --- | --- | --- | --- | --- |\n")
		for _, r := range rep.Ratios {
			ratio := fmt.Sprintf("%.0f %%", 100*r.Ratio)
			if strings.HasPrefix(r.Floor, "B0") {
				ratio = fmt.Sprintf("%.0f×", r.Ratio)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.Numerator, r.Floor, fmtNum(r.Value), fmtNum(r.FloorVal), ratio)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func allZero(rs []Result, u string) bool {
	for _, r := range rs {
		if s, ok := r.Metrics[u]; ok && (s.Min != 0 || s.Max != 0) {
			return false
		}
	}
	return true
}

// groupResults splits results by workload, the workloads in the order they
// ran.
func groupResults(results []Result) ([]string, map[string][]Result) {
	var groups []string
	byGroup := map[string][]Result{}
	for _, r := range results {
		if _, ok := byGroup[r.Group]; !ok {
			groups = append(groups, r.Group)
		}
		byGroup[r.Group] = append(byGroup[r.Group], r)
	}
	return groups, byGroup
}
