package timeline

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"

	"github.com/whatchanged/whatchanged/sources"
)

// FieldError is a bad value of one request field (a query parameter, a
// flag): the API answers 400 naming Field.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// matcher is a compiled Filter: the alerts it keeps, and the subject whose
// changes the sources are asked for.
type matcher struct {
	f        Filter
	matchers []*labels.Matcher
}

// compile checks the filter: the matchers must parse in Alertmanager's
// syntax.
func (f Filter) compile() (*matcher, error) {
	m := &matcher{f: f}
	if strings.TrimSpace(f.Matchers) != "" {
		ms, err := labels.ParseMatchers(f.Matchers)
		if err != nil {
			return nil, &FieldError{"matchers", fmt.Sprintf("%v (want Alertmanager's syntax, e.g. {severity=\"critical\",team=~\"pay.*\"})", err)}
		}
		m.matchers = ms
	}
	return m, nil
}

// Validate reports the first bad field, as a *FieldError.
func (f Filter) Validate() error {
	_, err := f.compile()
	return err
}

// subject is what the filter names of a workload; zero when it names none.
func (f Filter) subject() sources.Subject {
	if f.Namespace == "" && f.Workload == "" && f.App == "" {
		return sources.Subject{}
	}
	return sources.Subject{Namespace: f.Namespace, Name: f.Workload, App: f.App, Cluster: f.Cluster}
}

// keeps reports whether the alert is one the filter selects: each field by
// what the alert was resolved to or its own label.
func (m *matcher) keeps(a *Alert) bool {
	f, l := m.f, a.Labels
	switch {
	case f.Namespace != "" && a.Subject.Namespace != f.Namespace && l["namespace"] != f.Namespace:
		return false
	case f.Workload != "" && a.Subject.Name != f.Workload:
		return false
	case f.App != "" && !a.Subject.HasApp(f.App) && l["app"] != f.App && l["app_kubernetes_io_name"] != f.App:
		return false
	case f.Alertname != "" && l["alertname"] != f.Alertname:
		return false
	case f.Cluster != "" && a.Subject.Cluster != f.Cluster && l["cluster"] != f.Cluster:
		return false
	}
	for _, mt := range m.matchers {
		if !mt.Matches(l[mt.Name]) {
			return false
		}
	}
	return true
}

// String is the filter as a human reads it in a header: "namespace=shop,
// matchers={severity="critical"}", or "none".
func (f Filter) String() string {
	var parts []string
	for _, kv := range [][2]string{{"namespace", f.Namespace}, {"workload", f.Workload}, {"app", f.App},
		{"alertname", f.Alertname}, {"cluster", f.Cluster}, {"matchers", f.Matchers}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// ParseTime reads a window bound: RFC 3339, or a duration ago such as 3h,
// 90m or 2d (Prometheus's durations and Go's). field names it in the error.
func ParseTime(field, v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		var md model.Duration
		md, err = model.ParseDuration(v)
		d = time.Duration(md)
	}
	if err != nil || d < 0 {
		return time.Time{}, &FieldError{field, fmt.Sprintf("%q is neither an RFC 3339 time nor a duration ago such as 3h or 2d", v)}
	}
	return now.Add(-d), nil
}
