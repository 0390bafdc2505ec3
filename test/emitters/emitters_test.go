// Package emitters runs the ready-made senders of examples/emitters against
// the real whatchanged server: the GitHub Actions step's script under bash,
// the Argo CD notifications template rendered as Argo CD renders it, and
// Flux's generic Provider posting as notification-controller posts.
package emitters

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/deliver"
	"github.com/whatchanged/whatchanged/enrich/server"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/changes"
	"github.com/whatchanged/whatchanged/sources/store/storetest"
)

// token is whatchanged's inbound bearer token in these tests: a marker
// that must reach the server and nothing else.
const token = "MARKER-whatchanged-token-5e1d"

// whatchanged runs the real server with bearer auth and the real
// pushed-changes source on a bbolt store.
type whatchanged struct {
	url string
	src *changes.Source
}

func newWhatchanged(t *testing.T) *whatchanged {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := storetest.Bolt(t)
	src := changes.New("changes", changes.Config{}, st, log)
	if err := src.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	resolver, _ := enrich.NewResolver(nil)
	reg := prometheus.NewRegistry()
	keeper := deliver.NewKeeper(10, 1<<20)
	s := server.New(server.Config{Listen: "127.0.0.1:8080", Auth: server.Auth{BearerToken: token}}, server.Deps{
		Enricher: enrich.New(enrich.Options{}, resolver, []enrich.SourceEntry{{Source: src}}, enrich.NewMetrics(reg)),
		Targets:  map[string]deliver.Target{"default": keeper}, Keeper: keeper, Changes: src,
		Ready:    func() (bool, string) { return src.Ready(), "changes" },
		Gatherer: reg, Metrics: server.NewMetrics(reg), Log: log,
	})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &whatchanged{url: srv.URL, src: src}
}

// only returns the one change recorded; the test fails otherwise.
func (w *whatchanged) only(t *testing.T) sources.Change {
	t.Helper()
	list, err := w.src.List(context.Background(), time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("%d changes recorded, want 1: %+v", len(list), list)
	}
	return list[0]
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// post sends body as a sender does and returns the answer.
func post(t *testing.T, url string, header http.Header, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
