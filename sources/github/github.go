// Package github is the GitHub source: releases and deployments of the
// repositories alerts map to, with the commits between the previous and the
// newest one. It spends the rate limit as a budget: every request is
// conditional (a 304 costs nothing), an alert storm makes one request per
// repository, repositories seen recently are refreshed in the background so
// alerts read from cache, and a rate-limited GitHub is reported, not waited for.
package github

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v60/github"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/httperr"
)

// Per repository and refresh: the newest releases and deployments, and the
// latest status of the newest deployments. Bounded so one refresh of a
// repository is a handful of (mostly 304) requests.
const (
	perPage          = 20
	statusesFor      = 3
	maxCompareLines  = 5
	maxCompareAuthor = 5
	// A compare is read 100 commits a page (GitHub's largest per_page)
	// and at most 3 pages: the first (it says how many pages there are)
	// and the two newest. 300 commits name every author of all but the
	// largest deploys; beyond, the summary says how many more. A compare
	// is read once per new deploy (then cached), so the bound is 3
	// requests per deploy out of 5,000 an hour.
	comparePerPage  = 100
	maxComparePages = 3
	// fetchTimeout bounds the requests of one repository's refresh.
	fetchTimeout = 30 * time.Second
)

// Bounds of what is remembered: alerts name repositories, and refreshes
// meet new deployments and compares, without end. The least recently used
// goes first. A repository's state is its few dozen newest changes; a
// stored answer is one page of a list (tens of KiB at most).
const (
	maxRepos    = 1_000
	maxCompares = 10_000
	maxStored   = 5_000 // about five answers per repository refreshed
	maxCommits  = 10_000
)

// Source is the GitHub source.
type Source struct {
	name   string
	cfg    Config
	log    *slog.Logger
	client *gh.Client
	budget *budgetTransport
	host   string
	now    func() time.Time

	flight singleflight.Group
	mu     sync.Mutex                     // guards the repoStates
	repos  *lru.Cache[string, *repoState] // "owner/name" →
	// compares between two fixed refs never change: cached until evicted.
	compares *lru.Cache[string, compare]
	// commits are immutable too: "owner/name@sha" → who wrote it and why.
	commits *lru.Cache[string, commitInfo]
}

type commitInfo struct{ author, message string }

type repoState struct {
	lastAsked time.Time
	fetched   time.Time
	changes   []sources.Change
	err       error
}

type compare struct {
	url     string
	commits int // in the range: read or not
	// unread commits were beyond maxComparePages; moreAuthors are the
	// authors of the commits read beyond the maxCompareAuthor shown.
	unread, moreAuthors int
	authors             []string
	lines               []string
	// headAuthor wrote the newest commit of the range.
	headAuthor string
}

var (
	_ sources.Source  = (*Source)(nil)
	_ sources.Starter = (*Source)(nil)

	_ sources.CommitLookup = (*Source)(nil)
)

// New builds the source and its client; it does no I/O. base carries the
// credentials of a token (http_config.authorization); cfg.App replaces
// them with a GitHub App installation's.
func New(name string, cfg Config, base http.RoundTripper, log *slog.Logger) (*Source, error) {
	cfg.Defaults()
	if base == nil {
		base = http.DefaultTransport
	}
	budget := newBudgetTransport(base)
	var rt http.RoundTripper = budget
	switch {
	case cfg.App != nil:
		itr, err := ghinstallation.New(budget, cfg.App.AppID, cfg.App.InstallationID, cfg.App.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("github app private key: %w", err)
		}
		itr.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
		rt = itr
	}
	client := gh.NewClient(&http.Client{Transport: rt})
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("github base_url: %w", err)
	}
	client.BaseURL = u
	repos, _ := lru.New[string, *repoState](maxRepos) // fails only for a size ≤ 0
	compares, _ := lru.New[string, compare](maxCompares)
	commits, _ := lru.New[string, commitInfo](maxCommits)
	return &Source{name: name, cfg: cfg, log: log, client: client, budget: budget, host: cfg.host(), now: time.Now,
		repos: repos, compares: compares, commits: commits}, nil
}

