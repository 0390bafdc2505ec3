package changes

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/whatchanged/whatchanged/sources"
)

// Event is the body of POST /api/v1/changes: one change pushed by CI/CD.
type Event struct {
	// ID makes the push idempotent: the same ID again records nothing new.
	// When absent, one is derived from the content.
	ID               string          `json:"id,omitempty"`
	Kind             string          `json:"kind"`
	Subject          sources.Subject `json:"subject"`
	Revision         string          `json:"revision,omitempty"`
	PreviousRevision string          `json:"previousRevision,omitempty"`
	Version          string          `json:"version,omitempty"`
	PreviousVersion  string          `json:"previousVersion,omitempty"`
	Status           string          `json:"status,omitempty"`
	Author           string          `json:"author,omitempty"`
	// DeployedBy is who or what shipped it (the CI actor, a bot) when that
	// is not the author.
	DeployedBy string `json:"deployedBy,omitempty"`
	Message    string `json:"message,omitempty"`
	URL        string `json:"url,omitempty"`
	CompareURL string `json:"compareUrl,omitempty"`
	// Time is when the change started; default: when it was received.
	Time       time.Time `json:"time,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`

	// timeSent, finishedSent: the body had the time, so a zero one was
	// sent (0001-01-01T00:00:00Z), not left out.
	timeSent, finishedSent bool
}

// Kinds accepted from CI.
var Kinds = []string{sources.KindDeploy, sources.KindConfig, sources.KindFlag, sources.KindMigration, sources.KindOther}

var statuses = []string{sources.StatusSucceeded, sources.StatusInProgress, sources.StatusFailed, sources.StatusUnknown}

const (
	maxIDLen      = 200
	maxFieldLen   = 512
	maxMessageLen = 4096
	maxFuture     = 10 * time.Minute
)

// earliest is the first time a change may carry. Anything before is a
// default value sent by mistake (0001-01-01, the Unix epoch), and the
// index keys times by Unix nanoseconds, which end before 1678 and after 2262.
var earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// FieldError names the field of a pushed change that is wrong.
type FieldError struct {
	Field, Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }
func (e *FieldError) Unwrap() error { return sources.ErrInvalidChange }

// DecodeEvent reads one event strictly: unknown fields, trailing data,
// wrong types and bytes that are not UTF-8 are errors that name the field.
func DecodeEvent(r io.Reader) (Event, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		return Event{}, &FieldError{Field: "body", Problem: "reading: " + err.Error()}
	}
	// encoding/json would quietly turn invalid bytes into U+FFFD; CI sent
	// something else than it meant, so say where.
	if !utf8.Valid(body) {
		field := invalidUTF8(body, "")
		if field == "" {
			field = "body"
		}
		return Event{}, &FieldError{Field: field, Problem: "not valid UTF-8"}
	}
	// The times are looked at first, by hand: an explicit
	// "0001-01-01T00:00:00Z" is then told from a time left out, and a
	// wrong one is reported at its own field.
	var top map[string]json.RawMessage
	_ = json.Unmarshal(body, &top) // what is wrong with the body, the strict decode says
	var sent [2]bool
	for i, field := range []string{"time", "finishedAt"} {
		raw, ok := top[field]
		if !ok || string(raw) == "null" {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return Event{}, &FieldError{field, "expected an RFC 3339 time string such as 2026-11-21T10:02:11Z, got " + jsonKind(raw)}
		}
		var t time.Time // parsed as the decode below will
		if err := t.UnmarshalText([]byte(s)); err != nil {
			return Event{}, &FieldError{field, fmt.Sprintf("%q is not an RFC 3339 time such as 2026-11-21T10:02:11Z", s)}
		}
		sent[i] = true
	}
	var ev Event
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return Event{}, describeJSONError(err)
	}
	if dec.More() {
		return Event{}, &FieldError{Field: "body", Problem: "more than one JSON value; send one change per request"}
	}
	ev.timeSent, ev.finishedSent = sent[0], sent[1]
	return ev, nil
}

