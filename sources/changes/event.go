package changes

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

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

// FieldError names the field of a pushed change that is wrong.
type FieldError struct {
	Field, Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }
func (e *FieldError) Unwrap() error { return sources.ErrInvalidChange }

// DecodeEvent reads one event strictly: unknown fields, trailing data and
// wrong types are errors that name the field.
func DecodeEvent(r io.Reader) (Event, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var ev Event
	if err := dec.Decode(&ev); err != nil {
		return Event{}, describeJSONError(err)
	}
	if dec.More() {
		return Event{}, &FieldError{Field: "body", Problem: "more than one JSON value; send one change per request"}
	}
	return ev, nil
}

func describeJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &FieldError{Field: "body", Problem: fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, err)}
	case errors.As(err, &typ):
		return &FieldError{Field: typ.Field, Problem: fmt.Sprintf("expected %s, got JSON %s", typ.Type, typ.Value)}
	case errors.Is(err, io.EOF):
		return &FieldError{Field: "body", Problem: "empty; expected a JSON object"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &FieldError{Field: name, Problem: "unknown field"}
	default:
		var te *time.ParseError
		if errors.As(err, &te) {
			return &FieldError{Field: "time", Problem: "not an RFC 3339 time: " + te.Value}
		}
		return &FieldError{Field: "body", Problem: err.Error()}
	}
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
	if len(ev.ID) > maxIDLen {
		return &FieldError{"id", fmt.Sprintf("longer than %d bytes", maxIDLen)}
	}
	for name, v := range map[string]string{
		"subject.namespace": s.Namespace, "subject.kind": s.Kind, "subject.name": s.Name,
		"subject.app": s.App, "subject.repo": s.Repo, "revision": ev.Revision,
		"previousRevision": ev.PreviousRevision, "version": ev.Version,
		"previousVersion": ev.PreviousVersion, "author": ev.Author, "deployedBy": ev.DeployedBy,
	} {
		if len(v) > maxFieldLen {
			return &FieldError{name, fmt.Sprintf("longer than %d bytes", maxFieldLen)}
		}
	}
	if len(ev.Message) > maxMessageLen {
		return &FieldError{"message", fmt.Sprintf("longer than %d bytes", maxMessageLen)}
	}
	for name, v := range map[string]string{"url": ev.URL, "compareUrl": ev.CompareURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &FieldError{name, "not an absolute http(s) URL"}
		}
	}
	if !ev.Time.IsZero() {
		if ev.Time.Year() < 2000 {
			return &FieldError{"time", "before the year 2000; send RFC 3339, e.g. 2026-11-21T10:02:11Z"}
		}
		if ev.Time.After(now.Add(maxFuture)) {
			return &FieldError{"time", fmt.Sprintf("%s is more than %s in the future (clock skew?)", ev.Time.Format(time.RFC3339), maxFuture)}
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
