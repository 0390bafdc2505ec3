package changes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// Feature-flag services post their own audit events. Each adapter keeps
// the events that change what a flag serves in one environment (turned
// on or off, targeting, variants) and answers the rest as not a change.

// flagChange is what every adapter fills; change makes the Event.
type flagChange struct {
	id, flag, env, sender string
	state, previous       string // "on", "off", "50% flexibleRollout", …
	verb                  string // "turned on", "updated", …
	author, details       string
	at                    time.Time
	subject               sources.Subject
	tags                  []string
}

func (f flagChange) event(h hints) (Event, error) {
	if err := h.keeps(f.env); err != nil {
		return Event{}, err
	}
	subject := h.fill(tagSubject(f.tags))
	if err := needSubject(subject); err != nil {
		return Event{}, err
	}
	msg := "flag " + f.flag + " " + f.verb
	if f.env != "" {
		msg += " in " + f.env
	}
	if f.details != "" {
		msg += "\n" + f.details
	}
	return Event{
		ID: f.id, Kind: sources.KindFlag, Subject: subject,
		Version: oneLine(f.state, maxFieldLen), PreviousVersion: oneLine(f.previous, maxFieldLen),
		Status: sources.StatusSucceeded, Author: oneLine(f.author, maxFieldLen), DeployedBy: f.sender,
		Message: multiLine(msg, maxMessageLen), Time: f.at, FinishedAt: f.at,
	}, nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// --- LaunchDarkly: the webhook body is an audit log entry
// (https://launchdarkly.com/docs/api/webhooks).

type ldEntry struct {
	ID       string `json:"_id"`
	Date     int64  `json:"date"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Accesses []struct {
		Action   string `json:"action"`
		Resource string `json:"resource"`
	} `json:"accesses"`
	Description string `json:"description"`
	Comment     string `json:"comment"`
	TitleVerb   string `json:"titleVerb"`
	Member      *struct {
		Email     string `json:"email"`
		FirstName string `json:"firstName"`
		LastName  string `json:"lastName"`
	} `json:"member"`
	Token *struct {
		Name string `json:"name"`
	} `json:"token"`
	PreviousVersion *ldFlag `json:"previousVersion"`
	CurrentVersion  *ldFlag `json:"currentVersion"`
}

type ldFlag struct {
	Key          string   `json:"key"`
	Tags         []string `json:"tags"`
	Environments map[string]struct {
		On      bool   `json:"on"`
		Name    string `json:"_environmentName"`
		Version int    `json:"version"`
	} `json:"environments"`
}

// ldMetadata: flag actions that change no evaluation.
var ldMetadata = []string{
	"createFlag", "cloneFlag", "updateName", "updateDescription", "updateTags", "updateMaintainer",
	"updateTemporary", "updateIncludeInSnippet", "updateClientSideFlagAvailability", "updateFlagCustomProperties",
	"updateDeprecated", "updateScheduledChanges", "createApprovalRequest", "updateApprovalRequest",
	"reviewApprovalRequest", "deleteApprovalRequest", "updateFlagLink", "createFlagLink", "deleteFlagLink",
}

// ldResource reads "proj/default:env/production:flag/checkout-v2" (a key
// may carry ";tags").
func ldResource(r string) (env, flag string) {
	for _, part := range strings.Split(r, ":") {
		typ, key, _ := strings.Cut(part, "/")
		key, _, _ = strings.Cut(key, ";")
		switch typ {
		case "env":
			env = key
		case "flag":
			flag = key
		}
	}
	return env, flag
}

func decodeLaunchDarkly(body []byte, h hints) (Event, error) {
	var e ldEntry
	if err := unmarshal(body, &e); err != nil {
		return Event{}, err
	}
	if e.ID == "" {
		return Event{}, &FieldError{"_id", "required (a LaunchDarkly webhook is an audit log entry)"}
	}
	if e.Kind != "flag" {
		return Event{}, notAChange("a LaunchDarkly %q entry; only flag changes are kept", e.Kind)
	}
	var env, flag, action string
	for _, a := range e.Accesses {
		en, fl := ldResource(a.Resource)
		if en != "" && en != "*" && fl != "" && !slices.Contains(ldMetadata, a.Action) {
			env, flag, action = en, fl, a.Action
			break
		}
	}
	if env == "" {
		return Event{}, notAChange("LaunchDarkly flag entry %s changes no environment's targeting", e.ID)
	}
	if e.Date <= 0 {
		return Event{}, &FieldError{"date", "required: milliseconds since 1970"}
	}
	f := flagChange{
		id: "launchdarkly-" + e.ID, flag: flag, env: env, sender: "LaunchDarkly",
		verb: strings.TrimSpace(strings.TrimSuffix(e.TitleVerb, "the flag")), at: time.UnixMilli(e.Date).UTC(),
		details: strings.TrimSpace(e.Description + "\n" + e.Comment),
	}
	if f.verb == "" {
		f.verb = action
	}
	switch {
	case e.Member != nil && e.Member.Email != "":
		f.author = e.Member.Email
	case e.Member != nil:
		f.author = strings.TrimSpace(e.Member.FirstName + " " + e.Member.LastName)
	case e.Token != nil:
		f.author = "token " + e.Token.Name
	}
	state := func(v *ldFlag) string {
		if v == nil {
			return ""
		}
		if s, ok := v.Environments[env]; ok {
			return onOff(s.On)
		}
		return ""
	}
	f.state, f.previous = state(e.CurrentVersion), state(e.PreviousVersion)
	if e.CurrentVersion != nil {
		f.tags = e.CurrentVersion.Tags
		if s, ok := e.CurrentVersion.Environments[env]; ok && s.Name != "" {
			f.env = s.Name // "Production": what people call it
		}
	}
	if action == "deleteFlag" {
		f.state = "deleted"
	}
	if h.environment != "" && strings.EqualFold(h.environment, env) {
		f.env = h.environment // matched by key; keep the word the URL used
	}
	return f.event(h)
}

// --- Unleash: the webhook integration posts the event as JSON when no
// body template is set (src/lib/addons/webhook.ts).

type unleashEvent struct {
	ID          int64           `json:"id"`
	Type        string          `json:"type"`
	CreatedBy   string          `json:"createdBy"`
	CreatedAt   string          `json:"createdAt"`
	FeatureName string          `json:"featureName"`
	Project     string          `json:"project"`
	Environment string          `json:"environment"`
	Data        json.RawMessage `json:"data"`
	PreData     json.RawMessage `json:"preData"`
	Tags        []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"tags"`
}

func decodeUnleash(body []byte, h hints) (Event, error) {
	var e unleashEvent
	if err := unmarshal(body, &e); err != nil {
		return Event{}, err
	}
	if e.Type == "" {
		return Event{}, &FieldError{"type", "required (an Unleash event)"}
	}
	f := flagChange{flag: e.FeatureName, env: e.Environment, sender: "Unleash", author: e.CreatedBy}
	switch e.Type {
	case "feature-environment-enabled":
		f.verb, f.state, f.previous = "turned on", "on", "off"
	case "feature-environment-disabled":
		f.verb, f.state, f.previous = "turned off", "off", "on"
	case "feature-strategy-add", "feature-strategy-update", "feature-strategy-remove":
		f.verb = map[string]string{"feature-strategy-add": "strategy added", "feature-strategy-update": "strategy updated",
			"feature-strategy-remove": "strategy removed"}[e.Type]
		f.state, f.previous = unleashStrategy(e.Data), unleashStrategy(e.PreData)
		if e.Type == "feature-strategy-remove" {
			f.state = "removed"
		}
	case "feature-variants-updated", "feature-environment-variants-updated":
		f.verb = "variants updated"
		f.state, f.previous = unleashVariants(e.Data), unleashVariants(e.PreData)
	default:
		return Event{}, notAChange("Unleash event %q changes no flag's evaluation", e.Type)
	}
	if e.FeatureName == "" {
		return Event{}, &FieldError{"featureName", "required for a flag event"}
	}
	at, err := parseTime("createdAt", e.CreatedAt)
	if err != nil {
		return Event{}, err
	}
	f.at = at
	f.id = hashID("unleash-", strconv.FormatInt(e.ID, 10), e.Type, e.FeatureName, e.Environment, e.CreatedAt)
	if e.Project != "" && e.Project != "default" {
		f.details = "project " + e.Project
	}
	for _, t := range e.Tags {
		if t.Type == "simple" {
			f.tags = append(f.tags, t.Value) // "app:checkout"
		} else {
			f.tags = append(f.tags, t.Type+":"+t.Value) // a tag type "app"
		}
	}
	return f.event(h)
}

// unleashStrategy words a strategy: "flexibleRollout 25%".
func unleashStrategy(raw json.RawMessage) string {
	var s struct {
		Name       string            `json:"name"`
		Disabled   bool              `json:"disabled"`
		Parameters map[string]any    `json:"parameters"`
		Constraint []json.RawMessage `json:"constraints"`
	}
	if json.Unmarshal(raw, &s) != nil || s.Name == "" {
		return ""
	}
	out := s.Name
	if r, ok := s.Parameters["rollout"]; ok {
		out += fmt.Sprintf(" %v%%", r)
	}
	if len(s.Constraint) > 0 {
		out += fmt.Sprintf(" (%d constraints)", len(s.Constraint))
	}
	if s.Disabled {
		out += " (disabled)"
	}
	return out
}

// unleashVariants words the variants: "blue 50, green 50".
func unleashVariants(raw json.RawMessage) string {
	var d struct {
		Variants []struct {
			Name   string `json:"name"`
			Weight int    `json:"weight"`
		} `json:"variants"`
	}
	if json.Unmarshal(raw, &d) != nil {
		return ""
	}
	var parts []string
	for _, v := range d.Variants {
		parts = append(parts, fmt.Sprintf("%s %d", v.Name, v.Weight/10)) // weights are per mille
	}
	return strings.Join(parts, ", ")
}

// --- Flagsmith: environment webhooks (docs: administration-and-security/
// platform-configuration/environment-settings.md, "Environment Webhook Payload").

type flagsmithWebhook struct {
	EventType string `json:"event_type"`
	Data      struct {
		ChangedBy     string          `json:"changed_by"`
		Timestamp     string          `json:"timestamp"`
		NewState      *flagsmithState `json:"new_state"`
		PreviousState *flagsmithState `json:"previous_state"`
	} `json:"data"`
}

type flagsmithState struct {
	Enabled     bool `json:"enabled"`
	Environment struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	} `json:"environment"`
	Feature struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	} `json:"feature"`
	FeatureSegment     json.RawMessage `json:"feature_segment"`
	FeatureStateValue  json.RawMessage `json:"feature_state_value"`
	IdentityIdentifier *string         `json:"identity_identifier"`
}

