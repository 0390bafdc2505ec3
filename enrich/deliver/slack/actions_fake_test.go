package slack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeSlackApp extends fakeSlack (chat.postMessage, chat.update) with what
// actions use: usergroups.users.list, chat.postEphemeral, and Socket Mode —
// apps.connections.open answering the URL of a WebSocket that says hello,
// sends each queued envelope and records the acknowledgements.
type fakeSlackApp struct {
	*fakeSlack
	srv *httptest.Server

	mu         sync.Mutex
	groups     map[string][]string // user group → members
	groupCalls int
	ephemeral  []call
	opens      int
	envelopes  chan []byte
	acks       chan string
}

const testAppToken = "xapp-1-test-app-token"

func newFakeSlackApp(t *testing.T) *fakeSlackApp {
	f := &fakeSlackApp{fakeSlack: newFakeSlack(t), groups: map[string][]string{}, envelopes: make(chan []byte, 8), acks: make(chan string, 8)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveApp))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSlackApp) url() string { return f.srv.URL + "/api/" }

func (f *fakeSlackApp) serveApp(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/api/chat.postMessage", "/api/chat.update":
		f.fakeSlack.serve(w, r)
		return
	case "/ws":
		f.serveSocket(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if err := r.ParseForm(); err != nil {
		f.t.Errorf("bad form: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/api/apps.connections.open": // app-level token only
		if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer "+testAppToken {
			fmt.Fprint(w, `{"ok":false,"error":"invalid_auth"}`)
			return
		}
		f.opens++
		fmt.Fprintf(w, `{"ok":true,"url":"ws%s/ws"}`, strings.TrimPrefix(f.srv.URL, "http"))
	case "/api/usergroups.users.list":
		if r.Header.Get("Authorization") != "Bearer xoxb-test-token" && r.FormValue("token") != "xoxb-test-token" {
			fmt.Fprint(w, `{"ok":false,"error":"invalid_auth"}`)
			return
		}
		f.groupCalls++
		members, ok := f.groups[r.FormValue("usergroup")]
		if !ok {
			fmt.Fprint(w, `{"ok":false,"error":"no_such_subteam"}`)
			return
		}
		b, _ := json.Marshal(map[string]any{"ok": true, "users": members})
		w.Write(b)
	case "/api/chat.postEphemeral":
		f.ephemeral = append(f.ephemeral, call{Method: "chat.postEphemeral", Channel: r.FormValue("channel"), Text: r.FormValue("text"), TS: r.FormValue("user")})
		fmt.Fprint(w, `{"ok":true,"message_ts":"1763700000.999999"}`)
	default:
		f.t.Errorf("unexpected Slack call %s", r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
	}
}

// serveSocket is Slack's Socket Mode end: hello first, then envelopes;
// every message the client sends must be an acknowledgement.
func (f *fakeSlackApp) serveSocket(w http.ResponseWriter, r *http.Request) {
	// slack-go sends Slack's own Origin, which Slack accepts.
	conn, err := (&websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}).Upgrade(w, r, nil)
	if err != nil {
		f.t.Errorf("websocket upgrade: %v", err)
		return
	}
	defer conn.Close()
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello","num_connections":1,"debug_info":{"host":"fake"},"connection_info":{"app_id":"A0TEST"}}`)); err != nil {
		return
	}
	go func() {
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var ack struct {
				EnvelopeID string `json:"envelope_id"`
			}
			if err := json.Unmarshal(msg, &ack); err != nil || ack.EnvelopeID == "" {
				f.t.Errorf("socket mode: not an acknowledgement: %s", msg)
				continue
			}
			f.acks <- ack.EnvelopeID
		}
	}()
	for {
		select {
		case env := <-f.envelopes:
			if err := conn.WriteMessage(websocket.TextMessage, env); err != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Second):
			return
		}
	}
}

// click queues an interactive envelope with a block_actions payload.
func (f *fakeSlackApp) click(envelopeID string, payload []byte) {
	env, _ := json.Marshal(map[string]any{"envelope_id": envelopeID, "type": "interactive", "accepts_response_payload": false, "payload": json.RawMessage(payload)})
	f.envelopes <- env
}

func (f *fakeSlackApp) ephemerals() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.ephemeral...)
}
