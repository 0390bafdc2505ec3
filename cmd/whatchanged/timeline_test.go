package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTimelineConfig(t *testing.T) {
	dir := t.TempDir()
	cfg, err := parseConfig("t.yaml", []byte("data_dir: "+dir+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	tc := cfg.Timeline
	if !tc.On() || tc.Retention != 30*24*time.Hour || tc.MaxAlerts != 100_000 || tc.TimeZone != "UTC" || tc.loc != time.UTC {
		t.Errorf("defaults: %+v", tc)
	}
	cfg, err = parseConfig("t.yaml", []byte("data_dir: "+dir+"\ntimeline: {time_zone: Europe/Berlin, retention: 7d, max_alerts: 5000}\n"))
	if err != nil || cfg.Timeline.loc.String() != "Europe/Berlin" || cfg.Timeline.Retention != 7*24*time.Hour || cfg.Timeline.MaxAlerts != 5000 {
		t.Errorf("set: %+v %v", cfg.Timeline, err)
	}
	cfg, err = parseConfig("t.yaml", []byte("data_dir: ''\nsources: {changes: {enabled: false}}\n"))
	if err != nil || cfg.Timeline.On() {
		t.Errorf("no data_dir: on=%v %v", cfg.Timeline.On(), err)
	}

	for _, tc := range []struct{ yaml, want string }{
		{"data_dir: " + dir + "\ntimeline:\n  time_zone: Mars/Olympus\n", `t.yaml:3: timeline.time_zone: "Mars/Olympus" is not an IANA time zone`},
		{"data_dir: " + dir + "\ntimeline:\n  retention: 10m\n", "t.yaml:3: timeline.retention: must be at least 1h"},
		{"data_dir: " + dir + "\ntimeline:\n  max_alerts: -1\n", "t.yaml:3: timeline.max_alerts: must be at least 1"},
		{"data_dir: ''\nsources: {changes: {enabled: false}}\ntimeline:\n  enabled: true\n", "data_dir: required when timeline is enabled"},
	} {
		_, err := parseConfig("t.yaml", []byte(tc.yaml))
		var ces ConfigErrors
		if !errors.As(err, &ces) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
