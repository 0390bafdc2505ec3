package deliver

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
	commoncfg "github.com/prometheus/common/config"
)

// bearer is what http_config.authorization builds: the credentials ride in
// the transport, not in our request code.
func bearer(token string) http.RoundTripper {
	return commoncfg.NewAuthorizationCredentialsRoundTripper("Bearer", commoncfg.NewInlineSecret(token), http.DefaultTransport)
}

// TestDNSDiscoveryPostsToEveryReplica: behind a headless Service the name
// resolves to every replica; each must get the alerts (Prometheus would
// have sent to each), not one random replica. A real DNS server (miekg/dns)
// answers the lookups over UDP; the replicas listen on 127.0.0.1 and
// 127.0.0.2 on the same port, as pods of a StatefulSet do.
func TestDNSDiscoveryPostsToEveryReplica(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.Host]++
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer up-secret" {
			t.Errorf("replica %s: auth %q", r.Host, r.Header.Get("Authorization"))
		}
	})
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln1.Addr().(*net.TCPAddr).Port
	ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", port))
	if err != nil {
		t.Fatalf("a second loopback address on the same port: %v", err)
	}
	for _, ln := range []net.Listener{ln1, ln2} {
		srv := &http.Server{Handler: handler}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}

	var lookups sync.Mutex
	answers := []string{"127.0.0.1", "127.0.0.2"}
	queries := 0
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dnsSrv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		lookups.Lock()
		queries++
		addrs := answers
		lookups.Unlock()
		if q.Qtype == dns.TypeA && q.Name == "alertmanager-operated.monitoring.svc.cluster.local." {
			for _, a := range addrs {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(a)})
			}
		}
		_ = w.WriteMsg(m)
	})}
	go dnsSrv.ActivateAndServe()
	t.Cleanup(func() { dnsSrv.Shutdown() })
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", pc.LocalAddr().String())
	}}

	a, err := NewAlertmanagers([]UpstreamConfig{{Name: "am", URL: fmt.Sprintf("http://alertmanager-operated.monitoring.svc.cluster.local:%d", port),
		DNSDiscovery: true, Resolver: resolver, Transport: bearer("up-secret")}})
	if err != nil {
		t.Fatal(err)
	}
	res := a.PostAlerts(context.Background(), []byte(`[]`), []byte(`[]`))
	want1, want2 := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.2:%d", port)
	mu.Lock()
	if res.Status != 200 || got[want1] != 1 || got[want2] != 1 {
		t.Fatalf("status %d, replicas got %v (%v)", res.Status, got, res.PerUpstream)
	}
	mu.Unlock()
	if notes := strings.Join(res.PerUpstream, "; "); !strings.Contains(notes, "am/127.0.0.1: 200") || !strings.Contains(notes, "am/127.0.0.2: 200") {
		t.Errorf("per-replica notes: %s", notes)
	}

	// The answer is cached: a burst of alerts costs one lookup. When DNS
	// dies, the last answer keeps being used.
	lookups.Lock()
	before := queries
	lookups.Unlock()
	a.PostAlerts(context.Background(), []byte(`[]`), []byte(`[]`))
	lookups.Lock()
	if queries != before {
		t.Errorf("second post looked up again (%d → %d queries)", before, queries)
	}
	lookups.Unlock()
	dnsSrv.Shutdown()
	a.ups[0].resolved = a.ups[0].resolved.Add(-addrsTTL) // expire it
	res = a.PostAlerts(context.Background(), []byte(`[]`), []byte(`[]`))
	mu.Lock()
	defer mu.Unlock()
	if res.Status != 200 || got[want1] != 3 || got[want2] != 3 {
		t.Errorf("after DNS died: status %d, replicas got %v (%v)", res.Status, got, res.PerUpstream)
	}
}

