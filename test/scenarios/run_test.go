package scenarios_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/whatchanged/whatchanged/test/proctest"
)

// TestScenarios runs every scenario file as a subtest, then writes the
// quality summary (stdout, and $WHATCHANGED_QUALITY_REPORT when set).
func TestScenarios(t *testing.T) {
	scenarios, err := loadScenarios(".")
	if err != nil {
		t.Fatal(err)
	}
	if len(scenarios) == 0 {
		t.Fatal("no scenarios (test/scenarios/*.yaml)")
	}
	var q Quality
	for _, sc := range scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			start := time.Now()
			v := runScenario(t, sc)
			q.add(v)
			if !v.Right() {
				msg := fmt.Sprintf("%s (%s) is not right:\n  %s", sc.Name, sc.file, strings.Join(v.Problems, "\n  "))
				if v.Explanation != "" {
					msg += "\n\nwhatchanged answered:\n" + indent(v.Explanation, "  ")
				}
				t.Error(msg)
			}
			if v.Right() && testing.Verbose() { // what a right answer looks like, for whoever writes the next scenario
				t.Logf("whatchanged answered:\n%s", indent(v.Explanation, "  "))
			}
			t.Logf("%s in %s", sc.Name, time.Since(start).Round(time.Millisecond))
		})
	}
	report := q.String()
	fmt.Print("\n" + report)
	if path := os.Getenv("WHATCHANGED_QUALITY_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
			t.Errorf("write quality report: %v", err)
		}
	}
}

