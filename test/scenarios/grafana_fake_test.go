package scenarios_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// grafanaFake is Grafana's annotations API: GET /api/annotations, as
// grafana/grafana pkg/api/annotations.go GetAnnotations answers it from
// pkg/services/annotations/annotationsimpl/xorm_store.go (the filters and
// their order) with items in the shape of annotations.ItemDTO. It serves
// the scenario's `grafana.annotations`.
type grafanaFake struct {
	*recorder
	sc       *Scenario
	startsAt time.Time
	token    string
}

// grafanaParams are the query parameters the fake implements. Grafana
// takes more (dashboardUID, panelId, userId, alertId, …); whatchanged
// sends none of them, so one is an unexpected request here.
var grafanaParams = []string{"from", "to", "limit", "type", "tags", "matchAny"}

func (f *grafanaFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.saw(r)
	if r.Method != http.MethodGet || r.URL.Path != "/api/annotations" {
		f.unexpectedRequest(w, r, "not the annotations API the Grafana source reads")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		// Grafana's answer to a missing or wrong service-account token.
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Unauthorized"})
		return
	}
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(grafanaParams, k) {
			f.unexpectedRequest(w, r, "query parameter "+k+" is not one the fake implements")
			return
		}
	}
	num := func(k string) (int64, bool) {
		if q.Get(k) == "" {
			return 0, true
		}
		n, err := strconv.ParseInt(q.Get(k), 10, 64)
		return n, err == nil
	}
	from, okFrom := num("from")
	to, okTo := num("to")
	limit, okLimit := num("limit")
	if !okFrom || !okTo || !okLimit {
		// Grafana binds the query into a struct of int64s: a bad number is 400.
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "bad request data"})
		return
	}
	if limit == 0 {
		limit = 100
	}
	matchAny, _ := strconv.ParseBool(q.Get("matchAny"))
	want := grafanaTagPairs(q["tags"])
	typ := q.Get("type")

	type hit struct {
		epoch, epochEnd int64
		item            map[string]any
	}
	var hits []hit
	for i, a := range f.sc.Grafana.Annotations {
		epoch := a.At.From(f.startsAt).UnixMilli()
		epochEnd := epoch
		if a.EndsAt != nil {
			epochEnd = a.EndsAt.From(f.startsAt).UnixMilli()
		}
		switch {
		case from > 0 && to > 0 && !(epoch <= to && epochEnd >= from):
		case typ == "annotation" && a.AlertID != 0, typ == "alert" && a.AlertID == 0:
		case len(want) > 0 && !grafanaTagsMatch(grafanaTagPairs(a.Tags), want, matchAny):
		default:
			hits = append(hits, hit{epoch, epochEnd, f.item(i, a, epoch, epochEnd)})
		}
	}
	// ORDER BY a.epoch_end DESC, a.epoch DESC
	slices.SortStableFunc(hits, func(a, b hit) int {
		if a.epochEnd != b.epochEnd {
			return cmpDesc(a.epochEnd, b.epochEnd)
		}
		return cmpDesc(a.epoch, b.epoch)
	})
	out := []map[string]any{}
	for i := 0; i < len(hits) && int64(i) < limit; i++ {
		out = append(out, hits[i].item)
	}
	writeJSON(w, http.StatusOK, out)
}

func cmpDesc(a, b int64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// item is one annotations.ItemDTO as Grafana writes it: every field
// omitempty, the avatar URL from the email, the dashboard UID from the
// dashboard id, an alert's state change with its alert id and states.
func (f *grafanaFake) item(i int, a GrafanaAnnotation, epoch, epochEnd int64) map[string]any {
	id := a.ID
	if id == 0 {
		id = int64(4000 + i)
	}
	tags := a.Tags
	if tags == nil {
		tags = []string{}
	}
	item := map[string]any{
		"id": id, "time": epoch, "timeEnd": epochEnd, "text": a.Text, "tags": tags,
		"created": epoch + 412, "updated": epochEnd + 412, "data": map[string]any{},
	}
	if a.DashboardUID != "" {
		item["dashboardUID"] = a.DashboardUID
		item["dashboardId"] = 100 + len(a.DashboardUID) // any stable id
	}
	if a.PanelID != 0 {
		item["panelId"] = a.PanelID
	}
	if a.Login != "" {
		item["login"] = a.Login
		item["userId"] = 7 + i
		item["avatarUrl"] = "/avatar/" + strings.Repeat("0", 32)
	}
	if a.Email != "" {
		item["email"] = a.Email
	}
	if a.AlertID != 0 {
		item["alertId"] = a.AlertID
		item["alertName"] = a.AlertName
		item["newState"], item["prevState"] = "alerting", "normal"
		item["data"] = map[string]any{"evalMatches": []any{}}
	}
	return item
}

type grafanaTagPair struct{ key, value string }

// grafanaTagPairs is Grafana's pkg/services/tag ParseTagPairs: "k:v" is key
// k, value v (what follows a second colon is dropped), both trimmed; empty
// keys and repeats are dropped.
func grafanaTagPairs(tags []string) []grafanaTagPair {
	var out []grafanaTagPair
	for _, t := range tags {
		var p grafanaTagPair
		if strings.Contains(t, ":") {
			kv := strings.Split(t, ":")
			p = grafanaTagPair{strings.TrimSpace(kv[0]), strings.TrimSpace(kv[1])}
		} else {
			p.key = strings.TrimSpace(t)
		}
		if p.key != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// grafanaTagsMatch is the store's tag filter: the annotation's tags that a
// filter names (a filter without a value names every value of its key)
// are counted; all filters' worth match, or any with matchAny.
func grafanaTagsMatch(have, want []grafanaTagPair, matchAny bool) bool {
	n := 0
	for _, h := range have {
		for _, w := range want {
			if h.key == w.key && (w.value == "" || h.value == w.value) {
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

// grafanaConfig is the sources.grafana section the runner writes: the
// scenario's rules and tags, or the rule most teams start with.
func grafanaConfig(g Grafana, url, tokenFile string) map[string]any {
	rules := g.Rules
	if len(rules) == 0 {
		rules = []GrafanaRule{{TagPattern: "^service:(.+)$", Subject: map[string]string{"app": "$1"}}}
	}
	cfg := map[string]any{
		"enabled":     true,
		"url":         url,
		"ui_url":      "https://grafana.example.com",
		"http_config": map[string]any{"authorization": map[string]any{"credentials_file": tokenFile}},
		"refresh":     "30s", // the first read is waited for (/readyz); a scenario is over before the next
		"rules":       rules,
	}
	if len(g.Tags) > 0 {
		cfg["tags"] = g.Tags
	}
	return cfg
}