func TestPostAlertsFallsBackToOriginalPerUpstream(t *testing.T) {
	// An upstream with a size limit rejects the enriched body; the original
	// must still be stored there, and the answer is 200.
	var strictGot []string
	strict := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prefix/api/v2/alerts" || r.Header.Get("Authorization") != "Bearer up-secret" {
			t.Errorf("unexpected request %s %s auth=%q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		}
		buf := make([]byte, 1024)
		n, _ := r.Body.Read(buf)
		strictGot = append(strictGot, string(buf[:n]))
		if strings.Contains(string(buf[:n]), "whatchanged_") {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer strict.Close()
	a, err := NewAlertmanagers([]UpstreamConfig{{Name: "strict", URL: strict.URL + "/prefix", Transport: bearer("up-secret")}})
	if err != nil {
		t.Fatal(err)
	}
	res := a.PostAlerts(context.Background(), []byte(`[{"annotations":{"whatchanged_summary":"x"}}]`), []byte(`[{"annotations":{}}]`))
	if res.Status != 200 || len(strictGot) != 2 || strictGot[1] != `[{"annotations":{}}]` {
		t.Fatalf("status %d, upstream got %q", res.Status, strictGot)
	}
	if !strings.Contains(strings.Join(res.PerUpstream, ""), "original body") {
		t.Errorf("per-upstream note does not say the original was sent: %v", res.PerUpstream)
	}
}

// amInvalid is what Alertmanager v0.31.1 answers for
// [{"annotations":{}}] (no labels), captured from the real one.
const amInvalid = `{"code":602,"message":"0.labels in body is required"}`

func TestPostAlertsMixedAnswers(t *testing.T) {
	answer := func(status int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"code":%d}`, status)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	ok, bad, unprocessable, tooLarge, broken := answer(200), answer(400), answer(422), answer(413), answer(500)
	unauthorized, notFound, tooMany := answer(401), answer(404), answer(429)
	tests := []struct {
		name string
		urls []string
		want int
	}{
		{"one accepts, one broken", []string{broken, ok}, 200},
		{"one accepts, one refuses", []string{unprocessable, ok}, 200},
		{"invalid everywhere", []string{bad, bad}, 400},
		{"invalid and broken", []string{broken, bad}, 400},
		{"unprocessable and broken", []string{broken, unprocessable}, 422},
		{"too large", []string{tooLarge}, 413},
		{"the first refusal is answered", []string{unprocessable, bad}, 422},
		{"all broken", []string{broken, broken}, 503},
		// Not about the alerts: whatchanged's own access to the upstream
		// (credentials, URL) or "later", so Prometheus must not read them
		// as its own mistake.
		{"unauthorized", []string{unauthorized}, 503},
		{"not found", []string{notFound, broken}, 503},
		{"too many requests", []string{tooMany}, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ups []UpstreamConfig
			for i, u := range tt.urls {
				ups = append(ups, UpstreamConfig{Name: string(rune('a' + i)), URL: u})
			}
			a, _ := NewAlertmanagers(ups)
			res := a.PostAlerts(context.Background(), []byte("[]"), []byte("[]"))
			if res.Status != tt.want {
				t.Fatalf("status %d (%v), want %d", res.Status, res.PerUpstream, tt.want)
			}
			if tt.want >= 400 && tt.want < 500 && string(res.Body) != fmt.Sprintf(`{"code":%d}`, tt.want) {
				t.Errorf("body %s, want the upstream's own", res.Body)
			}
		})
	}
}

// TestPostAlertsPassesTheUpstreamRefusalBack: alerts Alertmanager refuses
// with 422 are refused again on the original body; that 422 and its body
// go back to Prometheus, not a 503 that would have it try again for ever.
func TestPostAlertsPassesTheUpstreamRefusalBack(t *testing.T) {
	var got []string
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, string(b))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write([]byte(amInvalid))
	}))
	defer am.Close()
	a, _ := NewAlertmanagers([]UpstreamConfig{{Name: "am", URL: am.URL}})
	res := a.PostAlerts(context.Background(), []byte(`[{"annotations":{"whatchanged_summary":"x"}}]`), []byte(`[{"annotations":{}}]`))
	if res.Status != http.StatusUnprocessableEntity || string(res.Body) != amInvalid || res.ContentType != "application/json" {
		t.Fatalf("answer %d %q %s, want Alertmanager's 422", res.Status, res.ContentType, res.Body)
	}
	if len(got) != 2 || got[1] != `[{"annotations":{}}]` {
		t.Errorf("upstream got %q, want the enriched body, then the original", got)
	}
}

// TestProxyNeverAllowsCrossOrigin: Alertmanager's API answers a browser's
// preflight with "Access-Control-Allow-Origin: *" (rs/cors Default, in
// api/v2/api.go). Passed on, it would let any web page POST JSON to
// whatchanged's inline endpoint, so the proxy drops those headers.
func TestProxyNeverAllowsCrossOrigin(t *testing.T) {
	// The real Alertmanager v0.31.1's answer to
	// OPTIONS /api/v2/alerts, Origin: http://evil.example,
	// Access-Control-Request-Method: POST, Access-Control-Request-Headers: content-type.
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Headers", "content-type")
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer am.Close()
	a, _ := NewAlertmanagers([]UpstreamConfig{{Name: "am", URL: am.URL}})
	req := httptest.NewRequest(http.MethodOptions, "/api/v2/alerts", nil)
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	rec := httptest.NewRecorder()
	a.Proxy("", 1<<20).ServeHTTP(rec, req)
	for k := range rec.Header() {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Errorf("proxied preflight answer carries %s: %s", k, rec.Header().Get(k))
		}
	}
	if rec.Code != http.StatusNoContent {
		t.Errorf("status %d, want the upstream's 204", rec.Code)
	}
}