// CacheSizes reports how many repositories, compares and stored answers
// are remembered (the benchmark shows they stay bounded).
func (s *Source) CacheSizes() (repos, compares, stored int) {
	return s.repos.Len(), s.compares.Len(), s.budget.stored.Len()
}

func (s *Source) Name() string { return s.name }
func (s *Source) Ready() bool  { return true } // nothing to sync: repositories are learnt from alerts

// Stats reports requests made, 304s and the remaining rate limit.
func (s *Source) Stats() Stats { return s.budget.stats() }

// Start refreshes the repositories alerts asked about, every Refresh,
// until ctx ends.
func (s *Source) Start(ctx context.Context) error {
	go sources.Every(ctx, s.cfg.Refresh, func() { s.RefreshAll(ctx) })
	return nil
}

// RefreshAll re-reads every repository asked about within KeepFor and
// forgets the others.
func (s *Source) RefreshAll(ctx context.Context) {
	s.mu.Lock()
	var due []string
	for _, repo := range s.repos.Keys() {
		if st, ok := s.repos.Peek(repo); !ok || s.now().Sub(st.lastAsked) > s.cfg.KeepFor {
			s.repos.Remove(repo)
			continue
		}
		due = append(due, repo)
	}
	s.mu.Unlock()
	sort.Strings(due)
	for _, repo := range due {
		if ctx.Err() != nil {
			return
		}
		_, _ = s.fetch(ctx, repo)
	}
}

// Changes answers from the repository's cached state; the first alert for a
// repository fetches it (once, however many alerts ask at the same time).
func (s *Source) Changes(ctx context.Context, q sources.Query) ([]sources.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Subject.Repo == "" {
		return nil, nil
	}
	repo, ok := s.ownerRepo(q.Subject.Repo)
	if !ok {
		// Say so rather than answer nothing: a repository elsewhere
		// (GitLab, another GitHub Enterprise) has releases this source
		// cannot read.
		return nil, fmt.Errorf("repository %s is not on %s, the GitHub this source reads: its releases and deployments are not shown", q.Subject.Repo, s.host)
	}
	s.mu.Lock()
	st, ok := s.repos.Get(repo)
	if !ok {
		st = &repoState{}
		s.repos.Add(repo, st)
	}
	st.lastAsked = s.now()
	fetched, changes, err := !st.fetched.IsZero(), st.changes, st.err
	s.mu.Unlock()
	if !fetched {
		changes, err = s.fetch(ctx, repo)
	}
	var out []sources.Change
	for _, c := range changes {
		if !c.StartedAt.Before(q.Since) && !c.StartedAt.After(q.Until) {
			out = append(out, c)
		}
	}
	if err != nil {
		if len(out) > 0 || errors.Is(err, errNotFound) {
			// Serve what the cache has, and say why it may be stale.
			return out, err
		}
		return nil, err
	}
	return out, ctx.Err()
}

// CommitInfo is who wrote a commit of a repository on this source's host,
// and its message: asked once per commit (commits never change), then
// answered from cache. It reads the commit as the first entry of the
// commit list from sha, not GET /commits/{sha}: the latter carries every
// changed file's patch (megabytes for a large merge), which the ETag store
// would keep. Like fetch, the request outlives a caller that gives up, so
// a slow GitHub still fills the cache for the next alert.
func (s *Source) CommitInfo(ctx context.Context, repo, sha string) (author, message string, err error) {
	r, ok := s.ownerRepo(repo)
	sha = strings.ToLower(sha)
	if !ok || !sources.IsSHA(sha) { // a branch or tag moves: not cacheable, and not what a sync deployed
		return "", "", nil
	}
	key := r + "@" + sha
	if c, ok := s.commits.Get(key); ok {
		return c.author, c.message, nil
	}
	ch := s.flight.DoChan("commit "+key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		owner, name, _ := strings.Cut(r, "/")
		list, _, err := s.client.Repositories.ListCommits(fctx, owner, name, &gh.CommitsListOptions{SHA: sha, ListOptions: gh.ListOptions{PerPage: 1}})
		var info commitInfo
		var er *gh.ErrorResponse
		switch {
		case errors.As(err, &er) && er.Response != nil &&
			(er.Response.StatusCode == http.StatusNotFound || er.Response.StatusCode == http.StatusUnprocessableEntity):
			// No such repository or commit (422: "No commit found for
			// SHA"): it will not appear, remember the empty answer.
		case err != nil:
			return nil, s.describe(r, "read commit "+sha[:7], err)
		case len(list) > 0 && strings.HasPrefix(list[0].GetSHA(), sha):
			c := list[0]
			info = commitInfo{author: cmp.Or(c.GetCommit().GetAuthor().GetName(), c.GetAuthor().GetLogin()), message: c.GetCommit().GetMessage()}
		}
		s.commits.Add(key, info)
		return info, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return "", "", res.Err
		}
		info := res.Val.(commitInfo)
		return info.author, info.message, nil
	case <-ctx.Done():
		return "", "", ctx.Err()
	}
}

