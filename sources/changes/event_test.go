package changes

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

func TestValidationNamesTheField(t *testing.T) {
	ok := func() Event {
		return Event{Kind: "deploy", Subject: sources.Subject{Namespace: "shop", Name: "api"}}
	}
	tests := []struct {
		name  string
		edit  func(*Event)
		field string
	}{
		{"missing kind", func(e *Event) { e.Kind = "" }, "kind"},
		{"unknown kind", func(e *Event) { e.Kind = "party" }, "kind"},
		{"empty subject", func(e *Event) { e.Subject = sources.Subject{} }, "subject"},
		{"kind without name", func(e *Event) { e.Subject = sources.Subject{Namespace: "x", Kind: "Deployment"} }, "subject.name"},
		{"bad status", func(e *Event) { e.Status = "done" }, "status"},
		{"relative url", func(e *Event) { e.URL = "/runs/1" }, "url"},
		{"ftp compare url", func(e *Event) { e.CompareURL = "ftp://x/y" }, "compareUrl"},
		{"far future", func(e *Event) { e.Time = now.Add(time.Hour) }, "time"},
		{"ancient", func(e *Event) { e.Time = time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC) }, "time"},
		{"finished far in the future", func(e *Event) { e.FinishedAt = now.Add(time.Hour) }, "finishedAt"},
		{"finished before start", func(e *Event) { e.Time = now.Add(-time.Minute); e.FinishedAt = now.Add(-time.Hour) }, "finishedAt"},
		{"long message", func(e *Event) { e.Message = strings.Repeat("x", maxMessageLen+1) }, "message"},
		{"long author", func(e *Event) { e.Author = strings.Repeat("x", maxFieldLen+1) }, "author"},
		{"long id", func(e *Event) { e.ID = strings.Repeat("x", maxIDLen+1) }, "id"},
		{"NUL in id", func(e *Event) { e.ID = "ci-1\x00" }, "id"},
		{"invalid UTF-8 in author", func(e *Event) { e.Author = "al\xffice" }, "author"},
		{"escape in an image", func(e *Event) { e.Subject.Images = []string{"ok", "x\x1b[2J"} }, "subject.images[1]"},
		{"long app", func(e *Event) { e.Subject.Apps = []string{strings.Repeat("x", maxFieldLen+1)} }, "subject.apps[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := ok()
			tt.edit(&ev)
			err := ev.Validate(now)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("err = %v, want a FieldError on %q", err, tt.field)
			}
			if !errors.Is(err, sources.ErrInvalidChange) {
				t.Errorf("error does not wrap ErrInvalidChange")
			}
		})
	}
	ev := ok()
	if err := ev.Validate(now); err != nil || ev.ID == "" || !ev.Time.Equal(now) || ev.Status != "unknown" {
		t.Errorf("defaults: %+v err=%v", ev, err)
	}
}

// base is a valid change; decodeCases add one field to it.
const base = `"kind":"deploy","subject":{"namespace":"shop","name":"api"}`

// outOfRange is the one message for a time no change can have, whichever
// end it misses.
const outOfRange = "out of range: a change's times are from 2000-01-01 to 10 minutes from now"

