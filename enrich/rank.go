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

// mergeWindow is how far apart two observations sharing a revision or
// version may start and still be one deploy (a later redeploy of the same
// version is another change).
const mergeWindow = 30 * time.Minute

// ranked is the outcome of ranking one alert's changes.
type ranked struct {
	changes []sources.Change // best first, merged, relation/score/beforeStart set
	suspect *sources.Change
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
// for an alert's subject.
func (e *Enricher) rank(subject sources.Subject, startsAt time.Time, results []SourceResult) ranked {
	since, until := startsAt.Add(-e.opts.Lookback), startsAt.Add(e.opts.Lookahead)
	var cands []candidate
	for r := range results {
		for i := range results[r].Changes {
			ch := &results[r].Changes[i]
			if ch.StartedAt.Before(since) || ch.StartedAt.After(until) {
				continue
			}
			if rel := sources.Relate(subject, ch.Subject); rel != sources.RelationNone {
				cands = append(cands, candidate{r, i, rel, e.scoreOf(rel, startsAt.Sub(ch.StartedAt)), ch.StartedAt})
			}
		}
	}
	if len(cands) > maxCandidates {
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
		cands = cands[:maxCandidates]
	}
	related := make([]sources.Change, len(cands))
	for j, c := range cands {
		related[j] = results[c.result].Changes[c.index]
		related[j].Relation = c.relation
	}
	merged := merge(related)
	e.score(merged, startsAt)
	slices.SortStableFunc(merged, compareRanked)
	r := ranked{changes: merged}
	if len(merged) > 0 {
		top := merged[0]
		before := startsAt.Sub(top.StartedAt)
		if (top.Relation == sources.RelationWorkload || top.Relation == sources.RelationApp) &&
			before >= 0 && before <= e.opts.SuspectWindow {
			r.suspect = &merged[0]
		}
	}
	return r
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

// merge folds observations of one deploy seen by several sources (or
// reported twice) into one change: they share a commit, a revision of the
// same workload, or a version, and started within mergeWindow of each other;
// or one is observed by another source for the same workload inside the
// other's start–finish window. Candidates are found through key buckets, so
// the cost grows with the bucket sizes, not with the square of all changes.
func merge(changes []sources.Change) []sources.Change {
	n := len(changes)
	parent := make([]int, n)
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	union := func(i, j int) { parent[find(j)] = find(i) }
	byKey := map[string][]int{}
	byWorkload := map[string][]int{}
	for i, c := range changes {
		for _, k := range mergeKeys(c) {
			for _, j := range byKey[k] {
				if absDuration(c.StartedAt.Sub(changes[j].StartedAt)) <= mergeWindow {
					union(j, i)
				}
			}
			byKey[k] = append(byKey[k], i)
		}
		if c.Subject.Name == "" {
			continue
		}
		w := c.Subject.Namespace + "/" + c.Subject.Name
		for _, j := range byWorkload[w] {
			o := changes[j]
			if o.Source != c.Source && (within(c.StartedAt, o) || within(o.StartedAt, c)) {
				union(j, i)
			}
		}
		byWorkload[w] = append(byWorkload[w], i)
	}
	groups := map[int][]int{}
	var order []int
	for i := range changes {
		r := find(i)
		if _, ok := groups[r]; !ok {
			order = append(order, r)
		}
		groups[r] = append(groups[r], i)
	}
	out := make([]sources.Change, 0, len(order))
	for _, r := range order {
		members := make([]sources.Change, 0, len(groups[r]))
		for _, i := range groups[r] {
			members = append(members, changes[i])
		}
		out = append(out, combine(members))
	}
	return out
}

func within(t time.Time, window sources.Change) bool {
	return !window.FinishedAt.IsZero() && !t.Before(window.StartedAt) && !t.After(window.FinishedAt)
}

// mergeKeys: a commit sha identifies a deploy anywhere; a plain revision
// number ("42") only within its workload; a version (image tag) anywhere.
func mergeKeys(c sources.Change) []string {
	var keys []string
	if rev := strings.ToLower(c.Revision); rev != "" {
		if isSHA(rev) {
			keys = append(keys, "sha:"+rev[:7])
		} else {
			keys = append(keys, "rev:"+c.Subject.Namespace+"/"+c.Subject.Kind+"/"+c.Subject.Name+"@"+rev)
		}
	}
	if c.Version != "" {
		keys = append(keys, "ver:"+c.Version)
	}
	return keys
}

func isSHA(s string) bool {
	if len(s) < 7 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

var statusRank = map[string]int{sources.StatusFailed: 3, sources.StatusInProgress: 2, sources.StatusSucceeded: 1}

// combine keeps the most closely related observation as the base, fills its
// blanks from the others, and keeps every source's links.
func combine(members []sources.Change) sources.Change {
	if len(members) == 1 {
		return members[0]
	}
	slices.SortStableFunc(members, func(a, b sources.Change) int {
		if wa, wb := relationWeight[a.Relation], relationWeight[b.Relation]; wa != wb {
			if wa > wb {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Source, b.Source)
	})
	out := members[0]
	srcs := map[string]bool{}
	links := map[string]bool{}
	addLink := func(name, url string) {
		if url == "" || links[url] {
			return
		}
		links[url] = true
		out.Links = append(out.Links, sources.Link{Name: name, URL: url})
	}
	out.Links = nil
	for _, l := range members[0].Links {
		addLink(l.Name, l.URL)
	}
	links[out.URL], links[out.CompareURL] = true, true
	for _, m := range members {
		srcs[m.Source] = true
		fill(&out.Revision, m.Revision)
		fill(&out.PreviousRevision, m.PreviousRevision)
		fill(&out.Version, m.Version)
		fill(&out.PreviousVersion, m.PreviousVersion)
		fill(&out.Author, m.Author)
		fill(&out.Message, m.Message)
		fill(&out.URL, m.URL)
		fill(&out.CompareURL, m.CompareURL)
		if m.StartedAt.Before(out.StartedAt) {
			out.StartedAt = m.StartedAt
		}
		if m.FinishedAt.After(out.FinishedAt) {
			out.FinishedAt = m.FinishedAt
		}
		if statusRank[m.Status] > statusRank[out.Status] {
			out.Status = m.Status
		}
		addLink(m.Source, m.URL)
		addLink(m.Source+" compare", m.CompareURL)
		for _, l := range m.Links {
			addLink(l.Name, l.URL)
		}
	}
	if len(srcs) > 1 {
		out.Sources = sortedKeys(srcs)
	}
	return out
}

func fill(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
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
