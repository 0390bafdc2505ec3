package enrich

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// Source health. A source that stops answering (an argocd-server that
// accepts connections and never replies) would cost every alert the whole
// budget, and be reported a little differently each time it is cut off.
// After downAfter timeouts in a row it is down: its queries answer at once,
// without calling it, with one error text naming when it went down (so
// re-sends of an alert carry byte-identical annotations), and one goroutine
// probes it with backoff until it answers again. Errors do not count: a
// source that answers with an error answers fast, often with a stale
// answer worth showing, and some errors are about one subject only.
const (
	downAfter  = 3
	probeFirst = time.Second
	probeMax   = time.Minute
)

// health is one Enricher's view of its sources.
type health struct {
	sources []*sourceHealth // by entry index
	stop    context.CancelFunc
}

type sourceHealth struct {
	log      *slog.Logger
	name     string
	cluster  string // of a cluster's source: its metric says which
	entry    SourceEntry
	deadline time.Duration // a probe's, like a query's
	// timeoutText is the one way a timeout of this source reads, so
	// re-sends of an alert carry the same annotation.
	timeoutText string
	metrics     *Metrics
	ctx         context.Context // ends the probe

	mu       sync.Mutex
	timeouts int    // in a row
	text     string // while down, what every query answers
	probing  bool
	last     sources.Query // the last query that timed out: the probe asks it again
}

// newHealth starts with every source up.
func (e *Enricher) newHealth() *health {
	ctx, stop := context.WithCancel(context.Background())
	h := &health{stop: stop}
	for _, entry := range e.sources {
		name := entry.Source.Name()
		cluster, _ := sources.ClusterOf(entry.Source)
		d := e.deadline(entry)
		h.sources = append(h.sources, &sourceHealth{log: e.log, name: name, cluster: cluster, entry: entry, deadline: d,
			timeoutText: fmt.Sprintf("timeout after %s", d), metrics: e.metrics, ctx: ctx})
		e.metrics.sourceIsUp(name, cluster, true)
	}
	return h
}

// StopProbes stops the background probes of sources that are down (at
// shutdown; tests). A source that is down stays down.
func (e *Enricher) StopProbes() { e.sourceHealth.stop() }

// down returns the text a query of a down source answers with.
func (sh *sourceHealth) down() (string, bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.text, sh.text != ""
}

// timedOut counts a query that got no answer in time; the downAfter-th in
// a row takes the source down at now (the time its text keeps).
func (sh *sourceHealth) timedOut(q sources.Query, now time.Time) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.last = q
	sh.timeouts++
	if sh.text != "" || sh.timeouts < downAfter {
		return
	}
	sh.text = fmt.Sprintf("not answering since %s UTC (timeout)", now.UTC().Format("15:04"))
	sh.metrics.sourceIsUp(sh.name, sh.cluster, false)
	sh.log.Warn("source not answering: alerts skip it until a background probe sees it answer",
		"source", sh.name, "timeouts_in_a_row", sh.timeouts)
	if !sh.probing {
		sh.probing = true
		go sh.probe()
	}
}

// answered: the source answered a query (well or with an error).
func (sh *sourceHealth) answered() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.up()
}

func (sh *sourceHealth) up() {
	sh.timeouts = 0
	if sh.text != "" {
		sh.text = ""
		sh.metrics.sourceIsUp(sh.name, sh.cluster, true)
		sh.log.Info("source answers again", "source", sh.name)
	}
}

// probe asks the source the query that last timed out, waiting 1s, 2s, 4s
// … up to probeMax between tries, until it answers in time or is found up
// (a query that was in flight answered).
func (sh *sourceHealth) probe() {
	wait := probeFirst
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-sh.ctx.Done():
			return
		case <-t.C:
		}
		sh.mu.Lock()
		q, down := sh.last, sh.text != ""
		if !down {
			sh.probing = false
		}
		sh.mu.Unlock()
		if !down {
			return
		}
		if sh.try(q) {
			sh.mu.Lock()
			sh.probing = false
			sh.up()
			sh.mu.Unlock()
			return
		}
		wait = min(2*wait, probeMax)
		t.Reset(wait)
	}
}

// try reports whether the source answered q within its deadline. A source
// that ignores its context is abandoned, as in fanOut.
func (sh *sourceHealth) try(q sources.Query) bool {
	ctx, cancel := context.WithTimeout(sh.ctx, sh.deadline)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := sh.entry.Source.Changes(ctx, q)
		done <- err
	}()
	select {
	case err := <-done:
		return sh.ctx.Err() == nil && !isTimeout(ctx, err)
	case <-ctx.Done():
		return false
	}
}
