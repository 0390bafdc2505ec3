package enrich

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/whatchanged/whatchanged/sources/argocd"
	"github.com/whatchanged/whatchanged/test/proctest"
)

// hungArgoCD is an argocd-server that accepts connections and never
// answers, until answer is called; then it serves the app shop-api with
// one sync (a Helm chart: no commit metadata to ask for).
type hungArgoCD struct {
	srv       *httptest.Server
	hits      atomic.Int64
	answering atomic.Bool
}

const shopAPI = `{"metadata":{"name":"shop-api","namespace":"argocd"},
 "spec":{"source":{"repoURL":"https://charts.example.com","chart":"shop-api","targetRevision":"1.4.0"},"destination":{"namespace":"shop"}},
 "status":{"history":[{"id":7,"revision":"1.4.0","deployedAt":"2026-11-21T10:02:49Z","deployStartedAt":"2026-11-21T10:02:11Z",
  "source":{"repoURL":"https://charts.example.com","chart":"shop-api","targetRevision":"1.4.0"},"initiatedBy":{"username":"alice"}}]}}`

func newHungArgoCD(t testing.TB) *hungArgoCD {
	h := &hungArgoCD{}
	stop := make(chan struct{})
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		if !h.answering.Load() {
			select { // hang until the client gives up
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		if r.URL.Path != "/api/v1/applications/shop-api" {
			t.Errorf("unexpected request %s", r.URL)
			w.WriteHeader(http.StatusNotImplemented)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, shopAPI)
	}))
	t.Cleanup(h.srv.Close)
	t.Cleanup(func() { close(stop) }) // runs first: Close waits for handlers
	return h
}

func (h *hungArgoCD) answer() { h.answering.Store(true) }

// value reads a gauge or counter as /metrics would show it.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Gauge != nil {
		return d.GetGauge().GetValue()
	}
	return d.GetCounter().GetValue()
}

