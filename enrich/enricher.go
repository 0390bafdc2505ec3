package enrich

import (
	"context"
	"fmt"
	"log/slog"
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
	// MaxAddedBytes bounds what one notification grows by: alerts are
	// annotated in order until our annotations reach it; later ones get
	// only whatchanged_error (see Crowded). A flood of thousands of alerts
	// keeps a bounded size and memory; its first alerts carry the answer.
	MaxAddedBytes int `yaml:"max_added_bytes"`
	// Annotations turns the optional annotations on and off.
	Annotations AnnotationOptions `yaml:"annotations"`
	// TimelineURL is the timeline page as the on-call reaches it
	// (server.external_url + "/ui/"); when set, each alert links to it,
	// filtered to its workload and window.
	TimelineURL string `yaml:"-"`
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
		MaxAddedBytes:      4 << 20,
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
	if o.MaxAddedBytes == 0 {
		o.MaxAddedBytes = d.MaxAddedBytes
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
	if o.MaxAddedBytes < 64<<10 {
		errs["max_added_bytes"] = "must be at least 65536"
	}
	return errs
}

// Enricher runs the pipeline. It is safe for concurrent use.
type Enricher struct {
	opts     Options
	resolver *Resolver
	sources  []SourceEntry
	appRepos []sources.AppRepos // the sources that know apps' repositories
	log      *slog.Logger
	// sourceHealth takes a source that stops answering out of the alert
	// path until a probe sees it answer (health.go).
	sourceHealth *health
	metrics      *Metrics
	now          func() time.Time
}

// New builds an enricher. metrics may be nil.
func New(opts Options, resolver *Resolver, entries []SourceEntry, metrics *Metrics) *Enricher {
	e := &Enricher{opts: opts.WithDefaults(), resolver: resolver, sources: entries, metrics: metrics, now: time.Now,
		log: slog.New(slog.DiscardHandler)}
	for _, entry := range entries {
		if ar, ok := entry.Source.(sources.AppRepos); ok {
			e.appRepos = append(e.appRepos, ar)
		}
	}
	e.sourceHealth = e.newHealth()
	return e
}

// WithLog makes e log what it decides on its own (a source going down and
// coming back). Call it before the first notification.
func (e *Enricher) WithLog(log *slog.Logger) *Enricher {
	e.log = log
	for _, sh := range e.sourceHealth.sources {
		sh.log = log
	}
	return e
}

// Resolve is the subject of an alert with these labels, as the pipeline
// resolves it (the alert history keeps it, so a timeline can be filtered
// by workload and app).
func (e *Enricher) Resolve(labels map[string]string) sources.Subject {
	s, _ := e.resolver.Resolve(labels)
	return s
}

// AnnotationPrefix starts the name of every annotation e writes.
func (e *Enricher) AnnotationPrefix() string { return e.opts.AnnotationPrefix }

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
func (e *Enricher) until(a *Alert, startsAt, now time.Time) time.Time {
	until := startsAt.Add(e.opts.Lookahead)
	end := now
	if !a.Firing(end) && !a.EndsAt.IsZero() && a.EndsAt.Year() > 1 {
		end = a.EndsAt
	}
	if end.After(until) {
		until = end
	}
	return until
}

func orEmpty(steps []Step) []Step {
	if steps == nil {
		return []Step{}
	}
	return steps
}

// Crowded is the error annotation of an alert after Options.MaxAddedBytes
// of ours were written to its notification.
const Crowded = "too many alerts in this notification to annotate them all (enrich.max_added_bytes)"

// BudgetExceeded is the error annotation of an alert the budget ran out
// before: it goes out with no other annotation of ours, never late.
const BudgetExceeded = "enrichment budget exceeded"

// RenderGrace is what ranking and rendering may take after the sources'
// budget: the whole of Enrich ends within Budget + RenderGrace.
const RenderGrace = 200 * time.Millisecond

// Enrich adds annotations to every alert for which skip (may be nil)
// returns "". It never fails: sources that fail or time out are named in
// the whatchanged_error annotation. The whole call — resolving, asking,
// ranking, rendering — ends by Budget + RenderGrace from now, or by ctx's
// deadline if earlier (a server that started the clock when the request
// arrived passes arrival + Budget + RenderGrace, so decoding counts too).
// Sources are asked until RenderGrace before that end; alerts the end
// comes before get only whatchanged_error: enrichment budget exceeded.
func (e *Enricher) Enrich(ctx context.Context, alerts []*Alert, skip func(*Alert) string) Report {
	return e.run(ctx, alerts, skip, true)
}

// Annotate is Enrich without the per-alert explanation, for the delivery
// paths: a group of tens of thousands of alerts keeps no report for each.
// It returns how long it took.
func (e *Enricher) Annotate(ctx context.Context, alerts []*Alert, skip func(*Alert) string) time.Duration {
	start := time.Now()
	e.run(ctx, alerts, skip, false)
	return time.Since(start)
}

// alertWork is what run keeps per alert between resolving and rendering.
type alertWork struct {
	skipped string
	key     string           // subject.Key(), computed once per alert
	subject *sources.Subject // shared by the alerts of one subject
	window  Window
}

func (e *Enricher) run(ctx context.Context, alerts []*Alert, skip func(*Alert) string, explain bool) Report {
	start := time.Now()
	deadline := start.Add(e.opts.Budget + RenderGrace)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	// Sources are cut off RenderGrace before the end, so their answers can
	// still be ranked and rendered in time.
	askCtx, cancelAsk := context.WithDeadline(ctx, deadline.Add(-RenderGrace))
	defer cancelAsk()
	// One clock reading per notification: alerts of one group get the same
	// window end, so identical alerts are ranked once (see memo below).
	now := e.now().UTC()

	var reports []AlertReport
	if explain {
		reports = make([]AlertReport, len(alerts))
	}
	work := make([]alertWork, len(alerts))
	subjects := map[string]*sources.Subject{}
	queries := map[string]sources.Query{}
	var noSubject sources.Subject
	for i, a := range alerts {
		w := &work[i]
		if skip != nil {
			if w.skipped = skip(a); w.skipped != "" {
				if explain {
					reports[i] = AlertReport{Fingerprint: a.Fingerprint, Labels: a.Labels, Skipped: w.skipped}
				}
				continue
			}
		}
		w.subject = &noSubject
		if ctx.Err() != nil {
			continue // rendered below as over budget
		}
		subject, resolution := e.resolver.Resolve(a.Labels)
		key := subject.Key()
		w.key = key
		if s, ok := subjects[key]; ok {
			w.subject = s
		} else {
			w.subject = &subject
			subjects[key] = w.subject
		}
		startsAt := a.StartsAt
		if startsAt.IsZero() || startsAt.Year() <= 1 {
			startsAt = now // postable alerts may omit it; Alertmanager uses "now" too
		}
		w.window = Window{StartsAt: startsAt, Since: startsAt.Add(-e.opts.Lookback), Until: e.until(a, startsAt, now)}
		if explain {
			reports[i].Resolution = resolution
		}
		if subject.IsZero() {
			continue
		}
		// One query per distinct subject, over the union of its alerts' windows.
		q, ok := queries[key]
		if !ok {
			q = sources.Query{Subject: subject, Since: w.window.Since, Until: w.window.Until, MaxLoose: maxCandidates,
				History: w.window.Since.Add(-historyHorizon)}
		}
		if w.window.Since.Before(q.Since) {
			q.Since, q.History = w.window.Since, w.window.Since.Add(-historyHorizon)
		}
		if w.window.Until.After(q.Until) {
			q.Until = w.window.Until
		}
		queries[key] = q
	}

	results := e.fanOut(askCtx, queries)

	// Alerts with the same subject, window and stage get the same ranking
	// and annotations: a group of thousands of alerts of a few workloads
	// costs a few rankings, not thousands.
	type memoKey struct {
		subject *sources.Subject
		window  Window
		stage   stage
	}
	type memoed struct {
		rk   ranked
		errs []string
		ours map[string]string
		size int // of ours, as encoded
	}
	memo := map[memoKey]*memoed{}
	added := 0 // bytes of ours written to this notification
	for i, a := range alerts {
		w := &work[i]
		if w.skipped != "" {
			continue
		}
		var rep *AlertReport
		if explain {
			rep = &reports[i]
			rep.Fingerprint, rep.Labels, rep.Subject, rep.Window = a.Fingerprint, a.Labels, *w.subject, w.window
			rep.Resolution, rep.Ranking = orEmpty(rep.Resolution), []sources.Change{}
		}
		if ctx.Err() != nil && (rep == nil || rep.Annotations == nil) {
			// Out of budget: the alert goes out now, saying so, rather than late.
			ours := e.renderOnly(a, BudgetExceeded)
			if rep != nil {
				rep.Annotations = ours
			}
			continue
		}
		st := stageOf(a.Labels, w.subject.Namespace)
		k := memoKey{subject: w.subject, window: w.window, stage: st}
		key := w.key
		m, ok := memo[k]
		if !ok {
			m = &memoed{}
			var errs []string
			if !w.subject.IsZero() {
				for _, r := range results[key] {
					if r.Error != "" {
						errs = append(errs, fmt.Sprintf("%s: %s", r.Source, r.Error))
					}
				}
			}
			if msg := e.resolver.ClusterErr(*w.subject); msg != "" {
				errs = append(errs, msg)
			}
			sort.Strings(errs)
			m.rk = e.rank(*w.subject, w.window, results[key], st)
			m.errs = errs
			memo[k] = m
		}
		if m.ours == nil {
			m.ours = e.annotations(*w.subject, w.window, m.rk, m.errs)
			for k, v := range m.ours {
				m.size += len(k) + len(v) + 6
			}
		}
		ours := m.ours
		if added+m.size > e.opts.MaxAddedBytes {
			ours = e.renderOnly(a, Crowded)
		} else {
			added += m.size
			e.apply(a, m.ours)
		}
		if rep != nil {
			if !w.subject.IsZero() {
				rep.Sources = results[key]
			}
			rep.Suspect, rep.LastDeploy, rep.Annotations = m.rk.suspect, m.rk.lastDeploy, ours
			if m.rk.changes != nil {
				rep.Ranking = m.rk.changes
			}
		}
	}
	took := time.Since(start)
	e.metrics.enriched(took)
	return Report{Budget: e.opts.Budget.String(), Duration: took.Round(time.Microsecond).String(), Alerts: reports}
}