var errNotFound = errors.New("not found")

// ownerRepo maps a normalised repository ("github.com/acme/api") to
// "acme/api" when it lives on this source's host.
func (s *Source) ownerRepo(repo string) (string, bool) {
	host, path, ok := strings.Cut(sources.NormalizeRepo(repo), "/")
	if !ok || host != s.host || strings.Count(path, "/") != 1 {
		return "", false
	}
	return path, true
}

// fetch reads a repository once for every concurrent caller and stores the
// result; on failure the previous changes are kept and the error recorded.
func (s *Source) fetch(ctx context.Context, repo string) ([]sources.Change, error) {
	type result struct {
		changes []sources.Change
		err     error
	}
	ch := s.flight.DoChan(repo, func() (any, error) {
		// Detached from the first caller's deadline: the answer serves every
		// later alert, so a short budget must not waste the request.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		changes, err := s.read(fctx, repo)
		s.mu.Lock()
		defer s.mu.Unlock()
		st, ok := s.repos.Peek(repo)
		if !ok { // evicted meanwhile
			st = &repoState{lastAsked: s.now()}
			s.repos.Add(repo, st)
		}
		st.fetched = s.now()
		st.err = err
		if err == nil {
			st.changes = changes
		}
		return result{st.changes, err}, nil
	})
	select {
	case r := <-ch:
		res := r.Val.(result)
		return res.changes, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// read makes the requests for one repository.
func (s *Source) read(ctx context.Context, repo string) ([]sources.Change, error) {
	owner, name, _ := strings.Cut(repo, "/")
	var out []sources.Change
	releases, _, err := s.client.Repositories.ListReleases(ctx, owner, name, &gh.ListOptions{PerPage: perPage})
	if err != nil {
		return nil, s.describe(repo, "list releases", err)
	}
	var rel []sources.Change
	for _, r := range releases {
		if r.GetDraft() || r.PublishedAt == nil {
			continue
		}
		c := sources.Change{Source: s.name, Kind: sources.KindRelease, ID: fmt.Sprintf("%s/releases/%d", repo, r.GetID()),
			Subject: sources.Subject{Repo: s.host + "/" + repo}, Version: r.GetTagName(), StartedAt: r.GetPublishedAt().UTC(),
			FinishedAt: r.GetPublishedAt().UTC(), Status: sources.StatusSucceeded, Author: r.GetAuthor().GetLogin(),
			URL: r.GetHTMLURL(), Message: r.GetName()}
		if t := strings.ToLower(r.GetTargetCommitish()); sources.IsSHA(t) {
			c.Revision = t // a release cut from a commit, not a branch
		}
		if r.GetPrerelease() {
			c.Message = strings.TrimSpace(c.Message + " (prerelease)")
		}
		rel = append(rel, c)
	}
	sort.Slice(rel, func(i, j int) bool { return rel[i].StartedAt.After(rel[j].StartedAt) })
	// The previous release of the same component (a monorepo tags
	// "api/v1.2.0" and "web/v3.4.0" side by side): the highest lower
	// version, not the last published (a v1.1.1 LTS patch published after
	// v1.9.4 is not what v1.10.0 followed). Unparsable tags go by date.
	for i := range rel {
		best := -1
		for j := range rel {
			if j == i || tagComponent(rel[j].Version) != tagComponent(rel[i].Version) {
				continue
			}
			c, ok := compareVersions(rel[j].Version, rel[i].Version)
			if !ok {
				if j > i && best < 0 { // published earlier: sorted newest first
					best = j
				}
				continue
			}
			if c < 0 {
				if best < 0 {
					best = j
				} else if cb, okb := compareVersions(rel[j].Version, rel[best].Version); okb && cb > 0 {
					best = j
				}
			}
		}
		if best >= 0 {
			rel[i].PreviousVersion = rel[best].Version
		}
	}
	if len(rel) > 0 && rel[0].PreviousVersion != "" {
		s.attachCompare(ctx, repo, &rel[0], rel[0].PreviousVersion, rel[0].Version)
	}
	out = append(out, rel...)

	envs := s.cfg.Environments
	if len(envs) == 0 {
		envs = []string{""}
	}
	var deps []sources.Change
	descriptions := map[string]string{} // deployment ID → description
	for _, env := range envs {
		list, _, err := s.client.Repositories.ListDeployments(ctx, owner, name, &gh.DeploymentsListOptions{Environment: env, ListOptions: gh.ListOptions{PerPage: perPage}})
		if err != nil {
			return nil, s.describe(repo, "list deployments", err)
		}
		for i, d := range list {
			c := sources.Change{Source: s.name, Kind: sources.KindGitHubDeployment, ID: fmt.Sprintf("%s/deployments/%d", repo, d.GetID()),
				Subject: sources.Subject{Repo: s.host + "/" + repo}, Revision: d.GetSHA(), Version: d.GetRef(),
				StartedAt: d.GetCreatedAt().UTC(), DeployedBy: d.GetCreator().GetLogin(), Message: "to " + d.GetEnvironment(), Environment: d.GetEnvironment(), Status: sources.StatusUnknown}
			if i < statusesFor {
				st, _, err := s.client.Repositories.ListDeploymentStatuses(ctx, owner, name, d.GetID(), &gh.ListOptions{PerPage: 1})
				if err != nil {
					return nil, s.describe(repo, "list deployment statuses", err)
				}
				if len(st) > 0 {
					c.Status = deploymentStatus(st[0].GetState())
					c.URL = cmp.Or(st[0].GetLogURL(), st[0].GetEnvironmentURL(), st[0].GetTargetURL())
					if c.Status == sources.StatusSucceeded || c.Status == sources.StatusFailed {
						c.FinishedAt = st[0].GetCreatedAt().UTC()
					}
				}
			}
			descriptions[c.ID] = d.GetDescription()
			deps = append(deps, c)
		}
	}
	sort.Slice(deps, func(i, j int) bool { return deps[i].StartedAt.After(deps[j].StartedAt) })
	if len(deps) > 1 && deps[0].Revision != "" {
		// The previous deploy of the same thing: a monorepo deploys its
		// services to one environment, told apart by the description CI
		// gives each ("deploy web"); failing one, the environment's last.
		prev := -1
		for _, sameDescription := range []bool{true, false} {
			for j := 1; j < len(deps) && prev < 0; j++ {
				if deps[j].Environment == deps[0].Environment && deps[j].Revision != "" && deps[j].Revision != deps[0].Revision &&
					(!sameDescription || (descriptions[deps[0].ID] != "" && descriptions[deps[j].ID] == descriptions[deps[0].ID])) {
					prev = j
				}
			}
		}
		if prev > 0 {
			deps[0].PreviousRevision = deps[prev].Revision
			s.attachCompare(ctx, repo, &deps[0], deps[prev].Revision, deps[0].Revision)
		}
	}
	return append(out, deps...), nil
}

// attachCompare adds the commits between two refs to the newest change:
// count, authors, first lines, the compare link. A failure leaves the change
// without them; compares are immutable and cached until evicted.
func (s *Source) attachCompare(ctx context.Context, repo string, c *sources.Change, base, head string) {
	key := repo + "@" + base + "..." + head
	cp, ok := s.compares.Get(key)
	if !ok {
		commits, total, htmlURL, complete, err := s.compareCommits(ctx, repo, base, head)
		if err != nil {
			s.log.Debug("github compare failed", "source", s.name, "repo", repo, "err", err)
			return
		}
		cp = summarize(commits, total)
		cp.url = htmlURL
		if complete {
			s.compares.Add(key, cp)
		}
	}
	c.CompareURL = cp.url
	if c.Author == "" || sources.IsBot(c.Author) {
		c.Author = cmp.Or(cp.headAuthor, c.Author)
	}
	if cp.commits > 0 {
		summary := fmt.Sprintf("%d commit(s) by %s", cp.commits, strings.Join(cp.authors, ", "))
		// The commits not read may have other authors.
		switch {
		case cp.moreAuthors > 0 && cp.unread > 0:
			summary += fmt.Sprintf(" and at least %d more", cp.moreAuthors)
		case cp.moreAuthors > 0:
			summary += fmt.Sprintf(" and %d more", cp.moreAuthors)
		case cp.unread > 0:
			summary += " and maybe others"
		}
		if len(cp.lines) > 0 {
			summary += ": " + strings.Join(cp.lines, "; ")
			if more := cp.commits - len(cp.lines); more > 0 {
				summary += fmt.Sprintf(" and %d more", more)
			}
		}
		if c.Message != "" {
			summary = c.Message + " — " + summary
		}
		c.Message = summary
	}
}

// compareCommits reads a compare's commits, oldest first, within
// maxComparePages pages. GitHub pages a compare in chronological order, so
// the newest commits — what is deployed, the head author, the lines shown
// — are on the last page: after the first page (which says how many there
// are), the last pages are read, going back. complete is false when a
// later page failed (the answer is then not cached, and asked again at the
// next refresh; the pages read are ETag-stored and cost nothing then).
func (s *Source) compareCommits(ctx context.Context, repo, base, head string) (commits []*gh.RepositoryCommit, total int, htmlURL string, complete bool, err error) {
	owner, name, _ := strings.Cut(repo, "/")
	res, resp, err := s.client.Repositories.CompareCommits(ctx, owner, name, base, head, &gh.ListOptions{PerPage: comparePerPage})
	if err != nil {
		return nil, 0, "", false, s.describe(repo, "compare", err)
	}
	total, htmlURL = res.GetTotalCommits(), res.GetHTMLURL()
	last := resp.LastPage // from the Link header
	if last == 0 && total > comparePerPage {
		last = (total + comparePerPage - 1) / comparePerPage
	}
	var newer [][]*gh.RepositoryCommit // the last pages, newest first
	for page := last; page > 1 && 1+len(newer) < maxComparePages; page-- {
		more, _, err := s.client.Repositories.CompareCommits(ctx, owner, name, base, head, &gh.ListOptions{Page: page, PerPage: comparePerPage})
		if err != nil {
			s.log.Debug("github compare page failed", "source", s.name, "repo", repo, "page", page, "err", s.describe(repo, "compare", err))
			return append(res.Commits, flatten(newer)...), total, htmlURL, false, nil
		}
		newer = append([][]*gh.RepositoryCommit{more.Commits}, newer...)
	}
	return append(res.Commits, flatten(newer)...), total, htmlURL, true, nil
}

func flatten(pages [][]*gh.RepositoryCommit) []*gh.RepositoryCommit {
	var out []*gh.RepositoryCommit
	for _, p := range pages {
		out = append(out, p...)
	}
	return out
}

// summarize a compare's commits (oldest first; total of which may be more
// than were read).
func summarize(commits []*gh.RepositoryCommit, total int) compare {
	cp := compare{commits: max(total, len(commits)), unread: max(total-len(commits), 0)}
	// The newest commit a person wrote: release tooling commits last
	// (a version bump), but did not write what is deployed.
	for i := len(commits) - 1; i >= 0 && cp.headAuthor == ""; i-- {
		c := commits[i]
		if a := cmp.Or(c.GetCommit().GetAuthor().GetName(), c.GetAuthor().GetLogin()); !sources.IsBot(a) && !sources.IsBot(c.GetAuthor().GetLogin()) {
			cp.headAuthor = a
		}
	}
	seen := map[string]bool{}
	for _, commit := range commits {
		login := commit.GetAuthor().GetLogin()
		if login == "" {
			login = commit.GetCommit().GetAuthor().GetName()
		}
		if login == "" || seen[login] {
			continue
		}
		seen[login] = true
		if len(cp.authors) < maxCompareAuthor {
			cp.authors = append(cp.authors, login)
		} else {
			cp.moreAuthors++
		}
	}
	for i := len(commits) - 1; i >= 0 && len(cp.lines) < maxCompareLines; i-- { // newest first
		line, _, _ := strings.Cut(commits[i].GetCommit().GetMessage(), "\n")
		cp.lines = append(cp.lines, sources.Truncate(line, 100))
	}
	return cp
}

// describe turns a client error into a sentence a user can act on.
func (s *Source) describe(repo, what string, err error) error {
	var rl *RateLimitedError
	var ghRL *gh.RateLimitError
	var abuse *gh.AbuseRateLimitError
	var er *gh.ErrorResponse
	var ne net.Error
	switch {
	case errors.As(err, &rl):
		return rl
	case errors.As(err, &ghRL):
		return &RateLimitedError{Until: ghRL.Rate.Reset.Time}
	case errors.As(err, &abuse):
		return &RateLimitedError{Until: s.now().Add(abuse.GetRetryAfter())}
	case errors.As(err, &er) && er.Response != nil:
		switch er.Response.StatusCode {
		case http.StatusUnauthorized:
			return errors.New("bad credentials: the token or GitHub App was rejected")
		case http.StatusNotFound:
			return fmt.Errorf("repository %s %w or not visible to the token", repo, errNotFound)
		case http.StatusForbidden:
			return fmt.Errorf("%s of %s: forbidden (does the token have read access to it?)", what, repo)
		}
		return fmt.Errorf("%s of %s: GitHub answered %d", what, repo, er.Response.StatusCode)
	// Before net.Error: a request cut off by its context fails with one,
	// and the server may well be reachable. Said in words, not wrapped:
	// the error is kept and shown to later alerts, for which it is not
	// their query's timeout.
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s of %s: cancelled", what, repo)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%s of %s: timeout after %s", what, repo, fetchTimeout)
	case errors.As(err, &ne):
		return fmt.Errorf("%s unreachable: %v", s.host, httperr.Unwrap(err))
	}
	return fmt.Errorf("%s of %s: %v", what, repo, httperr.Unwrap(err))
}

func deploymentStatus(state string) string {
	switch state {
	case "success", "inactive": // inactive: superseded by a later deployment
		return sources.StatusSucceeded
	case "failure", "error":
		return sources.StatusFailed
	case "pending", "in_progress", "queued":
		return sources.StatusInProgress
	}
	return sources.StatusUnknown
}

// compareVersions compares two release tags numerically ("v1.10.0" >
// "v1.9.4"); ok is false when either is not dotted numbers.
func compareVersions(a, b string) (int, bool) {
	num := func(tag string) ([]int, bool) {
		tag = strings.TrimPrefix(tag[strings.LastIndexByte(tag, '/')+1:], "v")
		tag, _, _ = strings.Cut(tag, "-")
		var out []int
		for _, p := range strings.Split(tag, ".") {
			n, err := strconv.Atoi(p)
			if err != nil {
				return nil, false
			}
			out = append(out, n)
		}
		return out, len(out) > 1
	}
	x, ok1 := num(a)
	y, ok2 := num(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	return slices.Compare(x, y), true
}

// tagComponent is a monorepo tag's component: "api" of "api/v1.2.0".
func tagComponent(tag string) string {
	if i := strings.LastIndexByte(tag, '/'); i >= 0 {
		return tag[:i]
	}
	return ""
}
