package history

import (
	"context"
	"encoding/json"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/store"
)

// observation is what is kept of one alert passing through: its labels
// (the decoded map, which nothing changes after delivery), and the few
// annotations of ours that say what was suspected.
type observation struct {
	fingerprint string
	labels      map[string]string
	firing      bool
	startsAt    time.Time
	endsAt      time.Time
	suspect     string
	links       []sources.Link
}

// batch is one notification's alerts; flushed, when set, is closed once
// everything queued before it is written (Flush).
type batch struct {
	via     string
	at      time.Time
	obs     []observation
	flushed chan struct{}
}

// linkAnnotations are the suspect's link annotations (after the prefix),
// and the names the timeline gives them.
var linkAnnotations = [][2]string{
	{enrich.AnnCompareURL, "compare"}, {enrich.AnnArgoCDURL, "argocd"}, {enrich.AnnReleaseURL, "release"},
	{enrich.AnnDeploymentURL, "deployment"}, {enrich.AnnCIURL, "ci"},
}

// Observe hands the alerts of one notification to the writer, after
// delivery: via is the path they came by ("webhook default", "inline"),
// prefix the annotation prefix the enricher wrote with. It never waits:
// when the queue is full the alerts are dropped and counted
// (whatchanged_history_dropped_total).
func (h *History) Observe(via, prefix string, alerts []*enrich.Alert) {
	if h == nil || len(alerts) == 0 {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	room := int64(h.cfg.QueueAlerts) - h.pending.Load()
	if h.closed || room <= 0 {
		h.metrics.dropped.Add(float64(len(alerts)))
		return
	}
	if int64(len(alerts)) > room {
		h.metrics.dropped.Add(float64(int64(len(alerts)) - room))
		alerts = alerts[:room]
	}
	now := h.now()
	b := batch{via: via, at: now, obs: make([]observation, len(alerts))}
	for i, a := range alerts {
		o := observation{fingerprint: a.Fingerprint, labels: a.Labels, firing: a.Firing(now), startsAt: a.StartsAt}
		if o.fingerprint == "" { // a postable alert: Alertmanager's fingerprint of its labels
			o.fingerprint = fingerprint(a.Labels)
		}
		if !o.firing {
			o.endsAt = a.EndsAt
		}
		if s := a.Annotations[prefix+enrich.AnnSuspect]; s != "" {
			o.suspect = s
			for _, l := range linkAnnotations {
				if u := a.Annotations[prefix+l[0]]; u != "" {
					o.links = append(o.links, sources.Link{Name: l[1], URL: u})
				}
			}
		}
		b.obs[i] = o
	}
	select {
	case h.queue <- b:
		h.pending.Add(int64(len(b.obs)))
	default:
		h.metrics.dropped.Add(float64(len(b.obs)))
	}
}

// Start prunes, then writes what Observe queues until Close (so the
// notifications of a graceful shutdown are kept) and prunes every 10
// minutes until ctx ends.
func (h *History) Start(ctx context.Context) {
	h.started.Store(true)
	if err := h.Prune(ctx); err != nil && ctx.Err() == nil {
		h.log.Warn("prune the alert history", "err", err)
	}
	go h.run(ctx)
}

func (h *History) run(ctx context.Context) {
	defer close(h.stopped)
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	for {
		select {
		case b, ok := <-h.queue:
			if !ok {
				return
			}
			h.handle(context.WithoutCancel(ctx), b)
		case <-tick.C:
			if ctx.Err() == nil {
				h.prune(ctx)
			}
		}
	}
}

func (h *History) handle(ctx context.Context, b batch) {
	if b.flushed != nil {
		close(b.flushed)
		return
	}
	// A store that hangs must not hold the queue forever.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := h.write(wctx, b)
	cancel()
	h.pending.Add(-int64(len(b.obs)))
	switch {
	case err != nil:
		h.metrics.failures.Add(float64(len(b.obs)))
		h.failed += len(b.obs)
		if !h.failing { // once per burst of failures
			h.failing = true
			h.log.Warn("alert history: cannot write; alerts are delivered but not kept for the timeline", "err", err)
		}
	case h.failing:
		h.failing = false
		h.log.Info("alert history: writing again", "alerts_lost", h.failed)
		h.failed = 0
	}
	if err == nil {
		h.metrics.recorded.Add(float64(len(b.obs)))
	}
	if h.count.Load() > int64(h.cfg.MaxAlerts+h.cfg.MaxAlerts/10) {
		h.prune(ctx) // a flood: keep the bound between the periodic prunes
	}
}

func (h *History) prune(ctx context.Context) {
	if err := h.Prune(ctx); err != nil && ctx.Err() == nil {
		h.log.Warn("prune the alert history", "err", err)
	}
}

// Flush waits until what was observed before it is written, or ctx ends.
func (h *History) Flush(ctx context.Context) error {
	done := make(chan struct{})
	h.mu.RLock()
	if h.closed {
		h.mu.RUnlock()
		return nil
	}
	select {
	case h.queue <- batch{flushed: done}:
	case <-ctx.Done():
		h.mu.RUnlock()
		return ctx.Err()
	}
	h.mu.RUnlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting alerts and writes those queued, for at most
// grace; a writer never started is not waited for.
func (h *History) Close(grace time.Duration) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.queue)
	h.mu.Unlock()
	if !h.started.Load() {
		return
	}
	select {
	case <-h.stopped:
	case <-time.After(grace):
		h.log.Warn("alert history: closed before every alert was written", "pending", h.pending.Load())
	}
}

