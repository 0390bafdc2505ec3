package enrich

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeWebhook: any body either fails with a DecodeError or round-trips
// through MarshalJSON into valid UTF-8 JSON that decodes to the same alerts.
func FuzzDecodeWebhook(f *testing.F) {
	f.Add([]byte(webhookV4))
	f.Add([]byte(`{"version":"4","alerts":[]}`))
	f.Add([]byte(`{"alerts":[{"labels":{"a":"b"},"startsAt":"0001-01-01T00:00:00Z","x":null}]}`))
	f.Add([]byte(`{"alerts":[{"labels":{},"annotations":null}]}`))
	f.Add([]byte(`{"alerts":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"alerts":[{"labels":{"\u0000":"\ud800"}}]}`))
	// Issue 14, strict at the edge: times at the ends of what JSON can
	// hold (a look-ahead past 9999 broke /debug/enrich), control characters,
	// invalid UTF-8 in labels and annotations, an alert Alertmanager
	// refuses with 422 (no labels).
	f.Add([]byte(`{"alerts":[{"labels":{"namespace":"shop"},"startsAt":"9999-12-31T23:58:00Z"}]}`))
	f.Add([]byte(`{"alerts":[{"labels":{"namespace":"shop"},"startsAt":"9999-12-31T23:58:00-23:00","endsAt":"0000-01-01T00:00:00+23:59"}]}`))
	f.Add([]byte(`{"alerts":[{"labels":{"a":"b"},"startsAt":"1677-09-21T00:12:43Z","endsAt":"2262-04-11T23:47:17Z"}]}`))
	f.Add([]byte(`{"alerts":[{"labels":{"id":"ci\u0000\u001b[2J","x":"\u009b"},"annotations":{"d":"a\nb\u0007"}}]}`))
	f.Add([]byte("{\"alerts\":[{\"labels\":{\"namespace\":\"sh\xffop\"},\"annotations\":{\"d\":\"caf\xe9\"}}]}"))
	f.Add([]byte("{\"alerts\":[{\"labels\":{\"\xed\xa0\x80\":\"v\"}}],\"groupKey\":\"\xc3\"}"))
	f.Add([]byte(`{"alerts":[{"annotations":{}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := DecodeWebhook(body)
		if err != nil {
			if _, ok := err.(*DecodeError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for _, a := range p.Alerts {
			if a.Annotations == nil {
				a.Annotations = map[string]string{}
			}
			a.Annotations["whatchanged_summary"] = "fuzz"
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if !utf8.Valid(out) {
			t.Fatalf("our own output is not UTF-8: %q", out)
		}
		again, err := DecodeWebhook(out)
		if err != nil {
			t.Fatalf("re-decode of our own output: %v\n%s", err, out)
		}
		if len(again.Alerts) != len(p.Alerts) {
			t.Fatalf("alerts %d → %d", len(p.Alerts), len(again.Alerts))
		}
		for i := range p.Alerts {
			if again.Alerts[i].Annotations["whatchanged_summary"] != "fuzz" || len(again.Alerts[i].Labels) != len(p.Alerts[i].Labels) {
				t.Fatalf("alert %d changed in round trip", i)
			}
		}
	})
}
