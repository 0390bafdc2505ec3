package grafana

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/sourcetest"
	"github.com/whatchanged/whatchanged/test/proctest"
)

var t0 = time.Date(2026, 11, 21, 10, 14, 0, 0, time.UTC) // the alert starts

// exampleRules are the README's.
var exampleRules = []Rule{
	{Tags: []string{"deploy", "service:payments"}, Subject: SubjectTemplate{App: "payments", Namespace: "payments"}},
	{TagPattern: "^service:(.+)$", Subject: SubjectTemplate{App: "$1"}},
}

// newSource builds a source on f with the bearer token tok, its clock at
// t0 and its log in the returned buffer; cfg's URL is f's.
func newSource(t *testing.T, f *fakeGrafana, cfg Config, tok string) (*Source, *proctest.Log) {
	t.Helper()
	cfg.URL = f.url()
	if cfg.Rules == nil {
		cfg.Rules = exampleRules
	}
	client := f.srv.Client()
	// Not New's default (at most refresh, which tests set to milliseconds):
	// a loaded machine must not turn a slow answer into a failure.
	client.Timeout = 30 * time.Second
	client.Transport = commoncfg.NewAuthorizationCredentialsRoundTripper("Bearer", commoncfg.NewInlineSecret(tok), client.Transport)
	logs := &proctest.Log{}
	s, err := New("grafana", cfg, client, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	s.now = at(t0)
	return s, logs
}

func query(subject sources.Subject) sources.Query {
	return sources.Query{Subject: subject, Since: t0.Add(-24 * time.Hour), Until: t0.Add(5 * time.Minute)}
}

func byID(changes []sources.Change) map[string]sources.Change {
	out := map[string]sources.Change{}
	for _, c := range changes {
		out[c.ID] = c
	}
	return out
}

func TestAnnotationsMappedByRules(t *testing.T) {
	f := newFakeGrafana(t)
	s, _ := newSource(t, f, Config{OrgID: 3, UIURL: "https://grafana.example.com/"}, token)
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := s.Changes(context.Background(), query(sources.Subject{Namespace: "payments", Kind: "Deployment", Name: "payments-api", App: "payments"}))
	if err != nil {
		t.Fatal(err)
	}
	// 4107 (deploy) and 4105 (flag, by the pattern rule); not 4106 (an
	// alert's state), 4104 (checkout), 4103 (no rule), 4102 (before Since).
	ids := byID(got)
	if len(got) != 2 || ids["grafana/4107"].ID == "" || ids["grafana/4105"].ID == "" {
		t.Fatalf("got %+v, want grafana/4107 and grafana/4105", got)
	}
	if got[0].ID != "grafana/4107" {
		t.Errorf("not newest first: %s, %s", got[0].ID, got[1].ID)
	}
	deploy := ids["grafana/4107"]
	want := sources.Change{Source: "grafana", Kind: sources.KindDeploy, ID: "grafana/4107",
		Subject: sources.Subject{Namespace: "payments", App: "payments"},
		Version: "1.8.4", Revision: "9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f",
		StartedAt: time.Date(2026, 11, 21, 10, 2, 11, 0, time.UTC), FinishedAt: time.Date(2026, 11, 21, 10, 4, 40, 0, time.UTC),
		// A service account wrote it: it deployed, a person authored.
		DeployedBy: "sa-1-github-actions",
		Message:    "Deployed payments 1.8.4 to production: run 8123456789 fix retry budget & timeouts",
		URL:        "https://grafana.example.com/d/payments-overview?from=1795251731000&orgId=3&to=1795259080000&viewPanel=4",
		Links:      []sources.Link{{Name: "link", URL: "https://github.com/acme/payments/actions/runs/8123456789"}},
	}
	if a, b := mustJSON(t, deploy), mustJSON(t, want); a != b {
		t.Errorf("deploy\n got %s\nwant %s", a, b)
	}
	flag := ids["grafana/4105"]
	if flag.Kind != sources.KindFlag || flag.Subject.Key() != (sources.Subject{App: "payments"}).Key() || flag.Author != "alice" ||
		!flag.FinishedAt.IsZero() || flag.URL != "https://grafana.example.com/api/annotations/4105?orgId=3" || flag.Message != "Enabled new-retry-path for 10% of merchants" {
		t.Errorf("flag = %+v", flag)
	}

	// The request Grafana saw: the look-back, the limit, no alert
	// annotations, the organization, the token.
	reqs := f.seen()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	q := reqs[0].URL.Query()
	if q.Get("from") != "1794651240000" || q.Get("to") != "1795256040000" || q.Get("limit") != "500" || q.Get("type") != "annotation" ||
		q.Has("tags") || q.Has("matchAny") || reqs[0].Header.Get("X-Grafana-Org-Id") != "3" || reqs[0].Header.Get("Accept") != "application/json" {
		t.Errorf("request %s with headers %v", reqs[0].URL, reqs[0].Header)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// An annotation in an alert's own app reaches back to q.History; a
// neighbour's does not; Until cuts off later ones.
func TestQueryWindow(t *testing.T) {
	f := newFakeGrafana(t)
	s, _ := newSource(t, f, Config{}, token)
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	payments := sources.Subject{Namespace: "payments", App: "payments"}
	tests := []struct {
		name         string
		subject      sources.Subject
		since, until time.Time
		history      time.Time
		want         []string
	}{
		{name: "look-back", subject: payments, since: t0.Add(-time.Hour), until: t0, want: []string{"grafana/4107", "grafana/4105"}},
		{name: "until cuts", subject: payments, since: t0.Add(-time.Hour), until: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC), want: []string{"grafana/4105"}},
		{name: "since cuts", subject: payments, since: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC), until: t0, want: []string{"grafana/4107"}},
		{name: "history reaches the last deploy", subject: payments, since: t0.Add(-time.Hour), until: t0, history: t0.Add(-7 * 24 * time.Hour),
			want: []string{"grafana/4107", "grafana/4105", "grafana/4102"}},
		{name: "another app", subject: sources.Subject{App: "checkout"}, since: t0.Add(-time.Hour), until: t0, want: []string{"grafana/4104"}},
		{name: "nobody's", subject: sources.Subject{App: "search"}, since: t0.Add(-time.Hour), until: t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Changes(context.Background(), sources.Query{Subject: tt.subject, Since: tt.since, Until: tt.until, History: tt.history})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, c := range got {
				ids = append(ids, c.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", ids, tt.want)
			}
		})
	}
}

// tags is sent as Grafana's server-side filter, every tag required.
func TestServerSideTagFilter(t *testing.T) {
	f := newFakeGrafana(t)
	s, _ := newSource(t, f, Config{Tags: []string{"deploy", "service"}}, token)
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	q := f.seen()[0].URL.Query()
	if strings.Join(q["tags"], ",") != "deploy,service" || q.Get("matchAny") != "false" {
		t.Errorf("query %v", q)
	}
	got, err := s.Changes(context.Background(), query(sources.Subject{App: "payments"}))
	if err != nil {
		t.Fatal(err)
	}
	// Grafana left out the flag: it is no deploy.
	if len(got) != 1 || got[0].ID != "grafana/4107" {
		t.Errorf("got %+v, want only grafana/4107", got)
	}
}

func TestContract(t *testing.T) {
	f := newFakeGrafana(t)
	s, _ := newSource(t, f, Config{}, token)
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	sourcetest.Contract(t, s, query(sources.Subject{Namespace: "payments", App: "payments"}))
}

func TestNotSyncedBeforeTheFirstRead(t *testing.T) {
	f := newFakeGrafana(t)
	s, _ := newSource(t, f, Config{}, token)
	if s.Ready() {
		t.Error("ready before any read")
	}
	_, err := s.Changes(context.Background(), query(sources.Subject{App: "payments"}))
	if !errors.Is(err, sources.ErrNotSynced) {
		t.Errorf("err = %v, want ErrNotSynced", err)
	}
	if len(f.seen()) != 0 {
		t.Error("a query made a request: alerts must be answered from memory")
	}
}

// The background loop picks up an annotation written after the start, and
// an unchanged answer leaves the index as it is.
func TestBackgroundRefreshPicksUpANewAnnotation(t *testing.T) {
	f := newFakeGrafana(t)
	s, _ := newSource(t, f, Config{Refresh: 20 * time.Millisecond}, token)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	subject := sources.Subject{App: "ledger"}
	waitFor(t, "the first read", func() bool { return s.Ready() })
	if got, err := s.Changes(ctx, query(subject)); err != nil || len(got) != 0 {
		t.Fatalf("before the annotation: %v, %v", got, err)
	}
	waitFor(t, "an unchanged read", func() bool { return s.Stats().Unchanged > 0 })
	f.add(`{"id":4108,"userId":12,"login":"sa-1-github-actions","created":1795255800100,"updated":1795255800100,"time":1795255800000,"timeEnd":1795255800000,"text":"Deployed ledger 0.9.0","tags":["deploy","service:ledger","version:0.9.0"],"data":{}}`)
	var got []sources.Change
	waitFor(t, "the new annotation", func() bool {
		got, _ = s.Changes(ctx, query(subject))
		return len(got) == 1
	})
	if got[0].ID != "grafana/4108" || got[0].Version != "0.9.0" || got[0].Subject.App != "ledger" || got[0].Kind != sources.KindDeploy {
		t.Errorf("got %+v", got[0])
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A failing Grafana: the last good annotations are still answered, with
// the failure beside them; a hanging one delays no answer; once it
// answers again the error goes.
func TestGrafanaDownKeepsTheLastGoodRead(t *testing.T) {
	f := newFakeGrafana(t)
	s, logs := newSource(t, f, Config{}, token)
	ctx := context.Background()
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	q := query(sources.Subject{App: "payments"})

	f.set(http.StatusInternalServerError)
	if err := s.Refresh(ctx); err == nil {
		t.Fatal("no error from a failing Grafana")
	}
	_ = s.Refresh(ctx) // the same failure again: logged once
	got, err := s.Changes(ctx, q)
	if len(got) != 2 || err == nil || !strings.Contains(err.Error(), "Grafana answered 500: Failed to get annotations") ||
		!strings.Contains(err.Error(), "answering from the read of 2026-11-21T10:14:00Z") {
		t.Fatalf("while down: %d changes, err %v", len(got), err)
	}
	if n := strings.Count(logs.String(), "reading annotations failed"); n != 1 {
		t.Errorf("the repeated failure was logged %d times, want once:\n%s", n, logs)
	}

	// Hanging: a read is under way and holds no lock an answer needs.
	hold := make(chan struct{})
	f.mu.Lock()
	f.hold, f.status = hold, 0
	f.mu.Unlock()
	done := make(chan error)
	go func() { done <- s.Refresh(ctx) }()
	waitFor(t, "the hanging request", func() bool { return len(f.seen()) == 4 })
	answered := make(chan int)
	go func() {
		got, _ := s.Changes(ctx, q)
		answered <- len(got)
	}()
	select {
	case n := <-answered:
		if n != 2 {
			t.Errorf("%d changes while a read hangs, want 2", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an answer waited for the hanging read")
	}
	close(hold)
	if err := <-done; err != nil {
		t.Fatalf("after it answered: %v", err)
	}
	if _, err := s.Changes(ctx, q); err != nil {
		t.Errorf("error kept after Grafana answered again: %v", err)
	}
	if !strings.Contains(logs.String(), "grafana answers again") {
		t.Errorf("recovery not logged:\n%s", logs)
	}

	// Gone altogether.
	f.srv.Close()
	if err := s.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "Grafana unreachable") {
		t.Errorf("closed server: %v", err)
	}
	if got, _ := s.Changes(ctx, q); len(got) != 2 {
		t.Errorf("%d changes after Grafana went away, want the last read's 2", len(got))
	}
}

// A rejected token says what to do; the token itself is in no error, log
// line or change.
func TestTokenNeverShows(t *testing.T) {
	f := newFakeGrafana(t)
	ctx := context.Background()
	wrong, logs := newSource(t, f, Config{}, token+"-revoked")
	err := wrong.Refresh(ctx)
	if err == nil || !strings.Contains(err.Error(), "token rejected by Grafana (Unauthorized)") {
		t.Errorf("wrong token: %v", err)
	}
	_, qerr := wrong.Changes(ctx, query(sources.Subject{App: "payments"}))
	if qerr == nil {
		t.Error("no error answered after the token was rejected")
	}

	right, rightLogs := newSource(t, f, Config{}, token)
	if err := right.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := right.Changes(ctx, query(sources.Subject{App: "payments"}))
	f.set(http.StatusBadGateway)
	err2 := right.Refresh(ctx)
	if f.seen()[1].Header.Get("Authorization") != "Bearer "+token {
		t.Fatal("the token was not sent: the test proves nothing")
	}
	for what, text := range map[string]string{
		"error": errString(err), "query error": errString(qerr), "failure": errString(err2),
		"log": logs.String(), "log after success": rightLogs.String(), "changes": mustJSON(t, got),
	} {
		if strings.Contains(text, "MARKER") {
			t.Errorf("the token shows in the %s: %s", what, text)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// A read that returns limit annotations may have cut older ones: said once.
func TestLimitReachedIsLogged(t *testing.T) {
	f := newFakeGrafana(t)
	s, logs := newSource(t, f, Config{Limit: 2}, token)
	for range 2 {
		if err := s.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "older ones in the look-back are not seen"); n != 1 || !s.Stats().Truncated {
		t.Errorf("warned %d times (truncated %v), want once:\n%s", n, s.Stats().Truncated, logs)
	}
	got, _ := s.Changes(context.Background(), query(sources.Subject{App: "payments"}))
	// The two newest annotations (Grafana leaves the alert's out before
	// it counts): 4107 and 4105.
	if len(got) != 2 || got[0].ID != "grafana/4107" || got[1].ID != "grafana/4105" {
		t.Errorf("got %+v", got)
	}
}

func TestUnexpectedAnswer(t *testing.T) {
	f := newFakeGrafana(t)
	f.mu.Lock()
	// A proxy's sign-in page where Grafana was expected.
	f.body = `<!doctype html><html><body>Sign in</body></html>`
	f.mu.Unlock()
	s, _ := newSource(t, f, Config{}, token)
	err := s.Refresh(context.Background())
	if err == nil || !strings.Contains(err.Error(), "unexpected answer from Grafana") {
		t.Errorf("err = %v", err)
	}
}
