package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/deliver"
	"github.com/whatchanged/whatchanged/sources/changes"
	"github.com/whatchanged/whatchanged/sources/store/storetest"
	"github.com/whatchanged/whatchanged/test/proctest"
)

const (
	senderToken  = "MARKER-bearer-token-7f3a"
	ldSecret     = "MARKER-ld-signing-secret-91c2"
	senderSource = "../../sources/changes/testdata/senders/"
)

// newSenderEnv runs the real server with bearer auth and the real
// pushed-changes source, whose LaunchDarkly webhooks are signed.
func newSenderEnv(t *testing.T) (*env, *proctest.Log) {
	t.Helper()
	logs := &proctest.Log{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st := storetest.Bolt(t)
	secretFile := filepath.Join(t.TempDir(), "launchdarkly-secret")
	if err := os.WriteFile(secretFile, []byte(ldSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := changes.New("changes", changes.Config{SigningSecretFiles: map[string]string{"launchdarkly": secretFile}}, st, log)
	resolver, _ := enrich.NewResolver(nil)
	reg := prometheus.NewRegistry()
	keeper := deliver.NewKeeper(10, 1<<20)
	e := &env{keeper: keeper}
	e.serve(t, Config{Listen: "127.0.0.1:8080", Auth: Auth{BearerToken: senderToken}}, Deps{
		Enricher: enrich.New(enrich.Options{}, resolver, []enrich.SourceEntry{{Source: src}}, enrich.NewMetrics(reg)),
		Targets:  map[string]deliver.Target{"default": keeper}, Keeper: keeper, Changes: src,
		Ready:    func() (bool, string) { return true, "" },
		Gatherer: reg, Metrics: NewMetrics(reg), Log: log,
	})
	return e, logs
}

func senderBody(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(senderSource + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sign(body string) string {
	mac := hmac.New(sha256.New, []byte(ldSecret))
	mac.Write([]byte(body))
	return hex.EncodeToString(mac.Sum(nil))
}

func TestSenderRoutes(t *testing.T) {
	e, logs := newSenderEnv(t)
	bearer := []string{"Authorization", "Bearer " + senderToken}
	flux := senderBody(t, "flux-kustomization-reconciliation-succeeded.json")
	ld := senderBody(t, "launchdarkly-flag-updated.json")
	flagsmith := senderBody(t, "flagsmith-flag-updated.json")

	for _, tc := range []struct {
		name, path, body string
		header           []string
		status           int
		want             string
	}{
		{"flux recorded", "/api/v1/changes/flux", flux, bearer, 201,
			`"revision":"69b59063470310ebbd88a9156325322a124e55a3"`},
		{"flux again (a retry, or the next interval's success)", "/api/v1/changes/flux", flux, bearer, 200, `"created":false`},
		{"flux progress is no change", "/api/v1/changes/flux", senderBody(t, "flux-kustomization-progressing.json"), bearer, 202,
			`"ignored":"not a change: info event \"Progressing\"`},
		{"flux without credentials", "/api/v1/changes/flux", flux, nil, 401, "missing or wrong credentials"},
		{"unknown format", "/api/v1/changes/jenkins", flux, bearer, 404, "known: flagsmith, flux, launchdarkly, openfeature, unleash"},
		{"bad input names the field", "/api/v1/changes/flagsmith", flagsmith, bearer, 400, `"field":"subject"`},
		{"unknown URL parameter", "/api/v1/changes/flagsmith?ap=x", flagsmith, bearer, 400, `"field":"query.ap"`},
		{"flagsmith (unsigned here) with the token", "/api/v1/changes/flagsmith?namespace=web&app=website", flagsmith, bearer, 201,
			`"message":"flag butter_bar turned on in Development"`},
		{"launchdarkly signed", "/api/v1/changes/launchdarkly?namespace=shop&app=checkout", ld, []string{"X-LD-Signature", sign(ld)}, 201,
			`"id":"launchdarkly-1234"`},
		{"launchdarkly retried", "/api/v1/changes/launchdarkly?namespace=shop&app=checkout", ld, []string{"X-LD-Signature", sign(ld)}, 200,
			`"created":false`},
		{"launchdarkly wrong signature", "/api/v1/changes/launchdarkly?app=checkout", ld, []string{"X-LD-Signature", sign(ld + " ")}, 401,
			"X-LD-Signature does not match"},
		{"launchdarkly: its signature is its credential, not the token", "/api/v1/changes/launchdarkly?app=checkout", ld, bearer, 401,
			"X-LD-Signature is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.do(t, "POST", tc.path, tc.body, tc.header...)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("answer %d %s\nwant %d with %s", status, body, tc.status, tc.want)
			}
		})
	}

	// The senders' changes are listed with the pushed ones.
	status, body := e.do(t, "GET", "/debug/changes?since=100000h", "", bearer...)
	var list struct {
		Changes []struct{ ID, Kind, Status, Revision, Author string }
	}
	if err := json.Unmarshal([]byte(body), &list); status != 200 || err != nil {
		t.Fatalf("list: %d %v %s", status, err, body)
	}
	var kinds []string
	for _, c := range list.Changes {
		kinds = append(kinds, c.Kind+":"+c.Status)
	}
	// Newest first: LaunchDarkly's is of 2024, Flux's of 2022, Flagsmith's of 2021.
	if strings.Join(kinds, " ") != "flag:succeeded deploy:succeeded flag:succeeded" {
		t.Errorf("recorded %v", kinds)
	}
	for _, marker := range []string{senderToken, ldSecret} {
		if strings.Contains(logs.String(), marker) {
			t.Errorf("the log shows a secret:\n%s", logs.String())
		}
	}
}

// A sender posts JSON; anything else is refused before any decoding.
func TestSenderRouteTakesOnlyJSON(t *testing.T) {
	e, _ := newSenderEnv(t)
	status, body := e.do(t, "POST", "/api/v1/changes/flux", senderBody(t, "flux-kustomization-reconciliation-succeeded.json"),
		"Authorization", "Bearer "+senderToken, "Content-Type", "text/plain")
	if status != http.StatusUnsupportedMediaType {
		t.Fatalf("answer %d %s", status, body)
	}
}

// Without the pushed-changes source the route says so, as /api/v1/changes does.
func TestSenderRouteWithoutChangesSource(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Config{Listen: "127.0.0.1:8080"}, Deps{
		Enricher: enrich.New(enrich.Options{}, nil, nil, enrich.NewMetrics(reg)),
		Ready:    func() (bool, string) { return true, "" }, Gatherer: reg, Metrics: NewMetrics(reg),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	req := httptest.NewRequest("POST", "/api/v1/changes/flux", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "sources.changes") {
		t.Fatalf("answer %d %s", rec.Code, rec.Body.String())
	}
}
