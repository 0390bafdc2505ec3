package enrich

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"time"
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

// Link annotations of the suspect, one per kind of page, so a notification
// template can make a button or a PagerDuty link of each without parsing
// AnnLinks. Each has one meaning whatever source saw it.
const (
	AnnCompareURL    = "compare_url"    // the diff from the previous to the deployed revision (GitHub, GitLab)
	AnnArgoCDURL     = "argocd_url"     // the Argo CD application that synced it
	AnnReleaseURL    = "release_url"    // the GitHub release it shipped
	AnnDeploymentURL = "deployment_url" // the GitHub deployment's status page: its log, else the environment
	AnnCIURL         = "ci_url"         // the url CI pushed with the change (POST /api/v1/changes)
	// AnnTimelineURL is not the suspect's: the timeline page of the alert's
	// workload around its start (Options.TimelineURL).
	AnnTimelineURL = "timeline_url"
)

// Source names as the command names its sources (cmd/whatchanged). A
// merged change keeps the other sources' URLs as links named after them
// (merge.go), so a link's name is all that says where it came from.
const (
	sourceArgoCD  = "argocd"
	sourceGitHub  = "github"
	sourceChanges = "changes"
)

// maxMessageInJSON bounds a commit message inside whatchanged_changes.
const maxMessageInJSON = 200

// renderOnly writes nothing of ours but an error, for an alert that goes out
// without enrichment (the budget ran out before it).
func (e *Enricher) renderOnly(a *Alert, msg string) map[string]string {
	ours := map[string]string{e.opts.AnnotationPrefix + AnnError: msg}
	e.apply(a, ours)
	return ours
}

// annotations are ours for one subject and its ranked changes. Every value
// depends only on the alert's window (startsAt), the changes and the errors,
// never on the wall clock, so Prometheus's re-sends produce identical
// annotations.
func (e *Enricher) annotations(subject sources.Subject, w Window, r ranked, errs []string) map[string]string {
	p := e.opts.AnnotationPrefix
	ours := map[string]string{}

	shown := r.changes
	if len(shown) > e.opts.MaxChanges {
		shown = shown[:e.opts.MaxChanges]
	}
	ours[p+AnnSummary] = e.bound(summary(subject, shown, len(r.changes)-len(shown), humanDuration(e.opts.Lookback), r.lastDeploy))
	if r.suspect != nil {
		ours[p+AnnSuspect] = e.bound(describe(*r.suspect))
		if links := linkLines(*r.suspect); links != "" {
			ours[p+AnnLinks] = e.bound(links)
		}
		for name, url := range linkAnnotations(*r.suspect) {
			if len(url) <= e.opts.MaxAnnotationBytes { // a cut URL is a broken link
				ours[p+name] = url
			}
		}
	}
	if tl := e.timelineLink(subject, w); tl != "" {
		ours[p+AnnTimelineURL] = tl
		links := "timeline: " + tl
		if l := ours[p+AnnLinks]; l != "" {
			links = l + "\n" + links
		}
		ours[p+AnnLinks] = links
	}
	if len(shown) > 0 && e.opts.Annotations.ChangesJSONOn() {
		ours[p+AnnChanges] = e.changesJSON(shown)
	}
	if len(errs) > 0 {
		ours[p+AnnError] = e.bound(strings.Join(errs, "; "))
	}
	return ours
}

// apply writes ours onto a: stale ones from an earlier pass are removed
// first, others' annotations are never touched.
func (e *Enricher) apply(a *Alert, ours map[string]string) {
	p := e.opts.AnnotationPrefix
	if a.Annotations == nil {
		a.Annotations = map[string]string{}
	}
	for k := range a.Annotations {
		if strings.HasPrefix(k, p) {
			delete(a.Annotations, k)
		}
	}
	maps.Copy(a.Annotations, ours)
}

func summary(subject sources.Subject, shown []sources.Change, more int, lookback string, last *sources.Change) string {
	if subject.IsZero() {
		return "whatchanged could not tell which workload this alert is about: no namespace, workload, pod, app or repo label matched (add a rule)"
	}
	lines := make([]string, 0, len(shown)+2)
	if len(shown) == 0 {
		lines = append(lines, fmt.Sprintf("No changes of %s found in the %s before the alert started.", subject, lookback))
	}
	for _, ch := range shown {
		line := describe(ch)
		if ch.Role == RoleAlsoChanged {
			line = "also changed: " + line
		}
		lines = append(lines, line)
	}
	if more > 0 {
		lines = append(lines, fmt.Sprintf("+%d more", more))
	}
	if last != nil {
		lines = append(lines, fmt.Sprintf("No change of %s in the %s before the alert; last deploy: %s", subject.Short(), lookback, describe(*last)))
	}
	return strings.Join(lines, "\n")
}