func (s *flagsmithState) describe() string {
	if s == nil {
		return ""
	}
	out := onOff(s.Enabled)
	if v := jsonValue(s.FeatureStateValue); v != "" {
		out += " = " + clip(v, 100)
	}
	return out
}

func decodeFlagsmith(body []byte, h hints) (Event, error) {
	var w flagsmithWebhook
	if err := unmarshal(body, &w); err != nil {
		return Event{}, err
	}
	d := w.Data
	switch w.EventType {
	case "FLAG_UPDATED", "FLAG_DELETED":
	case "":
		return Event{}, &FieldError{"event_type", "required (a Flagsmith environment webhook)"}
	default:
		return Event{}, notAChange("Flagsmith %q event; only FLAG_UPDATED and FLAG_DELETED are flag changes", w.EventType)
	}
	st := d.NewState
	if st == nil {
		st = d.PreviousState
	}
	if st == nil {
		return Event{}, &FieldError{"data.new_state", "required: the flag's state"}
	}
	f := flagChange{
		flag: st.Feature.Name, env: st.Environment.Name, sender: "Flagsmith", author: d.ChangedBy,
		state: d.NewState.describe(), previous: d.PreviousState.describe(),
	}
	switch {
	case w.EventType == "FLAG_DELETED":
		f.verb, f.state = "deleted", "deleted"
	case d.PreviousState != nil && d.PreviousState.Enabled != st.Enabled:
		f.verb = "turned " + onOff(st.Enabled)
	default:
		f.verb = "updated"
	}
	switch {
	case st.IdentityIdentifier != nil && *st.IdentityIdentifier != "":
		f.details = "override for identity " + *st.IdentityIdentifier
	case len(st.FeatureSegment) > 0 && string(st.FeatureSegment) != "null":
		f.details = "segment override"
	}
	if d.Timestamp != "" {
		at, err := parseTime("data.timestamp", d.Timestamp)
		if err != nil {
			return Event{}, err
		}
		f.at = at
		// Flagsmith sends no event id; a retry repeats the same body.
		f.id = hashID("flagsmith-", w.EventType, strconv.FormatInt(st.Environment.ID, 10), strconv.FormatInt(st.Feature.ID, 10),
			f.details, d.Timestamp, f.state)
	}
	return f.event(h)
}

