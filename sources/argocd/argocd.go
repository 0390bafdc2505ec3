// Package argocd is the Argo CD source: an application's sync history (the
// sync is the deploy) with revision, author, message, and app and compare
// links. It reads applications from argocd-server's REST API (polled, so
// alerts read a cache) and/or as Application resources through the
// Kubernetes API. It does not import the argo-cd module (see DESIGN.md).
package argocd

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/httperr"
)

var applicationsGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

// metadataFor: the newest syncs of each app whose revision metadata is
// fetched during the poll, so alerts find author and message in the cache.
const metadataFor = 2

// prefetchWithin: in Kubernetes mode with no argocd-server, the commits
// of syncs this recent are read in the background (from GitHub).
const prefetchWithin = time.Hour

// cacheSize bounds the revision metadata and the missing apps remembered:
// both are keyed by what alerts and syncs name, which never stops growing.
// 10,000 revisions are the last two syncs of 5,000 apps.
const cacheSize = 10_000

// Source is the Argo CD source.
type Source struct {
	name string
	cfg  Config
	log  *slog.Logger
	http *http.Client
	dyn  dynamic.Interface
	now  func() time.Time

	mu        sync.RWMutex
	restApps  map[string]*application // "ns/name" from REST: the apps argocd-server has
	informers []cache.SharedIndexInformer

	metadata *lru.Cache[string, revisionMetadata] // "ns/app#source@revision" →
	misses   *lru.Cache[string, miss]             // apps not found or not readable, until the next refresh

	// cat indexes restApps and the informers' applications; stale until
	// rebuilt after they changed (catalog.go).
	cat   atomic.Pointer[catalog]
	stale atomic.Bool
	catMu sync.Mutex

	flight    singleflight.Group
	restReady atomic.Bool
	started   atomic.Bool
}

var (
	_ sources.Source          = (*Source)(nil)
	_ sources.Starter         = (*Source)(nil)
	_ sources.SubjectResolver = (*Source)(nil)
	_ sources.AppRepos        = (*Source)(nil)
)

// New builds the source; client carries the TLS settings for argocd-server
// and dyn is the Kubernetes client for Application resources (nil unless
// that mode is on). No I/O until Start.
func New(name string, cfg Config, client *http.Client, dyn dynamic.Interface, log *slog.Logger) *Source {
	cfg.Defaults()
	if client == nil {
		client = &http.Client{}
	}
	metadata, _ := lru.New[string, revisionMetadata](cacheSize) // fails only for a size ≤ 0
	misses, _ := lru.New[string, miss](cacheSize)
	return &Source{name: name, cfg: cfg, log: log, http: client, dyn: dyn, now: time.Now,
		restApps: map[string]*application{}, metadata: metadata, misses: misses}
}

// CacheSizes reports how many revision metadata and missing apps are
// remembered (the benchmark shows they stay bounded).
func (s *Source) CacheSizes() (metadata, misses int) { return s.metadata.Len(), s.misses.Len() }

func (s *Source) Name() string { return s.name }

// Ready: the REST list was read once and the informers synced.
func (s *Source) Ready() bool {
	if !s.started.Load() || (s.cfg.Server != "" && !s.restReady.Load()) {
		return false
	}
	for _, inf := range s.informers {
		if !inf.HasSynced() {
			return false
		}
	}
	return true
}

// Start starts the informers and the REST poll; it returns at once.
func (s *Source) Start(ctx context.Context) error {
	if s.cfg.Kubernetes.Enabled {
		if s.dyn == nil {
			return errors.New("argocd: kubernetes mode needs a Kubernetes client")
		}
		namespaces := s.cfg.Kubernetes.Namespaces
		if len(namespaces) == 0 {
			namespaces = []string{""}
		}
		for _, ns := range namespaces {
			f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(s.dyn, 0, ns, nil)
			inf := f.ForResource(applicationsGVR).Informer()
			if err := inf.SetTransform(stripApplication); err != nil {
				return err
			}
			if err := s.watchChanges(inf); err != nil {
				return err
			}
			s.informers = append(s.informers, inf)
			f.Start(ctx.Done())
		}
	}
	if s.cfg.Server != "" {
		go s.poll(ctx)
	} else if s.cfg.Commits != nil {
		// No poll prefetches commit metadata: recent syncs' commits are
		// read in the background, so alerts (and neighbours' syncs, which
		// use only the cache) find them.
		go sources.Every(ctx, s.cfg.Refresh, func() { s.prefetchCommits(ctx) })
	}
	s.started.Store(true)
	return nil
}

