package main

import (
	"bufio"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Line is one parsed benchmark result line:
//
//	BenchmarkReplicatedWrites/raw/writers=1-2   1130   0 ns/op   1.700 p50-ms   551.0 writes/s
type Line struct {
	Name       string             // without the "Benchmark" prefix and the -GOMAXPROCS suffix
	Procs      int                // the -N suffix (0 if absent)
	Iterations int64              // b.N
	Metrics    map[string]float64 // unit -> value
	Units      []string           // units in the order printed
}

var procsSuffix = regexp.MustCompile(`-(\d+)$`)

// ParseLine parses one benchmark result line; ok is false for anything else
// (progress, PASS, ok, goos:, log output, a bare name printed before a run).
func ParseLine(s string) (Line, bool) {
	f := strings.Fields(s)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return Line{}, false
	}
	iters, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return Line{}, false
	}
	l := Line{Name: strings.TrimPrefix(f[0], "Benchmark"), Iterations: iters, Metrics: map[string]float64{}}
	if m := procsSuffix.FindStringSubmatch(l.Name); m != nil {
		l.Procs, _ = strconv.Atoi(m[1])
		l.Name = strings.TrimSuffix(l.Name, m[0])
	}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Line{}, false
		}
		u := f[i+1]
		if _, dup := l.Metrics[u]; !dup {
			l.Units = append(l.Units, u)
		}
		l.Metrics[u] = v
	}
	return l, true
}

// ParseOutput returns every result line in r, in order.
func ParseOutput(r io.Reader) []Line {
	var out []Line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	pending := "" // a bare "BenchmarkX-N" whose result came on a later line
	for sc.Scan() {
		t := sc.Text()
		if l, ok := ParseLine(t); ok {
			out = append(out, l)
			pending = ""
			continue
		}
		f := strings.Fields(t)
		switch {
		case len(f) == 1 && strings.HasPrefix(f[0], "Benchmark"):
			pending = f[0]
		case pending != "" && len(f) >= 3:
			if l, ok := ParseLine(pending + " " + t); ok {
				out = append(out, l)
				pending = ""
			}
		}
	}
	return out
}

// Stat summarises the repeats of one metric.
type Stat struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	N      int       `json:"n"`
	Values []float64 `json:"values"`
}

// Summarize returns the median and min/max spread of vs (NaN median if empty).
func Summarize(vs []float64) Stat {
	if len(vs) == 0 {
		return Stat{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Stat{Median: med, Min: s[0], Max: s[n-1], N: n, Values: append([]float64(nil), vs...)}
}

// Result is one benchmark (sub-benchmark) over all its repeats.
type Result struct {
	Name    string          `json:"name"`  // e.g. ReplicatedWrites/raw/writers=1
	Group   string          `json:"group"` // top-level benchmark, e.g. ReplicatedWrites
	Procs   int             `json:"procs"`
	Repeats int             `json:"repeats"`
	Units   []string        `json:"units"`
	Metrics map[string]Stat `json:"metrics"`
}

// Group folds repeated lines (-count) into results, in first-seen order.
func Group(lines []Line) []Result {
	var order []string
	vals := map[string]map[string][]float64{}
	res := map[string]*Result{}
	for _, l := range lines {
		r, ok := res[l.Name]
		if !ok {
			group, _, _ := strings.Cut(l.Name, "/")
			r = &Result{Name: l.Name, Group: group, Procs: l.Procs}
			res[l.Name] = r
			vals[l.Name] = map[string][]float64{}
			order = append(order, l.Name)
		}
		r.Repeats++
		for _, u := range l.Units {
			if _, seen := vals[l.Name][u]; !seen {
				r.Units = append(r.Units, u)
			}
			vals[l.Name][u] = append(vals[l.Name][u], l.Metrics[u])
		}
	}
	out := make([]Result, 0, len(order))
	for _, name := range order {
		r := res[name]
		r.Metrics = map[string]Stat{}
		for u, vs := range vals[name] {
			r.Metrics[u] = Summarize(vs)
		}
		out = append(out, *r)
	}
	return out
}
