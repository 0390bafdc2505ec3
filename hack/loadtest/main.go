// Command loadtest measures what whatchanged adds to a notification's path.
// On loopback it runs a capture server (the notifier), a plain pass-through
// proxy (a hop that does no enrichment), and the whatchanged binary with a
// store of pushed changes; N concurrent senders post realistic webhook
// payloads of 1, 10 and 200 alerts through each, and it prints throughput,
// p50/p99 latency, the latency whatchanged adds over the pass-through, and
// whatchanged's peak RSS. It asserts nothing.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/whatchanged", "whatchanged binary")
	senders := flag.Int("senders", 8, "concurrent senders of the loaded runs (a single sender always runs too)")
	duration := flag.Duration("duration", 3*time.Second, "how long each scenario runs")
	workloads := flag.Int("workloads", 50, "distinct workloads in the store and the alerts")
	nchanges := flag.Int("changes", 2000, "pushed changes in the store")
	flag.Parse()

	capture := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}
	passthrough := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		resp, err := client.Post(capture+"/notify", "application/json", bytes.NewReader(body))
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	}))

	dir, err := os.MkdirTemp("", "whatchanged-load-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	port := freePort()
	cfg := filepath.Join(dir, "c.yaml")
	must(os.WriteFile(cfg, []byte(fmt.Sprintf("listen: 127.0.0.1:%d\ndata_dir: %s\nlog: {level: warn}\ndownstreams:\n  default:\n    url: %s/notify\n", port, dir, capture)), 0o600))
	cmd := exec.Command(*bin, "serve", "--config", cfg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	must(cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	wc := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(wc + "/readyz")

	now := time.Now().UTC()
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < *nchanges; i++ {
		w := i % *workloads
		at := now.Add(-time.Duration(rng.Int63n(int64(23 * time.Hour))))
		body := fmt.Sprintf(`{"id":"load-%d","kind":"deploy","subject":{"namespace":"shop","kind":"Deployment","name":"svc-%d","app":"svc-%d","repo":"github.com/acme/svc-%d"},"version":"svc-%d:1.%d.0","author":"ci","message":"release %d","time":%q}`,
			i, w, w, w, w, i, i, at.Format(time.RFC3339))
		resp, err := client.Post(wc+"/api/v1/changes", "application/json", strings.NewReader(body))
		must(err)
		resp.Body.Close()
	}

	fmt.Printf("loopback load: %s per scenario, %d pushed changes over %d workloads in one namespace, %d cores\n\n",
		*duration, *nchanges, *workloads, numCPU())
	fmt.Printf("%-12s %7s %7s %10s %10s %10s %11s %11s\n", "target", "senders", "alerts", "notif/s", "p50", "p99", "added p50", "added p99")
	for _, conc := range []int{1, *senders} {
		for _, size := range []int{1, 10, 200} {
			payload := webhookPayload(size, *workloads, now)
			base := run(client, passthrough+"/webhook", payload, conc, *duration)
			enr := run(client, wc+"/webhook", payload, conc, *duration)
			fmt.Printf("%-12s %7d %7d %10.0f %10s %10s\n", "pass-through", conc, size, base.rate, base.p50, base.p99)
			fmt.Printf("%-12s %7d %7d %10.0f %10s %10s %11s %11s\n", "whatchanged", conc, size, enr.rate, enr.p50, enr.p99,
				(enr.p50 - base.p50).Round(time.Microsecond), (enr.p99 - base.p99).Round(time.Microsecond))
			if enr.failed+base.failed > 0 {
				fmt.Printf("  (failed requests: pass-through %d, whatchanged %d)\n", base.failed, enr.failed)
			}
		}
	}
	fmt.Printf("\nwhatchanged peak RSS (VmHWM): %s\n", peakRSS(cmd.Process.Pid))
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	fmt.Printf("\nmax-size notifications (a body just under server.max_body_bytes, 8 MiB of small alerts), each level on a fresh process:\n")
	fmt.Printf("%8s %8s %10s %10s %12s %s\n", "parallel", "alerts", "p50", "max", "peak RSS", "answers")
	body, n := maxSizePayload(8<<20, now)
	for _, par := range []int{1, 4, 8} {
		maxSize(*bin, capture, body, n, par)
	}
}

// maxSizePayload is a webhook body of as many small alerts as fit under
// limit bytes: the worst a sender within the body limit can do.
func maxSizePayload(limit int, startsAt time.Time) ([]byte, int) {
	head := `{"version":"4","groupKey":"{}:{alertname=\"Flood\"}","status":"firing","receiver":"whatchanged","groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://alertmanager:9093","alerts":[`
	var b strings.Builder
	b.WriteString(head)
	n := 0
	for {
		a := fmt.Sprintf(`{"status":"firing","labels":{"alertname":"Flood","namespace":"shop","pod":"svc-%d-7d9f8b6c4-x%05d"},"annotations":{},"startsAt":%q,"fingerprint":"%016x"}`,
			n%50, n, startsAt.Format(time.RFC3339), n)
		if b.Len()+len(a)+3 > limit-1024 {
			break
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a)
		n++
	}
	b.WriteString("]}")
	return []byte(b.String()), n
}

// maxSize posts par max-size bodies at once to a fresh whatchanged and
// prints their latencies, the process's peak RSS and what each sender got.
func maxSize(bin, capture string, body []byte, n, par int) {
	dir, err := os.MkdirTemp("", "whatchanged-maxsize-")
	must(err)
	defer os.RemoveAll(dir)
	port := freePort()
	cfg := filepath.Join(dir, "c.yaml")
	must(os.WriteFile(cfg, []byte(fmt.Sprintf("listen: 127.0.0.1:%d\ndata_dir: %s\nlog: {level: warn}\ndownstreams:\n  default:\n    url: %s/notify\n", port, dir, capture)), 0o600))
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	must(cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(url + "/readyz")
	client := &http.Client{Timeout: 2 * time.Minute}
	lat := make([]time.Duration, par)
	answers := make([]string, par)
	var wg sync.WaitGroup
	for i := range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			resp, err := client.Post(url+"/webhook", "application/json", bytes.NewReader(body))
			lat[i] = time.Since(t0)
			if err != nil {
				answers[i] = "error: " + err.Error()
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answers[i] = fmt.Sprint(resp.StatusCode)
		}()
	}
	wg.Wait()
	sorted := append([]time.Duration(nil), lat...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	counts := map[string]int{}
	for _, a := range answers {
		counts[a]++
	}
	var parts []string
	for a, c := range counts {
		parts = append(parts, fmt.Sprintf("%d×%s", c, a))
	}
	sort.Strings(parts)
	fmt.Printf("%8d %8d %10s %10s %12s %s\n", par, n, sorted[len(sorted)/2].Round(time.Millisecond), sorted[len(sorted)-1].Round(time.Millisecond),
		peakRSS(cmd.Process.Pid), strings.Join(parts, " "))
}

type result struct {
	rate     float64
	p50, p99 time.Duration
	failed   int
}

func run(client *http.Client, url string, payload []byte, senders int, d time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	failed := 0
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for ctx.Err() == nil {
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(payload))
				if err != nil {
					bad++
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			failed += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 {
		return result{failed: failed}
	}
	return result{
		rate:   float64(len(lat)) / elapsed.Seconds(),
		p50:    lat[len(lat)/2].Round(time.Microsecond),
		p99:    lat[len(lat)*99/100].Round(time.Microsecond),
		failed: failed,
	}
}

// webhookPayload is an Alertmanager v4 body of n alerts spread over the
// workloads, as a KubePodCrashLooping-style group would be.
func webhookPayload(n, workloads int, startsAt time.Time) []byte {
	var alerts []string
	for i := 0; i < n; i++ {
		w := i % workloads
		alerts = append(alerts, fmt.Sprintf(`{"status":"firing","labels":{"alertname":"KubePodCrashLooping","namespace":"shop","pod":"svc-%d-7d9f8b6c4-x%04d","container":"app","severity":"warning","job":"kube-state-metrics","instance":"10.0.0.%d:8080"},"annotations":{"description":"Pod shop/svc-%d is in CrashLoopBackOff","runbook_url":"https://runbooks.example.com/KubePodCrashLooping","summary":"Pod is crash looping."},"startsAt":%q,"endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=max_over_time","fingerprint":"%016x"}`,
			w, i, i%250, w, startsAt.Add(-time.Duration(i)*time.Second).Format(time.RFC3339), i))
	}
	return []byte(fmt.Sprintf(`{"version":"4","groupKey":"{}:{alertname=\"KubePodCrashLooping\"}","truncatedAlerts":0,"status":"firing","receiver":"whatchanged","groupLabels":{"alertname":"KubePodCrashLooping"},"commonLabels":{"alertname":"KubePodCrashLooping","namespace":"shop"},"commonAnnotations":{},"externalURL":"http://alertmanager:9093","alerts":[%s]}`,
		strings.Join(alerts, ",")))
}

func serve(h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	go func() { _ = http.Serve(ln, h) }()
	return "http://" + ln.Addr().String()
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitReady(url string) {
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Fatalf("%s never became ready", url)
}

func peakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
