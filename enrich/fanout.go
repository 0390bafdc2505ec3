package enrich

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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

// fanOut asks every source about every query, each cut off at its own
// deadline, and stops waiting for all of them when ctx (the budget) ends. A
// source that ignores its context is abandoned, never waited for.
func (e *Enricher) fanOut(ctx context.Context, queries map[string]sources.Query) map[string][]SourceResult {
	var jobs []job
	for _, key := range slices.Sorted(maps.Keys(queries)) {
		for i := range e.sources {
			jobs = append(jobs, job{key: key, entry: i, query: queries[key]})
		}
	}
	out := make(map[string][]SourceResult, len(queries))
	if len(jobs) == 0 {
		return out
	}
	results := make(chan jobResult, len(jobs)) // buffered: late answers never block
	sem := make(chan struct{}, maxParallel)
	go func() {
		for i, j := range jobs {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				defer func() { <-sem }()
				results <- jobResult{i, e.ask(ctx, e.sources[j.entry], j.query)}
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
	budget := e.opts.Budget
	for i, j := range jobs {
		r, ok := got[i]
		if !ok {
			name := e.sources[j.entry].Source.Name()
			r = SourceResult{Source: name, Duration: budget.String(), TimedOut: true,
				Error: fmt.Sprintf("timeout after %s (enrichment budget)", budget)}
			e.metrics.sourceCall(name, "timeout", budget)
		}
		out[j.key] = append(out[j.key], r)
	}
	return out
}

// ask calls one source with its deadline and records the outcome.
func (e *Enricher) ask(ctx context.Context, entry SourceEntry, q sources.Query) SourceResult {
	name := entry.Source.Name()
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
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		deadline := entry.Timeout
		if deadline == 0 || deadline > e.opts.Budget {
			deadline = e.opts.Budget
		}
		res = SourceResult{Source: name, Duration: res.Duration, TimedOut: true, Error: fmt.Sprintf("timeout after %s", deadline)}
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
	// A source must not claim changes under another name.
	for i := range res.Changes {
		res.Changes[i].Source = name
	}
	e.metrics.sourceCall(name, outcome, took)
	return res
}