// jsonValue words a flag value: a string as is, anything else as JSON.
func jsonValue(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return buf.String()
}

// --- OpenFeature-style: a small format of whatchanged's own for any flag
// system that can post JSON (flagd, a CI job, a homegrown service).

// OpenFeatureEvent is the body of POST /api/v1/changes/openfeature. Its
// words are OpenFeature's (flag key, variant, value); it is decoded
// strictly, like the native Event.
type OpenFeatureEvent struct {
	// ID makes the push idempotent; default: a hash of the content.
	ID      string `json:"id,omitempty"`
	FlagKey string `json:"flagKey"`
	// Variant or Value: what the flag serves now (one is required).
	Variant         string          `json:"variant,omitempty"`
	Value           json.RawMessage `json:"value,omitempty"`
	PreviousVariant string          `json:"previousVariant,omitempty"`
	PreviousValue   json.RawMessage `json:"previousValue,omitempty"`
	Environment     string          `json:"environment,omitempty"`
	// Source is the flag system ("flagd", "ConfigCat").
	Source  string          `json:"source,omitempty"`
	Author  string          `json:"author,omitempty"`
	Message string          `json:"message,omitempty"`
	URL     string          `json:"url,omitempty"`
	Time    string          `json:"time,omitempty"`
	Subject sources.Subject `json:"subject,omitzero"`
}