// describe is one human line: what changed, to what, who wrote and who
// shipped it, how it rolled out, when relative to the alert start. It
// never claims causation:
//
//	argocd sync of orders 5f2c1e9 by Alice Kim: "raise DB pool to 200", rolled out as shop/orders rev 2 (acme/orders:5f2c1e9), 6m before the alert started [argocd, kubernetes]
func describe(ch sources.Change) string {
	var b strings.Builder
	bare := (ch.Kind == sources.KindRollout || ch.Kind == sources.KindRollback) && len(ch.Rollouts) == 0
	edit := ch.Kind == sources.KindConfig && len(ch.Objects) > 0
	switch ch.Kind {
	case sources.KindSync, sources.KindRelease, sources.KindGitHubDeployment:
		b.WriteString(ch.Source + " " + ch.Kind + " of ")
	case sources.KindHelm:
		b.WriteString(helmAction(ch) + " of ")
	case sources.KindConfig:
		if !edit {
			b.WriteString(ch.Kind + " of ")
		}
	default:
		b.WriteString(ch.Kind + " of ")
	}
	switch {
	case edit:
		b.WriteString(objects(ch.Objects))
	case ch.Kind == sources.KindHelm:
		b.WriteString(ch.Subject.App)
		if ch.Revision != "" {
			b.WriteString(" rev " + ch.Revision)
		}
		var parts []string
		if ch.Chart != "" {
			parts = append(parts, ch.Chart)
		}
		if ch.Version != "" {
			v := "app " + ch.Version
			if ch.PreviousVersion != "" {
				v += " (was " + ch.PreviousVersion + ")"
			}
			parts = append(parts, v)
		}
		if len(parts) > 0 {
			b.WriteString(" (" + strings.Join(parts, ", ") + ")")
		}
	case bare:
		b.WriteString(ch.Subject.Short())
		if ch.Revision != "" {
			b.WriteString(" rev " + ch.Revision)
		}
		switch {
		case ch.Version != "" && ch.PreviousVersion != "":
			fmt.Fprintf(&b, " %s (was %s)", ch.Version, ch.PreviousVersion)
		case ch.Version != "":
			b.WriteString(" " + ch.Version)
		}
	default:
		b.WriteString(what(ch))
		if v := versionOf(ch); v != "" {
			b.WriteString(" " + v)
			// A release's tag beside the commit it shipped.
			if tag := ch.Version; tag != "" && tag != v && !strings.ContainsAny(tag, "@:/") && !mutableTags[strings.ToLower(tag)] && !sources.IsSHA(strings.ToLower(tag)) {
				b.WriteString(" (" + tag + ")")
			}
			if v == ch.Version && ch.PreviousVersion != "" {
				b.WriteString(" (was " + ch.PreviousVersion + ")")
			}
		}
	}
	switch {
	case ch.Author != "" && ch.DeployedBy != "" && ch.DeployedBy != ch.Author:
		fmt.Fprintf(&b, " by %s (deployed by %s)", ch.Author, ch.DeployedBy)
	case ch.Author != "":
		b.WriteString(" by " + ch.Author)
	case ch.DeployedBy != "":
		b.WriteString(" deployed by " + ch.DeployedBy)
	}
	if msg := firstLine(ch.Message); msg != "" {
		fmt.Fprintf(&b, ": %q", sources.Truncate(msg, 80))
	}
	if !edit && len(ch.Objects) > 0 {
		b.WriteString(", changed " + objects(ch.Objects))
	}
	for i, r := range ch.Rollouts {
		if i == 0 {
			b.WriteString(", ")
		} else {
			b.WriteString(" and ")
		}
		if i == 0 || r.Rollback != ch.Rollouts[i-1].Rollback { // "rolled out as a and b"
			if r.Rollback {
				b.WriteString("rolled back ")
			} else {
				b.WriteString("rolled out as ")
			}
		}
		b.WriteString(sources.Subject{Namespace: r.Namespace, Name: r.Name}.Short())
		if r.Revision != "" {
			b.WriteString(" rev " + r.Revision)
		}
		if imgs := newImages(r.Images); i == 0 && imgs != "" {
			b.WriteString(" (" + imgs + ")")
		}
	}
	if edit && len(ch.Rollouts) == 0 {
		b.WriteString(" ") // "ConfigMap x edited 4m before the alert started"
	} else {
		b.WriteString(", ")
	}
	b.WriteString(when(ch.BeforeStart))
	if ch.Detail != "" {
		b.WriteString("; " + ch.Detail)
	}
	switch ch.Status {
	case sources.StatusFailed:
		b.WriteString(" (failed)")
	case sources.StatusInProgress:
		b.WriteString(" (in progress)")
	}
	srcs := ch.Sources
	if len(srcs) == 0 {
		srcs = []string{ch.Source}
	}
	fmt.Fprintf(&b, " [%s]", strings.Join(srcs, ", "))
	return b.String()
}