// decodeCases are bodies of POST /api/v1/changes and the field the answer
// must name ("" when the body is accepted). They are also FuzzDecodeEvent's seeds.
var decodeCases = []struct{ name, body, field, problem string }{
	{"unknown field", `{` + base + `,"autor":"a"}`, "autor", "unknown field"},
	{"empty field name", `{"":""}0`, "body", "a field with an empty name"},
	{"unknown subject field", `{"kind":"deploy","subject":{"namespace":"x","nme":"a"}}`, "nme", "unknown field"},
	{"number for a string", `{"kind":5}`, "kind", "expected a string, got a number"},
	{"bool for a string", `{"kind":true}`, "kind", "expected a string, got true or false"},
	{"array for the body", `[]`, "body", "expected an object, got an array"},
	{"number for the subject", `{"kind":"deploy","subject":5}`, "subject", "expected an object, got a number"},
	{"string for images", `{"kind":"deploy","subject":{"name":"a","images":"x"}}`, "subject.images", "expected an array, got a string"},
	{"number in images", `{"kind":"deploy","subject":{"name":"a","images":[1]}}`, "subject.images", "expected a string, got a number"},
	{"not a time", `{` + base + `,"time":"yesterday"}`, "time", "RFC 3339"},
	{"number for a time", `{` + base + `,"time":5}`, "time", "expected an RFC 3339 time string"},
	{"finishedAt not a time", `{` + base + `,"finishedAt":"yesterday"}`, "finishedAt", "RFC 3339"},
	{"truncated", `{"kind":`, "body", "unexpected EOF"},
	{"empty", ``, "body", "empty"},
	{"two values", `{"kind":"deploy"}{"kind":"deploy"}`, "body", "more than one"},

	{"zero time", `{` + base + `,"time":"0001-01-01T00:00:00Z"}`, "time", outOfRange},
	{"1677", `{` + base + `,"time":"1677-09-21T00:12:43Z"}`, "time", outOfRange},
	{"year 9999", `{` + base + `,"time":"9999-12-31T23:59:59Z"}`, "time", outOfRange},
	{"zero finishedAt", `{` + base + `,"finishedAt":"0001-01-01T00:00:00Z"}`, "finishedAt", outOfRange},
	{"finishedAt in year 10000 UTC", `{` + base + `,"finishedAt":"9999-12-31T23:59:59-23:00"}`, "finishedAt", outOfRange},
	{"null time is left out", `{` + base + `,"time":null}`, "", ""},

	{"NUL in id", `{` + base + `,"id":"ci-42\u0000"}`, "id", "control character U+0000"},
	{"ESC in id", `{` + base + `,"id":"ci-\u001b[31m42"}`, "id", "control character U+001B"},
	{"newline in author", `{` + base + `,"author":"alice\nSuspect: bob"}`, "author", "control character U+000A"},
	{"C1 control in version", `{` + base + `,"version":"1.2\u009b3"}`, "version", "control character U+009B"},
	{"control in subject name", `{"kind":"deploy","subject":{"namespace":"shop","name":"api\u0007"}}`, "subject.name", "control character"},
	{"control in an app", `{"kind":"deploy","subject":{"namespace":"shop","apps":["a","b\u0000"]}}`, "subject.apps[1]", "control character"},
	{"NUL in message", `{` + base + `,"message":"fix\u0000"}`, "message", "control character U+0000"},
	{"lines and tabs in message", `{` + base + `,"message":"fix retries\n\n\tsee #42\r\n"}`, "", ""},

	{"invalid UTF-8 in author", "{" + base + ",\"author\":\"al\xffice\"}", "author", "not valid UTF-8"},
	{"invalid UTF-8 in subject name", "{\"kind\":\"deploy\",\"subject\":{\"namespace\":\"shop\",\"name\":\"api\xc3\"}}", "subject.name", "not valid UTF-8"},
	{"invalid UTF-8 in an image", "{\"kind\":\"deploy\",\"subject\":{\"name\":\"a\",\"images\":[\"ok\",\"x\xfe\"]}}", "subject.images[1]", "not valid UTF-8"},
	{"invalid UTF-8 in message", "{" + base + ",\"message\":\"caf\xe9\"}", "message", "not valid UTF-8"},
	{"invalid UTF-8 in id", "{" + base + ",\"id\":\"\xed\xa0\x80\"}", "id", "not valid UTF-8"},
	{"invalid UTF-8 in a field name", "{" + base + ",\"\xff\":1}", "body", "not valid UTF-8"},
	{"valid UTF-8", `{` + base + `,"author":"Zoë Ødegård","message":"修正 🚀"}`, "", ""},
}

// goSpelling matches what only Go would call a JSON value. A CI author
// reads these messages; user text quoted with %q is removed first.
var goSpelling = regexp.MustCompile(`\[\]|\btime\.Time\b|\bsources\.|\bchanges\.|\bint(64)?\b|\bfloat64\b|\bbool\b|Go (value|struct)|UnmarshalJSON`)

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

func speaksGo(problem string) bool {
	return goSpelling.MatchString(quoted.ReplaceAllString(problem, ""))
}

// TestDecodeEvent runs what POST /api/v1/changes runs: decode, then validate.
func TestDecodeEvent(t *testing.T) {
	for _, tt := range decodeCases {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := DecodeEvent(strings.NewReader(tt.body))
			if err == nil {
				err = ev.Validate(now)
			}
			if tt.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !strings.Contains(fe.Problem, tt.problem) {
				t.Fatalf("err = %v, want field %q with %q", err, tt.field, tt.problem)
			}
			if speaksGo(fe.Problem) {
				t.Errorf("%q speaks Go, not JSON", fe.Problem)
			}
		})
	}
}

func TestDecodeEventKeepsWhatWasSent(t *testing.T) {
	ev, err := DecodeEvent(strings.NewReader(`{` + base + `,"time":"2026-11-21T09:58:00+01:00","finishedAt":"2026-11-21T09:59:30+01:00",
	  "author":"Zoë","message":"line 1\nline 2"}`))
	if err == nil {
		err = ev.Validate(now)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Time.Equal(time.Date(2026, 11, 21, 8, 58, 0, 0, time.UTC)) || !ev.FinishedAt.Equal(time.Date(2026, 11, 21, 8, 59, 30, 0, time.UTC)) ||
		ev.Author != "Zoë" || ev.Message != "line 1\nline 2" || ev.Status != sources.StatusSucceeded {
		t.Errorf("decoded %+v", ev)
	}
}
