package github

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkRefreshBudget measures what keeping 50 repositories fresh costs
// per hour at the default refresh interval (5 min: 12 refreshes an hour):
// requests sent, and how many of them count against the rate limit (304s
// do not). Two cases: nothing changes; one repository gets a new release
// every minute.
func BenchmarkRefreshBudget(b *testing.B) {
	for _, tc := range []struct {
		name     string
		changing bool
	}{{"unchanged", false}, {"one-repo-changes-every-minute", true}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				f := newFakeGitHub(b)
				for i := 0; i < 50; i++ {
					f.serveRepo("acme", fmt.Sprintf("svc-%d", i), now)
				}
				s, err := New("github", Config{BaseURL: f.baseURL()}, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < 50; i++ {
					if _, err := s.Changes(context.Background(), query(host(f)+fmt.Sprintf("/acme/svc-%d", i))); err != nil {
						b.Fatal(err)
					}
				}
				_, coldFull, _ := f.counts()
				coldReq := s.Stats().Requests
				refreshes := int(time.Hour / s.cfg.Refresh)
				for r := 0; r < refreshes; r++ {
					if tc.changing {
						for m := 0; m < int(s.cfg.Refresh/time.Minute); m++ { // a release a minute since the last refresh
							f.mu.Lock()
							key := "GET /repos/acme/svc-0/releases"
							f.routes[key] = strings.Replace(f.routes[key], `"tag_name":"v1.8.4"`, fmt.Sprintf(`"tag_name":"v1.8.4","x":"%d-%d"`, r, m), 1)
							f.etags[key] = fmt.Sprintf(`W/"%d-%d"`, r, m)
							f.mu.Unlock()
						}
					}
					s.RefreshAll(context.Background())
				}
				_, full, notMod := f.counts()
				b.ReportMetric(float64(s.Stats().Requests-coldReq), "requests/h")
				b.ReportMetric(float64(full-coldFull), "rate-limited-requests/h")
				b.ReportMetric(float64(notMod), "304s/h")
				b.ReportMetric(float64(coldReq), "cold-requests")
			}
		})
	}
}
