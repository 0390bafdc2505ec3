package slack

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
)

// Slack's limits: 50 blocks a message, 3000 characters a section text.
// We stay well inside them and fold the rest into "+N more".
const (
	maxBlocks      = 45
	maxSectionText = 2900
	maxAlertsShown = 10
	maxChangeLines = 4
)

// group is what a notification says, read from the enriched webhook body.
type group struct {
	Status       string
	GroupLabels  map[string]string
	CommonLabels map[string]string
	Alerts       []*enrich.Alert
	StartsAt     time.Time
}

func (g group) firing() []*enrich.Alert {
	var out []*enrich.Alert
	for _, a := range g.Alerts {
		if a.Status == "firing" {
			out = append(out, a)
		}
	}
	return out
}

func (g group) title() string {
	name := g.GroupLabels["alertname"]
	if name == "" {
		name = g.CommonLabels["alertname"]
	}
	if name == "" {
		name = "alerts"
	}
	return name
}

// annotation of the group: the first alert that has it (the enrichment of
// alerts of one group is usually the same).
func (g group) annotation(key string) string {
	for _, a := range g.Alerts {
		if v := a.Annotations[key]; v != "" {
			return v
		}
	}
	return ""
}

func text(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, sources.Truncate(s, maxSectionText), false, false)
}

// parentBlocks: what changed first, then the alerts; mentions only here.
// note is how the group fired lately ("3rd time in 40m"), "" for none: it
// says why a rule (MentionWhen) mentioned or not yet.
func parentBlocks(g group, prefix string, mentions []string, now time.Time, note string) []slack.Block {
	firing := g.firing()
	var blocks []slack.Block
	head := fmt.Sprintf(":red_circle: *[FIRING:%d] %s*", len(firing), g.title())
	if g.Status == "resolved" {
		head = fmt.Sprintf(":white_check_mark: *[RESOLVED] %s*", g.title())
	}
	if note != "" {
		head += " — " + note
	}
	if len(mentions) > 0 {
		head += "  " + strings.Join(mentions, " ")
	}
	blocks = append(blocks, slack.NewSectionBlock(text(head+"\n"+labelLine(g.CommonLabels, "alertname")), nil, nil))
	blocks = append(blocks, changeBlocks(g, prefix)...)
	blocks = append(blocks, alertBlocks(g.Alerts, len(blocks))...)
	return bound(blocks)
}

// resolvedParent is the parent edited once the group resolves.
func resolvedParent(g group, prefix string, started, resolved time.Time) []slack.Block {
	head := fmt.Sprintf(":white_check_mark: *[RESOLVED] %s* — resolved %s after %s",
		g.title(), resolved.UTC().Format("15:04 MST"), roundDuration(resolved.Sub(started)))
	blocks := []slack.Block{slack.NewSectionBlock(text(head+"\n"+labelLine(g.CommonLabels, "alertname")), nil, nil)}
	blocks = append(blocks, changeBlocks(g, prefix)...)
	return bound(blocks)
}

// replyBlocks: a repeat or new alerts in the thread (mentions only on
// escalation, or when a rule's situation is reached: then note says it).
func replyBlocks(g group, mentions []string, note string) []slack.Block {
	head := fmt.Sprintf(":repeat: still firing: %d alert(s)", len(g.firing()))
	switch {
	case len(mentions) > 0 && note != "":
		head = fmt.Sprintf(":bell: %s  %s — %d alert(s) firing", note, strings.Join(mentions, " "), len(g.firing()))
	case len(mentions) > 0:
		head = fmt.Sprintf(":arrow_double_up: escalated  %s — %d alert(s) firing", strings.Join(mentions, " "), len(g.firing()))
	case note != "":
		head += " — " + note
	}
	blocks := []slack.Block{slack.NewSectionBlock(text(head), nil, nil)}
	return bound(append(blocks, alertBlocks(g.firing(), 1)...))
}

func resolvedReply(started, resolved time.Time) []slack.Block {
	return []slack.Block{slack.NewSectionBlock(text(fmt.Sprintf(":white_check_mark: Resolved after %s.", roundDuration(resolved.Sub(started)))), nil, nil)}
}

// changeBlocks: the suspect up front with its links, other changes folded
// below, whatchanged_error discreetly.
func changeBlocks(g group, prefix string) []slack.Block {
	var blocks []slack.Block
	if s := g.annotation(prefix + "suspect"); s != "" {
		line := suspectLead + s
		if links := g.annotation(prefix + "links"); links != "" {
			var parts []string
			for _, l := range strings.Split(links, "\n") {
				if name, url, ok := strings.Cut(l, ": "); ok {
					parts = append(parts, fmt.Sprintf("<%s|%s>", url, name))
				}
			}
			line += "\n" + strings.Join(parts, " · ")
		}
		blocks = append(blocks, slack.NewSectionBlock(text(line), nil, nil))
	}
	if sum := g.annotation(prefix + "summary"); sum != "" {
		lines := strings.Split(sum, "\n")
		more := 0
		if len(lines) > maxChangeLines {
			more, lines = len(lines)-maxChangeLines, lines[:maxChangeLines]
		}
		body := "*Recent changes:*\n" + strings.Join(lines, "\n")
		if more > 0 {
			body += fmt.Sprintf("\n+%d more", more)
		}
		if tl := g.annotation(prefix + "timeline_url"); tl != "" && g.annotation(prefix+"suspect") == "" { // else among the suspect's links
			body += fmt.Sprintf("\n<%s|timeline>", tl)
		}
		blocks = append(blocks, slack.NewContextBlock("", text(body)))
	}
	if e := g.annotation(prefix + "error"); e != "" {
		blocks = append(blocks, slack.NewContextBlock("", text("_whatchanged: "+e+"_")))
	}
	return blocks
}

func alertBlocks(alerts []*enrich.Alert, used int) []slack.Block {
	var lines []string
	for i, a := range alerts {
		if i == maxAlertsShown {
			lines = append(lines, fmt.Sprintf("+%d more alerts", len(alerts)-maxAlertsShown))
			break
		}
		desc := a.Annotations["summary"]
		if desc == "" {
			desc = a.Annotations["description"]
		}
		lines = append(lines, fmt.Sprintf("• %s %s", labelLine(a.Labels, "alertname", "severity"), sources.Truncate(desc, 200)))
	}
	if len(lines) == 0 {
		return nil
	}
	return []slack.Block{slack.NewSectionBlock(text(strings.Join(lines, "\n")), nil, nil)}
}

func labelLine(labels map[string]string, skip ...string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if !slices.Contains(skip, k) {
			parts = append(parts, fmt.Sprintf("`%s=%s`", k, labels[k]))
		}
	}
	return strings.Join(parts, " ")
}

// bound keeps a message inside Slack's limits whatever came in.
func bound(blocks []slack.Block) []slack.Block {
	if len(blocks) > maxBlocks {
		blocks = append(blocks[:maxBlocks-1], slack.NewContextBlock("", text(fmt.Sprintf("+%d more", len(blocks)-maxBlocks+1))))
	}
	for {
		b, _ := json.Marshal(blocks)
		if len(b) < 12000 || len(blocks) <= 1 {
			return blocks
		}
		blocks = blocks[:len(blocks)-1]
	}
}

func roundDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
}