func decodeOpenFeature(body []byte, h hints) (Event, error) {
	var o OpenFeatureEvent
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return Event{}, describeJSONError(err)
	}
	if dec.More() {
		return Event{}, &FieldError{Field: "body", Problem: "more than one JSON value; send one flag change per request"}
	}
	if o.FlagKey == "" {
		return Event{}, &FieldError{"flagKey", "required"}
	}
	state, previous := o.Variant, o.PreviousVariant
	if state == "" {
		state = jsonValue(o.Value)
	}
	if previous == "" {
		previous = jsonValue(o.PreviousValue)
	}
	if state == "" {
		return Event{}, &FieldError{"variant", "variant or value is required: what the flag serves now"}
	}
	if err := h.keeps(o.Environment); err != nil {
		return Event{}, err
	}
	ev := Event{
		ID: o.ID, Kind: sources.KindFlag, Subject: h.fill(o.Subject),
		Version: state, PreviousVersion: previous, Status: sources.StatusSucceeded,
		Author: o.Author, DeployedBy: o.Source, URL: o.URL, Message: o.Message,
	}
	if ev.Message == "" {
		ev.Message = "flag " + o.FlagKey + " set to " + state
		if previous != "" {
			ev.Message = "flag " + o.FlagKey + " changed from " + previous + " to " + state
		}
		if o.Environment != "" {
			ev.Message += " in " + o.Environment
		}
	}
	if o.Time != "" {
		at, err := parseTime("time", o.Time)
		if err != nil {
			return Event{}, err
		}
		ev.Time, ev.FinishedAt = at, at
		ev.timeSent, ev.finishedSent = true, true
	}
	if err := needSubject(ev.Subject); err != nil {
		return Event{}, err
	}
	return ev, nil
}
