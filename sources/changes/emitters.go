package changes

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/whatchanged/whatchanged/sources"
)

// Formats are the senders POST /api/v1/changes/:format understands besides
// the native Event: services that post their own JSON and cannot be made
// to post ours.
var Formats = []string{"flagsmith", "flux", "launchdarkly", "openfeature", "unleash"}

// ErrNotAChange: the sender's event is well-formed but records nothing (a
// Flux "Progressing", a flag created but not turned on). It is answered
// 202, so the sender does not retry, and the reason is said.
var ErrNotAChange = errors.New("not a change")

// ErrUnknownFormat: no adapter of that name.
var ErrUnknownFormat = errors.New("unknown format")

// ErrBadSignature: a signing sender's body does not match its signature.
var ErrBadSignature = errors.New("bad signature")

func notAChange(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrNotAChange}, args...)...)
}

// DecodeFrom turns one sender's event into an Event. query is the webhook
// URL's query: flag services know flags, not workloads, so the subject
// (namespace, app, name, kind, repo) and, for flags, the environment to
// keep are set on the URL each service posts to.
func DecodeFrom(format string, body []byte, query url.Values) (Event, error) {
	var decode func([]byte, hints) (Event, error)
	flag := true
	switch format {
	case "flux":
		decode, flag = decodeFlux, false
	case "launchdarkly":
		decode = decodeLaunchDarkly
	case "unleash":
		decode = decodeUnleash
	case "flagsmith":
		decode = decodeFlagsmith
	case "openfeature":
		decode = decodeOpenFeature
	default:
		return Event{}, fmt.Errorf("%w %q; known: %s", ErrUnknownFormat, format, strings.Join(Formats, ", "))
	}
	h, err := hintsFrom(query, flag)
	if err != nil {
		return Event{}, err
	}
	if !utf8.Valid(body) {
		return Event{}, &FieldError{Field: "body", Problem: "not valid UTF-8"}
	}
	return decode(body, h)
}

// hints are what the webhook URL says about the events posted to it.
type hints struct {
	subject     sources.Subject
	environment string // flags: only this environment's changes are kept
}

var subjectParams = []string{"namespace", "app", "name", "kind", "repo"}

func hintsFrom(q url.Values, flag bool) (hints, error) {
	known := subjectParams
	if flag {
		known = append(slices.Clone(known), "environment")
	}
	var h hints
	for k, v := range q {
		if !slices.Contains(known, k) {
			return h, &FieldError{"query." + k, "unknown parameter; the webhook URL takes " + strings.Join(known, ", ")}
		}
		if len(v) != 1 {
			return h, &FieldError{"query." + k, "given more than once"}
		}
	}
	h.subject = sources.Subject{Namespace: q.Get("namespace"), App: q.Get("app"), Name: q.Get("name"), Kind: q.Get("kind"), Repo: q.Get("repo")}
	h.environment = q.Get("environment")
	return h, nil
}

// fill sets the fields of s that are empty from the URL's subject: the URL
// is the operator's word, the event's own hints (a tag) only fill gaps.
func (h hints) fill(s sources.Subject) sources.Subject {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&s.Namespace, h.subject.Namespace)
	set(&s.App, h.subject.App)
	set(&s.Name, h.subject.Name)
	set(&s.Kind, h.subject.Kind)
	set(&s.Repo, h.subject.Repo)
	return s
}

// keeps reports whether a flag change in env is wanted: a URL with
// ?environment= keeps that environment only (a flag turned on in staging
// is no suspect for a production alert).
func (h hints) keeps(env string) error {
	if h.environment == "" || strings.EqualFold(h.environment, env) {
		return nil
	}
	return notAChange("environment %q; this webhook keeps %q only (?environment= on its URL)", env, h.environment)
}

// needSubject words the error of a flag event that names no workload.
func needSubject(s sources.Subject) error {
	if s.Namespace == "" && s.Name == "" && s.App == "" && s.Repo == "" {
		return &FieldError{"subject", "a flag service does not know which workload a flag belongs to: add ?namespace=…&app=… " +
			"to the webhook URL, or tag the flag app:<name> (LaunchDarkly, Unleash)"}
	}
	return nil
}

// tagSubject reads the "app:checkout", "namespace:shop" tag convention.
func tagSubject(tags []string) sources.Subject {
	var s sources.Subject
	for _, t := range tags {
		k, v, ok := strings.Cut(t, ":")
		if !ok || v == "" {
			continue
		}
		switch strings.TrimSpace(k) {
		case "app":
			s.App = strings.TrimSpace(v)
		case "namespace":
			s.Namespace = strings.TrimSpace(v)
		}
	}
	return s
}

// unmarshal decodes a sender's JSON leniently (a vendor adding a field
// must not break the webhook) but words type errors like DecodeEvent.
func unmarshal(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return describeJSONError(err)
	}
	return nil
}

// oneLine makes sender text fit a one-line field: control characters
// become spaces, and it is cut to max bytes on a rune boundary.
func oneLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return clip(strings.TrimSpace(s), max)
}

// multiLine keeps line breaks and tabs, drops other control characters
// (an escape sequence in a Helm log) and cuts to max bytes.
func multiLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return -1
		}
		return r
	}, s)
	return clip(strings.TrimSpace(s), max)
}

func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const more = "…"
	cut := max - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// parseTime reads a sender's RFC 3339 time, naming its field when wrong.
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, &FieldError{field, "required"}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &FieldError{field, fmt.Sprintf("%q is not an RFC 3339 time such as 2026-11-21T10:02:11Z", s)}
	}
	return t, nil
}

// hashID makes a stable id from the parts that identify one change to a
// sender that gives none of its own.
func hashID(prefix string, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return prefix + hex.EncodeToString(sum[:12])
}

// SignatureHeader is the header a signing sender puts its HMAC-SHA256 of
// the body in, hex-encoded; "" for a sender that signs nothing (it sends
// the bearer token instead). LaunchDarkly and Flagsmith cannot send an
// Authorization header, so their signature is their credential.
func SignatureHeader(format string) string {
	switch format {
	case "launchdarkly":
		return "X-LD-Signature"
	case "flagsmith":
		return "X-Flagsmith-Signature"
	}
	return ""
}

// Signed reports whether a signing secret is configured for format: its
// requests are then checked by signature instead of the bearer token.
func (s *Source) Signed(format string) bool {
	return s.cfg.SigningSecretFiles[format] != ""
}

// VerifySignature checks a signing sender's body against its signature
// with the configured secret, read from its file at each call so that a
// rotated Secret needs no restart. Errors never carry the secret.
func (s *Source) VerifySignature(format string, body []byte, signature string) error {
	file := s.cfg.SigningSecretFiles[format]
	secret, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%s: read the signing secret of %s: %w", s.name, format, err)
	}
	key := []byte(strings.TrimSpace(string(secret)))
	if len(key) == 0 {
		return fmt.Errorf("%s: the signing secret file of %s (%s) is empty", s.name, format, file)
	}
	got, err := hex.DecodeString(strings.TrimSpace(signature))
	if signature == "" || err != nil {
		return fmt.Errorf("%w: header %s is missing or not hex", ErrBadSignature, SignatureHeader(format))
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), got) {
		return fmt.Errorf("%w: header %s does not match the body signed with the configured secret", ErrBadSignature, SignatureHeader(format))
	}
	return nil
}
