package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// A resolved alert goes to Alertmanager with the annotations of its
// resolved post only; receivers' resolved messages would lose the suspect.
// whatchanged gives it back the annotations of ours it had while firing.
func TestInlineResolvedKeepsFiringAnnotations(t *testing.T) {
	var (
		mu   sync.Mutex
		last []map[string]any
	)
	e := &env{url: inlineEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		last = nil
		if err := json.Unmarshal(b, &last); err != nil {
			t.Errorf("upstream got %s: %v", b, err)
		}
	}))}
	got := func() map[string]any {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(last) != 1 {
			t.Fatalf("upstream got %d alerts, want 1", len(last))
		}
		ann, _ := last[0]["annotations"].(map[string]any)
		return ann
	}
	start := time.Now().Add(-10 * time.Minute).UTC().Format(time.RFC3339)
	post := func(labels, annotations, endsAt string) {
		t.Helper()
		body := fmt.Sprintf(`[{"labels":%s,"annotations":%s,"startsAt":%q%s}]`, labels, annotations, start, endsAt)
		if status, out := e.do(t, http.MethodPost, "/api/v2/alerts", body); status != http.StatusOK {
			t.Fatalf("post: %d %s", status, out)
		}
	}

	post(`{"alertname":"HighErrors","job":"api"}`, `{"description":"errors"}`, "")
	firing := got()
	summary, _ := firing["whatchanged_summary"].(string)
	if summary == "" {
		t.Fatalf("firing alert not enriched: %v", firing)
	}

	resolved := fmt.Sprintf(`,"endsAt":%q`, time.Now().Add(-time.Second).UTC().Format(time.RFC3339))
	post(`{"job":"api","alertname":"HighErrors"}`, `{"description":"errors, resolved"}`, resolved)
	ann := got()
	if ann["whatchanged_summary"] != summary {
		t.Errorf("resolved alert's whatchanged_summary = %v, want the firing one %q", ann["whatchanged_summary"], summary)
	}
	if ann["description"] != "errors, resolved" {
		t.Errorf("resolved alert's own annotation changed: %v", ann["description"])
	}

	// Another alert resolving, never seen firing: nothing of ours.
	post(`{"alertname":"HighErrors","job":"web"}`, `{}`, resolved)
	for k := range got() {
		if len(k) > 12 && k[:12] == "whatchanged_" {
			t.Errorf("an alert never seen firing got %s", k)
		}
	}
}
