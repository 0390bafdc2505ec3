package slack

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// mixedPayload is a firing group whose alerts differ in severity, so the
// common labels carry none and the worst alert decides.
func mixedPayload(severities ...string) []byte {
	var alerts []map[string]any
	for i, sev := range severities {
		alerts = append(alerts, map[string]any{"status": "firing",
			"labels":      map[string]string{"alertname": "HighErrorRate", "namespace": "shop", "pod": "api-" + string(rune('a'+i)), "severity": sev},
			"annotations": map[string]string{"summary": "5xx ratio above 5%"}, "startsAt": t0.Format(time.RFC3339), "endsAt": "0001-01-01T00:00:00Z"})
	}
	b, _ := json.Marshal(map[string]any{"version": "4", "status": "firing", "groupKey": `{}:{alertname="HighErrorRate"}`, "receiver": "slack",
		"groupLabels": map[string]string{"alertname": "HighErrorRate"}, "commonLabels": map[string]string{"alertname": "HighErrorRate", "namespace": "shop"},
		"alerts": alerts})
	return b
}

// A configured alias decides the worst alert of a group: P1 is critical
// here, so the group pages the on-call and @here, although its other
// alert is a warning (medium: the owner).
func TestAliasDecidesWorstAlertOfGroup(t *testing.T) {
	f := newFakeSlack(t)
	tg := newTarget(t, f, &BoltThreads{Store: newBolt(t, t.TempDir())}, func(c *Config) {
		c.Severity.Aliases = map[string]string{"P1": "critical", "P3": "medium"}
	})
	deliverOK(t, tg, mixedPayload("warning", "P1"))
	c := f.recorded()
	if len(c) != 1 {
		t.Fatalf("%d calls: %+v", len(c), c)
	}
	if b := string(c[0].Blocks); !strings.Contains(b, "S0NCALL") || !strings.Contains(b, `\u003c!here\u003e`) || strings.Contains(b, "U0WNER") {
		t.Errorf("group with a P1 (alias of critical) did not page the on-call and @here: %s", b)
	}
}

// The group's severity is its worst firing alert's as the configured
// aliases rank them, whatever the case of the alias key.
func TestGroupSeverityUsesAliases(t *testing.T) {
	for name, aliases := range map[string]map[string]string{"lower-case key": {"p1": "critical"}, "key as in the label": {"P1": "critical"}, "level name in capitals": {"p1": "CRITICAL"}} {
		n, err := decodeGroup(mixedPayload("warning", "P1", "info"))
		if err != nil {
			t.Fatal(err)
		}
		s := Severity{Label: "severity", Aliases: aliases}
		if got := n.severity(s); got != "P1" {
			t.Errorf("%s: group severity %q, want P1", name, got)
		}
		if lv, _ := s.level("P1", "#a"); levelNames[lv] != "critical" {
			t.Errorf("%s: P1 is %s", name, levelNames[lv])
		}
	}
}
