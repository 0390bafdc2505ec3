package enrich

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// relationWeight orders relations: same workload > same app > same repo > same namespace.
var relationWeight = map[sources.Relation]float64{
	sources.RelationWorkload:  1.0,
	sources.RelationApp:       0.8,
	sources.RelationRepo:      0.6,
	sources.RelationNamespace: 0.3,
}

// afterStartWeight discounts changes that began after the alert started:
// they cannot have caused it, but a fix or rollback in flight is worth seeing.
const afterStartWeight = 0.25

// Roles a ranked change plays for the alert (Change.Role).
const (
	RoleSuspect     = "suspect"
	RoleAlsoChanged = "also changed" // another workload of the alerting workload's app or release
	RoleAfterStart  = "after start"  // a fix or rollback in flight; never the suspect
)

// maxHistory bounds the older changes kept to tell the last deploy.
const maxHistory = 10

// ranked is the outcome of ranking one alert's changes.
type ranked struct {
	changes []sources.Change // best first, merged, relation/score/beforeStart set
	suspect *sources.Change
	// lastDeploy is the newest deploy of the alerting workload (or its
	// app) before the look-back, when nothing of it changed inside it.
	lastDeploy *sources.Change
}

// maxCandidates bounds the work per alert: a busy namespace can hold
// thousands of loosely related changes, and only the best few are shown.
// Six times the default shown leaves room for merging to fold several
// observations of one deploy without losing the next distinct one.
const maxCandidates = 30

// candidate is a related change before it is copied: ranking a busy
// namespace sorts these small records, not thousands of Change structs.
type candidate struct {
	result, index int
	relation      sources.Relation
	score         float64
	startedAt     time.Time
}

// rank relates, merges, scores and orders the changes the sources returned
// for an alert's subject, in w: from the look-back to the notification
// (firing) or the alert's end (resolved).
func (e *Enricher) rank(subject sources.Subject, w Window, results []SourceResult, st stage) ranked {
	startsAt := w.StartsAt
	var cands, older []candidate
	for r := range results {
		for i := range results[r].Changes {
			ch := &results[r].Changes[i]
			if ch.StartedAt.After(w.Until) {
				continue
			}
			rel := sources.Relate(subject, ch.Subject)
			if rel == sources.RelationNone {
				continue
			}
			// An alert that names no namespace but says its stage (env=prod)
			// is not about the same app's copy in another stage's namespace.
			if subject.Namespace == "" && st.stated && st.elsewhere(ch.Subject.Namespace) {
				continue
			}
			c := candidate{r, i, rel, e.scoreOf(rel, startsAt.Sub(ch.StartedAt)), ch.StartedAt}
			switch {
			case !ch.StartedAt.Before(w.Since):
				cands = append(cands, c)
			case rel == sources.RelationWorkload || rel == sources.RelationApp:
				older = append(older, c)
			}
		}
	}
	cands = best(cands, maxCandidates)
	merged := merge(e.related(subject, results, cands), st)
	e.score(merged, startsAt)
	slices.SortStableFunc(merged, compareRanked)
	r := ranked{changes: merged}
	e.pickSuspect(&r, startsAt)

	// Nothing of the workload in the look-back: its last deploy, however
	// old, tells on-call to look elsewhere.
	own := false
	for _, ch := range merged {
		if (ch.Relation == sources.RelationWorkload || ch.Relation == sources.RelationApp) && !ch.StartedAt.After(startsAt) {
			own = true
		}
	}
	if !own && len(older) > 0 {
		slices.SortFunc(older, func(a, b candidate) int {
			return cmp.Or(cmp.Compare(relationWeight[b.relation], relationWeight[a.relation]), b.startedAt.Compare(a.startedAt))
		})
		if len(older) > maxHistory {
			older = older[:maxHistory]
		}
		hist := merge(e.related(subject, results, older), st)
		e.score(hist, startsAt)
		slices.SortStableFunc(hist, func(a, b sources.Change) int {
			return cmp.Or(cmp.Compare(relationWeight[b.Relation], relationWeight[a.Relation]), b.StartedAt.Compare(a.StartedAt))
		})
		last := hist[0]
		r.lastDeploy = &last
	}
	return r
}

// best keeps the n best-scored candidates.
func best(cands []candidate, n int) []candidate {
	if len(cands) <= n {
		return cands
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		switch {
		case a.score != b.score:
			return cmp.Compare(b.score, a.score)
		case !a.startedAt.Equal(b.startedAt):
			return b.startedAt.Compare(a.startedAt)
		case a.result != b.result:
			return cmp.Compare(a.result, b.result)
		}
		return cmp.Compare(a.index, b.index)
	})
	return cands[:n]
}

// related copies the candidates out with their relation. A change of the
// alerting workload itself takes the app and repo the alert's subject was
// resolved to (an Argo CD app found through its resources, a repo from
// its app's source), so the sync or release that caused it can be merged
// with it.
func (e *Enricher) related(subject sources.Subject, results []SourceResult, cands []candidate) []sources.Change {
	out := make([]sources.Change, len(cands))
	for j, c := range cands {
		ch := results[c.result].Changes[c.index]
		ch.Relation = c.relation
		if c.relation == sources.RelationWorkload {
			s := ch.Subject
			s.Apps = slices.Clone(s.Apps)
			for _, a := range append([]string{subject.App}, subject.Apps...) {
				if a != "" && !s.HasApp(a) {
					if s.App == "" {
						s.App = a
					} else {
						s.Apps = append(s.Apps, a)
					}
				}
			}
			if s.Repo == "" {
				s.Repo = subject.Repo
			}
			ch.Subject = s
		}
		if ch.Subject.Repo == "" && ch.Subject.App != "" {
			// Another workload's rollout: the repository of its app.
			for _, ar := range e.appRepos {
				if repo := ar.RepoOfApp(ch.Subject.App, ch.Subject.Namespace); repo != "" {
					ch.Subject.Repo = repo
					break
				}
			}
		}
		out[j] = ch
	}
	return out
}