// stripApplication drops what the source never reads (per-resource status
// lists are most of an Application).
func stripApplication(obj any) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		u.SetManagedFields(nil)
		keepWorkloadResources(u)
		unstructured.RemoveNestedField(u.Object, "status", "summary")
		unstructured.RemoveNestedField(u.Object, "status", "operationState", "syncResult", "resources")
	}
	return obj, nil
}

// keepWorkloadResources cuts status.resources to the workloads, with only
// the fields that say which: a sync relates to the workloads it manages.
func keepWorkloadResources(u *unstructured.Unstructured) {
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "resources")
	var kept []any
	for _, r := range list {
		m, ok := r.(map[string]any)
		if !ok {
			continue
		}
		if kind, _ := m["kind"].(string); workloadKinds[kind] {
			kept = append(kept, map[string]any{"group": m["group"], "kind": kind, "namespace": m["namespace"], "name": m["name"]})
		}
	}
	if len(kept) == 0 {
		unstructured.RemoveNestedField(u.Object, "status", "resources")
		return
	}
	_ = unstructured.SetNestedSlice(u.Object, kept, "status", "resources")
}

func (s *Source) poll(ctx context.Context) {
	t := time.NewTicker(s.cfg.Refresh)
	defer t.Stop()
	logged := ""
	for {
		err := s.refresh(ctx)
		switch {
		case err == nil:
			s.restReady.Store(true)
			if logged != "" {
				s.log.Info("argocd-server answers again", "source", s.name)
			}
			logged = ""
		case ctx.Err() == nil && err.Error() != logged: // a repeating error is logged once
			s.log.Warn("argocd: polling applications failed", "source", s.name, "err", err)
			logged = err.Error()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refresh lists the applications over REST and prefetches the metadata of
// their newest syncs.
func (s *Source) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Refresh)
	defer cancel()
	scopes := append([]string{""}, s.cfg.AppNamespaces...)
	apps := map[string]*application{}
	for _, ns := range scopes {
		q := url.Values{}
		if ns != "" {
			q.Set("appNamespace", ns)
		}
		var list applicationList
		if err := s.get(ctx, "/api/v1/applications", q, &list, "list applications"); err != nil {
			return err
		}
		for i := range list.Items {
			a := &list.Items[i]
			a.keepWorkloads()
			apps[a.Metadata.Namespace+"/"+a.Metadata.Name] = a
		}
	}
	s.mu.Lock()
	s.restApps = apps
	s.mu.Unlock()
	s.changed()
	for _, a := range apps {
		h := a.Status.History
		for i := len(h) - 1; i >= 0 && i >= len(h)-metadataFor; i-- {
			for idx, src := range h[i].sources(a) {
				if revs := h[i].revs(); src.isGit() && idx < len(revs) {
					s.revisionMetadata(ctx, a, revs[idx], src.RepoURL, idx, len(h[i].Revisions) > 0, true)
				}
			}
		}
	}
	return nil
}

// prefetchCommits reads the commits of the newest syncs deployed within
// prefetchWithin, once each (then cached). Older syncs' are read when an
// alert asks about their app: at start, every app's history would cost
// GitHub a request per app.
func (s *Source) prefetchCommits(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Refresh)
	defer cancel()
	recent := s.now().Add(-prefetchWithin)
	for _, apps := range s.apps().byName {
		for _, a := range apps {
			h := append([]revisionHistory(nil), a.Status.History...)
			sort.Slice(h, func(i, j int) bool { return h[i].ID < h[j].ID })
			for i := max(0, len(h)-metadataFor); i < len(h); i++ {
				if ctx.Err() != nil {
					return
				}
				if h[i].DeployedAt.Before(recent) {
					continue
				}
				var prev []string
				if i > 0 {
					prev = h[i-1].revs()
				}
				srcs, revs := h[i].sources(a), h[i].revs()
				if idx := changedGitSource(srcs, revs, prev); idx >= 0 {
					s.revisionMetadata(ctx, a, revs[idx], srcs[idx].RepoURL, idx, len(h[i].Revisions) > 0, true)
				}
			}
		}
	}
}

