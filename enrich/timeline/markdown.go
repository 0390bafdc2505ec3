package timeline

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// Markdown is the timeline ready to paste into an incident report: a
// header with the window and the filters, then one line per event in time
// order, HH:MM in loc (with the date when the window spans days), each
// alert's suspect beneath it, links as Markdown links:
//
//   - 14:02 deploy orders 5f2c1e9 by Alice Kim — "raise DB pool" (argocd, [compare](…))
//   - 14:08 FIRING PostgresTooManyConnections orders (critical)
//   - suspect: argocd sync of orders 5f2c1e9 by Alice Kim: "raise DB pool", … [argocd]
//   - 14:31 RESOLVED PostgresTooManyConnections orders (critical) after 23m
//
// It depends only on t and loc, so the same timeline reads the same.
func (t *Timeline) Markdown(loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	from, to := t.From.In(loc), t.To.In(loc)
	spansDays := from.Format(time.DateOnly) != to.Format(time.DateOnly)
	clock := func(at time.Time) string {
		if spansDays {
			return at.In(loc).Format("2006-01-02 15:04")
		}
		return at.In(loc).Format("15:04")
	}
	var b strings.Builder
	if spansDays {
		fmt.Fprintf(&b, "## Timeline %s – %s (%s)\n\n", from.Format("2006-01-02 15:04"), to.Format("2006-01-02 15:04"), loc)
	} else {
		fmt.Fprintf(&b, "## Timeline %s %s–%s (%s)\n\n", from.Format(time.DateOnly), from.Format("15:04"), to.Format("15:04"), loc)
	}
	fmt.Fprintf(&b, "Filters: %s  \n", escape(t.Filter.String()))
	fmt.Fprintf(&b, "%s, %s.\n\n", count(len(t.Alerts), "alert"), count(len(t.Changes), "change"))

	var before []int
	for i, a := range t.Alerts {
		if a.StartsAt.Before(t.From) {
			before = append(before, i)
		}
	}
	if len(before) > 0 {
		b.WriteString("Already firing when the window opens:\n\n")
		for _, i := range before {
			a := t.Alerts[i]
			fmt.Fprintf(&b, "- %s FIRING %s\n", a.StartsAt.In(loc).Format("2006-01-02 15:04"), alertLine(a))
			suspectLine(&b, a)
		}
		b.WriteString("\n")
	}
	if len(t.Entries) == 0 {
		b.WriteString("Nothing fired, resolved or changed in this window.\n")
	}
	for _, e := range t.Entries {
		switch e.Type {
		case EntryChange:
			fmt.Fprintf(&b, "- %s %s\n", clock(e.At), changeLine(t.Changes[e.Index]))
		case EntryFiring:
			a := t.Alerts[e.Index]
			fmt.Fprintf(&b, "- %s FIRING %s\n", clock(e.At), alertLine(a))
			suspectLine(&b, a)
		case EntryResolved:
			a := t.Alerts[e.Index]
			fmt.Fprintf(&b, "- %s RESOLVED %s after %s\n", clock(e.At), alertLine(a), duration(a.EndsAt.Sub(a.StartsAt)))
		}
	}
	if len(t.Errors) > 0 {
		b.WriteString("\n")
		for _, msg := range t.Errors {
			fmt.Fprintf(&b, "> Incomplete: %s  \n", escape(msg))
		}
	}
	return b.String()
}

// alertLine: "PostgresTooManyConnections orders (critical)".
func alertLine(a Alert) string {
	var b strings.Builder
	b.WriteString(escape(cmp.Or(a.Alertname, a.Labels["alertname"], "(no alertname)")))
	if what := subjectName(a.Subject); what != "" {
		b.WriteString(" " + escape(what))
	}
	var notes []string
	if s := cmp.Or(a.Severity, a.Labels["severity"]); s != "" {
		notes = append(notes, escape(s))
	}
	if a.Notifications > 1 {
		notes = append(notes, fmt.Sprintf("%d notifications", a.Notifications))
	}
	if len(notes) > 0 {
		b.WriteString(" (" + strings.Join(notes, ", ") + ")")
	}
	return b.String()
}

