package enrich

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// Options of the pipeline; zero values take the defaults of DefaultOptions.
type Options struct {
	// Budget is the hard limit for asking all sources about one notification.
	Budget time.Duration `yaml:"budget"`
	// Lookback is how long before the alert's start changes are looked for.
	Lookback time.Duration `yaml:"lookback"`
	// Lookahead admits changes that started shortly after the alert did
	// (clock skew, a rollback in flight).
	Lookahead time.Duration `yaml:"lookahead"`
	// SuspectWindow: a closely related change that started at most this long
	// before the alert is named the suspect.
	SuspectWindow time.Duration `yaml:"suspect_window"`
	// HalfLife: a change this much older than the alert start counts half.
	HalfLife           time.Duration `yaml:"half_life"`
	AnnotationPrefix   string        `yaml:"annotation_prefix"`
	MaxChanges         int           `yaml:"max_changes"`
	MaxAnnotationBytes int           `yaml:"max_annotation_bytes"`
	// Annotations turns the optional annotations on and off.
	Annotations AnnotationOptions `yaml:"annotations"`
}

// AnnotationOptions say which optional annotations are written.
type AnnotationOptions struct {
	// ChangesJSON writes whatchanged_changes, the ranked changes as JSON,
	// for programs that read the webhook body. Alertmanager's default
	// templates print every annotation, so in inline mode it would be the
	// raw JSON on the on-call's screen. nil: on (the command chooses the
	// default per mode).
	ChangesJSON *bool `yaml:"changes_json"`
}

// ChangesJSONOn reports whether whatchanged_changes is written.
func (a AnnotationOptions) ChangesJSONOn() bool { return a.ChangesJSON == nil || *a.ChangesJSON }

// DefaultAnnotationPrefix starts the name of every annotation we write.
const DefaultAnnotationPrefix = "whatchanged_"

// DefaultOptions are the documented defaults.
func DefaultOptions() Options {
	return Options{
		Budget:             time.Second,
		Lookback:           24 * time.Hour,
		Lookahead:          5 * time.Minute,
		SuspectWindow:      time.Hour,
		HalfLife:           time.Hour,
		AnnotationPrefix:   DefaultAnnotationPrefix,
		MaxChanges:         5,
		MaxAnnotationBytes: 4096,
	}
}

// WithDefaults fills zero fields from DefaultOptions.
func (o Options) WithDefaults() Options {
	d := DefaultOptions()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&o.Budget, d.Budget)
	setDur(&o.Lookback, d.Lookback)
	setDur(&o.Lookahead, d.Lookahead)
	setDur(&o.SuspectWindow, d.SuspectWindow)
	setDur(&o.HalfLife, d.HalfLife)
	if o.AnnotationPrefix == "" {
		o.AnnotationPrefix = d.AnnotationPrefix
	}
	if o.MaxChanges == 0 {
		o.MaxChanges = d.MaxChanges
	}
	if o.MaxAnnotationBytes == 0 {
		o.MaxAnnotationBytes = d.MaxAnnotationBytes
	}
	return o
}

// Validate returns problems by key.
func (o Options) Validate() map[string]string {
	errs := map[string]string{}
	if o.Budget < 10*time.Millisecond || o.Budget > 30*time.Second {
		errs["budget"] = "must be between 10ms and 30s (Alertmanager waits for our answer)"
	}
	if o.Lookback < time.Minute {
		errs["lookback"] = "must be at least 1m"
	}
	if o.Lookahead < 0 {
		errs["lookahead"] = "must not be negative"
	}
	if o.SuspectWindow < 0 || o.SuspectWindow > o.Lookback {
		errs["suspect_window"] = "must be between 0 and lookback"
	}
	if o.HalfLife <= 0 {
		errs["half_life"] = "must be positive"
	}
	if o.MaxChanges < 1 || o.MaxChanges > 50 {
		errs["max_changes"] = "must be between 1 and 50"
	}
	if o.MaxAnnotationBytes < 512 {
		errs["max_annotation_bytes"] = "must be at least 512"
	}
	return errs
}

// Enricher runs the pipeline. It is safe for concurrent use.
type Enricher struct {
	opts     Options
	resolver *Resolver
	sources  []SourceEntry
	appRepos []sources.AppRepos // the sources that know apps' repositories
	metrics  *Metrics
	now      func() time.Time
}

// New builds an enricher. metrics may be nil.
func New(opts Options, resolver *Resolver, entries []SourceEntry, metrics *Metrics) *Enricher {
	e := &Enricher{opts: opts.WithDefaults(), resolver: resolver, sources: entries, metrics: metrics, now: time.Now}
	for _, entry := range entries {
		if ar, ok := entry.Source.(sources.AppRepos); ok {
			e.appRepos = append(e.appRepos, ar)
		}
	}
	return e
}

