package e2e

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A config reload, as Alertmanager's: POST /-/reload and SIGHUP re-read
// the file; a valid one replaces rules, sources and delivery without a
// restart and without dropping notifications under way; an invalid one is
// refused with its error and the old config stays.
func TestConfigReload(t *testing.T) {
	dir := t.TempDir()
	capture := newCapture(200)
	down := httptest.NewServer(capture)
	defer down.Close()
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	config := func(app string) string {
		return fmt.Sprintf(`listen: 127.0.0.1:%d
data_dir: %s
rules:
  - name: checkout
    match: {alertname: CheckoutSlow}
    subject: {namespace: shop, app: %s}
downstreams:
  default:
    url: %s
`, port, filepath.Join(dir, "data"), app, down.URL)
	}
	path := writeFile(t, dir, "whatchanged.yaml", config("before"))
	cmd := exec.Command(whatchangedBin, "serve", "--config", path)
	logPath := filepath.Join(dir, "whatchanged.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- whatchanged log:\n%s", b)
		}
	})
	waitReady(t, base+"/readyz", exited)

	appOf := func() string {
		t.Helper()
		status, body := post(t, base+"/debug/enrich", `{"labels":{"alertname":"CheckoutSlow"}}`)
		if status != 200 {
			t.Fatalf("/debug/enrich: %d %s", status, body)
		}
		var r struct {
			Explanation struct {
				Alerts []struct {
					Subject struct{ App string } `json:"subject"`
				} `json:"alerts"`
			} `json:"explanation"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil || len(r.Explanation.Alerts) != 1 {
			t.Fatalf("/debug/enrich: %v %s", err, body)
		}
		return r.Explanation.Alerts[0].Subject.App
	}
	if got := appOf(); got != "before" {
		t.Fatalf("app %q before any reload", got)
	}

	// A new rule, while notifications stream in: every one is delivered.
	writeFile(t, dir, "whatchanged.yaml", config("after"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	const notifications = 60
	for i := range notifications {
		wg.Go(func() {
			body := fmt.Sprintf(`{"version":"4","status":"firing","receiver":"r","groupKey":"{}:{alertname=\"CheckoutSlow\",n=\"%d\"}","alerts":[{"status":"firing","labels":{"alertname":"CheckoutSlow","n":"%d"},"startsAt":"2026-11-21T10:00:00Z"}]}`, i, i)
			if status, resp := post(t, base+"/webhook", body); status != 200 {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("%d %s", status, resp))
				mu.Unlock()
			}
		})
		if i == notifications/3 {
			start := time.Now()
			if status, resp := post(t, base+"/-/reload", ""); status != 200 {
				t.Errorf("POST /-/reload: %d %s", status, resp)
			}
			t.Logf("reload with notifications under way took %s", time.Since(start).Round(time.Millisecond))
		}
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("%d of %d notifications not delivered across the reload: %v", len(failed), notifications, failed)
	}
	capture.mu.Lock()
	delivered := len(capture.requests)
	capture.mu.Unlock()
	if delivered != notifications {
		t.Errorf("the downstream got %d notifications, want %d", delivered, notifications)
	}
	if got := appOf(); got != "after" {
		t.Errorf("app %q after POST /-/reload, want the new rule's", got)
	}
	waitMetric(t, base, "whatchanged_config_last_reload_successful", "1")

	// A broken config: refused, said why, the previous one serves on.
	writeFile(t, dir, "whatchanged.yaml", config("broken")+"enrich:\n  budgit: 1s\n")
	status, body := post(t, base+"/-/reload", "")
	if status != 500 || !strings.Contains(body, "enrich.budgit: unknown key") || !strings.Contains(body, "previous one stays") {
		t.Errorf("reload of a broken config: %d %s", status, body)
	}
	if got := appOf(); got != "after" {
		t.Errorf("app %q after a refused reload, want the previous config's", got)
	}
	waitMetric(t, base, "whatchanged_config_last_reload_successful", "0")

	// What only a restart can change is refused, not half applied.
	writeFile(t, dir, "whatchanged.yaml", strings.Replace(config("moved"), fmt.Sprintf("127.0.0.1:%d", port), "127.0.0.1:1", 1))
	if status, body := post(t, base+"/-/reload", ""); status != 500 || !strings.Contains(body, "listen changed, which needs a restart") {
		t.Errorf("reload with a new listen address: %d %s", status, body)
	}

	// SIGHUP, as Alertmanager and the config reloaders use.
	writeFile(t, dir, "whatchanged.yaml", config("third"))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for appOf() != "third" {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP: the new rule did not take effect within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitMetric(t, base, "whatchanged_config_last_reload_successful", "1")
	if v := metricValue(get(t, base+"/metrics"), "whatchanged_config_last_reload_success_timestamp_seconds"); v == "" || v == "0" {
		t.Errorf("whatchanged_config_last_reload_success_timestamp_seconds = %q", v)
	}
}