// runScenario sets the world up, asks whatchanged, and judges the answer.
// A scenario that cannot be set up is not right either; the reason is its
// problem.
func runScenario(t *testing.T, sc *Scenario) *Verdict {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v := &Verdict{Name: sc.Name}
	if sc.loadErr != nil {
		v.fail("%v", sc.loadErr)
		return v
	}

	startsAt := alertStart(sc, time.Now())
	c, err := setupKube(ctx, sc, startsAt)
	defer func() {
		if err := c.cleanup(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}()
	if err != nil {
		v.fail("setup: %v", err)
		return v
	}

	dir := t.TempDir()
	token := "scenario-token-" + sc.Name
	argo := &argocdFake{recorder: &recorder{}, sc: sc, startsAt: startsAt, token: token}
	gh := &githubFake{recorder: &recorder{}, sc: sc, startsAt: startsAt, token: token, remaining: 5000}
	graf := &grafanaFake{recorder: &recorder{}, sc: sc, startsAt: startsAt, token: token}
	argoSrv, ghSrv, grafSrv := httptest.NewServer(argo), httptest.NewServer(gh), httptest.NewServer(graf)
	defer argoSrv.Close()
	defer ghSrv.Close()
	defer grafSrv.Close()

	wc, err := startWhatchanged(ctx, dir, servers{argocd: argoSrv.URL, github: ghSrv.URL, grafana: grafSrv.URL}, token, sc.Grafana)
	if wc != nil {
		defer wc.stop()
	}
	if err != nil {
		v.fail("start whatchanged: %v", err)
		return v
	}
	if len(graf.seen()) == 0 {
		// Alerts are answered from the last read: before the first one
		// the annotations are not there to be found.
		v.fail("whatchanged was ready (/readyz) before it had read Grafana's annotations")
	}
	for i, ch := range sc.Changes {
		push := wc.push
		if ch.Format != "" {
			push = wc.pushFrom
		}
		if err := push(ctx, ch, startsAt); err != nil {
			v.fail("changes[%d]: %v", i, err)
		}
	}
	if !v.Right() {
		return v
	}
	answer, err := wc.enrich(ctx, sc.Alert, startsAt)
	if err != nil {
		v.fail("enrich: %v", err)
		return v
	}
	v = check(sc, answer, startsAt)
	for _, h := range sc.Expect.Hidden {
		if strings.Contains(wc.log.String(), h) {
			v.fail("hidden: %q appears in whatchanged's log", h)
		}
	}
	if strings.Contains(wc.log.String(), signingSecret) || strings.Contains(string(answer.body), signingSecret) {
		v.fail("hidden: the senders' signing secret appears in whatchanged's log or answer")
	}
	for _, p := range append(append(argo.problems(), gh.problems()...), graf.problems()...) {
		v.fail("%s", p)
	}
	if !v.Right() && testing.Verbose() {
		t.Logf("argocd-server requests:\n  %s\nGitHub requests:\n  %s\nGrafana requests:\n  %s\nwhatchanged log:\n%s",
			strings.Join(argo.seen(), "\n  "), strings.Join(gh.seen(), "\n  "), strings.Join(graf.seen(), "\n  "), wc.logTail(8000))
	}
	return v
}

// alertStart is startsAt: the notification arrives notifiedAfter after the
// alert started (default 5m; a resolved alert's notification is at endsAt).
func alertStart(sc *Scenario, now time.Time) time.Time {
	after := 5 * time.Minute
	switch {
	case sc.Alert.NotifiedAfter != nil:
		after = sc.Alert.NotifiedAfter.D
	case sc.Alert.Status == "resolved" && sc.Alert.EndsAt != nil:
		after = sc.Alert.EndsAt.D
	}
	return now.Add(-after).UTC().Truncate(time.Second)
}

type whatchanged struct {
	cmd    *exec.Cmd
	base   string
	log    *proctest.Log
	exited chan struct{}
}

// servers are the fakes' base URLs.
type servers struct{ argocd, github, grafana string }

// startWhatchanged starts `whatchanged serve` on a config that enables
// every source against the scenario's servers and waits for /readyz,
// which waits for the sources that read in the background (Argo CD,
// Grafana) to finish their first read.
func startWhatchanged(ctx context.Context, dir string, srv servers, token string, graf Grafana) (*whatchanged, error) {
	port, err := proctest.FreePort()
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return nil, err
	}
	secrets := map[string]string{}
	for format := range signatureHeaders {
		secrets[format] = filepath.Join(dir, format+"-signing-secret")
		if err := os.WriteFile(secrets[format], []byte(signingSecret+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	// The sections built from data are written as YAML, not pasted in.
	extra, err := yaml.Marshal(map[string]any{
		"grafana": grafanaConfig(graf, srv.grafana, tokenFile),
		"changes": map[string]any{"enabled": true, "signing_secret_files": secrets},
	})
	if err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`listen: 127.0.0.1:%d
data_dir: %s
log: {level: debug, format: text}
enrich:
  budget: 3s          # generous: make test runs other packages beside this one
sources:
  kubernetes:
    enabled: true
    kubeconfig: %s
    secrets: true     # the Secrets workloads use (key names only)
    helm: true        # Helm release records
  argocd:
    enabled: true
    server: %s
    http_config:
      authorization: {credentials_file: %s}
    ui_url: https://argocd.example.com
    refresh: 5s
  github:
    enabled: true
    base_url: %s
    http_config:
      authorization: {credentials_file: %s}
      proxy_url: %s   # the fake stands in for github.com as a proxy would
    refresh: 30s
%s`, port, filepath.Join(dir, "data"), kubeconfig, srv.argocd, tokenFile, githubAPI, tokenFile, srv.github, indent(string(extra), "  "))
	configFile := filepath.Join(dir, "whatchanged.yaml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		return nil, err
	}
	wc := &whatchanged{base: fmt.Sprintf("http://127.0.0.1:%d", port), log: &proctest.Log{}, exited: make(chan struct{})}
	wc.cmd = exec.Command(whatchangedBin, "serve", "--config", configFile)
	wc.cmd.Env = processEnv()
	wc.cmd.Stdout, wc.cmd.Stderr = wc.log, wc.log
	if err := wc.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = wc.cmd.Wait(); close(wc.exited) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-wc.exited:
			return wc, fmt.Errorf("whatchanged exited during start-up:\n%s", wc.logTail(4000))
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, wc.base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return wc, nil
			}
			if time.Now().After(deadline) {
				return wc, fmt.Errorf("/readyz still %d after 20s: %s\n%s", resp.StatusCode, body, wc.logTail(4000))
			}
		} else if time.Now().After(deadline) {
			return wc, fmt.Errorf("/readyz unreachable after 20s: %v\n%s", err, wc.logTail(4000))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processEnv is this process's environment without proxy settings: the
// fake GitHub is reached through the config's http_config.proxy_url.
func processEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY":
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (wc *whatchanged) stop() {
	_ = wc.cmd.Process.Kill()
	<-wc.exited
}

func (wc *whatchanged) logTail(n int) string {
	s := wc.log.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

func (wc *whatchanged) post(ctx context.Context, path string, body any) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wc.base+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// push records one CI event through POST /api/v1/changes.
func (wc *whatchanged) push(ctx context.Context, ch PushedChange, startsAt time.Time) error {
	body := map[string]any{"kind": ch.Kind, "subject": ch.Subject}
	for k, v := range map[string]string{"id": ch.ID, "revision": ch.Revision, "previousRevision": ch.PreviousRevision,
		"version": ch.Version, "previousVersion": ch.PreviousVersion, "status": ch.Status, "author": ch.Author,
		"deployedBy": ch.DeployedBy, "message": ch.Message, "url": ch.URL, "compareUrl": ch.CompareURL} {
		if v != "" {
			body[k] = v
		}
	}
	if ch.At != nil {
		body["time"] = ts(ch.At.From(startsAt))
	}
	if ch.FinishedAt != nil {
		body["finishedAt"] = ts(ch.FinishedAt.From(startsAt))
	}
	status, out, err := wc.post(ctx, "/api/v1/changes", body)
	if err != nil {
		return err
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return fmt.Errorf("POST /api/v1/changes answered %d: %s", status, bytes.TrimSpace(out))
	}
	return nil
}

// enrich asks POST /debug/enrich about the scenario's alert.
func (wc *whatchanged) enrich(ctx context.Context, a Alert, startsAt time.Time) (*AlertAnswer, error) {
	status := a.Status
	if status == "" {
		status = "firing"
	}
	alert := map[string]any{"labels": a.Labels, "startsAt": ts(startsAt), "endsAt": "0001-01-01T00:00:00Z", "status": status}
	if len(a.Annotations) > 0 {
		alert["annotations"] = a.Annotations
	}
	if status == "resolved" {
		alert["endsAt"] = ts(a.EndsAt.From(startsAt))
	}
	code, out, err := wc.post(ctx, "/debug/enrich", []any{alert})
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("POST /debug/enrich answered %d: %s", code, bytes.TrimSpace(out))
	}
	var resp struct {
		Explanation struct {
			Alerts []AlertAnswer `json:"alerts"`
		} `json:"explanation"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("decode /debug/enrich: %w: %s", err, out)
	}
	if len(resp.Explanation.Alerts) != 1 {
		return nil, fmt.Errorf("/debug/enrich explained %d alerts, want 1: %s", len(resp.Explanation.Alerts), out)
	}
	answer := &resp.Explanation.Alerts[0]
	answer.body = out
	return answer, nil
}