func suspectLine(b *strings.Builder, a Alert) {
	if a.Suspect == "" {
		b.WriteString("  - no suspect named when it fired\n")
		return
	}
	fmt.Fprintf(b, "  - suspect: %s", escape(a.Suspect))
	var links []string
	for _, l := range a.Links {
		links = append(links, link(l.Name, l.URL))
	}
	if len(links) > 0 {
		b.WriteString(" (" + strings.Join(links, ", ") + ")")
	}
	b.WriteString("\n")
}

// changeLine: `deploy orders 5f2c1e9 by Alice Kim — "raise DB pool" (argocd, [compare](…))`.
func changeLine(ch sources.Change) string {
	var b strings.Builder
	b.WriteString(verb(ch))
	if what := subjectName(ch.Subject); what != "" {
		b.WriteString(" " + escape(what))
	}
	if v := version(ch); v != "" {
		b.WriteString(" " + escape(v))
	}
	if by := cmp.Or(ch.Author, ch.DeployedBy); by != "" {
		b.WriteString(" by " + escape(by))
	}
	if msg := firstLine(ch.Message); msg != "" {
		b.WriteString(` — "` + escape(sources.Truncate(msg, 80)) + `"`)
	}
	notes := []string{escape(strings.Join(cmpSlice(ch.Sources, []string{ch.Source}), ", "))}
	switch ch.Status {
	case sources.StatusFailed:
		notes = append(notes, "failed")
	case sources.StatusInProgress:
		notes = append(notes, "in progress")
	}
	seen := map[string]bool{}
	add := func(name, url string) {
		if url != "" && !seen[url] {
			seen[url] = true
			notes = append(notes, link(name, url))
		}
	}
	add("compare", ch.CompareURL)
	add(ch.Source, ch.URL)
	for _, l := range ch.Links {
		add(l.Name, l.URL)
	}
	b.WriteString(" (" + strings.Join(notes, ", ") + ")")
	return b.String()
}

// verb is what a change was, in a word: a sync, a CI deploy and a GitHub
// deployment all shipped something.
func verb(ch sources.Change) string {
	switch ch.Kind {
	case sources.KindSync, sources.KindDeploy, sources.KindGitHubDeployment:
		return "deploy"
	case "":
		return "change"
	}
	return ch.Kind
}

// version: a commit's short SHA, else the version, else the revision.
func version(ch sources.Change) string {
	switch {
	case sources.IsSHA(ch.Revision):
		return ch.Revision[:min(7, len(ch.Revision))]
	case ch.Version != "":
		return ch.Version
	case ch.Revision != "":
		return "rev " + ch.Revision
	}
	return ""
}

// subjectName is the one name people use: the workload, else the app,
// else the repository, else the namespace.
func subjectName(s sources.Subject) string {
	switch {
	case s.Name != "":
		return s.Name
	case s.App != "":
		return s.App
	case s.Repo != "":
		return s.Repo
	}
	return s.Namespace
}

// link is a Markdown link; a URL's parentheses and spaces are encoded so
// they cannot end it.
func link(name, url string) string {
	url = strings.NewReplacer("(", "%28", ")", "%29", " ", "%20").Replace(url)
	return "[" + escape(name) + "](" + url + ")"
}

// escape keeps free text (commit messages, names) from turning into
// emphasis, code or HTML where the Markdown is pasted. Underscores and
// brackets stay: inside a word an underscore is no emphasis, and brackets
// not followed by a link target are no link.
var escape = strings.NewReplacer(`\`, `\\`, "*", `\*`, "`", "\\`", "<", `\<`, ">", `\>`, "\n", " ").Replace

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// duration is a human span: 45s, 23m, 2h5m, 3d4h.
func duration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Round(time.Minute).Minutes()))
	case d < 24*time.Hour:
		d = d.Round(time.Minute)
		h, m := int(d.Hours()), int(d.Minutes())%60
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	d = d.Round(time.Hour)
	days, h := int(d.Hours())/24, int(d.Hours())%24
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, h)
}

func cmpSlice(a, b []string) []string {
	if len(a) > 0 {
		return a
	}
	return b
}
