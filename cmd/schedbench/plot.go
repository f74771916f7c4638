package main

import (
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
)

var loadParam = regexp.MustCompile(`^(.*)/(writers|clients)=(\d+)$`)

// drawPlots draws PNG plots next to the report and returns their file names
// (relative to the report): for every workload, throughput against writers
// (or clients) per path, and fire lateness percentiles. Failures are
// reported and skipped: plots are an extra, the tables are the report.
func drawPlots(rep Report, dir string) []string {
	var files []string
	var groups []string
	byGroup := map[string][]Result{}
	for _, r := range rep.Results {
		if _, ok := byGroup[r.Group]; !ok {
			groups = append(groups, r.Group)
		}
		byGroup[r.Group] = append(byGroup[r.Group], r)
	}
	for _, g := range groups {
		if f, err := throughputPlot(g, byGroup[g], dir); err != nil {
			progress("plot %s: %v", g, err)
		} else if f != "" {
			files = append(files, f)
		}
		if f, err := latenessPlot(g, byGroup[g], rep.Machine.Fsync, dir); err != nil {
			progress("plot %s: %v", g, err)
		} else if f != "" {
			files = append(files, f)
		}
	}
	return files
}

// throughputPlot: writes/s against writers, one line per path (raw,
// leader, follower, ...), with min–max error bars over the repeats.
func throughputPlot(group string, rs []Result, dir string) (string, error) {
	type pt struct{ x, y, lo, hi float64 }
	series := map[string][]pt{}
	var names []string
	xlabel := "writers"
	for _, r := range rs {
		m := loadParam.FindStringSubmatch(r.Name)
		s, ok := r.Metrics["writes/s"]
		if m == nil || !ok {
			continue
		}
		x, _ := strconv.Atoi(m[3])
		xlabel = m[2]
		path := strings.TrimPrefix(strings.TrimPrefix(m[1], group), "/")
		if _, seen := series[path]; !seen {
			names = append(names, path)
		}
		series[path] = append(series[path], pt{float64(x), s.Median, s.Min, s.Max})
	}
	multi := false
	for _, ps := range series {
		multi = multi || len(ps) > 1
	}
	if !multi {
		return "", nil // nothing to draw against the load
	}
	p := plot.New()
	p.Title.Text = group + ": throughput against " + xlabel
	p.X.Label.Text = xlabel
	p.Y.Label.Text = "writes/s (median, min–max)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	for i, name := range names {
		ps := series[name]
		sort.Slice(ps, func(a, b int) bool { return ps[a].x < ps[b].x })
		xys := make(plotter.XYs, len(ps))
		errs := make(plotter.YErrors, len(ps))
		for j, q := range ps {
			xys[j] = plotter.XY{X: q.x, Y: q.y}
			errs[j] = struct{ Low, High float64 }{q.y - q.lo, q.hi - q.y}
		}
		if err := addSeries(p, i, name, xys, errs); err != nil {
			return "", err
		}
	}
	f := strings.ToLower(group) + "-throughput.png"
	return f, p.Save(6*vg.Inch, 4*vg.Inch, filepath.Join(dir, f))
}

// latenessPlot: p50/p99/max fire lateness of each result of the group, with
// the fsync p50 floor of the same run as a horizontal line.
func latenessPlot(group string, rs []Result, fs Fsync, dir string) (string, error) {
	pcts := []string{"p50", "p99", "max"}
	p := plot.New()
	p.Title.Text = group + ": fire lateness"
	p.Y.Label.Text = "ms after the slot (median, min–max)"
	p.NominalX(pcts...)
	p.Legend.Top = true
	p.Legend.Left = true
	n := 0
	for _, r := range rs {
		xys := plotter.XYs{}
		errs := plotter.YErrors{}
		for i, pc := range pcts {
			if s, ok := r.Metrics[pc+"-late-ms"]; ok {
				xys = append(xys, plotter.XY{X: float64(i), Y: s.Median})
				errs = append(errs, struct{ Low, High float64 }{s.Median - s.Min, s.Max - s.Median})
			}
		}
		if len(xys) == 0 {
			continue
		}
		if err := addSeries(p, n, r.Name, xys, errs); err != nil {
			return "", err
		}
		n++
	}
	if n == 0 {
		return "", nil
	}
	if fs.Error == "" && fs.P50Ms > 0 {
		fl, err := plotter.NewLine(plotter.XYs{{X: 0, Y: fs.P50Ms}, {X: float64(len(pcts) - 1), Y: fs.P50Ms}})
		if err != nil {
			return "", err
		}
		fl.Color = color.Gray{Y: 128}
		fl.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
		p.Add(fl)
		p.Legend.Add("B0 fsync p50", fl)
	}
	p.Y.Min = 0
	f := strings.ToLower(group) + "-lateness.png"
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
