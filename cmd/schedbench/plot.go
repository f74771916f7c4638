package main

import (
	"fmt"
	"image/color"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

var loadParam = regexp.MustCompile(`^(.*)/(writers|clients)=(\d+)$`)

// plotFloors names, for a workload plotted against its load, the floor
// drawn with it: a path of another benchmark of the same run.
var plotFloors = map[string]struct{ group, path string }{
	"ProcessCreates": {"ReplicatedWrites", "raw-create"},
	"ProcessWrites":  {"ReplicatedWrites", "raw"},
}

// drawPlots draws PNG plots next to the report and returns their file names
// (relative to the report): for every workload, throughput against writers
// (or clients) per path, the fire lateness CDF, failover times, and memory
// and restart times against the number of schedules. Failures are reported
// and skipped: plots are an extra, the tables are the report.
func drawPlots(rep Report, dir string) []string {
	var files []string
	groups, byGroup := groupResults(rep.Results)
	for _, g := range groups {
		var floor []Result
		if f, ok := plotFloors[g]; ok {
			for _, r := range byGroup[f.group] {
				if m := loadParam.FindStringSubmatch(r.Name); m != nil && m[1] == f.group+"/"+f.path {
					floor = append(floor, r)
				}
			}
		}
		draws := []func() (string, error){
			func() (string, error) { return throughputPlot(g, byGroup[g], floor, dir) },
			func() (string, error) { return latenessPlot(g, byGroup[g], rep.Machine.Fsync, dir) },
			func() (string, error) { return failoverPlot(g, byGroup[g], dir) },
			func() (string, error) { return scalePlot(g, byGroup[g], "memory", "MiB", memoryUnits, dir) },
			func() (string, error) { return scalePlot(g, byGroup[g], "restart", "ms", restartUnits, dir) },
		}
		for _, draw := range draws {
			if f, err := draw(); err != nil {
				progress("plot %s: %v", g, err)
			} else if f != "" {
				files = append(files, f)
			}
		}
	}
	return files
}

// rateUnit is the throughput metric of a result, if it has one.
func rateUnit(r Result) (string, bool) {
	for _, u := range []string{"writes/s", "reads/s"} {
		if _, ok := r.Metrics[u]; ok {
			return u, true
		}
	}
	return "", false
}

// throughputPlot: writes/s (or reads/s) against writers, one line per path
// (raw, leader, follower, ...), with min–max error bars over the repeats,
// and the floor of another benchmark when the workload has one.
func throughputPlot(group string, rs, floor []Result, dir string) (string, error) {
	series := map[string][]pt{}
	var names []string
	xlabel, ylabel := "writers", "writes/s"
	collect := func(r Result, path string) {
		m := loadParam.FindStringSubmatch(r.Name)
		u, ok := rateUnit(r)
		if m == nil || !ok {
			return
		}
		s := r.Metrics[u]
		x, _ := strconv.Atoi(m[3])
		if path == "" {
			xlabel, ylabel = m[2], u
			path = strings.TrimPrefix(strings.TrimPrefix(m[1], group), "/")
		}
		if _, seen := series[path]; !seen {
			names = append(names, path)
		}
		series[path] = append(series[path], pt{float64(x), s.Median, s.Min, s.Max})
	}
	for _, r := range rs {
		collect(r, "")
	}
	multi := false
	for _, ps := range series {
		multi = multi || len(ps) > 1
	}
	if !multi {
		return "", nil // nothing to draw against the load
	}
	for _, r := range floor {
		m := loadParam.FindStringSubmatch(r.Name)
		collect(r, "floor: "+m[1])
	}
	p := plot.New()
	p.Title.Text = group + ": throughput against " + xlabel
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel + " (median, min–max)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	for i, name := range names {
		ps := series[name]
		xys, errs := medianSeries(ps)
		if err := addSeries(p, i, name, xys, errs); err != nil {
			return "", err
		}
	}
	f := strings.ToLower(group) + "-throughput.png"
	return f, p.Save(6*vg.Inch, 4*vg.Inch, filepath.Join(dir, f))
}

