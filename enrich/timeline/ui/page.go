package ui

import (
	"cmp"
	"fmt"
	"html/template"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/whatchanged/whatchanged/enrich/timeline"
	"github.com/whatchanged/whatchanged/sources"
)

// page is what the template shows. Everything in it is text: the template
// escapes it, as labels, messages and authors come from outside.
type page struct {
	Status int
	// Error says what is wrong with the request (400) or what failed (500).
	Error  string
	Query  query
	Zone   string
	Window string
	// Share is this view with an absolute window, to paste in Slack.
	Share        string
	Charts       []chart
	Rows         []row
	SourceErrors []string
	Severities   []string
	Sources      []string
	Empty        bool
	CSS          template.CSS
}

// row is one line of the timeline in time order.
type row struct {
	Time, Full string
	ISO        string
	Type       string // firing, resolved, change
	Badge      string
	Class      string // the colour: sev-… or src-…
	Subject    string
	Alert      *alertRow
	Change     *changeRow
}

type alertRow struct {
	Fingerprint   string
	Name          string
	Severity      string
	Suspect       string
	Notifications int
	Labels        string
	View          string // the page filtered to it
	Links         []sources.Link
}

type changeRow struct {
	ID         string
	Source     string
	What       string
	Author     string
	DeployedBy string
	Message    string
	Status     string
	Links      []sources.Link
}

func rows(tl *timeline.Timeline, now time.Time, loc *time.Location, multiDay bool) []row {
	format := "15:04"
	if multiDay {
		format = "Mon 2 Jan 15:04"
	}
	var out []row
	for _, e := range tl.Entries {
		r := row{Time: e.At.In(loc).Format(format), Full: e.At.In(loc).Format("Mon 2 Jan 2006 15:04:05 MST"),
			ISO: e.At.UTC().Format(time.RFC3339), Type: e.Type}
		switch e.Type {
		case timeline.EntryFiring, timeline.EntryResolved:
			if e.Index < 0 || e.Index >= len(tl.Alerts) {
				continue
			}
			a := tl.Alerts[e.Index]
			start, end, _ := alertSpan(a, now)
			sev := severity(a)
			r.Badge, r.Class, r.Subject = strings.ToUpper(e.Type), "sev-"+sev, alertSubject(a).Short()
			r.Alert = &alertRow{Fingerprint: a.Fingerprint, Name: cmp.Or(a.Alertname, a.Labels["alertname"]), Severity: sev,
				Suspect: a.Suspect, Notifications: a.Notifications, Labels: labelText(a.Labels),
				View: "?" + alertView(a, start, end).Encode(), Links: a.Links}
		case timeline.EntryChange:
			if e.Index < 0 || e.Index >= len(tl.Changes) {
				continue
			}
			c := tl.Changes[e.Index]
			r.Badge, r.Class, r.Subject = cmp.Or(c.Kind, "change"), "src-"+sourceKey(c), changeSubject(c).Short()
			r.Change = &changeRow{ID: changeID(c, e.Index), Source: strings.Join(changeSources(c), ", "), What: changeWhat(c),
				Author: c.Author, DeployedBy: c.DeployedBy, Message: firstLine(c.Message), Status: shownStatus(c.Status), Links: changeLinks(c)}
		default:
			continue
		}
		out = append(out, r)
	}
	return out
}

// changeWhat is the version or revision a change brought, "v1.4.2
// (5f2c1e9)", and the chart a Helm release installed.
func changeWhat(c sources.Change) string {
	rev := c.Revision
	if sources.IsSHA(rev) && len(rev) > 7 {
		rev = rev[:7]
	}
	var parts []string
	switch {
	case c.Version != "" && rev != "" && rev != c.Version:
		parts = append(parts, c.Version+" ("+rev+")")
	case c.Version != "":
		parts = append(parts, c.Version)
	case rev != "":
		parts = append(parts, rev)
	}
	if c.Chart != "" {
		parts = append(parts, "chart "+c.Chart)
	}
	return strings.Join(parts, ", ")
}

func changeSources(c sources.Change) []string {
	if len(c.Sources) > 0 {
		return c.Sources
	}
	return []string{c.Source}
}

// changeLinks are the change's links, the compare link first, each once.
func changeLinks(c sources.Change) []sources.Link {
	var out []sources.Link
	add := func(name, u string) {
		if u != "" && !slices.ContainsFunc(out, func(l sources.Link) bool { return l.URL == u }) {
			out = append(out, sources.Link{Name: name, URL: u})
		}
	}
	add("compare", c.CompareURL)
	add(cmp.Or(c.Kind, "change"), c.URL)
	for _, l := range c.Links {
		add(l.Name, l.URL)
	}
	return out
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func labelText(labels map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, " ")
}

// alertTitle is the hover text of an alert's bar.
func alertTitle(a timeline.Alert, start, end time.Time, firing bool, loc *time.Location) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s) %s\n", cmp.Or(a.Alertname, a.Labels["alertname"], "alert"), severity(a), alertSubject(a).Short())
	if firing {
		fmt.Fprintf(&b, "firing since %s", start.In(loc).Format("Mon 2 Jan 15:04 MST"))
	} else {
		fmt.Fprintf(&b, "%s – %s (%s)", start.In(loc).Format("Mon 2 Jan 15:04"), end.In(loc).Format("15:04 MST"), end.Sub(start).Round(time.Second))
	}
	if a.Notifications > 1 {
		fmt.Fprintf(&b, ", %d notifications", a.Notifications)
	}
	if a.Suspect != "" {
		b.WriteString("\nsuspect: " + a.Suspect)
	}
	return b.String()
}

// changeTitle is the hover text of a change's marker: what, who, why,
// when.
func changeTitle(c sources.Change, loc *time.Location) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", strings.Join(changeSources(c), "+"), cmp.Or(c.Kind, "change"), changeSubject(c).Short())
	if w := changeWhat(c); w != "" {
		b.WriteString(" " + w)
	}
	if c.Author != "" {
		b.WriteString("\nby " + c.Author)
	}
	if c.DeployedBy != "" && c.DeployedBy != c.Author {
		b.WriteString("\ndeployed by " + c.DeployedBy)
	}
	if m := firstLine(c.Message); m != "" {
		b.WriteString("\n“" + m + "”")
	}
	b.WriteString("\n" + c.StartedAt.In(loc).Format("Mon 2 Jan 15:04:05 MST"))
	if shownStatus(c.Status) != "" {
		b.WriteString(", " + c.Status)
	}
	return b.String()
}

// windowText is the window as a person reads it: "Tue 4 Mar 14:00 – 17:00
// CET".
func windowText(start, end time.Time, loc *time.Location) string {
	s, e := start.In(loc), end.In(loc)
	if s.Format("2006-01-02") == e.Format("2006-01-02") {
		return s.Format("Mon 2 Jan 2006 15:04") + " – " + e.Format("15:04 MST")
	}
	return s.Format("Mon 2 Jan 2006 15:04") + " – " + e.Format("Mon 2 Jan 2006 15:04 MST")
}

// legend lists the sources of the timeline's changes in the chart's order.
func legendSources(tl *timeline.Timeline) []string {
	seen := map[string]bool{}
	for _, c := range tl.Changes {
		seen[sourceKey(c)] = true
	}
	var out []string
	for _, k := range sourceKeys {
		if seen[k] {
			out = append(out, k)
		}
	}
	return out
}

// shownStatus: "unknown" (a pushed change that did not say) says nothing.
func shownStatus(s string) string {
	if s == sources.StatusUnknown {
		return ""
	}
	return s
}
