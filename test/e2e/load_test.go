package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Eight senders post a max-size notification each at once. whatchanged
// admits what server.max_inflight_bytes allows (two here), lets the others
// wait their turn or answers them 503 with Retry-After — never a closed
// connection, never a late answer — and every 200 was delivered. The
// downstream is slow, so admitted requests overlap; it must never see more
// deliveries at once than the limit admits. (Memory and latency figures
// come from `make bench`.)
func TestParallelMaxSizeNotificationsAreAdmittedWithinTheLimit(t *testing.T) {
	var now, peak, delivered atomic.Int32
	ds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		defer now.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(300 * time.Millisecond)
		delivered.Add(1)
	}))
	t.Cleanup(ds.Close)
	dir := t.TempDir()
	port := freePort(t)
	const maxBody = 1 << 20
	cfg := writeFile(t, dir, "whatchanged.yaml", fmt.Sprintf(`listen: 127.0.0.1:%d
data_dir: %s/data
server:
  max_body_bytes: %d
  max_inflight_bytes: %d
  inflight_wait: 500ms
downstreams:
  default:
    url: %s/notify
`, port, dir, maxBody, 2*maxBody, ds.URL))
	exited := startProcess(t, "whatchanged", whatchangedBin, "serve", "--config", cfg)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, base+"/readyz", exited)

	var alerts []string
	size := 0
	for i := 0; size < maxBody-4096; i++ {
		a := fmt.Sprintf(`{"status":"firing","labels":{"alertname":"Flood","namespace":"shop","pod":"svc-%d-7d9f8b6c4-x%05d"},"annotations":{},"startsAt":"2026-11-28T10:00:00Z","fingerprint":"%016x"}`, i%50, i, i)
		alerts = append(alerts, a)
		size += len(a) + 1
	}
	body := []byte(`{"version":"4","status":"firing","alerts":[` + strings.Join(alerts, ",") + `]}`)

	type answer struct {
		status     int
		retryAfter string
		err        error
	}
	answers := make([]answer, 8)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(base+"/webhook", "application/json", bytes.NewReader(body))
			if err != nil {
				answers[i] = answer{err: err}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answers[i] = answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
		}()
	}
	wg.Wait()
	ok := 0
	for i, a := range answers {
		switch {
		case a.err != nil:
			t.Errorf("sender %d got no answer: %v", i, a.err)
		case a.status == http.StatusOK:
			ok++
		case a.status == http.StatusServiceUnavailable && a.retryAfter != "":
		default:
			t.Errorf("sender %d: %d (Retry-After %q)", i, a.status, a.retryAfter)
		}
	}
	if int(delivered.Load()) != ok || ok == 0 {
		t.Errorf("%d senders got 200, the downstream received %d", ok, delivered.Load())
	}
	if peak.Load() > 2 {
		t.Errorf("the downstream saw %d deliveries at once; max_inflight_bytes admits 2", peak.Load())
	}
	if m := metricValue(get(t, base+"/metrics"), "whatchanged_inflight_bytes"); m != "0" {
		t.Errorf("whatchanged_inflight_bytes = %q after every request ended", m)
	}
	t.Logf("answers: %d×200, %d×503; downstream peak concurrency %d", ok, 8-ok, peak.Load())
}