// Report explains one enrichment: for each alert, how its subject was
// resolved, what every source answered and how changes were ranked.
type Report struct {
	Budget   string        `json:"budget"`
	Duration string        `json:"duration"`
	Alerts   []AlertReport `json:"alerts"`
}

// AlertReport is the explanation for one alert.
type AlertReport struct {
	Fingerprint string            `json:"fingerprint,omitempty"`
	Labels      map[string]string `json:"labels"`
	Skipped     string            `json:"skipped,omitempty"`
	Subject     sources.Subject   `json:"subject"`
	Resolution  []Step            `json:"resolution"`
	Window      Window            `json:"window"`
	Sources     []SourceResult    `json:"sources"`
	Ranking     []sources.Change  `json:"ranking"`
	Suspect     *sources.Change   `json:"suspect,omitempty"`
	// LastDeploy is the workload's newest deploy before the look-back,
	// shown when nothing of it changed inside.
	LastDeploy  *sources.Change   `json:"lastDeploy,omitempty"`
	Annotations map[string]string `json:"annotations"`
}

// Window is the time range searched for one alert: from the look-back
// before its start to the notification (firing) or its end (resolved), so
// a fix deployed after the start is seen.
type Window struct {
	StartsAt time.Time `json:"startsAt"`
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
}

// historyHorizon is how far back sources are asked for the last deploy of
// a workload that did not change in the look-back; their own history
// (ReplicaSets, Argo CD's last syncs, releases) bounds what they keep.
const historyHorizon = 365 * 24 * time.Hour

// until is the end of an alert's window: its end when resolved, else the
// notification (now), and never less than the configured look-ahead.
func (e *Enricher) until(a *Alert, startsAt time.Time) time.Time {
	until := startsAt.Add(e.opts.Lookahead)
	end := e.now().UTC()
	if !a.Firing(end) && !a.EndsAt.IsZero() && a.EndsAt.Year() > 1 {
		end = a.EndsAt
	}
	if end.After(until) {
		until = end
	}
	return until
}

// Enrich adds annotations to every alert for which skip (may be nil)
// returns "". It never fails: sources that fail or time out are named in
// the whatchanged_error annotation. The whole call is bounded by the budget.
func (e *Enricher) Enrich(ctx context.Context, alerts []*Alert, skip func(*Alert) string) Report {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, e.opts.Budget)
	defer cancel()

	reports := make([]AlertReport, len(alerts))
	queries := map[string]sources.Query{}
	for i, a := range alerts {
		rep := &reports[i]
		rep.Fingerprint, rep.Labels = a.Fingerprint, a.Labels
		if skip != nil {
			if rep.Skipped = skip(a); rep.Skipped != "" {
				continue
			}
		}
		rep.Subject, rep.Resolution = e.resolver.Resolve(a.Labels)
		startsAt := a.StartsAt
		if startsAt.IsZero() || startsAt.Year() <= 1 {
			startsAt = e.now().UTC() // postable alerts may omit it; Alertmanager uses "now" too
		}
		rep.Window = Window{StartsAt: startsAt, Since: startsAt.Add(-e.opts.Lookback), Until: e.until(a, startsAt)}
		if rep.Subject.IsZero() {
			continue
		}
		// One query per distinct subject, over the union of its alerts' windows.
		key := rep.Subject.Key()
		q, ok := queries[key]
		if !ok {
			q = sources.Query{Subject: rep.Subject, Since: rep.Window.Since, Until: rep.Window.Until, MaxLoose: maxCandidates,
				History: rep.Window.Since.Add(-historyHorizon)}
		}
		if rep.Window.Since.Before(q.Since) {
			q.Since, q.History = rep.Window.Since, rep.Window.Since.Add(-historyHorizon)
		}
		if rep.Window.Until.After(q.Until) {
			q.Until = rep.Window.Until
		}
		queries[key] = q
	}

	results := e.fanOut(ctx, queries)

	for i, a := range alerts {
		rep := &reports[i]
		if rep.Skipped != "" {
			continue
		}
		var errs []string
		if !rep.Subject.IsZero() {
			rep.Sources = results[rep.Subject.Key()]
			for _, r := range rep.Sources {
				if r.Error != "" {
					errs = append(errs, fmt.Sprintf("%s: %s", r.Source, r.Error))
				}
			}
		}
		sort.Strings(errs)
		rk := e.rank(rep.Subject, rep.Window, rep.Sources, stageOf(a.Labels, rep.Subject.Namespace))
		rep.Ranking, rep.Suspect, rep.LastDeploy = rk.changes, rk.suspect, rk.lastDeploy
		rep.Annotations = e.render(a, rep.Subject, rk, errs)
		if rep.Ranking == nil {
			rep.Ranking = []sources.Change{}
		}
		if rep.Resolution == nil {
			rep.Resolution = []Step{}
		}
	}
	took := time.Since(start)
	e.metrics.enriched(took)
	return Report{Budget: e.opts.Budget.String(), Duration: took.Round(time.Microsecond).String(), Alerts: reports}
}
