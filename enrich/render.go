package enrich

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/whatchanged/whatchanged/sources"
)

// Annotation names, after the configured prefix.
const (
	AnnSummary = "summary"
	AnnSuspect = "suspect"
	AnnChanges = "changes"
	AnnLinks   = "links"
	AnnError   = "error"
)

// maxMessageInJSON bounds a commit message inside whatchanged_changes.
const maxMessageInJSON = 200

// render writes our annotations onto the alert: stale ones from an earlier
// pass are removed first, others' annotations are never touched. Every value
// depends only on the alert (startsAt), the changes and the errors, never on
// the wall clock, so Prometheus's re-sends produce identical annotations.
func (e *Enricher) render(a *Alert, subject sources.Subject, r ranked, errs []string) map[string]string {
	p := e.opts.AnnotationPrefix
	ours := map[string]string{}

	shown := r.changes
	if len(shown) > e.opts.MaxChanges {
		shown = shown[:e.opts.MaxChanges]
	}
	ours[p+AnnSummary] = e.bound(summary(subject, shown, len(r.changes)-len(shown), humanDuration(e.opts.Lookback)))
	if r.suspect != nil {
		ours[p+AnnSuspect] = e.bound(describe(*r.suspect, true))
		if links := linkLines(*r.suspect); links != "" {
			ours[p+AnnLinks] = e.bound(links)
		}
	}
	if len(shown) > 0 {
		ours[p+AnnChanges] = e.changesJSON(shown)
	}
	if len(errs) > 0 {
		ours[p+AnnError] = e.bound(strings.Join(errs, "; "))
	}

	if a.Annotations == nil {
		a.Annotations = map[string]string{}
	}
	for k := range a.Annotations {
		if strings.HasPrefix(k, p) {
			delete(a.Annotations, k)
		}
	}
	for k, v := range ours {
		a.Annotations[k] = v
	}
	return ours
}

func summary(subject sources.Subject, shown []sources.Change, more int, lookback string) string {
	if subject.IsZero() {
		return "whatchanged could not tell which workload this alert is about: no namespace, workload, pod, app or repo label matched (add a rule)"
	}
	if len(shown) == 0 {
		return fmt.Sprintf("No changes of %s found in the %s before the alert started.", subject, lookback)
	}
	lines := make([]string, 0, len(shown)+1)
	for _, ch := range shown {
		lines = append(lines, describe(ch, false))
	}
	if more > 0 {
		lines = append(lines, fmt.Sprintf("+%d more", more))
	}
	return strings.Join(lines, "\n")
}

// describe is one human line: what changed, to what, by whom, when relative
// to the alert start. It never claims causation.
func describe(ch sources.Change, suspect bool) string {
	var b strings.Builder
	b.WriteString(ch.Kind)
	b.WriteString(" of ")
	b.WriteString(ch.Subject.Short())
	switch {
	case ch.Version != "" && ch.PreviousVersion != "":
		fmt.Fprintf(&b, " %s (was %s)", ch.Version, ch.PreviousVersion)
	case ch.Version != "":
		b.WriteString(" " + ch.Version)
	case ch.Revision != "":
		b.WriteString(" revision " + shortRev(ch.Revision))
	}
	if ch.Author != "" {
		b.WriteString(" by " + ch.Author)
	}
	b.WriteString(", ")
	b.WriteString(when(ch.BeforeStart))
	switch ch.Status {
	case sources.StatusFailed:
		b.WriteString(" (failed)")
	case sources.StatusInProgress:
		b.WriteString(" (in progress)")
	}
	if msg := firstLine(ch.Message); msg != "" && !suspect {
		fmt.Fprintf(&b, ": %q", sources.Truncate(msg, 80))
	}
	srcs := ch.Sources
	if len(srcs) == 0 {
		srcs = []string{ch.Source}
	}
	fmt.Fprintf(&b, " [%s]", strings.Join(srcs, ", "))
	return b.String()
}

func when(beforeStart string) string {
	switch {
	case beforeStart == "0s":
		return "when the alert started"
	case strings.HasPrefix(beforeStart, "-"):
		return beforeStart[1:] + " after the alert started"
	default:
		return beforeStart + " before the alert started"
	}
}

func linkLines(ch sources.Change) string {
	var lines []string
	seen := map[string]bool{}
	add := func(name, url string) {
		if url != "" && !seen[url] {
			seen[url] = true
			lines = append(lines, name+": "+url)
		}
	}
	add("compare", ch.CompareURL)
	add(ch.Source, ch.URL)
	for _, l := range ch.Links {
		add(l.Name, l.URL)
	}
	return strings.Join(lines, "\n")
}

// changesJSON is the compact array, cut from the end until it fits.
func (e *Enricher) changesJSON(shown []sources.Change) string {
	trimmed := make([]sources.Change, len(shown))
	for i, ch := range shown {
		ch.Message = sources.Truncate(ch.Message, maxMessageInJSON)
		trimmed[i] = ch
	}
	for n := len(trimmed); n > 0; n-- {
		b, err := json.Marshal(trimmed[:n])
		if err == nil && len(b) <= e.opts.MaxAnnotationBytes {
			return string(b)
		}
	}
	return "[]"
}

// bound cuts a text annotation to the size limit at a line boundary if it can.
func (e *Enricher) bound(s string) string {
	limit := e.opts.MaxAnnotationBytes
	if len(s) <= limit {
		return s
	}
	const marker = "\n… (truncated)"
	cut := s[:limit-len(marker)]
	if i := strings.LastIndexByte(cut, '\n'); i > 0 {
		cut = cut[:i]
	}
	for !utf8.ValidString(cut) {
		cut = cut[:len(cut)-1]
	}
	return cut + marker
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
}

func shortRev(rev string) string {
	if isSHA(strings.ToLower(rev)) && len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
