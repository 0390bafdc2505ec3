package scenarios_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// githubHost and githubAPI are what whatchanged is configured with. The
// GitHub source maps a subject's repository to its base_url's host, and the
// scenarios' repositories are on github.com, so base_url names github.com
// (a GitHub Enterprise-style /api/v3/ path) and whatchanged's HTTP_PROXY is
// this fake: it answers the proxied requests itself. Nothing leaves the
// machine; Go never proxies loopback addresses, so argocd-server and the
// API server are reached directly.
const (
	githubHost = "github.com"
	githubAPI  = "http://" + githubHost + "/api/v3/"
)

// githubFake is GitHub's REST API v3 (the calls go-github makes for the
// source: releases, deployments, deployment statuses, compare).
type githubFake struct {
	*recorder
	sc       *Scenario
	startsAt time.Time
	token    string

	mu        sync.Mutex
	remaining int
}

func ghError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg, "documentation_url": "https://docs.github.com/rest", "status": strconv.Itoa(status)})
}

func (f *githubFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.saw(r)
	if r.Method == http.MethodConnect {
		f.unexpectedRequest(w, r, "a CONNECT through the proxy: whatchanged should only reach "+githubAPI)
		return
	}
	if r.URL.IsAbs() && r.URL.Host != githubHost {
		f.unexpectedRequest(w, r, "proxied to a host other than "+githubHost)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v3/repos/")
	if r.Method != http.MethodGet || !ok {
		f.unexpectedRequest(w, r, "not a GitHub API path the source reads")
		return
	}
	if auth := r.Header.Get("Authorization"); auth != "Bearer "+f.token && auth != "token "+f.token {
		ghError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	parts := strings.SplitN(rest, "/", 4)
	if len(parts) < 3 {
		f.unexpectedRequest(w, r, "not a GitHub API path the source reads")
		return
	}
	owner, name := parts[0], parts[1]
	repo, found := f.repo(owner, name)
	tail := strings.Join(parts[2:], "/")
	var body any
	switch {
	case tail == "releases":
		body = f.releases(owner, name, repo)
	case tail == "deployments":
		body = f.deployments(owner, name, repo, r.URL.Query())
	case strings.HasPrefix(tail, "deployments/") && strings.HasSuffix(tail, "/statuses"):
		id, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(tail, "deployments/"), "/statuses"), 10, 64)
		if err != nil {
			f.unexpectedRequest(w, r, "bad deployment id")
			return
		}
		var ok bool
		if body, ok = f.statuses(owner, name, repo, id); !ok && found {
			ghError(w, http.StatusNotFound, "Not Found")
			return
		}
	case tail == "commits" && r.URL.Query().Get("sha") != "":
		// The commit a sync deployed (Argo CD read without argocd-server
		// metadata): GitHub lists the history from that SHA; this fake
		// knows the commits of its compares, and answers an unknown SHA as
		// GitHub does.
		sha := r.URL.Query().Get("sha")
		c, ok := f.commit(owner, name, repo, sha)
		if !ok && found {
			ghError(w, http.StatusNotFound, "No commit found for SHA: "+sha)
			return
		}
		body = []any{c}
	case strings.HasPrefix(tail, "compare/"):
		var ok bool
		if body, ok = f.compare(owner, name, repo, strings.TrimPrefix(tail, "compare/")); !ok && found {
			ghError(w, http.StatusNotFound, "Not Found")
			return
		}
	default:
		f.unexpectedRequest(w, r, "not a GitHub API path the source reads")
		return
	}
	if !found {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	if list, ok := body.([]any); ok {
		body = f.page(w, r, list)
	}
	f.answer(w, r, body)
}

func (f *githubFake) repo(owner, name string) (GitHubRepo, bool) {
	for k, v := range f.sc.GitHub.Repos {
		k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), githubHost+"/")
		if strings.EqualFold(k, owner+"/"+name) {
			return v, true
		}
	}
	return GitHubRepo{}, false
}

