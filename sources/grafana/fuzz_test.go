package grafana

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzMapAll: whatever Grafana (or a proxy in front of it) answers, a read
// fails or maps; it never panics, and every change it maps is bounded and
// named by a rule.
func FuzzMapAll(f *testing.F) {
	fixture, err := os.ReadFile("testdata/annotations.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fixture)
	f.Add([]byte(`[{"id":1,"time":1,"timeEnd":0,"text":"<a href=\"https://x\">","tags":["service:","deploy"]}]`))
	f.Add([]byte(`[{"id":2,"time":5,"text":"&#0;<br","tags":["service:a:b","commit:ABCDEF0"]}]`))
	f.Add([]byte(`{"message":"Unauthorized"}`))
	s, err := New("grafana", Config{URL: "https://grafana.example.com", Limit: 100, Rules: exampleRules}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		changes, err := s.mapAll(body)
		if err != nil {
			return
		}
		for _, c := range changes {
			if c.Subject.IsZero() || !strings.HasPrefix(c.ID, "grafana/") || len(c.Message) > maxMessage+len("…") {
				t.Errorf("change %+v", c)
			}
			if utf8.ValidString(string(body)) && !utf8.ValidString(c.Message) {
				t.Errorf("message %q is not UTF-8", c.Message)
			}
		}
	})
}