// lateUnit matches the fire lateness percentiles: p50-late-ms, p99.9-late-ms,
// max-late-ms.
var lateUnit = regexp.MustCompile(`^(p(\d+(?:\.\d+)?)|max)-late-ms$`)

// latenessPlot: the CDF of fire lateness of each result of the group, drawn
// through its reported percentiles (median over the repeats), with the
// fsync p50 floor of the same run as a vertical line.
func latenessPlot(group string, rs []Result, fs Fsync, dir string) (string, error) {
	p := plot.New()
	p.Title.Text = group + ": fire lateness CDF"
	p.X.Label.Text = "ms after the slot"
	p.Y.Label.Text = "fraction of deliveries"
	p.Legend.Top = false
	p.Legend.Left = false
	n := 0
	xmax := 0.0
	for _, r := range rs {
		var xys plotter.XYs
		for _, u := range r.Units {
			m := lateUnit.FindStringSubmatch(u)
			if m == nil {
				continue
			}
			frac := 1.0
			if m[2] != "" {
				v, err := strconv.ParseFloat(m[2], 64)
				if err != nil {
					continue
				}
				frac = v / 100
			}
			xys = append(xys, plotter.XY{X: r.Metrics[u].Median, Y: frac})
			xmax = max(xmax, r.Metrics[u].Median)
		}
		if len(xys) == 0 {
			continue
		}
		sort.Slice(xys, func(a, b int) bool { return xys[a].Y < xys[b].Y })
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return "", err
		}
		c := plotutil.Color(n)
		l.Color, pts.Color = c, c
		pts.Shape = plotutil.Shape(n)
		p.Add(l, pts)
		p.Legend.Add(strings.TrimPrefix(strings.TrimPrefix(r.Name, group), "/"), l, pts)
		n++
	}
	if n == 0 {
		return "", nil
	}
	if fs.Error == "" && fs.P50Ms > 0 {
		fl, err := plotter.NewLine(plotter.XYs{{X: fs.P50Ms, Y: 0}, {X: fs.P50Ms, Y: 1}})
		if err != nil {
			return "", err
		}
		fl.Color = color.Gray{Y: 128}
		fl.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
		p.Add(fl)
		p.Legend.Add(fmt.Sprintf("B0 fsync p50 (%.2f ms)", fs.P50Ms), fl)
	}
	p.X.Min, p.Y.Min, p.Y.Max = 0, 0, 1
	p.X.Max = xmax * 1.05
	f := strings.ToLower(group) + "-lateness.png"
	return f, p.Save(6*vg.Inch, 4*vg.Inch, filepath.Join(dir, f))
}

// failoverSteps are the failover times LeaderKill reports, in the order
// they happen after the kill.
var failoverSteps = []struct{ unit, label string }{
	{"to-leader", "new leader"},
	{"to-write", "write accepted"},
	{"first-slot-late", "first slot late"},
	{"to-fire", "next delivery"},
}

// failoverPlot: for each timing set of a failover benchmark, the median
// and the maximum over the trials of each time after the leader's kill.
func failoverPlot(group string, rs []Result, dir string) (string, error) {
	labels := make([]string, len(failoverSteps))
	for i, st := range failoverSteps {
		labels[i] = st.label
	}
	p := plot.New()
	p.Title.Text = group + ": after the leader's SIGKILL"
	p.Y.Label.Text = "ms after the kill (p50 filled, max open)"
	p.NominalX(labels...)
	p.Legend.Top = true
	p.Legend.Left = true
	n := 0
	for _, r := range rs {
		name := strings.TrimPrefix(strings.TrimPrefix(r.Name, group), "/")
		if name == "" {
			name = group
		}
		off := 0.12 * (float64(n) - float64(len(rs)-1)/2)
		added := false
		for k, stat := range []string{"p50", "max"} {
			var xys plotter.XYs
			for i, st := range failoverSteps {
				if s, ok := r.Metrics[stat+"-ms-"+st.unit]; ok {
					xys = append(xys, plotter.XY{X: float64(i) + off, Y: s.Median})
				}
			}
			if len(xys) == 0 {
				continue
			}
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return "", err
			}
			sc.Color = plotutil.Color(n)
			sc.Shape = draw.CircleGlyph{}
			if k == 1 {
				sc.Shape = draw.RingGlyph{}
			}
			sc.Radius = vg.Points(4)
			p.Add(sc)
			p.Legend.Add(name+" "+stat, sc)
			added = true
		}
		if added {
			n++
		}
	}
	if n == 0 {
		return "", nil
	}
	p.Y.Min = 0
	f := strings.ToLower(group) + "-failover.png"
	return f, p.Save(6*vg.Inch, 4*vg.Inch, filepath.Join(dir, f))
}