// what a deploy is of: a sync's app; a deploy that names its workload and
// rolled out nothing else, that workload; else its app, repository or
// workload.
// helmAction names what a Helm release revision was.
func helmAction(ch sources.Change) string {
	switch {
	case strings.HasPrefix(ch.Message, "Rollback"):
		return "helm rollback"
	case ch.Revision == "1" || strings.HasPrefix(ch.Message, "Install"):
		return "helm install"
	}
	return "helm upgrade"
}

// objects tells changed config objects by kind, name and the keys that
// changed (never their values): "ConfigMap pricing-config edited (keys:
// rates.yaml)".
func objects(objs []sources.Object) string {
	parts := make([]string, 0, len(objs))
	for _, o := range objs {
		verb := "edited"
		if o.Created {
			verb = "created"
		}
		p := o.Kind + " " + o.Name + " " + verb
		if len(o.Keys) > 0 {
			p += " (keys: " + strings.Join(o.Keys, ", ") + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " and ")
}

func what(ch sources.Change) string {
	switch {
	case ch.Kind == sources.KindSync && ch.Subject.App != "":
		_, name, ok := strings.Cut(ch.Subject.App, "_") // "<appNamespace>_<app>"
		if !ok {
			name = ch.Subject.App
		}
		return name
	case len(ch.Rollouts) == 0 && ch.Subject.Name != "":
		return ch.Subject.Short()
	case ch.Subject.App != "":
		return ch.Subject.App
	case ch.Subject.Repo != "":
		if _, path, ok := strings.Cut(ch.Subject.Repo, "/"); ok {
			return path
		}
		return ch.Subject.Repo
	}
	return ch.Subject.Short()
}

// versionOf is how people name what a deploy shipped: a release's tag, a
// commit's short SHA, else the version or revision as given.
func versionOf(ch sources.Change) string {
	rev, _, multi := strings.Cut(ch.Revision, ",")
	_, moved, _ := strings.Cut(ch.Version, "@") // a multi-source sync names the source that moved
	switch {
	case ch.Kind == sources.KindRelease && ch.Version != "":
		return ch.Version
	case multi && sources.IsSHA(strings.ToLower(moved)):
		return moved[:7]
	case multi && ch.Version != "":
		return ch.Version
	case sources.IsSHA(strings.ToLower(rev)):
		return rev[:7]
	case ch.Version != "":
		return ch.Version
	}
	return ch.Revision
}

func newImages(imgs []sources.ImageChange) string {
	out := make([]string, 0, len(imgs))
	for _, i := range imgs {
		out = append(out, i.To)
	}
	return strings.Join(out, ", ")
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

// timelineLink is the timeline page filtered to the alert's workload (or
// namespace, app) and the hour around its start: stable across re-sends.
func (e *Enricher) timelineLink(subject sources.Subject, w Window) string {
	if e.opts.TimelineURL == "" {
		return ""
	}
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("namespace", subject.Namespace)
	set("workload", subject.Name)
	if subject.Name == "" {
		set("app", subject.App)
	}
	set("cluster", subject.Cluster)
	q.Set("from", w.StartsAt.Add(-time.Hour).UTC().Format(time.RFC3339))
	q.Set("to", w.StartsAt.Add(time.Hour).UTC().Format(time.RFC3339))
	return e.opts.TimelineURL + "?" + q.Encode()
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

// linkAnnotations sorts the suspect's links by kind of page; the first of
// each kind wins (the change's own URL, then its links in merge order).
func linkAnnotations(ch sources.Change) map[string]string {
	out := map[string]string{}
	set := func(name, url string) {
		if name != "" && url != "" && out[name] == "" {
			out[name] = url
		}
	}
	set(AnnCompareURL, ch.CompareURL)
	set(linkKind(ch.Source, ch.Kind, ch.URL), ch.URL)
	for _, l := range ch.Links {
		if strings.HasSuffix(l.Name, " compare") {
			set(AnnCompareURL, l.URL)
			continue
		}
		set(linkKind(l.Name, "", l.URL), l.URL)
	}
	return out
}

// linkKind is the annotation of a URL from source, by the kind of change
// when known. A GitHub link of unknown kind is a release when it is a
// release page (GitHub's release URLs are …/releases/tag/<tag>), else a
// deployment's status page. Kubernetes rollouts have no links.
func linkKind(source, kind, url string) string {
	switch {
	case kind == sources.KindSync || source == sourceArgoCD:
		return AnnArgoCDURL
	case kind == sources.KindRelease || kind == "" && source == sourceGitHub && strings.Contains(url, "/releases/"):
		return AnnReleaseURL
	case kind == sources.KindGitHubDeployment || source == sourceGitHub:
		return AnnDeploymentURL
	case source == sourceChanges:
		return AnnCIURL
	}
	return ""
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
