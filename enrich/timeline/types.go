// Package timeline puts what fired and what changed in one time order,
// for the postmortem: the alerts whatchanged saw (from the alert history)
// and the changes its sources know, for a window and filters, as JSON,
// Markdown and a page (package ui).
package timeline

import (
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// Filter selects the alerts and changes of a timeline. Empty fields select
// everything.
type Filter struct {
	Namespace string `json:"namespace,omitempty"`
	Workload  string `json:"workload,omitempty"` // a workload's name (any kind)
	App       string `json:"app,omitempty"`
	Alertname string `json:"alertname,omitempty"`
	Cluster   string `json:"cluster,omitempty"`
	// Matchers are label matchers in Alertmanager's syntax, as given:
	// `{severity="critical",team=~"pay.*"}`.
	Matchers string `json:"matchers,omitempty"`
}

// Alert is one alert's lifecycle as whatchanged saw it pass: when it
// started firing, each notification (collapsed into a count), when it was
// resolved, and the suspect named when it fired.
type Alert struct {
	Fingerprint string            `json:"fingerprint"`
	Labels      map[string]string `json:"labels"`
	Alertname   string            `json:"alertname,omitempty"`
	Severity    string            `json:"severity,omitempty"`
	// Subject is what the alert was resolved to when it fired.
	Subject  sources.Subject `json:"subject"`
	Status   string          `json:"status"` // firing, resolved
	StartsAt time.Time       `json:"startsAt"`
	// EndsAt is when it was resolved; zero while it fires.
	EndsAt    time.Time `json:"endsAt,omitzero"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
	// Notifications counts the times it passed through (re-notifications
	// of a firing alert are collapsed into this count).
	Notifications int `json:"notifications"`
	// Suspect is the whatchanged_suspect line named when it fired.
	Suspect string `json:"suspect,omitempty"`
	// Links are the suspect's links when it fired (compare, argocd, ci, …).
	Links []sources.Link `json:"links,omitempty"`
	// Via is the path it came through: webhook route, inline, slack.
	Via string `json:"via,omitempty"`
}

// Entry is one line of the timeline, in time order: an alert starting to
// fire, an alert resolved, or a change. Index is into the Timeline's
// Alerts (firing, resolved) or Changes (change).
type Entry struct {
	At    time.Time `json:"at"`
	Type  string    `json:"type"` // EntryFiring, EntryResolved, EntryChange
	Index int       `json:"index"`
}

// Entry types.
const (
	EntryFiring   = "firing"
	EntryResolved = "resolved"
	EntryChange   = "change"
)

// Timeline is the answer of GET /api/v1/timeline.
type Timeline struct {
	From    time.Time        `json:"from"`
	To      time.Time        `json:"to"`
	Filter  Filter           `json:"filter"`
	Alerts  []Alert          `json:"alerts"`
	Changes []sources.Change `json:"changes"`
	Entries []Entry          `json:"entries"`
	// Errors are sources that failed or timed out while building it.
	Errors []string `json:"errors,omitempty"`
}