var scaleParam = regexp.MustCompile(`/schedules=(\d+)$`)

var (
	memoryUnits  = []string{"rss-MiB", "anon-MiB", "file-MiB", "heap-MiB", "statefile-MiB", "snapshot-MiB"}
	restartUnits = []string{"restart-ms", "restore-ms", "cold-to-leader-ms", "cold-to-write-ms"}
)

// scalePlot: the given metrics against the number of stored schedules,
// one line each (median, min–max), for a benchmark with a schedules=N
// series.
func scalePlot(group string, rs []Result, what, ylabel string, units []string, dir string) (string, error) {
	series := map[string][]pt{}
	for _, r := range rs {
		m := scaleParam.FindStringSubmatch(r.Name)
		if m == nil {
			continue
		}
		x, _ := strconv.Atoi(m[1])
		for _, u := range units {
			if s, ok := r.Metrics[u]; ok {
				series[u] = append(series[u], pt{float64(x), s.Median, s.Min, s.Max})
			}
		}
	}
	multi := false
	for _, ps := range series {
		multi = multi || len(ps) > 1
	}
	if !multi {
		return "", nil
	}
	p := plot.New()
	p.Title.Text = group + ": " + what + " against schedules stored"
	p.X.Label.Text = "schedules"
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.Legend.Left = true
	i := 0
	for _, u := range units {
		ps := series[u]
		if len(ps) == 0 {
			continue
		}
		xys, errs := medianSeries(ps)
		if err := addSeries(p, i, u, xys, errs); err != nil {
			return "", err
		}
		i++
	}
	p.Y.Min = 0
	f := strings.ToLower(group) + "-" + what + ".png"
	return f, p.Save(6*vg.Inch, 4*vg.Inch, filepath.Join(dir, f))
}

// addSeries draws one named series as a line with points and min–max error
// bars, in the i-th color and shape.
func addSeries(p *plot.Plot, i int, name string, xys plotter.XYs, errs plotter.YErrors) error {
	l, pts, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	c := plotutil.Color(i)
	l.Color, pts.Color = c, c
	pts.Shape = plotutil.Shape(i)
	eb, err := plotter.NewYErrorBars(struct {
		plotter.XYer
		plotter.YErrorer
	}{xys, errs})
	if err != nil {
		return err
	}
	eb.Color = c
	p.Add(l, pts, eb)
	p.Legend.Add(name, l, pts)
	return nil
}

// pt is one point of a series: the median y at x with its min–max spread.
type pt struct{ x, y, lo, hi float64 }

// medianSeries sorts ps by x and returns its medians and their spread as
// error bars.
func medianSeries(ps []pt) (plotter.XYs, plotter.YErrors) {
	sort.Slice(ps, func(a, b int) bool { return ps[a].x < ps[b].x })
	xys := make(plotter.XYs, len(ps))
	errs := make(plotter.YErrors, len(ps))
	for j, q := range ps {
		xys[j] = plotter.XY{X: q.x, Y: q.y}
		errs[j] = struct{ Low, High float64 }{q.y - q.lo, q.hi - q.y}
	}
	return xys, errs
}
