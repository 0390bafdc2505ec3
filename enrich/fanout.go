package enrich

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// SourceEntry is a source with its own deadline inside the total budget.
type SourceEntry struct {
	Source  sources.Source
	Timeout time.Duration // 0: the whole budget
}

// SourceResult is what one source answered for one subject.
type SourceResult struct {
	Source   string           `json:"source"`
	Changes  []sources.Change `json:"-"`
	Count    int              `json:"changes"`
	Duration string           `json:"duration"`
	Error    string           `json:"error,omitempty"`
	TimedOut bool             `json:"timedOut,omitempty"`
	// Down: the source was not asked, it is not answering (health.go).
	Down bool `json:"down,omitempty"`
}

// maxParallel bounds the goroutines one notification starts; sources answer
// from caches, so more would only add scheduling noise.
const maxParallel = 32

type job struct {
	key   string
	entry int
	query sources.Query
}

type jobResult struct {
	idx int
	res SourceResult
}

const (
	jobQueued int32 = iota
	jobStarted
	jobRecorded
)

// fanOut asks every source about every query, each cut off at its own
// deadline, and stops waiting for all of them when ctx (the budget) ends. A
// source that ignores its context is abandoned, never waited for.
func (e *Enricher) fanOut(ctx context.Context, queries map[string]sources.Query) map[string][]SourceResult {
	var jobs []job
	for _, key := range slices.Sorted(maps.Keys(queries)) {
		for i := range e.sources {
			if c := e.sourceHealth.sources[i].cluster; c != "" && c != queries[key].Subject.Cluster {
				continue // another cluster's source: not asked, not waited for
			}
			jobs = append(jobs, job{key: key, entry: i, query: queries[key]})
		}
	}
	out := make(map[string][]SourceResult, len(queries))
	if len(jobs) == 0 {
		return out
	}
	health := e.sourceHealth
	results := make(chan jobResult, len(jobs)) // buffered: late answers never block
	// A job's outcome is recorded (metrics, health) once: by the job when
	// it ends within the budget, else by the cut-off below.
	state := make([]atomic.Int32, len(jobs))
	sem := make(chan struct{}, maxParallel)
	go func() {
		for i, j := range jobs {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			if !state[i].CompareAndSwap(jobQueued, jobStarted) {
				<-sem // the budget ended: recorded as cut off
				continue
			}
			go func() {
				defer func() { <-sem }()
				sh := health.sources[j.entry]
				res, outcome, took := e.ask(ctx, sh, j.query)
				if state[i].CompareAndSwap(jobStarted, jobRecorded) {
					e.record(sh, j.query, outcome, took)
				}
				results <- jobResult{i, res}
			}()
		}
	}()

	got := make(map[int]SourceResult, len(jobs))
	for len(got) < len(jobs) {
		select {
		case r := <-results:
			got[r.idx] = r.res
		case <-ctx.Done():
			goto done
		}
	}
done:
	for i, j := range jobs {
		r, ok := got[i]
		if !ok {
			sh := health.sources[j.entry]
			r = SourceResult{Source: sh.name, Duration: e.opts.Budget.String(), TimedOut: true, Error: sh.timeoutText}
			// A source still working when the budget ended did not
			// answer in time; one never asked (queued behind others)
			// says nothing about its health.
			switch {
			case state[i].CompareAndSwap(jobStarted, jobRecorded):
				e.record(sh, j.query, "timeout", e.opts.Budget)
			case state[i].CompareAndSwap(jobQueued, jobRecorded):
				e.metrics.sourceCall(sh.name, "timeout", e.opts.Budget)
			}
		}
		out[j.key] = append(out[j.key], r)
	}
	return out
}