// lookupAny finds the subject's app by any name it goes by, the qualified
// "<appNamespace>_<app>" (from a tracking-id) first: two teams may both
// have an "api". id is the name to ask argocd-server for when none is
// known yet.
func (s *Source) lookupAny(subj sources.Subject) (*application, string) {
	names := []string{subj.App}
	for _, a := range subj.Apps {
		if strings.Contains(a, "_") {
			names = append([]string{a}, names...)
		}
	}
	for _, n := range names {
		if a := s.lookup(n); a != nil {
			return a, n
		}
	}
	return nil, names[0]
}

// errNotSynced is returned until the applications were read once.
var errNotSynced = fmt.Errorf("applications %w (is argocd-server reachable?)", sources.ErrNotSynced)

// Changes returns the syncs of the subject's app in the window, plus a
// running or failed operation.
func (s *Source) Changes(ctx context.Context, q sources.Query) ([]sources.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Subject.App == "" {
		return nil, nil
	}
	a, id := s.lookupAny(q.Subject)
	if a == nil && s.cfg.Server != "" {
		// An app created since the last poll: ask for it alone, once per
		// refresh (an app the token cannot read must not cost a request
		// on every alert).
		var err error
		if a, err = s.fetchApp(ctx, id); err != nil {
			return nil, err
		}
	}
	if a == nil {
		if !s.Ready() {
			return nil, errNotSynced
		}
		return nil, nil
	}
	if !s.deploysTo(a, q.Subject) {
		return nil, nil // an app of that name, deploying to another namespace or cluster
	}
	out := s.changesOf(ctx, a, q, true)
	return append(out, s.neighbours(ctx, a, q)...), ctx.Err()
}

// neighbours are the syncs in the look-back of the other apps deploying to
// the subject's namespace, newest first and bounded: the neighbour
// rollouts they caused then carry their commit. Only cached commit
// metadata is used (the poll prefetches each app's newest syncs).
func (s *Source) neighbours(ctx context.Context, own *application, q sources.Query) []sources.Change {
	ns := q.Subject.Namespace
	if ns == "" {
		return nil
	}
	var apps []*application
	for _, a := range s.apps().byNamespace[ns] {
		if a.key() != own.key() && s.deploysTo(a, q.Subject) {
			apps = append(apps, a)
		}
	}
	loose := q
	loose.History = time.Time{} // neighbours within the look-back only
	var out []sources.Change
	for _, a := range apps {
		if ctx.Err() != nil {
			break
		}
		out = append(out, s.changesOf(ctx, a, loose, false)...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartedAt.After(out[j].StartedAt) })
	if q.MaxLoose > 0 && len(out) > q.MaxLoose {
		out = out[:q.MaxLoose]
	}
	return out
}

