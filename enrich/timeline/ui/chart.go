package ui

import (
	"cmp"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/whatchanged/whatchanged/enrich/timeline"
	"github.com/whatchanged/whatchanged/sources"
)

// The chart's geometry, in SVG user units (pixels at 100 % zoom). The
// SVG scales to the page's width; these fix its proportions.
const (
	chartWidth  = 1100.0
	gutter      = 190.0 // lane labels
	rightMargin = 28.0
	topMargin   = 8.0
	axisHeight  = 34.0
	lanePad     = 6.0
	markerRow   = 20.0 // the row of change markers at the top of a lane
	barHeight   = 14.0
	barGap      = 5.0
	minBarWidth = 4.0
	markerSize  = 7.0 // half the diagonal of a change's diamond
	arrowWidth  = 8.0 // the triangle after a firing alert
	charWidth   = 6.6 // of an 11-pixel label, on average
	maxTicks    = 9
	labelChars  = 26 // lane labels longer than this are cut (the title has it all)
)

// chart is one namespace's timeline: a lane per workload.
type chart struct {
	Title      string
	Height     float64
	PlotLeft   float64
	PlotRight  float64
	AxisY      float64
	Lanes      []lane
	Ticks      []tick
	NowX       float64
	ShowNow    bool
	Width      float64
	ClipID     string
	PlotTop    float64
	PlotHeight float64
	PlotWidth  float64
	LabelX     float64
	AxisLabelY float64
	AxisDateY  float64
}

type lane struct {
	Label, Title string
	Y, Height    float64
	LabelY       float64
	Odd          bool
	Bars         []bar
	Markers      []marker
	// LineTop and LineBottom span a change's guide line across the lane.
	LineTop, LineBottom float64
}

// bar is an alert from start to end (or to now while it fires).
type bar struct {
	X, Y, W, H  float64
	Fingerprint string
	Severity    string // critical, warning, info, none
	Status      string
	Href        string
	Title       string
	Label       string // the alertname, when it fits in the bar
	LabelX      float64
	LabelY      float64
	Firing      bool
	// Arrow is the triangle after a firing alert's bar: it goes on.
	Arrow string
}

// marker is a change at the time it started.
type marker struct {
	X, Y   float64
	Points string // the diamond
	ID     string
	Source string // as the change names it (kubernetes@eu, argocd, …)
	Key    string // the colour: kubernetes, argocd, github, flux, helm, grafana, changes, other
	Kind   string
	Href   string
	Title  string
}

type tick struct {
	X     float64
	Label string
	Date  string // on the first tick and where the day changes
}

// laneItems gathers what goes into one lane before layout.
type laneItems struct {
	cluster, namespace, name string
	apps, repos              []string
	alerts                   []int
	changes                  []int
}

// layout places the timeline's alerts and changes in one chart per
// namespace (cluster and namespace, when there are several clusters), a
// lane per workload. Changes that name only an app or a repository join
// the lane of a workload that goes by it, so a GitHub release sits beside
// the rollout it caused.
func layout(tl *timeline.Timeline, q query, now time.Time, loc *time.Location) []chart {
	var lanes []*laneItems
	find := func(cluster, ns, name string) *laneItems {
		for _, l := range lanes {
			if l.cluster == cluster && l.namespace == ns && l.name == name {
				return l
			}
		}
		l := &laneItems{cluster: cluster, namespace: ns, name: name}
		lanes = append(lanes, l)
		return l
	}
	named := func(s sources.Subject) *laneItems {
		l := find(s.Cluster, s.Namespace, s.Name)
		if s.App != "" && !slices.Contains(l.apps, s.App) {
			l.apps = append(l.apps, s.App)
		}
		for _, a := range s.Apps {
			if !slices.Contains(l.apps, a) {
				l.apps = append(l.apps, a)
			}
		}
		if s.Repo != "" && !slices.Contains(l.repos, s.Repo) {
			l.repos = append(l.repos, s.Repo)
		}
		return l
	}
	// Workloads first, so that app- and repo-only items find them.
	var loose []func()
	for i, a := range tl.Alerts {
		s := alertSubject(a)
		if s.Name != "" {
			l := named(s)
			l.alerts = append(l.alerts, i)
			continue
		}
		loose = append(loose, func() { l := looseLane(s, lanes, find); l.alerts = append(l.alerts, i) })
	}
	for i, c := range tl.Changes {
		s := changeSubject(c)
		if s.Name != "" {
			l := named(s)
			l.changes = append(l.changes, i)
			continue
		}
		loose = append(loose, func() { l := looseLane(s, lanes, find); l.changes = append(l.changes, i) })
	}
	for _, f := range loose {
		f()
	}

	// One chart per cluster and namespace, in name order.
	type groupKey struct{ cluster, namespace string }
	groups := map[groupKey][]*laneItems{}
	var keys []groupKey
	for _, l := range lanes {
		k := groupKey{l.cluster, l.namespace}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], l)
	}
	slices.SortFunc(keys, func(a, b groupKey) int {
		return cmp.Or(cmp.Compare(a.cluster, b.cluster), cmp.Compare(a.namespace, b.namespace))
	})
	sc := scale{start: q.Start, end: q.End, left: gutter, right: chartWidth - rightMargin}
	ticks := timeTicks(sc, loc)
	var charts []chart
	for i, k := range keys {
		ls := groups[k]
		slices.SortFunc(ls, func(a, b *laneItems) int { return cmp.Compare(a.name, b.name) })
		title := "namespace " + k.namespace
		if k.namespace == "" {
			title = "no namespace"
		}
		if k.cluster != "" {
			title = "cluster " + k.cluster + ", " + title
		}
		charts = append(charts, drawChart(fmt.Sprintf("plot-%d", i), title, ls, tl, q, sc, ticks, now, loc))
	}
	return charts
}