// ask calls one source with its deadline; a source that is down is not
// called. The outcome is for record.
func (e *Enricher) ask(ctx context.Context, sh *sourceHealth, q sources.Query) (SourceResult, string, time.Duration) {
	name, entry := sh.name, sh.entry
	if text, down := sh.down(); down {
		return SourceResult{Source: name, Duration: "0s", Error: text, Down: true}, "down", 0
	}
	if entry.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, entry.Timeout)
		defer cancel()
	}
	start := time.Now()
	changes, err := entry.Source.Changes(ctx, q)
	took := time.Since(start)
	res := SourceResult{Source: name, Changes: changes, Count: len(changes), Duration: took.Round(time.Microsecond).String()}
	outcome := "ok"
	switch {
	case err == nil && ctx.Err() == nil:
	case isTimeout(ctx, err):
		// One text however the deadline struck (the source's own, the
		// budget, a request shared with an alert cut off earlier), so
		// re-sends of an alert carry the same annotation.
		res = SourceResult{Source: name, Duration: res.Duration, TimedOut: true, Error: sh.timeoutText}
		outcome = "timeout"
	default:
		if err == nil {
			err = ctx.Err()
		}
		// Changes returned with an error are a stale answer with its reason
		// (a rate-limited source serving its cache): keep both.
		res.Error = err.Error()
		outcome = "error"
	}
	// A source must not claim changes under another name than its own
	// or those it declares (the Kubernetes source's Flux syncs).
	var aliases []string
	if a, ok := entry.Source.(sources.Aliased); ok {
		aliases = a.Aliases()
	}
	for i := range res.Changes {
		if !slices.Contains(aliases, res.Changes[i].Source) {
			res.Changes[i].Source = name
		}
	}
	return res, outcome, took
}

// record counts one query's outcome and tells the source's health.
func (e *Enricher) record(sh *sourceHealth, q sources.Query, outcome string, took time.Duration) {
	e.metrics.sourceCall(sh.name, outcome, took)
	switch outcome {
	case "timeout":
		sh.timedOut(q, e.now())
	case "ok", "error":
		sh.answered()
	}
}

// isTimeout: the query ran out of time, by its context or by a deadline
// the source reports (wrapping context.DeadlineExceeded).
func isTimeout(ctx context.Context, err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded)
}

// deadline is how long a source gets: its own timeout within the budget.
func (e *Enricher) deadline(entry SourceEntry) time.Duration {
	if entry.Timeout > 0 && entry.Timeout < e.opts.Budget {
		return entry.Timeout
	}
	return e.opts.Budget
}

// maxTimelineLoose bounds the changes related to a timeline's subject only
// by namespace, per source: a busy namespace has thousands.
const maxTimelineLoose = 200

// Changes asks the sources about each subject in [from, to] as an alert's
// query does (each source within its deadline, all within the budget) and
// returns the changes related to a subject, merged per subject (one deploy
// seen by several sources is one change) and ordered by start, with the
// sources that failed ("argocd: timeout after 800ms"). It serves the
// incident timeline, off the alert path.
func (e *Enricher) Changes(ctx context.Context, subjects []sources.Subject, from, to time.Time) ([]sources.Change, []string) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Budget)
	defer cancel()
	queries := map[string]sources.Query{}
	bySubject := map[string]sources.Subject{}
	for _, s := range subjects {
		if s.IsZero() {
			continue
		}
		queries[s.Key()] = sources.Query{Subject: s, Since: from, Until: to, MaxLoose: maxTimelineLoose}
		bySubject[s.Key()] = s
	}
	results := e.fanOut(ctx, queries)
	var out []sources.Change
	seen := map[string]int{} // a change found for several subjects is listed once, at its closest relation
	errs := map[string]bool{}
	for _, key := range slices.Sorted(maps.Keys(results)) {
		subject := bySubject[key]
		var cands []candidate
		for r, res := range results[key] {
			if res.Error != "" {
				errs[res.Source+": "+res.Error] = true
			}
			for i, ch := range res.Changes {
				if ch.StartedAt.Before(from) || ch.StartedAt.After(to) {
					continue
				}
				if rel := sources.Relate(subject, ch.Subject); rel != sources.RelationNone {
					cands = append(cands, candidate{result: r, index: i, relation: rel, startedAt: ch.StartedAt})
				}
			}
		}
		for _, ch := range merge(e.related(subject, results[key], cands), stageOf(nil, subject.Namespace)) {
			id := changeIdentity(ch)
			if i, ok := seen[id]; ok {
				if relationWeight[ch.Relation] > relationWeight[out[i].Relation] {
					out[i] = ch
				}
				continue
			}
			seen[id] = len(out)
			out = append(out, ch)
		}
	}
	slices.SortStableFunc(out, func(a, b sources.Change) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), compareIdentity(&a, &b))
	})
	return out, slices.Sorted(maps.Keys(errs))
}

// changeIdentity names one (merged) change whichever subject found it.
func changeIdentity(ch sources.Change) string {
	return strings.Join([]string{ch.Source, ch.Kind, ch.ID, ch.Subject.Namespace, ch.Subject.Name, ch.Revision, ch.Version,
		ch.StartedAt.UTC().Format(time.RFC3339Nano)}, "\x00")
}
