// Package e2e runs whatchanged as a process between a real Alertmanager and
// a capture server. `make test` builds Alertmanager into a cache and passes
// its path in WHATCHANGED_ALERTMANAGER.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/test/proctest"
)

var (
	whatchangedBin  string
	alertmanagerBin string
	amtoolBin       string
	prometheusBin   string
)

func TestMain(m *testing.M) {
	// The real components come from `make tools`; a missing one fails the
	// run (it is never a reason to skip).
	for env, dst := range map[string]*string{"WHATCHANGED_ALERTMANAGER": &alertmanagerBin, "WHATCHANGED_AMTOOL": &amtoolBin, "WHATCHANGED_PROMETHEUS": &prometheusBin} {
		*dst = os.Getenv(env)
		if *dst == "" {
			fmt.Fprintf(os.Stderr, "e2e: %s is not set; run `make test`, which installs the real components\n", env)
			os.Exit(1)
		}
		if _, err := os.Stat(*dst); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s: %v; run `make tools`\n", env, err)
			os.Exit(1)
		}
	}
	dir, err := os.MkdirTemp("", "whatchanged-e2e-")
	if err != nil {
		panic(err)
	}
	if whatchangedBin, err = proctest.BuildWhatchanged(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProcess runs a binary until the test ends; its output goes to a log
// file that is printed if the test fails. The returned channel closes if the
// process exits early.
func startProcess(t *testing.T, name, bin string, args ...string) <-chan struct{} {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s log:\n%s", name, b)
		}
	})
	return done
}

// startProcessStoppable is startProcess with a way to stop it early (a
// restart); stopping twice is harmless.
func startProcessStoppable(t *testing.T, name, bin string, args ...string) (stop func()) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
			logFile.Close()
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s log:\n%s", name, b)
		}
	})
	return stop
}

// runAlertmanager runs the real Alertmanager alone (no cluster) on port
// with config until the test ends, and returns its URL once it is ready.
func runAlertmanager(t *testing.T, dir string, port int, config string) string {
	t.Helper()
	cfg := writeFile(t, dir, "alertmanager.yml", config)
	exited := startProcess(t, "alertmanager", alertmanagerBin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "am"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--cluster.listen-address=")
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, url+"/-/ready", exited)
	return url
}

func waitReady(t *testing.T, url string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("process behind %s exited during start-up", url)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 20s", url)
}

// capture is the notifier behind whatchanged. It answers the scripted
// statuses in order (the last one repeats) and records every request.
type capture struct {
	mu       sync.Mutex
	statuses []int
	requests []captured
	arrived  chan struct{}
}

type captured struct {
	body   []byte
	header http.Header
	status int
}

func newCapture(statuses ...int) *capture {
	return &capture{statuses: statuses, arrived: make(chan struct{}, 100)}
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	status := c.statuses[min(len(c.requests), len(c.statuses)-1)]
	c.requests = append(c.requests, captured{body: body, header: r.Header.Clone(), status: status})
	c.mu.Unlock()
	w.WriteHeader(status)
	c.arrived <- struct{}{}
}

// waitAccepted waits until the capture has answered 2xx once.
func (c *capture) waitAccepted(t *testing.T, timeout time.Duration) captured {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		for _, r := range c.requests {
			if r.status < 300 {
				c.mu.Unlock()
				return r
			}
		}
		c.mu.Unlock()
		select {
		case <-c.arrived:
		case <-deadline:
			t.Fatalf("no notification accepted by the capture server within %s (%d requests)", timeout, len(c.requests))
		}
	}
}

// request sends one HTTP request; header is name, value pairs.
func request(t *testing.T, method, url, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, url, body string, header ...string) (int, string) {
	t.Helper()
	return request(t, http.MethodPost, url, body, header...)
}

func get(t *testing.T, url string, header ...string) string {
	t.Helper()
	_, body := request(t, http.MethodGet, url, "", header...)
	return body
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitMetric polls /metrics until series has want: the capture server sees a
// request before whatchanged's delivery returns and counts it.
func waitMetric(t *testing.T, baseURL, series, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		if got = metricValue(get(t, baseURL+"/metrics"), series); got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("%s = %q, want %s", series, got, want)
}

func metricValue(metrics, series string) string {
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}