// looseLane is the lane of an item that names no workload: the workload
// that goes by its app or repository, else a lane of its own.
func looseLane(s sources.Subject, lanes []*laneItems, find func(cluster, ns, name string) *laneItems) *laneItems {
	for _, l := range lanes {
		if l.name == "" || l.cluster != s.Cluster || (s.Namespace != "" && l.namespace != s.Namespace) {
			continue
		}
		if (s.App != "" && slices.Contains(l.apps, s.App)) || (s.Repo != "" && slices.Contains(l.repos, s.Repo)) {
			return l
		}
	}
	switch {
	case s.App != "":
		return find(s.Cluster, s.Namespace, "app "+s.App)
	case s.Repo != "":
		return find(s.Cluster, s.Namespace, "repo "+s.Repo)
	}
	return find(s.Cluster, s.Namespace, "")
}

// alertSubject is what the alert was resolved to, with its labels standing
// in for what resolution did not find.
func alertSubject(a timeline.Alert) sources.Subject {
	s := a.Subject
	if s.Namespace == "" {
		s.Namespace = a.Labels["namespace"]
	}
	if s.Cluster == "" {
		s.Cluster = a.Labels["cluster"]
	}
	return s
}

// changeSubject is the change's workload; a merged deploy that names only
// an app takes the first workload it rolled out.
func changeSubject(c sources.Change) sources.Subject {
	s := c.Subject
	if s.Name == "" && len(c.Rollouts) > 0 {
		r := c.Rollouts[0]
		s.Name, s.Kind = r.Name, r.Kind
		if r.Namespace != "" {
			s.Namespace = r.Namespace
		}
	}
	return s
}

// scale maps times to x.
type scale struct {
	start, end  time.Time
	left, right float64
}

func (s scale) x(t time.Time) float64 {
	span := s.end.Sub(s.start)
	f := float64(t.Sub(s.start)) / float64(span)
	return s.left + math.Max(0, math.Min(1, f))*(s.right-s.left)
}

func (s scale) contains(t time.Time) bool { return !t.Before(s.start) && !t.After(s.end) }

func drawChart(id, title string, items []*laneItems, tl *timeline.Timeline, q query, sc scale, ticks []tick, now time.Time, loc *time.Location) chart {
	c := chart{Title: title, Width: chartWidth, PlotLeft: sc.left, PlotRight: sc.right, PlotWidth: sc.right - sc.left,
		Ticks: ticks, ClipID: id, PlotTop: topMargin, LabelX: sc.left - 10}
	y := topMargin
	for i, it := range items {
		l := drawLane(it, tl, q, sc, y, now, loc)
		l.Odd = i%2 == 1
		c.Lanes = append(c.Lanes, l)
		y += l.Height
	}
	c.PlotHeight = y - topMargin
	c.AxisY = y
	c.AxisLabelY = y + 15
	c.AxisDateY = y + 29
	c.Height = y + axisHeight
	if sc.contains(now) {
		c.ShowNow, c.NowX = true, sc.x(now)
	}
	return c
}

