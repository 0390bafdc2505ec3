package timeline

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// History is where the alerts come from: the alert history
// (enrich/history), which imports this package for its types.
type History interface {
	// Alerts returns the alerts active in [from, to] that keep accepts
	// (nil: all), ordered by start, at most limit; more reports that
	// there were others.
	Alerts(ctx context.Context, from, to time.Time, keep func(*Alert) bool, limit int) (alerts []Alert, more bool, err error)
}

// Sources answer what changed: the enricher's sources, asked as an
// alert's query asks them (enrich.Enricher.Changes).
type Sources interface {
	Changes(ctx context.Context, subjects []sources.Subject, from, to time.Time) ([]sources.Change, []string)
}

// Defaults of a Builder.
const (
	DefaultMaxAlerts   = 2000
	DefaultMaxSubjects = 20
)

// Builder puts the history's alerts and the sources' changes of a window
// in one time order.
type Builder struct {
	History History
	Sources Sources // nil: alerts only
	// Location is the time zone of the Markdown timeline (nil: UTC).
	Location *time.Location
	// MaxAlerts bounds the alerts of one timeline (0: DefaultMaxAlerts).
	MaxAlerts int
	// MaxSubjects bounds the subjects the sources are asked about when the
	// filter names no workload: the alerts' own (0: DefaultMaxSubjects).
	MaxSubjects int
}

// Loc is the Markdown's time zone.
func (b *Builder) Loc() *time.Location {
	if b.Location == nil {
		return time.UTC
	}
	return b.Location
}

// Build is the timeline of [from, to] for f: the alerts that fired in
// it (or fired into it), the changes the sources know for the filter's
// workload or, when it names none, for the alerts' subjects, and one
// entry per event in time order. A bad filter is a *FieldError.
func (b *Builder) Build(ctx context.Context, f Filter, from, to time.Time) (*Timeline, error) {
	if !from.Before(to) {
		return nil, &FieldError{"from", fmt.Sprintf("%s is not before to (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339))}
	}
	m, err := f.compile()
	if err != nil {
		return nil, err
	}
	limit := cmp.Or(b.MaxAlerts, DefaultMaxAlerts)
	alerts, more, err := b.History.Alerts(ctx, from, to, m.keeps, limit)
	if err != nil {
		return nil, fmt.Errorf("alert history: %w", err)
	}
	t := &Timeline{From: from.UTC(), To: to.UTC(), Filter: f, Alerts: alerts, Changes: []sources.Change{}}
	if t.Alerts == nil {
		t.Alerts = []Alert{}
	}
	if more {
		t.Errors = append(t.Errors, fmt.Sprintf("history: more than %d alerts; only the first are shown (narrow the window or the filters)", limit))
	}
	if b.Sources != nil {
		subjects, dropped := b.subjects(f, alerts)
		if dropped > 0 {
			t.Errors = append(t.Errors, fmt.Sprintf("changes: asked about the first %d workloads of the alerts, not %d more (filter by namespace or workload)", len(subjects), dropped))
		}
		changes, errs := b.Sources.Changes(ctx, subjects, from, to)
		if f.Workload != "" || f.App != "" {
			// Named a workload: its neighbours in the namespace are not it.
			changes = slices.DeleteFunc(changes, func(ch sources.Change) bool { return ch.Relation == sources.RelationNamespace })
		}
		if changes != nil {
			t.Changes = changes
		}
		t.Errors = append(t.Errors, errs...)
	}
	t.Entries = entries(t)
	return t, nil
}

// subjects the sources are asked about: the filter's workload and the
// alerts' own (resolved when they fired: a kind, an app, a repository the
// filter does not name), the first MaxSubjects.
func (b *Builder) subjects(f Filter, alerts []Alert) ([]sources.Subject, int) {
	max := cmp.Or(b.MaxSubjects, DefaultMaxSubjects)
	byKey := map[string]sources.Subject{}
	var order []string
	add := func(s sources.Subject) {
		if s.IsZero() {
			return
		}
		if _, ok := byKey[s.Key()]; !ok {
			byKey[s.Key()] = s
			order = append(order, s.Key())
		}
	}
	add(f.subject())
	for _, a := range alerts {
		add(a.Subject)
	}
	dropped := 0
	if len(order) > max {
		dropped, order = len(order)-max, order[:max]
	}
	out := make([]sources.Subject, len(order))
	for i, k := range order {
		out[i] = byKey[k]
	}
	return out, dropped
}

// entryOrder: at one instant, a change comes before what fired (a cause
// before its effect), and an alert fires before another resolves.
var entryOrder = map[string]int{EntryChange: 0, EntryFiring: 1, EntryResolved: 2}

// entries are the events inside the window, in time order.
func entries(t *Timeline) []Entry {
	in := func(at time.Time) bool { return !at.Before(t.From) && !at.After(t.To) }
	out := []Entry{}
	for i, a := range t.Alerts {
		if in(a.StartsAt) {
			out = append(out, Entry{At: a.StartsAt, Type: EntryFiring, Index: i})
		}
		if a.Status == StatusResolved && !a.EndsAt.IsZero() && in(a.EndsAt) {
			out = append(out, Entry{At: a.EndsAt, Type: EntryResolved, Index: i})
		}
	}
	for i, ch := range t.Changes {
		if in(ch.StartedAt) {
			out = append(out, Entry{At: ch.StartedAt, Type: EntryChange, Index: i})
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(entryOrder[a.Type], entryOrder[b.Type]), cmp.Compare(a.Index, b.Index))
	})
	return out
}

// Alert statuses.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)
