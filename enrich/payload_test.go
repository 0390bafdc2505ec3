package enrich

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// webhookV4 is a body as Alertmanager v0.34 sends it, with fields newer than
// this code knows (routeLabels, notification_reason, an alert-level extra).
const webhookV4 = `{
  "version": "4",
  "groupKey": "{}/{severity=\"page\"}:{alertname=\"HighErrorRate\"}",
  "truncatedAlerts": 0,
  "status": "firing",
  "receiver": "whatchanged\\-shop",
  "groupLabels": {"alertname": "HighErrorRate"},
  "commonLabels": {"alertname": "HighErrorRate", "namespace": "shop"},
  "commonAnnotations": {"runbook": "https://runbooks/x"},
  "externalURL": "http://am:9093",
  "routeLabels": {"team": "shop"},
  "notification_reason": "new_alert",
  "alerts": [
    {"status": "firing", "labels": {"alertname": "HighErrorRate", "namespace": "shop", "deployment": "api"},
     "annotations": {"runbook": "https://runbooks/x", "description": "5xx > 5%"},
     "startsAt": "2026-11-21T10:14:00.123Z", "endsAt": "0001-01-01T00:00:00Z",
     "generatorURL": "http://prom/graph", "fingerprint": "a1b2c3", "futureField": {"x": [1, 2]}},
    {"status": "firing", "labels": {"alertname": "HighErrorRate", "namespace": "shop", "deployment": "web"},
     "annotations": {"runbook": "https://runbooks/x"},
     "startsAt": "2026-11-21T10:15:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "d4e5f6"}
  ]
}`

func TestDecodeWebhookKeepsUnknownFields(t *testing.T) {
	p, err := DecodeWebhook([]byte(webhookV4))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != "4" || p.Receiver != `whatchanged\-shop` || len(p.Alerts) != 2 {
		t.Fatalf("decoded %+v", p)
	}
	a := p.Alerts[0]
	if want := time.Date(2026, 11, 21, 10, 14, 0, 123e6, time.UTC); !a.StartsAt.Equal(want) {
		t.Errorf("startsAt = %v, want %v", a.StartsAt, want)
	}
	if a.EndsAt.Year() != 1 || !a.Firing(time.Now()) {
		t.Errorf("endsAt 0001-01-01 of a firing alert: got %v firing=%v", a.EndsAt, a.Firing(time.Now()))
	}
	a.Annotations["whatchanged_summary"] = "x"

	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	_ = json.Unmarshal([]byte(webhookV4), &want)
	for _, k := range []string{"routeLabels", "notification_reason", "groupKey", "truncatedAlerts", "externalURL", "groupLabels", "commonLabels"} {
		if g, w := mustJSON(got[k]), mustJSON(want[k]); g != w {
			t.Errorf("%s changed: got %s, want %s", k, g, w)
		}
	}
	alert0 := got["alerts"].([]any)[0].(map[string]any)
	if mustJSON(alert0["futureField"]) != `{"x":[1,2]}` {
		t.Errorf("alert-level unknown field lost: %v", alert0["futureField"])
	}
	if alert0["endsAt"] != "0001-01-01T00:00:00Z" || alert0["startsAt"] != "2026-11-21T10:14:00.123Z" {
		t.Errorf("times rewritten: startsAt=%v endsAt=%v", alert0["startsAt"], alert0["endsAt"])
	}
	// commonAnnotations are recomputed: runbook is shared, the new one is not.
	if g := mustJSON(got["commonAnnotations"]); g != `{"runbook":"https://runbooks/x"}` {
		t.Errorf("commonAnnotations = %s", g)
	}
}

