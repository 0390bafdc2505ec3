package github

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGitHub speaks GitHub's REST API under a GHES-style /api/v3 base path:
// real paths, JSON shapes, ETags with 304s, rate-limit headers. Any request
// it was not told about fails the test.
type fakeGitHub struct {
	t   testing.TB
	srv *httptest.Server

	mu        sync.Mutex
	routes    map[string]string // "GET /repos/acme/api/releases" → JSON body
	compares  map[string]pagedCompare
	uris      map[string]int // path and query → requests
	failPages bool           // when set: compare pages after the first answer 502
	etags     map[string]string
	hits      map[string]int // path → requests
	full      int            // answered 200 (cost rate limit)
	notMod    int            // answered 304
	limitWith int            // when set: answer every request with this status (403/429) and rate-limit headers
	delay     time.Duration
	auth      []string // Authorization headers seen
}

func newFakeGitHub(t testing.TB) *fakeGitHub {
	f := &fakeGitHub{t: t, routes: map[string]string{}, compares: map[string]pagedCompare{}, etags: map[string]string{}, hits: map[string]int{}, uris: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGitHub) baseURL() string { return f.srv.URL + "/api/v3/" }

// set serves body at path; the ETag changes with the body.
func (f *fakeGitHub) set(method, path, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := method + " " + path
	f.routes[key] = body
	f.etags[key] = fmt.Sprintf(`W/"%x"`, len(body)*7919+strings.Count(body, "a"))
}

func (f *fakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/api/v3")
	if !ok {
		f.t.Errorf("request outside the API base path: %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hits[path]++
	f.uris[path+"?"+r.URL.RawQuery]++
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-GitHub-Api-Version-Selected", "2022-11-28")
	if f.limitWith != 0 {
		reset := time.Now().Add(20 * time.Minute).Unix()
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", fmt.Sprint(reset))
		if f.limitWith == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "60")
		}
		w.WriteHeader(f.limitWith)
		fmt.Fprint(w, `{"message":"API rate limit exceeded for installation ID 42.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}`)
		return
	}
	key := r.Method + " " + path
	body, ok := f.routes[key]
	if pc, paged := f.compares[path]; paged && r.Method == http.MethodGet {
		if p := r.URL.Query().Get("page"); f.failPages && p != "" && p != "1" {
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, `{"message":"Server Error"}`)
			return
		}
		body, ok = f.comparePage(w, r, path, pc)
		key += "?" + r.URL.RawQuery
		f.etags[key] = fmt.Sprintf(`W/"%x"`, len(body)*7919+strings.Count(body, "a"))
	}
	if !ok {
		if r.Method == http.MethodGet && strings.HasPrefix(path, "/repos/") {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}`)
			return
		}
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	w.Header().Set("X-RateLimit-Limit", "5000")
	if etag := f.etags[key]; r.Method == http.MethodGet && r.Header.Get("If-None-Match") == etag {
		f.notMod++
		w.Header().Set("ETag", etag)
		w.Header().Set("X-RateLimit-Remaining", fmt.Sprint(5000-f.full))
		w.WriteHeader(http.StatusNotModified)
		return
	}
	f.full++
	w.Header().Set("X-RateLimit-Remaining", fmt.Sprint(5000-f.full))
	if r.Method == http.MethodGet {
		w.Header().Set("ETag", f.etags[key])
	}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		status = http.StatusCreated
	}
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func (f *fakeGitHub) counts() (hits map[string]int, full, notMod int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := map[string]int{}
	for k, v := range f.hits {
		h[k] = v
	}
	return h, f.full, f.notMod
}

// serveRepo installs a repository with two releases (and a draft), two
// deployments with statuses, and the compares between them, all as GitHub
// returns them (trimmed to the fields that matter, keys as in the API).
func (f *fakeGitHub) serveRepo(owner, name string, t0 time.Time) {
	repo := owner + "/" + name
	ts := func(d time.Duration) string { return t0.Add(d).UTC().Format(time.RFC3339) }
	f.set("GET", "/repos/"+repo+"/releases", fmt.Sprintf(`[
 {"url":"https://ghe.example.com/api/v3/repos/%[1]s/releases/3","html_url":"https://ghe.example.com/%[1]s/releases/tag/v1.9.0-rc1","id":3,"tag_name":"v1.9.0-rc1","target_commitish":"main","name":"v1.9.0-rc1","draft":true,"prerelease":true,"created_at":%[2]q,"published_at":null,"author":{"login":"carol","id":3,"type":"User"}},
 {"url":"https://ghe.example.com/api/v3/repos/%[1]s/releases/2","html_url":"https://ghe.example.com/%[1]s/releases/tag/v1.8.4","id":2,"tag_name":"v1.8.4","target_commitish":"main","name":"v1.8.4: retry budget","draft":false,"prerelease":false,"created_at":%[3]q,"published_at":%[3]q,"author":{"login":"alice","id":1,"type":"User"},"assets":[],"body":"Fixes the retry budget."},
 {"url":"https://ghe.example.com/api/v3/repos/%[1]s/releases/1","html_url":"https://ghe.example.com/%[1]s/releases/tag/v1.8.3","id":1,"tag_name":"v1.8.3","target_commitish":"main","name":"v1.8.3","draft":false,"prerelease":false,"created_at":%[4]q,"published_at":%[4]q,"author":{"login":"bob","id":2,"type":"User"},"assets":[]}
]`, repo, ts(-time.Minute), ts(-20*time.Minute), ts(-72*time.Hour)))
	f.set("GET", "/repos/"+repo+"/compare/v1.8.3...v1.8.4", fmt.Sprintf(`{
 "url":"https://ghe.example.com/api/v3/repos/%[1]s/compare/v1.8.3...v1.8.4","html_url":"https://ghe.example.com/%[1]s/compare/v1.8.3...v1.8.4",
 "status":"ahead","ahead_by":3,"behind_by":0,"total_commits":3,
 "commits":[
  {"sha":"aaa1111","commit":{"message":"add retry budget metric\n\nlong body","author":{"name":"Alice","email":"a@example.com","date":%[2]q}},"author":{"login":"alice"}},
  {"sha":"bbb2222","commit":{"message":"tune backoff","author":{"name":"Dan","email":"d@example.com","date":%[2]q}},"author":{"login":"dan"}},
  {"sha":"ccc3333","commit":{"message":"fix retry budget","author":{"name":"Alice","email":"a@example.com","date":%[2]q}},"author":{"login":"alice"}}],
 "files":[]}`, repo, ts(-30*time.Minute)))
	f.set("GET", "/repos/"+repo+"/deployments", fmt.Sprintf(`[
 {"url":"https://ghe.example.com/api/v3/repos/%[1]s/deployments/12","id":12,"sha":"9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f","ref":"v1.8.4","task":"deploy","environment":"production","creator":{"login":"deploy-bot","type":"Bot"},"created_at":%[2]q,"updated_at":%[2]q,"statuses_url":"https://ghe.example.com/api/v3/repos/%[1]s/deployments/12/statuses"},
 {"url":"https://ghe.example.com/api/v3/repos/%[1]s/deployments/11","id":11,"sha":"1111111aaaaaaabbbbbbbcccccccdddddddeeeee","ref":"v1.8.3","task":"deploy","environment":"production","creator":{"login":"deploy-bot","type":"Bot"},"created_at":%[3]q,"updated_at":%[3]q}
]`, repo, ts(-15*time.Minute), ts(-70*time.Hour)))
	f.set("GET", "/repos/"+repo+"/deployments/12/statuses", fmt.Sprintf(`[{"id":120,"state":"failure","description":"health checks failed","environment":"production","log_url":"https://ci.example.com/runs/120","environment_url":"https://shop.example.com","created_at":%q}]`, ts(-10*time.Minute)))
	f.set("GET", "/repos/"+repo+"/deployments/11/statuses", fmt.Sprintf(`[{"id":110,"state":"inactive","environment":"production","log_url":"https://ci.example.com/runs/110","created_at":%q}]`, ts(-15*time.Minute)))
	f.set("GET", "/repos/"+repo+"/compare/1111111aaaaaaabbbbbbbcccccccdddddddeeeee...9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f", fmt.Sprintf(`{
 "html_url":"https://ghe.example.com/%[1]s/compare/1111111...9f1c2e7","status":"ahead","ahead_by":3,"total_commits":3,
 "commits":[{"sha":"ccc3333","commit":{"message":"fix retry budget","author":{"name":"Alice"}},"author":{"login":"alice"}}]}`, repo))
}

// pagedCompare is a compare GitHub pages: commits oldest first.
type pagedCompare struct {
	htmlURL string
	commits []string // JSON objects
}

// serveCompare serves a compare of many commits as GitHub does: without
// paging parameters the newest 250; with page/per_page (per_page at most
// 100) that page of the chronological list and a Link header with next,
// last, first and prev.
func (f *fakeGitHub) serveCompare(repo, base, head string, commits []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.compares["/repos/"+repo+"/compare/"+base+"..."+head] = pagedCompare{htmlURL: "https://ghe.example.com/" + repo + "/compare/" + base + "..." + head, commits: commits}
}

func (f *fakeGitHub) comparePage(w http.ResponseWriter, r *http.Request, path string, pc pagedCompare) (string, bool) {
	q := r.URL.Query()
	list := pc.commits
	if q.Get("page") == "" && q.Get("per_page") == "" {
		list = list[max(0, len(list)-250):]
	} else {
		page, perPage := 1, 30
		if v, err := strconv.Atoi(q.Get("page")); err == nil && v > 0 {
			page = v
		}
		if v, err := strconv.Atoi(q.Get("per_page")); err == nil && v > 0 {
			perPage = min(v, 100)
		}
		last := max(1, (len(list)+perPage-1)/perPage)
		link := func(p int, rel string) string {
			return fmt.Sprintf(`<http://%s/api/v3%s?page=%d&per_page=%d>; rel=%q`, r.Host, path, p, perPage, rel)
		}
		var links []string
		if page < last {
			links = append(links, link(page+1, "next"), link(last, "last"))
		}
		if page > 1 {
			links = append(links, link(1, "first"), link(page-1, "prev"))
		}
		if len(links) > 0 {
			w.Header().Set("Link", strings.Join(links, ", "))
		}
		list = list[min(len(list), (page-1)*perPage):min(len(list), page*perPage)]
	}
	return fmt.Sprintf(`{"url":"https://ghe.example.com/api/v3%s","html_url":%q,"status":"ahead","ahead_by":%d,"behind_by":0,"total_commits":%d,"commits":[%s],"files":[]}`,
		path, pc.htmlURL, len(pc.commits), len(pc.commits), strings.Join(list, ",")), true
}

// commitJSON is one commit as the compare and commit list APIs return it.
func commitJSON(sha, login, name, message string, at time.Time) string {
	return fmt.Sprintf(`{"sha":%q,"node_id":"C_kwDO","commit":{"author":{"name":%q,"email":"%s@example.com","date":%q},"committer":{"name":"GitHub","email":"noreply@github.com","date":%q},"message":%q},"author":{"login":%q,"id":1,"type":"User"},"parents":[]}`,
		sha, name, login, at.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339), message, login)
}
