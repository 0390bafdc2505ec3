package enrich

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeWebhook: any body either fails with a DecodeError or round-trips
// through MarshalJSON into a body that decodes to the same alerts.
func FuzzDecodeWebhook(f *testing.F) {
	f.Add([]byte(webhookV4))
	f.Add([]byte(`{"version":"4","alerts":[]}`))
	f.Add([]byte(`{"alerts":[{"labels":{"a":"b"},"startsAt":"0001-01-01T00:00:00Z","x":null}]}`))
	f.Add([]byte(`{"alerts":[{"labels":{},"annotations":null}]}`))
	f.Add([]byte(`{"alerts":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"alerts":[{"labels":{"\u0000":"\ud800"}}]}`))
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