func drawLane(it *laneItems, tl *timeline.Timeline, q query, sc scale, top float64, now time.Time, loc *time.Location) lane {
	l := lane{Label: it.name, Title: it.name, Y: top}
	if it.name == "" {
		l.Label, l.Title = "(whole namespace)", "alerts and changes that name no workload"
	}
	if n := []rune(l.Label); len(n) > labelChars {
		l.Label = string(n[:labelChars-1]) + "…"
	}

	// Changes first: markers closer than a diamond's width stack in rows
	// of their own, and the alerts go below them.
	changes := slices.Clone(it.changes)
	slices.SortStableFunc(changes, func(a, b int) int { return tl.Changes[a].StartedAt.Compare(tl.Changes[b].StartedAt) })
	var markerEnds []float64
	for _, i := range changes {
		ch := tl.Changes[i]
		if !sc.contains(ch.StartedAt) {
			continue
		}
		x := sc.x(ch.StartedAt)
		row := place(&markerEnds, x-markerSize, x+markerSize)
		my := top + lanePad + (float64(row)+0.5)*markerRow
		l.Markers = append(l.Markers, marker{X: x, Y: my, ID: changeID(ch, i), Source: ch.Source, Key: sourceKey(ch), Kind: ch.Kind,
			Href: changeLink(ch), Title: changeTitle(ch, loc),
			Points: fmt.Sprintf("%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f", x, my-markerSize, x+markerSize, my, x, my+markerSize, x-markerSize, my)})
	}

	// Alerts stack in rows so that overlapping ones (and their names)
	// stay apart.
	alerts := slices.Clone(it.alerts)
	slices.SortStableFunc(alerts, func(a, b int) int { return tl.Alerts[a].StartsAt.Compare(tl.Alerts[b].StartsAt) })
	var rowEnds []float64
	barsTop := top + lanePad + float64(max(len(markerEnds), 1))*markerRow
	for _, i := range alerts {
		a := tl.Alerts[i]
		start, end, firing := alertSpan(a, now)
		if end.Before(sc.start) || start.After(sc.end) {
			continue
		}
		x1, x2 := sc.x(start), sc.x(end)
		if x2-x1 < minBarWidth {
			x2 = x1 + minBarWidth
		}
		last := x2
		if firing {
			last += arrowWidth
		}
		// The alert's name goes in its bar, else after it or before it
		// when the plot has room, else only in the hover text.
		name := cmp.Or(a.Alertname, a.Labels["alertname"])
		lw := float64(utf8.RuneCountInString(name))*charWidth + 8
		first, labelX := x1, 0.0
		switch {
		case lw < x2-x1:
			labelX = x1 + 4
		case last+4+lw <= sc.right:
			labelX = last + 4
			last += 4 + lw
		case x1-lw >= sc.left:
			labelX = x1 - lw + 2
			first = x1 - lw
		default:
			name = ""
		}
		row := place(&rowEnds, first, last)
		by := barsTop + float64(row)*(barHeight+barGap)
		b := bar{X: x1, Y: by, W: x2 - x1, H: barHeight, Fingerprint: a.Fingerprint, Severity: severity(a), Status: a.Status,
			Href: "?" + alertView(a, start, end).Encode(), Title: alertTitle(a, start, end, firing, loc), Firing: firing,
			Label: name, LabelX: labelX, LabelY: by + barHeight - 3.5}
		if firing {
			b.Arrow = fmt.Sprintf("%.1f,%.1f %.1f,%.1f %.1f,%.1f", x2, by, x2+arrowWidth-1, by+barHeight/2, x2, by+barHeight)
		}
		l.Bars = append(l.Bars, b)
	}
	l.Height = barsTop - top + float64(max(len(rowEnds), 1))*(barHeight+barGap) + lanePad
	l.LabelY = top + l.Height/2 + 4
	l.LineBottom = top + l.Height - lanePad
	return l
}

// place puts the span x1–x2 in the first row whose last span ends before
// it, or a new row, and returns the row.
func place(rowEnds *[]float64, x1, x2 float64) int {
	row := slices.IndexFunc(*rowEnds, func(end float64) bool { return end+2 < x1 })
	if row < 0 {
		row = len(*rowEnds)
		*rowEnds = append(*rowEnds, 0)
	}
	(*rowEnds)[row] = x2
	return row
}

