package grafana

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// token is a marker: it must never show in an error, a log line or a change.
const token = "grafana-token-MARKER"

// basePath: the fake Grafana is served under a sub-path, as behind a proxy
// (root_url = https://host/grafana/); a request outside it fails the test.
const basePath = "/grafana"

// fakeGrafana speaks GET /api/annotations as Grafana does (see
// testdata/README.md for the source of each rule).
type fakeGrafana struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	items    []json.RawMessage
	status   int           // when set, every request is answered with it
	body     string        // when set, every request is answered 200 with it
	hold     chan struct{} // when set, requests wait until it is closed
	requests []*http.Request
}

func newFakeGrafana(t testing.TB) *fakeGrafana {
	t.Helper()
	b, err := os.ReadFile("testdata/annotations.json")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeGrafana{t: t}
	if err := json.Unmarshal(b, &f.items); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGrafana) url() string { return f.srv.URL + basePath }

// add stores an annotation, as POST /api/annotations would.
func (f *fakeGrafana) add(item string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items = append(f.items, json.RawMessage(item))
}

func (f *fakeGrafana) set(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = status
}

func (f *fakeGrafana) seen() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// fields the filters read.
type stored struct {
	ID      int64    `json:"id"`
	AlertID int64    `json:"alertId"`
	Time    int64    `json:"time"`
	TimeEnd int64    `json:"timeEnd"`
	Tags    []string `json:"tags"`
}

func (f *fakeGrafana) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Clone(r.Context()))
	hold, status := f.hold, f.status
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+token {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"message":"Unauthorized"}`)
		return
	}
	if r.Method != http.MethodGet || r.URL.Path != basePath+"/api/annotations" {
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not found"}`)
		return
	}
	f.mu.Lock()
	body := f.body
	f.mu.Unlock()
	if body != "" {
		fmt.Fprint(w, body)
		return
	}
	if status != 0 {
		w.WriteHeader(status)
		fmt.Fprint(w, `{"message":"Failed to get annotations","traceID":""}`)
		return
	}
	q := r.URL.Query()
	from, _ := strconv.ParseInt(q.Get("from"), 10, 64)
	to, _ := strconv.ParseInt(q.Get("to"), 10, 64)
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit == 0 {
		limit = 100
	}
	matchAny, _ := strconv.ParseBool(q.Get("matchAny"))
	want := parseTagPairs(q["tags"])

	f.mu.Lock()
	type hit struct {
		s   stored
		raw json.RawMessage
	}
	var hits []hit
	for _, raw := range f.items {
		var s stored
		if err := json.Unmarshal(raw, &s); err != nil {
			f.t.Fatalf("fixture: %v", err)
		}
		if s.TimeEnd == 0 {
			s.TimeEnd = s.Time
		}
		switch {
		case from > 0 && to > 0 && !(s.Time <= to && s.TimeEnd >= from):
		case q.Get("type") == "annotation" && s.AlertID != 0, q.Get("type") == "alert" && s.AlertID == 0:
		case len(want) > 0 && !tagsMatch(parseTagPairs(s.Tags), want, matchAny):
		default:
			hits = append(hits, hit{s, raw})
		}
	}
	f.mu.Unlock()
	slices.SortStableFunc(hits, func(a, b hit) int {
		if a.s.TimeEnd != b.s.TimeEnd {
			return int(b.s.TimeEnd - a.s.TimeEnd)
		}
		return int(b.s.Time - a.s.Time)
	})
	out := []json.RawMessage{}
	for i := 0; i < len(hits) && i < limit; i++ {
		out = append(out, hits[i].raw)
	}
	b, _ := json.Marshal(out)
	w.Write(b)
}

type tagPair struct{ key, value string }

// parseTagPairs is Grafana's: "k:v" is key k, value v (what follows a
// second colon is dropped); both trimmed; empty keys and repeats dropped.
func parseTagPairs(tags []string) []tagPair {
	var out []tagPair
	for _, t := range tags {
		var p tagPair
		if strings.Contains(t, ":") {
			kv := strings.Split(t, ":")
			p = tagPair{strings.TrimSpace(kv[0]), strings.TrimSpace(kv[1])}
		} else {
			p.key = strings.TrimSpace(t)
		}
		if p.key != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// tagsMatch counts the annotation's tags that a filter names (a filter
// without a value names every value of its key), as Grafana's SQL does:
// all filters' worth, or any.
func tagsMatch(have, want []tagPair, matchAny bool) bool {
	n := 0
	for _, h := range have {
		for _, w := range want {
			if h.key == w.key && (w.value == "" || h.value == w.value) {
				n++
				break
			}
		}
	}
	if matchAny {
		return n > 0
	}
	return n == len(want)
}

// at is a fixed clock for the source.
func at(t time.Time) func() time.Time { return func() time.Time { return t } }
