package main

import (
	"strings"
	"testing"
	"time"
)

func slackSeverityYAML(dir, tok, severity string) []byte {
	return []byte("data_dir: " + dir + "\ndownstreams:\n  slack:\n    slack:\n      token_file: " + tok + "\n      channel: \"#oncall\"\n      severity:\n" + severity)
}

func TestSlackMentionWhenConfig(t *testing.T) {
	dir := t.TempDir()
	tok := writeTestFile(t, dir, "tok", "xoxb-secret\n")
	cfg, err := parseConfig("c.yaml", slackSeverityYAML(dir, tok,
		"        aliases: {P1: critical}\n        levels:\n          high:\n            mention_when: {fired: 4, within: 2h, refired_within: 10m}\n          critical:\n            mention_when: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	sev := cfg.Downstreams["slack"].Slack.Severity
	if m := sev.Levels["high"].MentionWhen; m == nil || m.Fired != 4 || m.Within != 2*time.Hour || m.RefiredWithin != 10*time.Minute {
		t.Errorf("high mention_when = %+v", m)
	}
	if m := sev.Levels["critical"].MentionWhen; m == nil || m.Fired != 0 {
		t.Errorf("critical mention_when (the defaults) = %+v", m)
	}

	for severity, want := range map[string]string{
		"        levels:\n          hgh: {channel: x}\n":                                                   "c.yaml:9: downstreams.slack.slack.severity.levels.hgh: not a level (known: low, medium, high, critical)",
		"        aliases:\n          P1: crit\n":                                                           `c.yaml:9: downstreams.slack.slack.severity.aliases.P1: "crit" is not a level (known: low, medium, high, critical)`,
		"        levels:\n          high:\n            mention_when: {fired: -1}\n":                        "c.yaml:10: downstreams.slack.slack.severity.levels.high.mention_when.fired: must be between 1 and 100",
		"        levels:\n          high:\n            mention_when:\n              within: -1h\n":         "c.yaml:11: downstreams.slack.slack.severity.levels.high.mention_when.within: must not be negative",
		"        levels:\n          high:\n            mention_when:\n              refired_within: -5m\n": "c.yaml:11: downstreams.slack.slack.severity.levels.high.mention_when.refired_within: must not be negative",
		"        levels:\n          high:\n            mention_when: {fired: 3, within: soon}\n":           "downstreams.slack.slack.severity.levels.high.mention_when.within: \"soon\" is not a duration",
	} {
		_, err := parseConfig("c.yaml", slackSeverityYAML(dir, tok, severity))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", severity, err, want)
		}
	}
}