// write applies one notification's alerts to their records in one
// transaction: a new instance is created, a re-notification counted, a
// resolve ends it.
func (h *History) write(ctx context.Context, b batch) error {
	at := ms(b.at)
	changed := map[string]*record{}
	var order, oldEnds []string
	newFP := map[string]string{}
	for _, o := range b.obs {
		id, r, err := h.find(ctx, o, changed)
		if err != nil {
			return err
		}
		if r == nil {
			startsAt := o.startsAt
			if startsAt.IsZero() || startsAt.Year() <= 1 {
				startsAt = b.at // as Alertmanager does for an alert posted without it
			}
			id = timeKey(startsAt) + "/" + o.fingerprint
			r = &record{Labels: o.labels, Subject: h.resolve(o.labels), StartsAt: ms(startsAt), FirstSeen: at, Via: b.via}
			newFP[o.fingerprint] = id
			h.count.Add(1)
		} else if _, seen := changed[id]; !seen {
			oldEnds = append(oldEnds, r.endKey(id))
		}
		if _, seen := changed[id]; !seen {
			changed[id] = r
			order = append(order, id)
		}
		r.Count++
		r.LastSeen = max(r.LastSeen, at)
		// The suspect named when it fired; a resolve's (or a later
		// notification's) does not replace it, but fills in one the
		// first notification lacked (a cold cache, a budget run out).
		if r.Suspect == "" && o.suspect != "" {
			r.Suspect, r.Links = o.suspect, o.links
		}
		if !o.firing && !r.Resolved {
			r.Resolved, r.EndsAt = true, ms(o.endsAt)
			if o.endsAt.IsZero() || o.endsAt.Year() <= 1 {
				r.EndsAt = at
			}
		}
	}
	puts := make([]store.KV, 0, 2*len(order)+len(newFP))
	newEnds := map[string]bool{}
	for _, id := range order {
		r := changed[id]
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		puts = append(puts, store.KV{Key: store.Key{Bucket: bucketAlerts, Key: id}, Value: v},
			store.KV{Key: store.Key{Bucket: bucketEnds, Key: r.endKey(id)}, Value: []byte("-")})
		newEnds[r.endKey(id)] = true
	}
	for fp, id := range newFP {
		puts = append(puts, store.KV{Key: store.Key{Bucket: bucketFingerprints, Key: fp}, Value: []byte(id)})
	}
	if err := h.st.Put(ctx, puts); err != nil {
		return err
	}
	// An index entry that moved (firing → ended) goes after the write: if
	// this fails, the stale one only costs a look-up in a query.
	var stale []store.Key
	for _, k := range oldEnds {
		if !newEnds[k] {
			stale = append(stale, store.Key{Bucket: bucketEnds, Key: k})
		}
	}
	return h.st.Delete(ctx, stale)
}

// find is the record an observation belongs to: by its startsAt and
// fingerprint, or without a startsAt the fingerprint's newest while it
// fires. nil: a new alert instance.
func (h *History) find(ctx context.Context, o observation, changed map[string]*record) (string, *record, error) {
	var id string
	if o.startsAt.IsZero() || o.startsAt.Year() <= 1 {
		v, ok, err := h.st.Get(ctx, bucketFingerprints, o.fingerprint)
		if err != nil || !ok {
			return "", nil, err
		}
		id = string(v)
	} else {
		id = timeKey(o.startsAt) + "/" + o.fingerprint
	}
	if r, ok := changed[id]; ok {
		return id, r, nil
	}
	v, ok, err := h.st.Get(ctx, bucketAlerts, id)
	if err != nil || !ok {
		return "", nil, err
	}
	r := &record{}
	if err := json.Unmarshal(v, r); err != nil {
		return "", nil, nil // unreadable: start it again
	}
	if o.startsAt.IsZero() && r.Resolved && o.firing {
		return "", nil, nil // fired again after it resolved
	}
	return id, r, nil
}

// fingerprint is Alertmanager's fingerprint of a label set (what its
// webhook sends), for alerts posted to the inline API, which carry none.
func fingerprint(labels map[string]string) string {
	ls := make(model.LabelSet, len(labels))
	for k, v := range labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls.Fingerprint().String()
}

// metrics of the history. Registered by whoever exports them (Collectors).
type metrics struct {
	recorded, dropped, failures, pruned prometheus.Counter
	records                             prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		recorded: prometheus.NewCounter(prometheus.CounterOpts{Name: "whatchanged_history_recorded_total",
			Help: "Alert notifications written to the alert history."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "whatchanged_history_dropped_total",
			Help: "Alert notifications not recorded in the alert history because its queue was full (the notification itself was delivered)."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "whatchanged_history_write_failures_total",
			Help: "Alert notifications the alert history could not write to the store (the notification itself was delivered)."}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{Name: "whatchanged_history_pruned_total",
			Help: "Alerts dropped from the history by its retention or size bound."}),
		records: prometheus.NewGauge(prometheus.GaugeOpts{Name: "whatchanged_history_alerts",
			Help: "Alerts kept in the history, as of the last prune."}),
	}
}

// Collectors are the history's metrics, to register.
func (h *History) Collectors() []prometheus.Collector {
	m := h.metrics
	return []prometheus.Collector{m.recorded, m.dropped, m.failures, m.pruned, m.records}
}
