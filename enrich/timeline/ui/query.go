package ui

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/whatchanged/whatchanged/enrich/timeline"
)

// defaultSpan is the window shown when the query names no from: long
// enough to hold an incident and the deploys before it.
const defaultSpan = 3 * time.Hour

// localLayouts are the times a person types in the form, read in the
// page's time zone.
var localLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04"}

// query is the page's state as given in the URL: the form shows it back
// as typed (a relative "3h" stays relative), the chart uses the window.
type query struct {
	From, To string // as typed
	Filter   timeline.Filter
	// Start and End are the window the chart covers.
	Start, End time.Time
}

// parseQuery reads the page's query parameters; now and loc resolve
// relative and local times. A bad value is a *timeline.FieldError.
func parseQuery(v url.Values, now time.Time, loc *time.Location) (query, error) {
	q := query{
		From: strings.TrimSpace(v.Get("from")),
		To:   strings.TrimSpace(v.Get("to")),
		Filter: timeline.Filter{
			Namespace: strings.TrimSpace(v.Get("namespace")),
			Workload:  strings.TrimSpace(v.Get("workload")),
			App:       strings.TrimSpace(v.Get("app")),
			Alertname: strings.TrimSpace(v.Get("alertname")),
			Cluster:   strings.TrimSpace(v.Get("cluster")),
			Matchers:  strings.TrimSpace(v.Get("matchers")),
		},
	}
	var err error
	q.End = now
	if q.To != "" {
		if q.End, err = parseTime("to", q.To, now, loc); err != nil {
			return q, err
		}
	}
	q.Start = q.End.Add(-defaultSpan)
	if q.From != "" {
		if q.Start, err = parseTime("from", q.From, now, loc); err != nil {
			return q, err
		}
	}
	if !q.Start.Before(q.End) {
		return q, &timeline.FieldError{Field: "from", Msg: fmt.Sprintf("%s is not before to (%s)", q.Start.In(loc).Format(time.RFC3339), q.End.In(loc).Format(time.RFC3339))}
	}
	return q, q.Filter.Validate()
}

// parseTime reads what the API reads (timeline.ParseTime: RFC 3339, a
// duration back from now) and what a person types in the form: "now", or
// a time in the page's zone as the page shows it ("2025-03-04 14:02").
func parseTime(field, s string, now time.Time, loc *time.Location) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	for _, layout := range localLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	t, err := timeline.ParseTime(field, s, now)
	if err != nil {
		return time.Time{}, &timeline.FieldError{Field: field, Msg: fmt.Sprintf(
			"%q is not a time: want RFC 3339 (2025-03-04T14:02:00Z), a time in %s (2025-03-04 14:02), now, or a duration back from now (3h, 2d)", s, loc)}
	}
	return t, nil
}

// values is the query of a page link: the filters and an absolute window,
// so a shared link shows the same hours tomorrow.
func (q query) values(start, end time.Time) url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("from", start.UTC().Format(time.RFC3339))
	set("to", end.UTC().Format(time.RFC3339))
	set("namespace", q.Filter.Namespace)
	set("workload", q.Filter.Workload)
	set("app", q.Filter.App)
	set("alertname", q.Filter.Alertname)
	set("cluster", q.Filter.Cluster)
	set("matchers", q.Filter.Matchers)
	return v
}
