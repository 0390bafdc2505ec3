package clusters_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// One Argo CD deploys shop to both clusters, as an ApplicationSet with a
// cluster generator does: an app per cluster and workload, a-shop-api
// with destination name "a", b-shop-api with the server URL of b. Each
// sync must relate only to its own cluster's alerts, whether the
// Deployment names its app (api: tracking id) or only the app's managed
// resources say so (worker).
type argoApp struct {
	name, workload string
	dest           map[string]string
	revision       string
	ago            time.Duration // synced this long before the alert started
}

const bServer = "https://b.k8s.example.com:6443"

var argoApps = []argoApp{
	{"a-shop-api", "api", map[string]string{"name": "a", "namespace": "shop"}, "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1", 12 * time.Minute},
	{"b-shop-api", "api", map[string]string{"server": bServer, "namespace": "shop"}, "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2", 30 * time.Minute},
	{"a-shop-worker", "worker", map[string]string{"name": "a", "namespace": "shop"}, "a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3", 20 * time.Minute},
	{"b-shop-worker", "worker", map[string]string{"server": bServer, "namespace": "shop"}, "b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4", 40 * time.Minute},
}

// argocdFake is argocd-server's REST API (grpc-gateway JSON) for argoApps:
// list, get, and a revision's metadata.
type argocdFake struct {
	token      string
	mu         sync.Mutex
	unexpected []string
}

func (f *argocdFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	grpcError := func(status, code int, msg string) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": msg, "code": code, "message": msg})
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		grpcError(http.StatusUnauthorized, 16, "invalid session: token signature is invalid")
		return
	}
	if ns := r.URL.Query().Get("appNamespace"); ns != "" && ns != "argocd" {
		grpcError(http.StatusForbidden, 7, "permission denied")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/v1/applications"), "/")
	switch {
	case r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/api/v1/applications"):
	case len(parts) == 1 && parts[0] == "":
		items := []any{}
		for _, a := range argoApps {
			items = append(items, a.render())
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"resourceVersion": "4711"}, "items": items})
		return
	case len(parts) == 2:
		for _, a := range argoApps {
			if a.name == parts[1] {
				_ = json.NewEncoder(w).Encode(a.render())
				return
			}
		}
		grpcError(http.StatusNotFound, 5, fmt.Sprintf("applications.argoproj.io %q not found", parts[1]))
		return
	case len(parts) == 5 && parts[2] == "revisions" && parts[4] == "metadata":
		for _, a := range argoApps {
			if a.name == parts[1] && a.revision == parts[3] {
				_ = json.NewEncoder(w).Encode(map[string]any{"author": "Dev <dev@example.com>",
					"date": ts(startsAt.Add(-a.ago - 5*time.Minute)), "message": "shop: release " + a.name, "tags": []string{}})
				return
			}
		}
		grpcError(http.StatusNotFound, 5, "unable to resolve git revision "+parts[3]+": revision not found")
		return
	}
	f.mu.Lock()
	f.unexpected = append(f.unexpected, r.Method+" "+r.URL.String())
	f.mu.Unlock()
	grpcError(http.StatusNotFound, 5, "Not Found")
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// render is the Application as argocd-server returns it after one
// automated sync.
func (a argoApp) render() map[string]any {
	source := map[string]any{"repoURL": "https://github.com/example/shop.git", "path": "deploy/" + a.workload, "targetRevision": "main"}
	synced, started := ts(startsAt.Add(-a.ago)), ts(startsAt.Add(-a.ago-20*time.Second))
	return map[string]any{
		"metadata": map[string]any{"name": a.name, "namespace": "argocd", "uid": "uid-" + a.name, "resourceVersion": "4711",
			"generation": 7, "creationTimestamp": ts(startsAt.Add(-30 * 24 * time.Hour))},
		"spec": map[string]any{"project": "default", "source": source, "destination": a.dest,
			"syncPolicy": map[string]any{"automated": map[string]any{"prune": true, "selfHeal": true}}},
		"status": map[string]any{
			"resources": []any{map[string]any{"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "shop",
				"name": a.workload, "status": "Synced", "health": map[string]any{"status": "Healthy"}}},
			"history": []any{map[string]any{"id": 1, "revision": a.revision, "deployedAt": synced, "deployStartedAt": started,
				"source": source, "initiatedBy": map[string]any{"automated": true}}},
			"sync":         map[string]any{"status": "Synced", "revision": a.revision, "comparedTo": map[string]any{"source": source, "destination": a.dest}},
			"health":       map[string]any{"status": "Healthy"},
			"reconciledAt": ts(startsAt),
			"sourceType":   "Directory",
			"operationState": map[string]any{
				"operation": map[string]any{"sync": map[string]any{"revision": a.revision}, "initiatedBy": map[string]any{"automated": true}},
				"phase":     "Succeeded", "message": "successfully synced (all tasks run)", "startedAt": started, "finishedAt": synced,
				"syncResult": map[string]any{"revision": a.revision, "source": source}},
		},
	}
}

// TestArgoCDAcrossClusters: one Argo CD, mapped by sources.argocd.clusters
// (destination name a → a, b's server URL → b); each cluster's alert on
// shop/api and shop/worker is told its own app's sync and never the
// other cluster's.
func TestArgoCDAcrossClusters(t *testing.T) {
	fake := &argocdFake{token: "argocd-token-marker-6c1f"}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "argocd-token")
	if err := os.WriteFile(tokenFile, []byte(fake.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := clustersConfig(clusterEntry{name: "a", deflt: true, kubeconfig: a.kubeconfig}, clusterEntry{name: "b", kubeconfig: b.kubeconfig}) +
		fmt.Sprintf(`sources:
  argocd:
    enabled: true
    server: %s
    http_config:
      authorization: {credentials_file: %s}
    refresh: 5s
    clusters:
      a: a
      %s: b
`, srv.URL, tokenFile, bServer)
	wc := startWhatchanged(t, config, true)

	for _, workload := range []string{"api", "worker"} {
		for _, cl := range []string{"a", "b"} {
			t.Run(workload+"@"+cl, func(t *testing.T) {
				labels := map[string]string{"alertname": "KubeDeploymentReplicasMismatch", "cluster": cl, "namespace": "shop", "deployment": workload}
				got := wc.enrich(t, labels, startsAt)
				var own argoApp
				for _, app := range argoApps {
					switch {
					case strings.HasPrefix(app.name, cl+"-") && app.workload == workload:
						own = app
					case !strings.HasPrefix(app.name, cl+"-") && strings.Contains(got.body, app.revision):
						t.Errorf("cluster %s's %s alert tells of %s's sync %s", cl, workload, app.name, app.revision)
					}
				}
				if got.Suspect == nil {
					t.Fatalf("no suspect; want %s's sync of %s\n%s", own.name, own.revision, got.body)
				}
				s := got.Suspect
				if s.Subject.Cluster != cl || !(s.Source == "argocd" || slices.Contains(s.Sources, "argocd")) || !strings.Contains(got.body, own.revision) {
					t.Errorf("suspect %+v; want %s's sync of %s in cluster %s (merged with the rollout or alone)", *s, own.name, own.revision, cl)
				}
				if e := got.Annotations["whatchanged_error"]; e != "" {
					t.Errorf("whatchanged_error %q", e)
				}
			})
		}
	}
	if strings.Contains(wc.log.String(), fake.token) {
		t.Error("the Argo CD token appears in whatchanged's log")
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.unexpected) > 0 {
		t.Errorf("requests argocd-server does not serve: %v", fake.unexpected)
	}
}
