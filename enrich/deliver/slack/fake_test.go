package slack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeSlack is Slack's Web API for chat.postMessage and chat.update: form
// posts under /api/, answers {"ok":…}, records every call. Anything else
// fails the test.
type fakeSlack struct {
	t     *testing.T
	srv   *httptest.Server
	mu    sync.Mutex
	calls []call
	next  int
	fail  []string // per call: "" ok, "429:<secs>", or a Slack error code
}

type call struct {
	Method, Channel, ThreadTS, TS, Text, Broadcast string
	Blocks                                         json.RawMessage
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSlack) url() string { return f.srv.URL + "/api/" }

func (f *fakeSlack) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		f.t.Errorf("bad form: %v", err)
	}
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	if method != "chat.postMessage" && method != "chat.update" {
		f.t.Errorf("unexpected Slack call %s", r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "Bearer xoxb-test-token" && r.FormValue("token") != "xoxb-test-token" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":false,"error":"invalid_auth"}`)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.calls)
	fail := ""
	if n < len(f.fail) {
		fail = f.fail[n]
	}
	f.calls = append(f.calls, call{Method: method, Channel: r.FormValue("channel"), ThreadTS: r.FormValue("thread_ts"), TS: r.FormValue("ts"),
		Text: r.FormValue("text"), Broadcast: r.FormValue("reply_broadcast"), Blocks: json.RawMessage(r.FormValue("blocks"))})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	switch {
	case strings.HasPrefix(fail, "429:"):
		w.Header().Set("Retry-After", strings.TrimPrefix(fail, "429:"))
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"ok":false,"error":"ratelimited"}`)
	case fail != "":
		fmt.Fprintf(w, `{"ok":false,"error":%q}`, fail)
	case method == "chat.update":
		fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":%q,"text":"updated"}`, r.FormValue("channel"), r.FormValue("ts"))
	default:
		f.next++
		fmt.Fprintf(w, `{"ok":true,"channel":"C0123","ts":"1763700000.%06d","message":{"type":"message","text":"x"}}`, f.next)
	}
}

func (f *fakeSlack) recorded() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}
