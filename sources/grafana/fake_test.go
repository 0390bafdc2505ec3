package grafana

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources/grafana/grafanatest"
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
	q, err := grafanatest.ParseQuery(r.URL.Query())
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"message":"bad request data"}`)
		return
	}
	f.mu.Lock()
	items := make([]grafanatest.Annotation, len(f.items))
	for i, raw := range f.items {
		var s stored
		if err := json.Unmarshal(raw, &s); err != nil {
			f.t.Errorf("fixture: %v", err)
		}
		items[i] = grafanatest.Annotation{Time: s.Time, TimeEnd: s.TimeEnd, AlertID: s.AlertID, Tags: s.Tags}
	}
	out := []json.RawMessage{}
	for _, i := range q.Select(items) {
		out = append(out, f.items[i])
	}
	f.mu.Unlock()
	b, _ := json.Marshal(out)
	w.Write(b)
}

// at is a fixed clock for the source.
func at(t time.Time) func() time.Time { return func() time.Time { return t } }