// alertSpan is the part of an alert's life to draw: from its start to its
// end, or to now while it fires.
func alertSpan(a timeline.Alert, now time.Time) (start, end time.Time, firing bool) {
	start, end = a.StartsAt, a.EndsAt
	if start.IsZero() {
		start = a.FirstSeen
	}
	if end.IsZero() {
		if a.Status == "resolved" && !a.LastSeen.IsZero() {
			end = a.LastSeen
		} else {
			end, firing = now, true
		}
	}
	if end.Before(start) {
		end = start
	}
	return start, end, firing
}

// alertView is the page filtered to the alert's workload, from an hour
// before it started to half an hour after it ended.
func alertView(a timeline.Alert, start, end time.Time) url.Values {
	s := alertSubject(a)
	f := timeline.Filter{Namespace: s.Namespace, Workload: s.Name, Cluster: s.Cluster}
	if s.Name == "" {
		f.App = s.App
	}
	if f == (timeline.Filter{Cluster: s.Cluster}) { // resolution found nothing: the alert's own name
		f.Alertname = cmp.Or(a.Alertname, a.Labels["alertname"])
	}
	return query{Filter: f}.values(start.Add(-time.Hour), end.Add(30*time.Minute))
}

// severity is the colour class of an alert.
func severity(a timeline.Alert) string {
	switch s := strings.ToLower(cmp.Or(a.Severity, a.Labels["severity"])); s {
	case "critical", "warning", "info":
		return s
	}
	return "none"
}

// sourceKeys are the change sources with a colour of their own; Helm
// releases read from the cluster get theirs although their source is
// kubernetes, as they mean something else (a chart, not an image).
var sourceKeys = []string{"kubernetes", "argocd", "github", "flux", "helm", "grafana", "changes", "other"}

func sourceKey(c sources.Change) string {
	if c.Kind == sources.KindHelm {
		return "helm"
	}
	s, _, _ := strings.Cut(c.Source, "@") // kubernetes@eu: one per cluster
	if slices.Contains(sourceKeys, s) {
		return s
	}
	return "other"
}

// changeID is the change's stable id; a change without one (a merged
// observation that carried none) is named by its place in the timeline.
func changeID(c sources.Change, i int) string {
	if c.ID != "" {
		return c.ID
	}
	return fmt.Sprintf("change-%d", i)
}

// changeLink is where a change is best read: the diff, else the source's
// own page, else its first named link.
func changeLink(c sources.Change) string {
	switch {
	case c.CompareURL != "":
		return c.CompareURL
	case c.URL != "":
		return c.URL
	case len(c.Links) > 0:
		return c.Links[0].URL
	}
	return ""
}

func timeTicks(sc scale, loc *time.Location) []tick {
	span := sc.end.Sub(sc.start)
	steps := []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 48 * time.Hour, 7 * 24 * time.Hour}
	step := steps[len(steps)-1]
	if span/step > maxTicks {
		step *= span/step/maxTicks + 1
	} else {
		for _, s := range steps {
			if span/s <= maxTicks {
				step = s
				break
			}
		}
	}
	// The first tick on a round local time: a multiple of the step within
	// the hour or the day, local midnight for days.
	l := sc.start.In(loc)
	var t time.Time
	switch {
	case step < time.Hour:
		m := int(step / time.Minute)
		t = time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute()/m*m, 0, 0, loc)
	case step < 24*time.Hour:
		h := int(step / time.Hour)
		t = time.Date(l.Year(), l.Month(), l.Day(), l.Hour()/h*h, 0, 0, 0, loc)
	default:
		t = time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
	}
	next := func(t time.Time) time.Time {
		if step >= 24*time.Hour { // midnight stays midnight across a DST change
			return t.AddDate(0, 0, int(step/(24*time.Hour)))
		}
		return t.Add(step)
	}
	for t.Before(sc.start) {
		t = next(t)
	}
	var ticks []tick
	lastDay := ""
	for ; !t.After(sc.end); t = next(t) {
		lt := t.In(loc)
		tk := tick{X: sc.x(t), Label: lt.Format("15:04")}
		if step >= 24*time.Hour {
			tk.Label = lt.Format("Mon 2 Jan")
		}
		if day := lt.Format("Mon 2 Jan"); day != lastDay && step < 24*time.Hour {
			tk.Date, lastDay = day, day
		}
		ticks = append(ticks, tk)
	}
	return ticks
}