func (s *Source) fetchApp(ctx context.Context, app string) (*application, error) {
	if miss, ok := s.misses.Get(app); ok && s.now().Before(miss.until) {
		return nil, miss.err
	}
	v, err := s.shared(ctx, "app/"+app, func(ctx context.Context) (any, error) {
		ns, name, qualified := strings.Cut(app, "_")
		if !qualified {
			name, ns = app, ""
		}
		q := url.Values{}
		if ns != "" {
			q.Set("appNamespace", ns)
		}
		var a application
		err := s.get(ctx, "/api/v1/applications/"+url.PathEscape(name), q, &a, "get application "+app)
		switch {
		case errors.Is(err, errNotFound):
			s.remember(app, nil)
			return (*application)(nil), nil
		case errors.Is(err, errForbidden):
			// argocd-server answers 403 for an app in a project the
			// token's account has no role in (and, to hide which apps
			// exist, for some that do not exist).
			err = fmt.Errorf("application %s is forbidden to the configured token (403 permission denied: grant the token's account applications, get on the app's project)", app)
			s.remember(app, err)
			return nil, err
		case err != nil:
			return nil, err
		}
		a.keepWorkloads()
		s.mu.Lock()
		s.restApps[a.Metadata.Namespace+"/"+a.Metadata.Name] = &a
		s.mu.Unlock()
		s.changed()
		return &a, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*application), nil
}

// remember a missing or unreadable app until the next refresh.
func (s *Source) remember(app string, err error) {
	s.misses.Add(app, miss{until: s.now().Add(s.cfg.Refresh), err: err})
}

// shared runs fn once for all concurrent callers of key. fn gets the first
// caller's context without its cancellation (one client hanging up must
// not fail the others' answer) but with its deadline (a hung server holds
// no request past the budget); each caller waits until its own context ends.
func (s *Source) shared(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	ch := s.flight.DoChan(key, func() (any, error) {
		fctx := context.WithoutCancel(ctx)
		if d, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			fctx, cancel = context.WithDeadline(fctx, d)
			defer cancel()
		}
		return fn(fctx)
	})
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type miss struct {
	until time.Time
	err   error
}

// changesOf lists the app's syncs in q's window; fetch: commit metadata may
// be asked for (else only what is cached).
func (s *Source) changesOf(ctx context.Context, a *application, q sources.Query, fetch bool) []sources.Change {
	// The sync is about the namespace it deployed into that the alert is
	// in (an app may deploy beyond its destination), and goes by the app's
	// name and its qualified "<appNamespace>_<app>".
	ns := a.Spec.Destination.Namespace
	if q.Subject.Namespace != "" && a.deploysTo(q.Subject.Namespace) {
		ns = q.Subject.Namespace
	}
	subject := sources.Subject{Namespace: ns, App: a.Metadata.Name, Repo: a.gitRepo(), Cluster: s.clusterOf(a)}
	if a.Metadata.Namespace != "" {
		subject.Apps = []string{a.Metadata.Namespace + "_" + a.Metadata.Name}
	}
	link := s.appLink(a)
	var out []sources.Change
	h := append([]revisionHistory(nil), a.Status.History...)
	sort.Slice(h, func(i, j int) bool { return h[i].ID < h[j].ID })
	for i, entry := range h {
		start := entry.DeployedAt
		if entry.DeployStartedAt != nil {
			start = *entry.DeployStartedAt
		}
		// Argo CD before 2.x records only deployedAt; the last operation,
		// when it is this sync, says when it started.
		if op := a.Status.OperationState; start.Equal(entry.DeployedAt) && op != nil && op.FinishedAt != nil &&
			op.StartedAt.Before(start) && op.FinishedAt.Sub(entry.DeployedAt).Abs() <= time.Minute {
			start = op.StartedAt
		}
		if start.Before(q.From(sources.RelationApp)) || start.After(q.Until) {
			continue
		}
		revs, srcs := entry.revs(), entry.sources(a)
		c := sources.Change{Source: s.name, Kind: sources.KindSync, ID: fmt.Sprintf("%s/%s/history/%d", a.Metadata.Namespace, a.Metadata.Name, entry.ID),
			Subject: subject, Revision: strings.Join(revs, ","), StartedAt: start.UTC(), FinishedAt: entry.DeployedAt.UTC(),
			Status: sources.StatusSucceeded, DeployedBy: initiator(entry.InitiatedBy), URL: link}
		var prev []string
		if i > 0 {
			prev = h[i-1].revs()
			c.PreviousRevision = strings.Join(prev, ",")
		}
		if len(srcs) > 0 {
			c.Version = describeSource(srcs, revs, prev)
		}
		// The git source whose revision moved carries the commit: its
		// author, message and compare link. A Helm repository has none.
		if idx := changedGitSource(srcs, revs, prev); idx >= 0 {
			if idx < len(prev) && prev[idx] != revs[idx] {
				c.CompareURL = sources.CompareURL(srcs[idx].RepoURL, prev[idx], revs[idx])
			}
			// The newest syncs (prefetched by the poll) and those in the
			// look-back are asked about; older ones use what is cached, so
			// a query reaching back for the last deploy costs no request
			// per old sync.
			fetch := fetch && (i >= len(h)-metadataFor || !start.Before(q.Since))
			if md, ok := s.revisionMetadata(ctx, a, revs[idx], srcs[idx].RepoURL, idx, len(entry.Revisions) > 0, fetch); ok {
				c.Author = authorName(md.Author)
				line, _, _ := strings.Cut(strings.TrimSpace(md.Message), "\n")
				c.Message = line
			}
		}
		out = append(out, c)
	}
	if op := a.Status.OperationState; op != nil && (op.Phase == "Running" || op.Phase == "Terminating" || op.Phase == "Failed" || op.Phase == "Error") &&
		!op.StartedAt.Before(q.Since) && !op.StartedAt.After(q.Until) {
		c := sources.Change{Source: s.name, Kind: sources.KindSync, ID: fmt.Sprintf("%s/%s/operation/%d", a.Metadata.Namespace, a.Metadata.Name, op.StartedAt.Unix()),
			Subject: subject, StartedAt: op.StartedAt.UTC(), Status: sources.StatusInProgress, DeployedBy: initiator(op.Operation.InitiatedBy),
			Message: op.Message, URL: link}
		if op.Phase == "Failed" || op.Phase == "Error" {
			c.Status = sources.StatusFailed
			if op.FinishedAt != nil {
				c.FinishedAt = op.FinishedAt.UTC()
			}
		}
		var revs []string
		if op.SyncResult != nil {
			revs = op.SyncResult.Revisions
			if len(revs) == 0 && op.SyncResult.Revision != "" {
				revs = []string{op.SyncResult.Revision}
			}
		} else if op.Operation.Sync != nil {
			revs = op.Operation.Sync.Revisions
			if len(revs) == 0 && op.Operation.Sync.Revision != "" {
				revs = []string{op.Operation.Sync.Revision}
			}
		}
		c.Revision = strings.Join(revs, ",")
		// The commit being synced says what changes; the operation's
		// message says how the sync is going.
		srcs := a.sources()
		var last []string
		if n := len(a.Status.History); n > 0 {
			last = a.Status.History[n-1].revs()
		}
		if len(srcs) > 0 && len(revs) > 0 {
			c.Version = describeSource(srcs, revs, last)
		}
		if idx := changedGitSource(srcs, revs, last); idx >= 0 {
			if idx < len(last) && last[idx] != revs[idx] {
				c.CompareURL = sources.CompareURL(srcs[idx].RepoURL, last[idx], revs[idx])
			}
			if md, ok := s.revisionMetadata(ctx, a, revs[idx], srcs[idx].RepoURL, idx, len(srcs) > 1, fetch); ok {
				c.Author = authorName(md.Author)
				line, _, _ := strings.Cut(strings.TrimSpace(md.Message), "\n")
				if c.Status == sources.StatusFailed && op.Message != "" {
					line += " (sync failed: " + op.Message + ")"
				}
				c.Message = line
			}
		}
		out = append(out, c)
	}
	return out
}

// revisionMetadata returns the commit metadata of one git source's
// revision, cached (the least recently used dropped first). It asks
// argocd-server when REST is configured, and the commit lookup (GitHub)
// when there is no server or it has no metadata for the revision. multi:
// the app has several sources, so the source is named by index. fetch:
// ask when not cached (else only the cache is read).
func (s *Source) revisionMetadata(ctx context.Context, a *application, rev, repoURL string, sourceIndex int, multi, fetch bool) (revisionMetadata, bool) {
	if rev == "" || (s.cfg.Server == "" && s.cfg.Commits == nil) {
		return revisionMetadata{}, false
	}
	key := fmt.Sprintf("%s/%s#%d@%s", a.Metadata.Namespace, a.Metadata.Name, sourceIndex, rev)
	md, ok := s.metadata.Get(key)
	if ok || !fetch {
		return md, ok && (md.Author != "" || md.Message != "")
	}
	v, err := s.shared(ctx, "md/"+key, func(ctx context.Context) (any, error) {
		var md revisionMetadata
		var err error
		if s.cfg.Server != "" {
			md, err = s.serverMetadata(ctx, a, rev, sourceIndex, multi)
		}
		if md.Author == "" && md.Message == "" && s.cfg.Commits != nil && repoURL != "" {
			author, message, cerr := s.cfg.Commits.CommitInfo(ctx, repoURL, rev)
			if cerr == nil {
				md, err = revisionMetadata{Author: author, Message: message}, nil
			} else if err == nil {
				err = cerr
			}
		}
		if err != nil {
			return nil, err
		}
		s.metadata.Add(key, md)
		return md, nil
	})
	if err != nil {
		s.log.Debug("argocd revision metadata", "source", s.name, "app", a.Metadata.Name, "err", err)
		return revisionMetadata{}, false
	}
	md = v.(revisionMetadata)
	return md, md.Author != "" || md.Message != ""
}

// serverMetadata asks argocd-server for a revision's commit metadata; a
// revision it has none for (a Helm chart, a pruned commit) will not get
// any: an empty answer, remembered by the caller.
func (s *Source) serverMetadata(ctx context.Context, a *application, rev string, sourceIndex int, multi bool) (revisionMetadata, error) {
	q := url.Values{}
	if a.Metadata.Namespace != "" {
		q.Set("appNamespace", a.Metadata.Namespace)
	}
	if multi {
		q.Set("sourceIndex", strconv.Itoa(sourceIndex))
	}
	var md revisionMetadata
	path := "/api/v1/applications/" + url.PathEscape(a.Metadata.Name) + "/revisions/" + url.PathEscape(rev) + "/metadata"
	err := s.get(ctx, path, q, &md, "revision metadata of "+a.Metadata.Name)
	if errors.Is(err, errNotFound) || errors.Is(err, errBadRequest) {
		return revisionMetadata{}, nil
	}
	return md, err
}

// changedGitSource is the index of the git source whose revision differs
// from the previous sync's (the first git source when there is no
// previous sync), or -1: no git source, or none moved (a chart bump, an
// image updater writing the Application): an old commit did not write
// this sync, so its author and message must not be shown as if it had.
func changedGitSource(srcs []applicationSource, revs, prev []string) int {
	for i, src := range srcs {
		if !src.isGit() || i >= len(revs) {
			continue
		}
		if len(prev) == 0 {
			return i
		}
		if i < len(prev) && prev[i] != revs[i] {
			return i
		}
	}
	return -1
}

// authorName: git's "Alice Kim <alice@acme.io>" reads as "Alice Kim".
func authorName(author string) string {
	if name, _, ok := strings.Cut(author, " <"); ok && strings.TrimSpace(name) != "" {
		return strings.TrimSpace(name)
	}
	return strings.TrimSpace(author)
}

var (
	errNotFound   = errors.New("not found")
	errForbidden  = errors.New("permission denied")
	errBadRequest = errors.New("rejected")
)

// get does one authenticated GET against argocd-server and decodes JSON.
func (s *Source) get(ctx context.Context, path string, q url.Values, out any, what string) error {
	u := strings.TrimSuffix(s.cfg.Server, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%s: invalid server URL", what)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return describeTransport(what, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	switch resp.StatusCode {
	case http.StatusOK:
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("%s: unexpected answer from argocd-server: %v", what, err)
		}
		return nil
	case http.StatusUnauthorized:
		return errors.New("token rejected by argocd-server (expired or revoked? generate one with `argocd account generate-token`)")
	case http.StatusForbidden:
		return fmt.Errorf("%s: token lacks applications/get (grant role:readonly to its account): %w", what, errForbidden)
	case http.StatusNotFound:
		return fmt.Errorf("%s: %w", what, errNotFound)
	case http.StatusBadRequest:
		return fmt.Errorf("%s: %w by argocd-server", what, errBadRequest)
	}
	return fmt.Errorf("%s: argocd-server answered %d", what, resp.StatusCode)
}