// pickSuspect names the suspect and each change's role. The suspect
// started inside the suspect window before the alert and is closely
// related; when the alerting workload itself changed in that window, its
// own change is the suspect and its app's other workloads are "also
// changed", however recent. The suspect is listed first.
func (e *Enricher) pickSuspect(r *ranked, startsAt time.Time) {
	suspect := -1
	inWindow := func(ch sources.Change) bool {
		before := startsAt.Sub(ch.StartedAt)
		return before >= 0 && before <= e.opts.SuspectWindow
	}
	// Its own: a change of the alerting workload, or of its whole app (a
	// config change, a sync that rolled out no workload); another
	// workload of the app is a neighbour.
	// A re-sync of the revision already deployed that rolled nothing out
	// changed nothing the alert could see first.
	noop := func(ch sources.Change) bool {
		return ch.Kind == sources.KindSync && len(ch.Rollouts) == 0 && ch.Revision != "" && ch.Revision == ch.PreviousRevision
	}
	own := func(ch sources.Change) bool {
		return (ch.Relation == sources.RelationWorkload || (ch.Relation == sources.RelationApp && ch.Subject.Name == "")) && !noop(ch)
	}
	neighbour := func(ch sources.Change) bool { return ch.Relation == sources.RelationApp && ch.Subject.Name != "" }
	other := func(ch sources.Change) bool {
		return ch.Relation == sources.RelationWorkload || ch.Relation == sources.RelationApp
	}
	// Of the alerting workload's own changes, the closest before the
	// start; failing one, its app's other workloads'.
	for _, pick := range []func(sources.Change) bool{own, neighbour, other} {
		for i, ch := range r.changes {
			if pick(ch) && inWindow(ch) && (suspect < 0 || ch.StartedAt.After(r.changes[suspect].StartedAt)) {
				suspect = i
			}
		}
		if suspect >= 0 {
			break
		}
	}
	for i := range r.changes {
		ch := &r.changes[i]
		switch {
		case i == suspect:
			ch.Role = RoleSuspect
		case ch.StartedAt.After(startsAt):
			ch.Role = RoleAfterStart
		case suspect >= 0 && own(r.changes[suspect]) && neighbour(*ch):
			ch.Role = RoleAlsoChanged
		}
	}
	if suspect > 0 {
		s := r.changes[suspect]
		copy(r.changes[1:suspect+1], r.changes[:suspect])
		r.changes[0] = s
	}
	if suspect >= 0 {
		r.suspect = &r.changes[0]
	}
}

// score sets Score and BeforeStart: relation weight × closeness, where
// closeness halves every HalfLife away from the alert start.
func (e *Enricher) score(changes []sources.Change, startsAt time.Time) {
	for i := range changes {
		ch := &changes[i]
		before := startsAt.Sub(ch.StartedAt)
		ch.Score = e.scoreOf(ch.Relation, before)
		ch.BeforeStart = humanDuration(before)
	}
}

func (e *Enricher) scoreOf(rel sources.Relation, before time.Duration) float64 {
	closeness := math.Pow(0.5, math.Abs(before.Seconds())/e.opts.HalfLife.Seconds())
	if before < 0 {
		closeness *= afterStartWeight
	}
	return math.Round(relationWeight[rel]*closeness*100) / 100
}

// compareRanked orders by score, then newest, then stable identity, so the
// same inputs always render the same annotations.
func compareRanked(a, b sources.Change) int {
	switch {
	case a.Score != b.Score:
		return cmp.Compare(b.Score, a.Score)
	case !a.StartedAt.Equal(b.StartedAt):
		return b.StartedAt.Compare(a.StartedAt)
	}
	// Kubernetes times have one-second resolution: two revisions of one
	// workload can start "together"; the higher number is the newer.
	if ra, err1 := strconv.ParseInt(a.Revision, 10, 64); err1 == nil {
		if rb, err2 := strconv.ParseInt(b.Revision, 10, 64); err2 == nil && ra != rb {
			return cmp.Compare(rb, ra)
		}
	}
	return cmp.Or(
		strings.Compare(a.Source, b.Source), strings.Compare(a.ID, b.ID), strings.Compare(a.Revision, b.Revision),
		strings.Compare(a.Subject.Namespace, b.Subject.Namespace), strings.Compare(a.Subject.Kind, b.Subject.Kind),
		strings.Compare(a.Subject.Name, b.Subject.Name), strings.Compare(a.Subject.App, b.Subject.App),
		strings.Compare(a.Subject.Repo, b.Subject.Repo))
}

// humanDuration renders a duration the way on-call people say it: 45s, 12m,
// 2h5m, 26h, 3d4h. Negative durations (after the start) keep their sign.
func humanDuration(d time.Duration) string {
	if d > -time.Second && d < time.Second {
		return "0s" // no sign: "-0s" would read as a time after the start
	}
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%s%ds", sign, int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%s%dm", sign, int(d.Minutes()))
	case d < 48*time.Hour:
		h, m := int(d.Hours()), int(d.Minutes())%60
		if m == 0 {
			return fmt.Sprintf("%s%dh", sign, h)
		}
		return fmt.Sprintf("%s%dh%dm", sign, h, m)
	default:
		days, h := int(d.Hours())/24, int(d.Hours())%24
		if h == 0 {
			return fmt.Sprintf("%s%dd", sign, days)
		}
		return fmt.Sprintf("%s%dd%dh", sign, days, h)
	}
}
