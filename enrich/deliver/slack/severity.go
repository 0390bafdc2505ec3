package slack

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Levels, lowest first; the index is what escalation compares.
var levelNames = []string{"low", "medium", "high", "critical"}

// Level is what one severity level does in Slack.
type Level struct {
	Channel string   `yaml:"channel"` // default: the target's channel
	Mention []string `yaml:"mention"` // "<!subteam^ID>", "<@USER>", "<!here>", "<!channel>"
	// MentionWhen holds the level's mentions back until the situation calls
	// for them; without it every new parent (and escalation) mentions.
	MentionWhen *MentionWhen `yaml:"mention_when"`
}

// MentionWhen is the rule teams adopt to cut mention noise: mention only
// when the group keeps firing (Fired firing notifications within Within) or
// fires again soon after it resolved (within RefiredWithin). Zero values
// take the defaults: 3 in 1h, 15m.
type MentionWhen struct {
	Fired         int           `yaml:"fired"`
	Within        time.Duration `yaml:"within"`
	RefiredWithin time.Duration `yaml:"refired_within"`
}

// MaxFired bounds MentionWhen.Fired: the thread keeps that many firing times.
const MaxFired = 100

const (
	defaultFired         = 3
	defaultWithin        = time.Hour
	defaultRefiredWithin = 15 * time.Minute
)

func (m MentionWhen) withDefaults() MentionWhen {
	if m.Fired <= 0 {
		m.Fired = defaultFired
	}
	if m.Within <= 0 {
		m.Within = defaultWithin
	}
	if m.RefiredWithin <= 0 {
		m.RefiredWithin = defaultRefiredWithin
	}
	return m
}

// LevelNames are the level names, lowest first.
func LevelNames() []string { return slices.Clone(levelNames) }

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

// alias is the level name configured for value, its case ignored as the
// default aliases' is (a key written P1 matches the label value P1 or p1).
func (s Severity) alias(value string) (string, bool) {
	if a, ok := s.Aliases[value]; ok {
		return a, true
	}
	for k, a := range s.Aliases {
		if strings.EqualFold(k, value) {
			return a, true
		}
	}
	return "", false
}

// level resolves a severity value to its index and settings.
func (s Severity) level(value string, defaultChannel string) (int, Level) {
	name := defaultAliases[strings.ToLower(value)]
	if a, ok := s.alias(value); ok {
		name = strings.ToLower(a)
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
		lvl.MentionWhen = o.MentionWhen
	}
	return idx, lvl
}

// window is how long the firings of a group are kept: the longest window
// of any level's rule.
func (s Severity) window() time.Duration {
	w := defaultWithin
	for _, l := range s.Levels {
		if l.MentionWhen != nil {
			w = max(w, l.MentionWhen.withDefaults().Within)
		}
	}
	return w
}

// situation is how a group fired lately, as the rule of its level reads it.
type situation struct {
	firings []time.Time   // its firing notifications, this one last
	refired bool          // this one starts an episode soon after the last resolved…
	after   time.Duration // …this long after
	unknown bool          // the thread store failed: nothing to count
}

// mentions says whether lvl's mentions go out for this firing notification,
// and the situation in words for the message ("3rd time in 40m", "firing
// again 5m after it resolved"); "" for a level without a rule. With the
// store down the rule cannot count, so it mentions: a page too many beats
// one missed.
func (lvl Level) mentions(s situation, now time.Time) (bool, string) {
	if lvl.MentionWhen == nil {
		return true, ""
	}
	if s.unknown {
		return true, ""
	}
	m := lvl.MentionWhen.withDefaults()
	var recent []time.Time
	for _, f := range s.firings {
		if !f.Before(now.Add(-m.Within)) {
			recent = append(recent, f)
		}
	}
	var notes []string
	if len(recent) > 1 {
		notes = append(notes, fmt.Sprintf("%s time in %s", ordinal(len(recent)), roundDuration(now.Sub(recent[0]))))
	}
	refired := s.refired && s.after <= m.RefiredWithin
	if refired {
		notes = append(notes, fmt.Sprintf("firing again %s after it resolved", roundDuration(s.after)))
	}
	return refired || len(recent) >= m.Fired, strings.Join(notes, ", ")
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s", n, suffix)
}