// describeTransport says why a request got no answer. A request that ran
// out of time or was cancelled says so, and still matches the context's
// error: the server may be reachable, and the pipeline reports timeouts
// its own way.
func describeTransport(what string, err error) error {
	err = httperr.Unwrap(err)
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", what, errCancelled)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%s: %w", what, errTimeout)
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), strings.Contains(err.Error(), "tls:"):
		return fmt.Errorf("%s: TLS with argocd-server failed (%v); set http_config.tls_config.ca_file, or insecure_skip_verify for a test setup", what, err)
	}
	return fmt.Errorf("%s: argocd-server unreachable: %v", what, err)
}

// ctxError reads short and unwraps to the context error it stands for.
type ctxError struct {
	text string
	err  error
}

func (e ctxError) Error() string { return e.text }
func (e ctxError) Unwrap() error { return e.err }

var (
	errTimeout   error = ctxError{"timeout", context.DeadlineExceeded}
	errCancelled error = ctxError{"cancelled", context.Canceled}
)

// ResolveSubject reads the app from the configured alert label, else
// finds the app that manages the alert's workload (status.resources), or
// an app named like the alert's service or job; for a known app it hands
// its git repository (for the GitHub source) and destination namespace to
// the subject.
func (s *Source) ResolveSubject(labels map[string]string, subj sources.Subject) (sources.Subject, []sources.ResolutionStep) {
	var steps []sources.ResolutionStep
	step := func(field, value, from string) {
		steps = append(steps, sources.ResolutionStep{Field: field, Value: value, From: from})
	}
	if v := labels[s.cfg.AppLabel]; v != "" && subj.App != v {
		subj.App = v
		step("app", v, "label "+s.cfg.AppLabel)
	}
	var a *application
	if subj.App != "" {
		// An app of that name deploying elsewhere is another team's.
		if a, _ = s.lookupAny(subj); a != nil && !s.deploysTo(a, subj) {
			step("app", subj.App, fmt.Sprintf("argocd app %s deploys to namespace %s, not %s: not this alert's", a.Metadata.Name, a.Spec.Destination.Namespace, subj.Namespace))
			a = nil
		}
	}
	if a == nil && subj.Name != "" {
		if m := s.managing(subj); m != nil {
			a = m
			if subj.App != m.Metadata.Name {
				if subj.App != "" && !slices.Contains(subj.Apps, subj.App) {
					subj.Apps = append(subj.Apps, subj.App)
				}
				subj.App = m.Metadata.Name
				step("app", subj.App, fmt.Sprintf("argocd app %s manages %s %s/%s (status.resources)", m.Metadata.Name, orWorkload(subj.Kind), subj.Namespace, subj.Name))
			}
		}
	}
	if a == nil && subj.App == "" && subj.Name == "" {
		for _, label := range []string{"service", "job"} {
			if v := labels[label]; v != "" {
				if m := s.lookup(v); m != nil && (subj.Namespace == "" || m.Spec.Destination.Namespace == subj.Namespace) && s.deploysTo(m, subj) {
					a, subj.App = m, v
					step("app", v, "label "+label+": the argocd app of that name")
					break
				}
			}
		}
	}
	if a == nil {
		return subj, steps
	}
	if repo := a.gitRepo(); repo != "" && subj.Repo == "" {
		subj.Repo = repo
		step("repo", repo, "argocd app "+a.Metadata.Name+" git source")
	}
	if subj.Namespace == "" && a.Spec.Destination.Namespace != "" {
		subj.Namespace = a.Spec.Destination.Namespace
		step("namespace", subj.Namespace, "argocd app "+a.Metadata.Name+" destination")
	}
	return subj, steps
}

