package slack

import "strings"

// Levels, lowest first; the index is what escalation compares.
var levelNames = []string{"low", "medium", "high", "critical"}

// Level is what one severity level does in Slack.
type Level struct {
	Channel string   `yaml:"channel"` // default: the target's channel
	Mention []string `yaml:"mention"` // "<!subteam^ID>", "<@USER>", "<!here>", "<!channel>"
}

// Severity maps an alert's severity label to a level.
type Severity struct {
	Label   string            `yaml:"label"`   // default "severity"
	Aliases map[string]string `yaml:"aliases"` // value → level name
	// Owner and OnCall are who the default levels mention: medium mentions
	// the owner (when set), high the on-call, critical the on-call and @here.
	Owner  string           `yaml:"owner"`
	OnCall string           `yaml:"oncall"`
	Levels map[string]Level `yaml:"levels"` // overrides per level name
}

var defaultAliases = map[string]string{
	"info": "low", "none": "low", "low": "low",
	"warning": "medium", "warn": "medium", "medium": "medium",
	"error": "high", "high": "high", "major": "high",
	"critical": "critical", "page": "critical", "fatal": "critical",
}

// level resolves a severity value to its index and settings.
func (s Severity) level(value string, defaultChannel string) (int, Level) {
	name := defaultAliases[strings.ToLower(value)]
	if a, ok := s.Aliases[strings.ToLower(value)]; ok {
		name = a
	}
	if name == "" {
		name = "medium" // unknown severities are neither ignored nor paged
	}
	idx := 0
	for i, n := range levelNames {
		if n == name {
			idx = i
		}
	}
	lvl := Level{Channel: defaultChannel}
	switch name {
	case "medium":
		if s.Owner != "" {
			lvl.Mention = []string{s.Owner}
		}
	case "high":
		if s.OnCall != "" {
			lvl.Mention = []string{s.OnCall}
		}
	case "critical":
		if s.OnCall != "" {
			lvl.Mention = []string{s.OnCall}
		}
		lvl.Mention = append(lvl.Mention, "<!here>")
	}
	if o, ok := s.Levels[name]; ok {
		if o.Channel != "" {
			lvl.Channel = o.Channel
		}
		if o.Mention != nil {
			lvl.Mention = o.Mention
		}
	}
	return idx, lvl
}
