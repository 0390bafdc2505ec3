package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/test/proctest"
)

// Wired: with the GitHub and Argo CD sources both on, a sync whose commit
// argocd-server has no metadata for names its author and message as
// GitHub tells them.
func TestArgoCDAsksGitHubForCommits(t *testing.T) {
	const sha = "9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
	deployed := time.Now().Add(-10 * time.Minute).UTC()
	var commitAsked atomic.Int64
	gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if r.Header.Get("Authorization") != "Bearer ghp_MARKER" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"message":"Bad credentials"}`)
			return
		}
		switch r.URL.Path {
		case "/api/v3/repos/acme/api/releases", "/api/v3/repos/acme/api/deployments":
			fmt.Fprint(w, `[]`)
		case "/api/v3/repos/acme/api/commits":
			if r.URL.Query().Get("sha") != sha {
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprint(w, `{"message":"No commit found for SHA"}`)
				return
			}
			commitAsked.Add(1)
			fmt.Fprintf(w, `[{"sha":%q,"commit":{"author":{"name":"Alice Example","email":"alice@example.com","date":"2026-11-21T09:58:00Z"},"message":"fix retry budget\n\nbody"},"author":{"login":"alice","type":"User"}}]`, sha)
		default:
			t.Errorf("unexpected GitHub request %s", r.URL)
			http.NotFound(w, r)
		}
	}))
	defer gh.Close()
	host := strings.Split(strings.TrimPrefix(gh.URL, "http://"), ":")[0]
	app := fmt.Sprintf(`{"metadata":{"name":"shop-api","namespace":"argocd"},
 "spec":{"project":"shop","source":{"repoURL":"https://%s/acme/api.git","path":"deploy/prod","targetRevision":"main"},"destination":{"server":"https://kubernetes.default.svc","namespace":"shop"}},
 "status":{"history":[{"id":42,"revision":%q,"deployedAt":%q,"deployStartedAt":%q,"source":{"repoURL":"https://%s/acme/api.git","path":"deploy/prod"},"initiatedBy":{"username":"bob"}}]}}`,
		host, sha, deployed.Format(time.RFC3339), deployed.Add(-30*time.Second).Format(time.RFC3339), host)
	argo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Header.Get("Authorization") != "Bearer argocd-MARKER":
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid session","code":16,"message":"invalid session"}`)
		case r.URL.Path == "/api/v1/applications":
			fmt.Fprintf(w, `{"metadata":{"resourceVersion":"1"},"items":[%s]}`, app)
		case r.URL.Path == "/api/v1/applications/shop-api":
			fmt.Fprint(w, app)
		case strings.HasSuffix(r.URL.Path, "/metadata"):
			// argocd-server cannot read the repository (no credentials for it).
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"rpc error: code = NotFound desc = repository not found","code":5,"message":"repository not found"}`)
		default:
			t.Errorf("unexpected argocd request %s", r.URL)
			http.NotFound(w, r)
		}
	}))
	defer argo.Close()
	dir := t.TempDir()
	ghTok := writeTestFile(t, dir, "gh", "ghp_MARKER\n")
	argoTok := writeTestFile(t, dir, "argo", "argocd-MARKER\n")
	cfg, err := parseConfig("c.yaml", []byte(`data_dir: `+dir+`
sources:
  github:
    enabled: true
    base_url: `+gh.URL+`/api/v3/
    http_config: {authorization: {credentials_file: `+ghTok+`}}
  argocd:
    enabled: true
    server: `+argo.URL+`
    http_config: {authorization: {credentials_file: `+argoTok+`}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var logs proctest.Log
	a, err := build(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := a.start(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ok, _ := a.ready(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready")
		}
	}
	alert := &enrich.Alert{Labels: map[string]string{"alertname": "ShopErrors", "argocd_app": "shop-api", "namespace": "shop"}, StartsAt: time.Now()}
	a.enricher.Enrich(ctx, []*enrich.Alert{alert}, nil)
	if got := alert.Annotations["whatchanged_suspect"]; !strings.HasPrefix(got, `argocd sync of shop-api 9f1c2e7 by Alice Example (deployed by bob): "fix retry budget"`) {
		t.Errorf("suspect = %q (annotations %v)", got, alert.Annotations)
	}
	if n := commitAsked.Load(); n != 1 {
		t.Errorf("commit asked %d times, want once", n)
	}
	if l := logs.String(); strings.Contains(l, "MARKER") {
		t.Errorf("a token shows in the log:\n%s", l)
	}
}
