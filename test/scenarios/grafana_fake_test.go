package scenarios_test

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/whatchanged/whatchanged/sources/grafana/grafanatest"
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
	for k := range r.URL.Query() {
		if !slices.Contains(grafanatest.Params, k) {
			f.unexpectedRequest(w, r, "query parameter "+k+" is not one the fake implements")
			return
		}
	}
	q, err := grafanatest.ParseQuery(r.URL.Query())
	if err != nil {
		// Grafana binds the query into a struct of int64s: a bad number is 400.
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "bad request data"})
		return
	}
	stored := make([]grafanatest.Annotation, len(f.sc.Grafana.Annotations))
	for i, a := range f.sc.Grafana.Annotations {
		epoch := a.At.From(f.startsAt).UnixMilli()
		epochEnd := epoch
		if a.EndsAt != nil {
			epochEnd = a.EndsAt.From(f.startsAt).UnixMilli()
		}
		stored[i] = grafanatest.Annotation{Time: epoch, TimeEnd: epochEnd, AlertID: a.AlertID, Tags: a.Tags}
	}
	out := []map[string]any{}
	for _, i := range q.Select(stored) {
		out = append(out, f.item(i, f.sc.Grafana.Annotations[i], stored[i].Time, stored[i].TimeEnd))
	}
	writeJSON(w, http.StatusOK, out)
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