// invalidUTF8 names the first field (in key order) of a JSON object or
// array whose value holds bytes that are not UTF-8: "subject.name",
// "subject.images[1]"; "" when none does.
func invalidUTF8(body []byte, path string) string {
	var obj map[string]json.RawMessage
	var arr []json.RawMessage
	var names []string
	var values []json.RawMessage
	switch {
	case json.Unmarshal(body, &obj) == nil:
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			names, values = append(names, strings.TrimPrefix(path+"."+k, ".")), append(values, obj[k])
		}
	case json.Unmarshal(body, &arr) == nil:
		for i, v := range arr {
			names, values = append(names, fmt.Sprintf("%s[%d]", path, i)), append(values, v)
		}
	}
	for i, v := range values {
		if utf8.Valid(v) {
			continue
		}
		if inner := invalidUTF8(v, names[i]); inner != "" {
			return inner
		}
		return names[i]
	}
	return ""
}

// describeJSONError words a decoding error for the CI author: the field
// by its JSON name, types in JSON's words (never Go's).
func describeJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &FieldError{Field: "body", Problem: fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, err)}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return &FieldError{Field: field, Problem: fmt.Sprintf("expected %s, got %s", jsonTypeOf(typ.Type), jsonValueWord(typ.Value))}
	case errors.Is(err, io.EOF):
		return &FieldError{Field: "body", Problem: "empty; expected a JSON object"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if name == "" {
			return &FieldError{Field: "body", Problem: "a field with an empty name"}
		}
		return &FieldError{Field: name, Problem: "unknown field"}
	default:
		return &FieldError{Field: "body", Problem: err.Error()}
	}
}

// jsonTypeOf is what JSON value a Go type is decoded from.
func jsonTypeOf(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}

// jsonValueWord words json.UnmarshalTypeError.Value ("number", "bool", …).
func jsonValueWord(v string) string {
	switch {
	case strings.HasPrefix(v, "number"):
		return "a number"
	case v == "bool":
		return "true or false"
	case v == "array" || v == "object":
		return "an " + v
	case v == "string":
		return "a string"
	}
	return v
}

// jsonKind words a raw JSON value's kind.
func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "a string"
	case '[':
		return "an array"
	case '{':
		return "an object"
	case 't', 'f':
		return "true or false"
	}
	return "a number"
}

// Validate checks an event against now, filling defaults (time, id, status).
func (ev *Event) Validate(now time.Time) error {
	ev.Kind = strings.ToLower(strings.TrimSpace(ev.Kind))
	if ev.Kind == "" {
		return &FieldError{"kind", "required; one of " + strings.Join(Kinds, ", ")}
	}
	if !contains(Kinds, ev.Kind) {
		return &FieldError{"kind", fmt.Sprintf("%q is not one of %s", ev.Kind, strings.Join(Kinds, ", "))}
	}
	s := ev.Subject
	if s.Namespace == "" && s.Name == "" && s.App == "" && s.Repo == "" {
		return &FieldError{"subject", "at least one of subject.namespace, subject.name, subject.app, subject.repo is required"}
	}
	if s.Kind != "" && s.Name == "" {
		return &FieldError{"subject.name", "required when subject.kind is set"}
	}
	if ev.Status != "" && !contains(statuses, ev.Status) {
		return &FieldError{"status", fmt.Sprintf("%q is not one of %s", ev.Status, strings.Join(statuses, ", "))}
	}
	for _, f := range ev.texts() {
		if err := f.check(); err != nil {
			return err
		}
	}
	for name, v := range map[string]string{"url": ev.URL, "compareUrl": ev.CompareURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &FieldError{name, "not an absolute http(s) URL"}
		}
	}
	// One rule for both times and both ends of the range: a time sent as
	// 0001-01-01 is as wrong as 1677 or 9999, not "left out".
	for _, t := range []struct {
		field string
		t     time.Time
		sent  bool
	}{{"time", ev.Time, ev.timeSent}, {"finishedAt", ev.FinishedAt, ev.finishedSent}} {
		if (t.sent || !t.t.IsZero()) && (t.t.Before(earliest) || t.t.After(now.Add(maxFuture))) {
			return &FieldError{t.field, fmt.Sprintf("%s is out of range: a change's times are from 2000-01-01 to %.0f minutes from now "+
				"(clock skew?); send RFC 3339, e.g. 2026-11-21T10:02:11Z", t.t.Format(time.RFC3339), maxFuture.Minutes())}
		}
	}
	if !ev.FinishedAt.IsZero() && !ev.Time.IsZero() && ev.FinishedAt.Before(ev.Time) {
		return &FieldError{"finishedAt", "before time"}
	}
	if ev.ID == "" {
		ev.ID = derivedID(*ev, now)
	}
	if ev.Time.IsZero() {
		ev.Time = now
	}
	if ev.Status == "" {
		ev.Status = sources.StatusSucceeded
		if ev.FinishedAt.IsZero() {
			ev.Status = sources.StatusUnknown
		}
	}
	return nil
}