// RepoOfApp is the git repository of the app (by name or qualified
// name) that deploys to namespace.
func (s *Source) RepoOfApp(app, namespace string) string {
	a, _ := s.lookupAny(sources.Subject{App: app})
	if a == nil || !a.deploysTo(namespace) {
		return ""
	}
	return a.gitRepo()
}

func orWorkload(kind string) string {
	if kind == "" {
		return "workload"
	}
	return kind
}

// clusterOf is the cluster an app deploys to: its destination as mapped
// by clusters, else the cluster the source is bound to ("" when one).
func (s *Source) clusterOf(a *application) string {
	d := a.Spec.Destination
	for _, k := range []string{d.Name, d.Server} {
		if c, ok := s.cfg.Clusters[k]; ok && k != "" {
			return c
		}
	}
	return s.cfg.Cluster
}

// deploysTo reports whether the app deploys to the subject's namespace in
// the subject's cluster (an unmapped destination is any cluster's).
func (s *Source) deploysTo(a *application, subj sources.Subject) bool {
	c := s.clusterOf(a)
	return a.deploysTo(subj.Namespace) && (subj.Cluster == "" || c == "" || c == subj.Cluster)
}

// Cluster is the cluster the source is bound to (clusters[].argocd).
func (s *Source) Cluster() string { return s.cfg.Cluster }

func (s *Source) appLink(a *application) string {
	if s.cfg.UIURL == "" {
		return ""
	}
	return strings.TrimSuffix(s.cfg.UIURL, "/") + "/applications/" + url.PathEscape(a.Metadata.Namespace) + "/" + url.PathEscape(a.Metadata.Name)
}

// describeSource is what a sync shipped, named by the source that moved
// since the previous sync (the first source when none or all did): a
// chart's version ("orders@1.4.0"), or a git path and short revision
// ("deploy/prod@9f1c2e7"; "values@9f1c2e7" for a values-only source).
func describeSource(srcs []applicationSource, revs, prev []string) string {
	i := 0
	for j := range srcs {
		if j < len(revs) && j < len(prev) && revs[j] != prev[j] {
			i = j
			break
		}
	}
	if i >= len(revs) {
		return ""
	}
	src, rev := srcs[i], revs[i]
	if !src.isGit() {
		return src.Chart + "@" + rev
	}
	if len(rev) == 40 {
		rev = rev[:7]
	}
	if what := cmp.Or(src.Path, src.Ref); what != "" {
		return what + "@" + rev
	}
	return rev
}

func initiator(i initiatedBy) string {
	if i.Automated {
		return "automated sync"
	}
	return i.Username
}