func TestCommonAnnotationsIncludeSharedEnrichment(t *testing.T) {
	p, err := DecodeWebhook([]byte(webhookV4))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range p.Alerts {
		a.Annotations["whatchanged_summary"] = "same"
	}
	p.Alerts[1].Annotations["whatchanged_error"] = "only one"
	common := commonAnnotations(p.Alerts)
	if common["whatchanged_summary"] != "same" || common["whatchanged_error"] != "" || common["description"] != "" {
		t.Errorf("common = %v", common)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{name: "empty", body: "", want: "body: empty"},
		{name: "syntax", body: `{"alerts": [}`, want: "body: invalid JSON at byte 13"},
		{name: "not an object", body: `[1,2]`, want: "body: expected a JSON object"},
		{name: "custom payload template", body: `{"text": "HighErrorRate firing"}`, want: `no "alerts" field`},
		{name: "alerts not array", body: `{"version":"4","alerts":{}}`, want: "alerts: expected a JSON array"},
		{name: "alert not object", body: `{"version":"4","alerts":[3]}`, want: "alerts[0]: expected a JSON object"},
		{name: "missing labels", body: `{"version":"4","alerts":[{"labels":{"a":"b"}},{"annotations":{}}]}`, want: "alerts[1].labels: missing"},
		{name: "non-string label", body: `{"version":"4","alerts":[{"labels":{"a":1}}]}`, want: "alerts[0].labels: expected an object of string values"},
		{name: "bad startsAt", body: `{"version":"4","alerts":[{"labels":{},"startsAt":"yesterday"}]}`, want: `alerts[0].startsAt: "yesterday" is not an RFC 3339 time`},
		{name: "startsAt number", body: `{"version":"4","alerts":[{"labels":{},"startsAt":5}]}`, want: "alerts[0].startsAt: expected an RFC 3339 time string"},
		{name: "wrong version", body: `{"version":"5","alerts":[]}`, want: `version: webhook version "5" is not supported`},
		{name: "status not string", body: `{"version":"4","status":1,"alerts":[]}`, want: "status: expected a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeWebhook([]byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDecodePostableAlerts(t *testing.T) {
	alerts, err := DecodeAlerts([]byte(`[{"labels":{"alertname":"A"},"annotations":{"x":"y"},"generatorURL":"http://p"},{"labels":{"alertname":"B"},"endsAt":"2020-01-01T00:00:00Z"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 2 || alerts[0].GeneratorURL != "http://p" {
		t.Fatalf("got %+v", alerts)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if !alerts[0].Firing(now) || alerts[1].Firing(now) {
		t.Errorf("firing: %v %v; want true false", alerts[0].Firing(now), alerts[1].Firing(now))
	}
	if _, err := DecodeAlerts([]byte(`{"labels":{}}`)); err == nil || !strings.Contains(err.Error(), "expected a JSON array") {
		t.Errorf("object instead of array: %v", err)
	}
	empty, err := DecodeAlerts([]byte(`[]`))
	if err != nil || len(empty) != 0 {
		t.Errorf("empty array: %v %v", empty, err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Invalid UTF-8 is replaced the same way wherever it is — a label kept raw,
// an annotation re-encoded, a field passed through — so the body sent on is
// valid JSON for any receiver.
func TestInvalidUTF8ReplacedEverywhere(t *testing.T) {
	body := []byte("{\"version\":\"4\",\"x-extra\":\"a\xffb\",\"alerts\":[{\"labels\":{\"pod\":\"api-\xfe-0\"},\"annotations\":{\"d\":\"c\xffd\"},\"extra\":\"e\xfff\"}]}")
	p, err := DecodeWebhook(body)
	if err != nil {
		t.Fatal(err)
	}
	if p.Alerts[0].Labels["pod"] != "api-\uFFFD-0" {
		t.Errorf("label = %q", p.Alerts[0].Labels["pod"])
	}
	out, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(out) || !json.Valid(out) {
		t.Fatalf("encoded body is not valid UTF-8 JSON: %q", out)
	}
	for _, want := range []string{"api-\uFFFD-0", "c\uFFFDd", "e\uFFFDf", "a\uFFFDb"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("encoded body lacks %q: %s", want, out)
		}
	}
}