// page cuts a list to per_page/page and links the next page as GitHub does.
func (f *githubFake) page(w http.ResponseWriter, r *http.Request, list []any) []any {
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 || per > 100 {
		per = 30
	}
	page, _ := strconv.Atoi(q.Get("page"))
	if page < 1 {
		page = 1
	}
	from := min((page-1)*per, len(list))
	to := min(from+per, len(list))
	if to < len(list) {
		next := *r.URL
		nq := next.Query()
		nq.Set("page", strconv.Itoa(page+1))
		next.RawQuery = nq.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<%s%s>; rel="next"`, strings.TrimSuffix(githubAPI, "/api/v3/"), next.RequestURI()))
	}
	return list[from:to]
}

// answer writes JSON with GitHub's headers; a matching If-None-Match gets a
// 304, which does not count against the rate limit.
func (f *githubFake) answer(w http.ResponseWriter, r *http.Request, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		ghError(w, http.StatusInternalServerError, err.Error())
		return
	}
	sum := sha256.Sum256(b)
	etag := fmt.Sprintf(`W/"%x"`, sum[:16])
	f.mu.Lock()
	notModified := r.Header.Get("If-None-Match") == etag
	if !notModified {
		f.remaining--
	}
	remaining := f.remaining
	f.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, max-age=60, s-maxage=60")
	h.Set("Vary", "Accept, Authorization, Cookie, X-GitHub-OTP")
	h.Set("X-GitHub-Media-Type", "github.v3; format=json")
	h.Set("X-GitHub-Api-Version-Selected", "2022-11-28")
	h.Set("X-RateLimit-Limit", "5000")
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
	h.Set("X-RateLimit-Used", strconv.Itoa(5000-remaining))
	h.Set("X-RateLimit-Resource", "core")
	if notModified {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(bytes.TrimSpace(b), '\n'))
}

func user(login string) map[string]any {
	if login == "" {
		return nil
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(login))
	typ := "User"
	if strings.HasSuffix(login, "[bot]") {
		typ = "Bot"
	}
	return map[string]any{"login": login, "id": h.Sum32() % 10_000_000, "type": typ,
		"html_url": "https://github.com/" + login, "site_admin": false}
}

func apiURL(owner, name, path string) string {
	return githubAPI + "repos/" + owner + "/" + name + path
}

func (f *githubFake) releases(owner, name string, repo GitHubRepo) []any {
	rels := append([]Release(nil), repo.Releases...)
	sort.SliceStable(rels, func(i, j int) bool { return rels[i].At.D > rels[j].At.D }) // newest first
	out := []any{}
	for _, r := range rels {
		at := r.At.From(f.startsAt)
		target := r.Target
		if target == "" {
			target = "main"
		}
		rel := map[string]any{
			"url": apiURL(owner, name, fmt.Sprintf("/releases/%d", r.ID)), "id": r.ID, "node_id": fmt.Sprintf("RE_kwDO%08d", r.ID),
			"html_url": fmt.Sprintf("https://github.com/%s/%s/releases/tag/%s", owner, name, r.Tag),
			"tag_name": r.Tag, "target_commitish": target, "name": r.Name, "body": r.Body,
			"draft": r.Draft, "prerelease": r.Prerelease, "author": user(r.Author),
			"created_at": ts(at.Add(-2 * time.Minute)), "published_at": ts(at),
			"assets":      []any{},
			"tarball_url": apiURL(owner, name, "/tarball/"+r.Tag), "zipball_url": apiURL(owner, name, "/zipball/"+r.Tag),
		}
		if r.Draft { // a draft is not published, and its link is not the tag's
			rel["published_at"] = nil
			rel["created_at"] = ts(at)
			rel["html_url"] = fmt.Sprintf("https://github.com/%s/%s/releases/tag/untagged-%d", owner, name, r.ID)
		}
		out = append(out, rel)
	}
	return out
}

func (f *githubFake) deployments(owner, name string, repo GitHubRepo, q url.Values) []any {
	deps := append([]Deployment(nil), repo.Deployments...)
	sort.SliceStable(deps, func(i, j int) bool { return deps[i].At.D > deps[j].At.D })
	out := []any{}
	for _, d := range deps {
		env := d.Environment
		if env == "" {
			env = "production"
		}
		if (q.Get("environment") != "" && q.Get("environment") != env) || (q.Get("sha") != "" && q.Get("sha") != d.Sha) ||
			(q.Get("ref") != "" && q.Get("ref") != d.Ref) {
			continue
		}
		at := ts(d.At.From(f.startsAt))
		var desc any
		if d.Description != "" {
			desc = d.Description
		}
		out = append(out, map[string]any{
			"url": apiURL(owner, name, fmt.Sprintf("/deployments/%d", d.ID)), "id": d.ID, "node_id": fmt.Sprintf("DE_kwDO%08d", d.ID),
			"sha": d.Sha, "ref": d.Ref, "task": "deploy", "payload": map[string]any{}, "original_environment": env,
			"environment": env, "description": desc, "creator": user(d.Creator), "created_at": at, "updated_at": at,
			"statuses_url":          apiURL(owner, name, fmt.Sprintf("/deployments/%d/statuses", d.ID)),
			"repository_url":        apiURL(owner, name, ""),
			"transient_environment": false, "production_environment": env == "production",
		})
	}
	return out
}

func (f *githubFake) statuses(owner, name string, repo GitHubRepo, id int64) ([]any, bool) {
	for _, d := range repo.Deployments {
		if d.ID != id {
			continue
		}
		env := d.Environment
		if env == "" {
			env = "production"
		}
		out := []any{}
		for i, s := range d.Statuses { // written newest first, as GitHub lists them
			at := ts(s.At.From(f.startsAt))
			sid := d.ID*100 + int64(len(d.Statuses)-i)
			out = append(out, map[string]any{
				"url": apiURL(owner, name, fmt.Sprintf("/deployments/%d/statuses/%d", d.ID, sid)), "id": sid,
				"node_id": fmt.Sprintf("DES_kwDO%08d", sid), "state": s.State, "creator": user(d.Creator),
				"description": s.Description, "environment": env, "target_url": s.LogURL, "log_url": s.LogURL,
				"environment_url": s.EnvironmentURL, "created_at": at, "updated_at": at,
				"deployment_url": apiURL(owner, name, fmt.Sprintf("/deployments/%d", d.ID)), "repository_url": apiURL(owner, name, ""),
			})
		}
		return out, true
	}
	return nil, false
}

// commit is a commit of the repository's compares, as GitHub lists it.
func (f *githubFake) commit(owner, name string, repo GitHubRepo, sha string) (map[string]any, bool) {
	for basehead := range repo.Compares {
		cmp, _ := f.compare(owner, name, repo, basehead)
		for _, c := range cmp["commits"].([]any) {
			if m := c.(map[string]any); strings.HasPrefix(m["sha"].(string), sha) || strings.HasPrefix(sha, m["sha"].(string)) {
				return m, true
			}
		}
	}
	return nil, false
}

func (f *githubFake) compare(owner, name string, repo GitHubRepo, basehead string) (map[string]any, bool) {
	commits, ok := repo.Compares[basehead]
	if !ok {
		return nil, false
	}
	base, head, _ := strings.Cut(basehead, "...")
	list := []any{}
	for i, c := range commits { // oldest first, as GitHub lists them
		date := ts(f.startsAt.Add(-time.Duration(len(commits)-i) * time.Hour))
		person := map[string]any{"name": c.Author, "email": c.Author + "@users.noreply.github.com", "date": date}
		list = append(list, map[string]any{
			"sha": c.Sha, "node_id": "C_kwDO" + c.Sha[:min(8, len(c.Sha))],
			"commit":   map[string]any{"author": person, "committer": person, "message": c.Message, "comment_count": 0},
			"url":      apiURL(owner, name, "/commits/"+c.Sha),
			"html_url": fmt.Sprintf("https://github.com/%s/%s/commit/%s", owner, name, c.Sha),
			"author":   user(c.Author), "committer": user(c.Author), "parents": []any{},
		})
	}
	htmlURL := fmt.Sprintf("https://github.com/%s/%s/compare/%s...%s", owner, name, base, head)
	return map[string]any{
		"url": apiURL(owner, name, "/compare/"+basehead), "html_url": htmlURL, "permalink_url": htmlURL,
		"diff_url": htmlURL + ".diff", "patch_url": htmlURL + ".patch",
		"status": "ahead", "ahead_by": len(commits), "behind_by": 0, "total_commits": len(commits),
		"commits": list, "files": []any{},
	}, true
}
