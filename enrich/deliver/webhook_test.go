package deliver

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

const secretPath = "/hooks/T000/B000/s3cr3t-t0ken"

// downstream is a receiver that answers a scripted status per request and
// records what it got.
type downstream struct {
	mu       sync.Mutex
	statuses []int // one per request; the last repeats
	delay    time.Duration
	bodies   []string
	headers  []http.Header
}

func (d *downstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	d.mu.Lock()
	d.bodies = append(d.bodies, string(body))
	d.headers = append(d.headers, r.Header.Clone())
	status := d.statuses[min(len(d.bodies)-1, len(d.statuses)-1)]
	d.mu.Unlock()
	if d.delay > 0 {
		time.Sleep(d.delay)
	}
	if status == http.StatusMovedPermanently {
		w.Header().Set("Location", "/elsewhere")
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"echo":"` + r.URL.Path + `"}`)) // a downstream echoing the secret path
}

func TestStatusMapping(t *testing.T) {
	tests := []struct {
		name       string
		statuses   []int
		delay      time.Duration
		outcome    Outcome
		answer     int
		sends      int
		secondBody string
	}{
		{name: "200", statuses: []int{200}, outcome: Delivered, answer: 200, sends: 1},
		{name: "204", statuses: []int{204}, outcome: Delivered, answer: 200, sends: 1},
		{name: "413 then original accepted", statuses: []int{413, 200}, outcome: Fallback, answer: 200, sends: 2, secondBody: "original"},
		{name: "400 then original accepted", statuses: []int{400, 202}, outcome: Fallback, answer: 200, sends: 2, secondBody: "original"},
		{name: "400 twice", statuses: []int{400, 400}, outcome: Rejected, answer: 502, sends: 2},
		{name: "404 then 503", statuses: []int{404, 503}, outcome: Retry, answer: 503, sends: 2},
		{name: "429", statuses: []int{429}, outcome: Retry, answer: 503, sends: 1},
		{name: "500", statuses: []int{500}, outcome: Retry, answer: 503, sends: 1},
		{name: "503", statuses: []int{503}, outcome: Retry, answer: 503, sends: 1},
		{name: "redirect not followed", statuses: []int{301}, outcome: Rejected, answer: 502, sends: 1},
		{name: "timeout", statuses: []int{200}, delay: 300 * time.Millisecond, outcome: Retry, answer: 503, sends: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &downstream{statuses: tt.statuses, delay: tt.delay}
			srv := httptest.NewServer(d)
			defer srv.Close()
			w := NewWebhook("pager", WebhookConfig{URL: srv.URL + secretPath + "?token=qs-secret", Timeout: 100 * time.Millisecond},
				commoncfg.NewAuthorizationCredentialsRoundTripper("Bearer", commoncfg.NewInlineSecret("hdr-secret"), http.DefaultTransport))
			res := w.Deliver(context.Background(), []byte("enriched"), []byte("original"))
			if res.Outcome != tt.outcome || res.HTTPStatus() != tt.answer {
				t.Fatalf("outcome %s answer %d (err %v), want %s %d", res.Outcome, res.HTTPStatus(), res.Err, tt.outcome, tt.answer)
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if len(d.bodies) != tt.sends {
				t.Fatalf("downstream got %d requests, want %d", len(d.bodies), tt.sends)
			}
			if d.bodies[0] != "enriched" {
				t.Errorf("first body %q, want the enriched one", d.bodies[0])
			}
			if tt.secondBody != "" && d.bodies[1] != tt.secondBody {
				t.Errorf("second body %q, want %q", d.bodies[1], tt.secondBody)
			}
			if got := d.headers[0].Get("Authorization"); got != "Bearer hdr-secret" {
				t.Errorf("Authorization header = %q", got)
			}
			if got := d.headers[0].Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			assertNoSecret(t, res)
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	w := NewWebhook("pager", WebhookConfig{URL: "http://" + addr + secretPath + "?token=qs-secret"}, http.DefaultTransport)
	res := w.Deliver(context.Background(), []byte("e"), []byte("o"))
	if res.Outcome != Retry || res.HTTPStatus() != 503 {
		t.Fatalf("outcome %s, want retry", res.Outcome)
	}
	if !strings.Contains(res.Err.Error(), "connection refused") || !strings.Contains(res.Err.Error(), "downstream pager") {
		t.Errorf("error does not say what failed: %v", res.Err)
	}
	assertNoSecret(t, res)
}

func TestBadURLDoesNotLeak(t *testing.T) {
	w := NewWebhook("pager", WebhookConfig{URL: "http://exa mple.com" + secretPath}, http.DefaultTransport)
	res := w.Deliver(context.Background(), []byte("e"), []byte("o"))
	if res.Outcome != Retry {
		t.Fatalf("outcome %s", res.Outcome)
	}
	assertNoSecret(t, res)
}

func assertNoSecret(t *testing.T, res Result) {
	t.Helper()
	if res.Err == nil {
		return
	}
	for _, s := range []string{"s3cr3t-t0ken", "qs-secret", "hdr-secret"} {
		if strings.Contains(res.Err.Error(), s) {
			t.Errorf("error leaks a secret %q: %v", s, res.Err)
		}
	}
}

func TestKeeperBounds(t *testing.T) {
	k := NewKeeper(3, 100)
	for _, b := range []string{`"a"`, `"b"`, `"c"`, `"d"`} {
		if r := k.Deliver(context.Background(), []byte(b), nil); r.HTTPStatus() != 200 {
			t.Fatalf("keeper answered %d", r.HTTPStatus())
		}
	}
	got := k.List()
	if len(got) != 3 || string(got[0].Body) != `"d"` || string(got[2].Body) != `"b"` {
		t.Fatalf("kept %v, want d c b", got)
	}
	k.Add([]byte(`"` + strings.Repeat("x", 95) + `"`))
	if n := len(k.List()); n != 2 {
		t.Errorf("byte bound: kept %d, want 2", n)
	}
}
