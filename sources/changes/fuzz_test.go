package changes

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzDecodeEvent: any body is either refused with a FieldError that names
// a field in JSON's words, or accepted as a change that can be stored and
// shown: valid UTF-8, one-line identifiers, times inside the range.
func FuzzDecodeEvent(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := DecodeEvent(bytes.NewReader(body))
		if err == nil {
			err = ev.Validate(now)
		}
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("error without a field: %T %v", err, err)
			}
			if speaksGo(fe.Problem) {
				t.Fatalf("%q speaks Go, not JSON", fe.Problem)
			}
			return
		}
		ch := ev.change("changes")
		out, err := json.Marshal(ch)
		if err != nil || !utf8.Valid(out) {
			t.Fatalf("accepted a change that does not encode: %v\n%q", err, out)
		}
		for _, s := range append([]string{ch.ID, ch.Author, ch.Version, ch.Revision, ch.Subject.Name, ch.Subject.Namespace}, ch.Subject.Images...) {
			if strings.IndexFunc(s, unicode.IsControl) >= 0 {
				t.Fatalf("accepted a control character in %q", s)
			}
		}
		if ch.StartedAt.Year() < 2000 || ch.StartedAt.After(now.Add(maxFuture)) {
			t.Fatalf("accepted start time %s", ch.StartedAt)
		}
	})
}