// source is the real Argo CD source over REST, not started (no poll): every
// alert's app is asked for on its own, as for an app created since the poll.
func (h *hungArgoCD) source() *argocd.Source {
	return argocd.New("argocd", argocd.Config{Server: h.srv.URL}, h.srv.Client(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func TestHungSourceGoesDownAnswersAtOnceAndComesBack(t *testing.T) {
	hung := newHungArgoCD(t)
	m := NewMetrics(prometheus.NewRegistry())
	r, err := NewResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	const budget = 500 * time.Millisecond
	var logged proctest.Log
	e := New(Options{Budget: budget}, r, []SourceEntry{{Source: hung.source()}}, m).WithLog(slog.New(slog.NewTextHandler(&logged, nil)))
	e.now = func() time.Time { return t0 } // 10:14 UTC
	t.Cleanup(e.StopProbes)
	up := func() float64 { return value(t, m.sourceUp.WithLabelValues("argocd", "")) }
	send := func() (*Alert, AlertReport, time.Duration) {
		a := alert(map[string]string{"argocd_app": "shop-api", "namespace": "shop"})
		start := time.Now()
		rep := e.Enrich(context.Background(), []*Alert{a}, nil)
		return a, rep.Alerts[0], time.Since(start)
	}

	for i := range downAfter {
		if i > 0 && up() != 1 {
			t.Fatalf("whatchanged_source_up = %v after %d timeouts, want 1", up(), i)
		}
		a, _, _ := send()
		if got := a.Annotations["whatchanged_error"]; got != "argocd: timeout after 500ms" {
			t.Fatalf("alert %d: whatchanged_error = %q, want the one timeout text", i+1, got)
		}
	}
	if up() != 0 {
		t.Fatalf("whatchanged_source_up = %v after %d timeouts in a row, want 0", up(), downAfter)
	}

	asked := hung.hits.Load()
	const down = "not answering since 10:14 UTC (timeout)"
	a4, rep4, took := send()
	if took > budget/5 {
		t.Errorf("alert 4 took %s with the source down, want well within the %s budget", took, budget)
	}
	if got := a4.Annotations["whatchanged_error"]; got != "argocd: "+down {
		t.Errorf("alert 4: whatchanged_error = %q, want %q", got, "argocd: "+down)
	}
	// What /debug/enrich shows.
	if s := rep4.Sources; len(s) != 1 || s[0].Error != down || !s[0].Down || s[0].TimedOut {
		t.Errorf("report of alert 4: %+v", s)
	}
	a5, _, _ := send() // a re-send
	j4, _ := json.Marshal(a4.Annotations)
	j5, _ := json.Marshal(a5.Annotations)
	if !bytes.Equal(j4, j5) {
		t.Errorf("a re-send changed the annotations:\n%s\n%s", j4, j5)
	}
	if n := hung.hits.Load(); n != asked {
		t.Errorf("the down source was asked %d more times", n-asked)
	}
	if n := value(t, m.sourceCalls.WithLabelValues("argocd", "down")); n != 2 {
		t.Errorf(`whatchanged_source_calls_total{outcome="down"} = %v, want 2`, n)
	}

	hung.answer()
	// The probe asks again 1s after the source went down.
	for wait := time.Now().Add(10 * time.Second); up() != 1 && time.Now().Before(wait); {
		time.Sleep(20 * time.Millisecond)
	}
	if up() != 1 {
		t.Fatalf("whatchanged_source_up = %v 10s after the server answers again, want 1", up())
	}
	a6, _, _ := send()
	if got := a6.Annotations["whatchanged_error"]; got != "" {
		t.Errorf("after it came back: whatchanged_error = %q", got)
	}
	if got := a6.Annotations["whatchanged_suspect"]; !strings.HasPrefix(got, "argocd sync of shop-api") {
		t.Errorf("after it came back: suspect = %q, want the sync", got)
	}
	// Going down and coming back are logged, once each.
	if l := logged.String(); strings.Count(l, "source not answering") != 1 || strings.Count(l, "source answers again") != 1 {
		t.Errorf("log:\n%s", l)
	}
}

// A timeout reads the same whichever deadline struck and however the
// source reports it, so re-sends of an alert carry the same annotation.
func TestTimeoutReadsOneWay(t *testing.T) {
	hung := newHungArgoCD(t)
	for _, tt := range []struct {
		name   string
		budget time.Duration
		entry  SourceEntry
		want   string
	}{
		{name: "the budget cuts off a source that ignores its context", budget: 200 * time.Millisecond,
			entry: SourceEntry{Source: &staticSource{name: "argocd", delay: 2 * time.Second, ignore: true}}, want: "argocd: timeout after 200ms"},
		{name: "the budget ends a source's query", budget: 200 * time.Millisecond,
			entry: SourceEntry{Source: &staticSource{name: "argocd", delay: 2 * time.Second}}, want: "argocd: timeout after 200ms"},
		{name: "the source's own deadline", budget: 300 * time.Millisecond,
			entry: SourceEntry{Source: &staticSource{name: "argocd", delay: 2 * time.Second}, Timeout: 100 * time.Millisecond}, want: "argocd: timeout after 100ms"},
		{name: "the source reports its request's timeout", budget: 200 * time.Millisecond,
			entry: SourceEntry{Source: hung.source()}, want: "argocd: timeout after 200ms"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnricher(t, Options{Budget: tt.budget}, nil, tt.entry)
			t.Cleanup(e.StopProbes)
			a := alert(map[string]string{"argocd_app": "shop-api", "namespace": "shop"})
			e.Enrich(context.Background(), []*Alert{a}, nil)
			if got := a.Annotations["whatchanged_error"]; got != tt.want {
				t.Errorf("whatchanged_error = %q, want %q", got, tt.want)
			}
		})
	}
}

// A source that answers with errors answers: it is not taken down (its
// errors may be about one subject, and come with stale changes).
func TestFailingSourceIsNotTakenDown(t *testing.T) {
	src := &staticSource{name: "github", err: errString("repository acme/gone not found or not visible to the token")}
	e := newTestEnricher(t, Options{}, nil, SourceEntry{Source: src})
	t.Cleanup(e.StopProbes)
	for range 2 * downAfter {
		a := alert(map[string]string{"namespace": "shop", "deployment": "api", "repo": "github.com/acme/gone"})
		e.Enrich(context.Background(), []*Alert{a}, nil)
		if got := a.Annotations["whatchanged_error"]; !strings.HasSuffix(got, "not visible to the token") {
			t.Fatalf("whatchanged_error = %q", got)
		}
	}
	if n := src.calls.Load(); n != 2*downAfter {
		t.Errorf("source asked %d times, want every time (%d)", n, 2*downAfter)
	}
}

// BenchmarkHungSource prints how long alerts 1, 10 and 1000 take, one
// notification after another, when argocd-server accepts connections and
// never answers (the default 1s budget); how many of the 1000 waited for
// the budget, and the time all took.
func BenchmarkHungSource(b *testing.B) {
	for b.Loop() {
		hung := newHungArgoCD(b)
		r, err := NewResolver(nil)
		if err != nil {
			b.Fatal(err)
		}
		e := New(Options{}, r, []SourceEntry{{Source: hung.source()}}, nil)
		var took [1001]time.Duration
		var total time.Duration
		waited := 0
		for i := 1; i <= 1000; i++ {
			a := alert(map[string]string{"argocd_app": "shop-api", "namespace": "shop", "pod": fmt.Sprintf("api-7d9f8b6c4-%05d", i)})
			start := time.Now()
			e.Enrich(context.Background(), []*Alert{a}, nil)
			took[i] = time.Since(start)
			total += took[i]
			if took[i] > e.opts.Budget/2 {
				waited++
			}
		}
		e.StopProbes()
		for _, i := range []int{1, 10, 1000} {
			b.ReportMetric(float64(took[i].Microseconds())/1000, fmt.Sprintf("ms-alert-%d", i))
		}
		b.ReportMetric(float64(waited), "alerts-waited-for-the-budget")
		b.ReportMetric(total.Seconds(), "s-all-1000")
	}
}
