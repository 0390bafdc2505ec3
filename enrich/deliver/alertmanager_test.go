package deliver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

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
	a, err := NewAlertmanagers([]UpstreamConfig{{Name: "strict", URL: strict.URL + "/prefix", Headers: map[string]string{"Authorization": "Bearer up-secret"}}})
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

func TestPostAlertsMixedAnswers(t *testing.T) {
	answer := func(status int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"code":` + http.StatusText(status)[:1] + `}`))
		}))
	}
	ok, bad, broken := answer(200), answer(400), answer(500)
	defer ok.Close()
	defer bad.Close()
	defer broken.Close()
	tests := []struct {
		name string
		urls []string
		want int
	}{
		{"one accepts, one broken", []string{broken.URL, ok.URL}, 200},
		{"invalid everywhere", []string{bad.URL, bad.URL}, 400},
		{"invalid and broken", []string{broken.URL, bad.URL}, 400},
		{"all broken", []string{broken.URL, broken.URL}, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ups []UpstreamConfig
			for i, u := range tt.urls {
				ups = append(ups, UpstreamConfig{Name: string(rune('a' + i)), URL: u})
			}
			a, _ := NewAlertmanagers(ups)
			if res := a.PostAlerts(context.Background(), []byte("[]"), []byte("[]")); res.Status != tt.want {
				t.Fatalf("status %d (%v), want %d", res.Status, res.PerUpstream, tt.want)
			}
		})
	}
}