// text is one free-text field of an event and its limits.
type text struct {
	field, value string
	max          int // bytes; 0: no limit of its own
	// multiline admits tab and line breaks (a commit message); every other
	// field is one line: a control character there is a forged line in a
	// Slack message or a log, or an escape sequence for a terminal.
	multiline bool
}

// texts lists the event's free-text fields in a fixed order, so the first
// error named is the same on every try.
func (ev *Event) texts() []text {
	s := ev.Subject
	out := []text{
		{"id", ev.ID, maxIDLen, false},
		{"subject.namespace", s.Namespace, maxFieldLen, false}, {"subject.kind", s.Kind, maxFieldLen, false},
		{"subject.name", s.Name, maxFieldLen, false}, {"subject.app", s.App, maxFieldLen, false},
		{"subject.repo", s.Repo, maxFieldLen, false},
		{"revision", ev.Revision, maxFieldLen, false}, {"previousRevision", ev.PreviousRevision, maxFieldLen, false},
		{"version", ev.Version, maxFieldLen, false}, {"previousVersion", ev.PreviousVersion, maxFieldLen, false},
		{"author", ev.Author, maxFieldLen, false}, {"deployedBy", ev.DeployedBy, maxFieldLen, false},
		{"message", ev.Message, maxMessageLen, true},
		{"url", ev.URL, 0, false}, {"compareUrl", ev.CompareURL, 0, false},
	}
	for i, v := range s.Images {
		out = append(out, text{fmt.Sprintf("subject.images[%d]", i), v, maxFieldLen, false})
	}
	for i, v := range s.Apps {
		out = append(out, text{fmt.Sprintf("subject.apps[%d]", i), v, maxFieldLen, false})
	}
	return out
}

func (t text) check() error {
	if t.max > 0 && len(t.value) > t.max {
		return &FieldError{t.field, fmt.Sprintf("longer than %d bytes", t.max)}
	}
	if !utf8.ValidString(t.value) {
		return &FieldError{t.field, "not valid UTF-8"}
	}
	for i, r := range t.value {
		if !unicode.IsControl(r) || t.multiline && (r == '\n' || r == '\r' || r == '\t') {
			continue
		}
		allowed := "one line of printable text"
		if t.multiline {
			allowed = "printable text, tabs and line breaks"
		}
		return &FieldError{t.field, fmt.Sprintf("control character %U at byte %d; this field takes %s", r, i, allowed)}
	}
	return nil
}

// derivedID hashes the content so that a CI job retrying the same push (without
// an id) records it once. Without a time, the minute of receipt stands in for
// it: a retry within the minute is the same change, a push an hour later is not.
func derivedID(ev Event, now time.Time) string {
	if ev.Time.IsZero() {
		ev.Time = now.UTC().Truncate(time.Minute)
	}
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(ev)
	sum := sha256.Sum256(buf.Bytes())
	return "h-" + hex.EncodeToString(sum[:10])
}

func (ev Event) change(source string) sources.Change {
	ev.Subject.Repo = sources.NormalizeRepo(ev.Subject.Repo)
	return sources.Change{
		Source: source, Kind: ev.Kind, ID: ev.ID, Subject: ev.Subject,
		Revision: ev.Revision, PreviousRevision: ev.PreviousRevision,
		Version: ev.Version, PreviousVersion: ev.PreviousVersion,
		StartedAt: ev.Time.UTC(), FinishedAt: utcOrZero(ev.FinishedAt), Status: ev.Status,
		Author: ev.Author, DeployedBy: ev.DeployedBy, Message: ev.Message, URL: ev.URL, CompareURL: ev.CompareURL,
	}
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
