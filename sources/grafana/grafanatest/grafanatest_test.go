package grafanatest

import (
	"net/url"
	"slices"
	"testing"
)

func TestSelect(t *testing.T) {
	items := []Annotation{
		{Time: 100, Tags: []string{"service:api", "deploy"}},             // 0
		{Time: 200, TimeEnd: 300, Tags: []string{"service:web"}},         // 1
		{Time: 150, AlertID: 7, Tags: []string{"service:api"}},           // 2
		{Time: 400, Tags: []string{" service : api ", "env:prod:eu"}},    // 3
		{Time: 50, TimeEnd: 120, Tags: []string{"deploy", "service:db"}}, // 4
	}
	for _, c := range []struct {
		query string
		want  []int
	}{
		{"", []int{3, 1, 2, 4, 0}}, // epoch_end DESC, then epoch DESC
		{"limit=2", []int{3, 1}},
		{"from=110&to=250", []int{1, 2, 4}},
		{"from=110", []int{3, 1, 2, 4, 0}}, // one bound alone filters nothing
		{"type=annotation", []int{3, 1, 4, 0}},
		{"type=alert", []int{2}},
		{"tags=service:api", []int{3, 2, 0}},
		{"tags=service", []int{3, 1, 2, 4, 0}},
		{"tags=service:api&tags=deploy", []int{0}},
		{"tags=service:api&tags=deploy&matchAny=true", []int{3, 2, 4, 0}},
		{"tags=env:prod", []int{3}}, // what follows a second colon is dropped
	} {
		v, _ := url.ParseQuery(c.query)
		q, err := ParseQuery(v)
		if err != nil {
			t.Fatalf("%q: %v", c.query, err)
		}
		if got := q.Select(items); !slices.Equal(got, c.want) {
			t.Errorf("%q: %v, want %v", c.query, got, c.want)
		}
	}
}

func TestParseQueryBadNumber(t *testing.T) {
	for _, k := range []string{"from", "to", "limit"} {
		if _, err := ParseQuery(url.Values{k: {"soon"}}); err == nil {
			t.Errorf("%s=soon parsed", k)
		}
	}
}
