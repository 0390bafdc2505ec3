package clusters_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/test/proctest"
)

// whatchanged is the real binary serving on a free port.
type whatchanged struct {
	cmd     *exec.Cmd
	base    string
	log     *proctest.Log
	exited  chan struct{}
	started time.Time // when the process was started
}

// clusterEntry is one clusters: entry of the config.
type clusterEntry struct {
	name       string
	deflt      bool
	kubeconfig string
}

// clustersConfig writes the clusters: list, each cluster's readiness
// grace (sync_timeout) short so a cluster that is down stops holding
// /readyz within the test.
func clustersConfig(entries ...clusterEntry) string {
	var b strings.Builder
	b.WriteString("cluster_label: cluster\nclusters:\n")
	for _, e := range entries {
		fmt.Fprintf(&b, "  - name: %s\n", e.name)
		if e.deflt {
			b.WriteString("    default: true\n")
		}
		fmt.Fprintf(&b, "    kubernetes:\n      kubeconfig: %s\n      sync_timeout: %s\n", e.kubeconfig, syncTimeout)
	}
	return b.String()
}

const (
	syncTimeout = 2 * time.Second
	budget      = 2 * time.Second
	// answerBound is how long an answer may take: the budget, the render
	// grace (200ms) and a second of slack for a loaded machine. It is the
	// fail-open promise (no cluster delays an answer past the budget), not
	// a speed figure.
	answerBound = budget + 200*time.Millisecond + time.Second
)

// startWhatchanged starts `whatchanged serve` with the common settings
// plus extra (clusters: and sources:). ready waits for /readyz 200.
func startWhatchanged(t *testing.T, extra string, ready bool) *whatchanged {
	t.Helper()
	dir := t.TempDir()
	port, err := proctest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf("listen: 127.0.0.1:%d\ndata_dir: %s\nlog: {level: debug, format: text}\nenrich:\n  budget: %s\n%s",
		port, filepath.Join(dir, "data"), budget, extra)
	file := filepath.Join(dir, "whatchanged.yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	wc := &whatchanged{base: fmt.Sprintf("http://127.0.0.1:%d", port), log: &proctest.Log{}, exited: make(chan struct{})}
	wc.cmd = exec.Command(whatchangedBin, "serve", "--config", file)
	wc.cmd.Stdout, wc.cmd.Stderr = wc.log, wc.log
	wc.started = time.Now()
	if err := wc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = wc.cmd.Wait(); close(wc.exited) }()
	t.Cleanup(func() {
		_ = wc.cmd.Process.Kill()
		<-wc.exited
		if t.Failed() {
			t.Logf("whatchanged log (tail):\n%s", wc.logTail(6000))
		}
	})
	if ready {
		wc.waitReady(t, 30*time.Second)
	}
	return wc
}

// waitReady polls /readyz until it answers 200 and returns when it did.
func (wc *whatchanged) waitReady(t *testing.T, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		select {
		case <-wc.exited:
			t.Fatalf("whatchanged exited:\n%s", wc.logTail(4000))
		default:
		}
		code, body := wc.get(t, "/readyz")
		if code == http.StatusOK {
			return time.Now()
		}
		last = fmt.Sprintf("%d %s", code, body)
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("/readyz not 200 within %s (last: %s)", timeout, last)
	return time.Time{}
}

func (wc *whatchanged) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(wc.base + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// answer is explanation.alerts[0] of POST /debug/enrich, the fields the
// tests read.
type answer struct {
	Subject struct {
		Cluster   string `json:"cluster"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"subject"`
	Sources []struct {
		Source string `json:"source"`
		Error  string `json:"error"`
	} `json:"sources"`
	Ranking     []change          `json:"ranking"`
	Suspect     *change           `json:"suspect"`
	Annotations map[string]string `json:"annotations"`

	body string // the whole answer
	took time.Duration
}

type change struct {
	Source  string `json:"source"`
	Kind    string `json:"kind"`
	Subject struct {
		Cluster   string `json:"cluster"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		App       string `json:"app"`
	} `json:"subject"`
	Revision string `json:"revision"`
	Images   []struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"images"`
	Sources []string `json:"sources"`
}

// enrich asks POST /debug/enrich about one firing alert and times the
// whole request.
func (wc *whatchanged) enrich(t *testing.T, labels map[string]string, startsAt time.Time) answer {
	t.Helper()
	alert := []any{map[string]any{"labels": labels, "startsAt": startsAt.UTC().Format(time.RFC3339),
		"endsAt": "0001-01-01T00:00:00Z", "status": "firing"}}
	body, err := json.Marshal(alert)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wc.base+"/debug/enrich", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /debug/enrich: %v", err)
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /debug/enrich %v answered %d: %s", labels, resp.StatusCode, out)
	}
	var r struct {
		Explanation struct {
			Alerts []answer `json:"alerts"`
		} `json:"explanation"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("decode /debug/enrich: %v: %s", err, out)
	}
	if len(r.Explanation.Alerts) != 1 {
		t.Fatalf("/debug/enrich explained %d alerts, want 1: %s", len(r.Explanation.Alerts), out)
	}
	a := r.Explanation.Alerts[0]
	a.body, a.took = string(out), took
	return a
}

func (wc *whatchanged) logTail(n int) string {
	s := wc.log.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}
