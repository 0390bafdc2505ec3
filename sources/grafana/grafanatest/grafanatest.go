// Package grafanatest is the part of Grafana's annotations API that the
// tests' fake Grafanas share: which stored annotations GET /api/annotations
// answers with, and in which order, as grafana/grafana pkg/api/annotations.go
// GetAnnotations and pkg/services/annotations/annotationsimpl/xorm_store.go
// (the filters and their order) select them. Each fake keeps its own
// serving (paths, authorization, what it records, the items' JSON).
package grafanatest

import (
	"cmp"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Params are the query parameters the fakes implement. Grafana takes more
// (dashboardUID, panelId, userId, alertId, …); whatchanged sends none.
var Params = []string{"from", "to", "limit", "type", "tags", "matchAny"}

// Query is a parsed GET /api/annotations query.
type Query struct {
	From, To int64 // epoch milliseconds; both set: only annotations overlapping [From, To]
	Limit    int64 // default 100
	Type     string
	Tags     []string
	MatchAny bool
}

// ParseQuery reads q as Grafana binds it into a struct of int64s: a bad
// number is an error, which Grafana answers with 400 "bad request data".
func ParseQuery(q url.Values) (Query, error) {
	num := func(k string) (int64, error) {
		if q.Get(k) == "" {
			return 0, nil
		}
		return strconv.ParseInt(q.Get(k), 10, 64)
	}
	var out Query
	var err error
	if out.From, err = num("from"); err != nil {
		return Query{}, err
	}
	if out.To, err = num("to"); err != nil {
		return Query{}, err
	}
	if out.Limit, err = num("limit"); err != nil {
		return Query{}, err
	}
	if out.Limit == 0 {
		out.Limit = 100
	}
	out.MatchAny, _ = strconv.ParseBool(q.Get("matchAny"))
	out.Type, out.Tags = q.Get("type"), q["tags"]
	return out, nil
}

// Annotation is what the filters read of a stored annotation.
type Annotation struct {
	Time, TimeEnd int64 // epoch milliseconds; TimeEnd 0 is Time
	AlertID       int64
	Tags          []string
}

// Select is the indices of the annotations the query answers with:
// filtered, ORDER BY epoch_end DESC, epoch DESC, at most Limit.
func (q Query) Select(items []Annotation) []int {
	want := TagPairs(q.Tags)
	var hits []int
	for i, a := range items {
		end := timeEnd(a)
		switch {
		case q.From > 0 && q.To > 0 && !(a.Time <= q.To && end >= q.From):
		case q.Type == "annotation" && a.AlertID != 0, q.Type == "alert" && a.AlertID == 0:
		case len(want) > 0 && !TagsMatch(TagPairs(a.Tags), want, q.MatchAny):
		default:
			hits = append(hits, i)
		}
	}
	slices.SortStableFunc(hits, func(i, j int) int {
		a, b := items[i], items[j]
		if c := cmp.Compare(timeEnd(b), timeEnd(a)); c != 0 {
			return c
		}
		return cmp.Compare(b.Time, a.Time)
	})
	if int64(len(hits)) > q.Limit {
		hits = hits[:q.Limit]
	}
	return hits
}

func timeEnd(a Annotation) int64 {
	if a.TimeEnd == 0 {
		return a.Time
	}
	return a.TimeEnd
}

// TagPair is one parsed tag.
type TagPair struct{ Key, Value string }

// TagPairs is Grafana's pkg/services/tag ParseTagPairs: "k:v" is key k,
// value v (what follows a second colon is dropped), both trimmed; empty
// keys and repeats are dropped.
func TagPairs(tags []string) []TagPair {
	var out []TagPair
	for _, t := range tags {
		var p TagPair
		if strings.Contains(t, ":") {
			kv := strings.Split(t, ":")
			p = TagPair{strings.TrimSpace(kv[0]), strings.TrimSpace(kv[1])}
		} else {
			p.Key = strings.TrimSpace(t)
		}
		if p.Key != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// TagsMatch is the store's tag filter: the annotation's tags that a filter
// names (a filter without a value names every value of its key) are
// counted; all filters' worth match, or any with matchAny.
func TagsMatch(have, want []TagPair, matchAny bool) bool {
	n := 0
	for _, h := range have {
		for _, w := range want {
			if h.Key == w.Key && (w.Value == "" || h.Value == w.Value) {
				n++
				break
			}
		}
	}
	if matchAny {
		return n > 0
	}
	return n == len(want)
}
