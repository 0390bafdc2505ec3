// Package sources defines what every change source answers and the types it
// answers with. It is a leaf package: sources import it, it imports no source.
package sources

import (
	"context"
	"errors"
	"time"
)

// Source answers "which changes of this subject happened in [Since, Until]".
// Implementations answer from a cache or a local store where they can: the
// pipeline calls Changes once per distinct subject of every notification and
// cuts a source off at its deadline.
type Source interface {
	// Name is the source's configured name; it labels metrics, errors and
	// the "source" field of every change it returns.
	Name() string
	// Changes returns the changes related to q.Subject in q's window, in any
	// order. It must return promptly with ctx.Err() once ctx is done, and an
	// empty result (not an error) for a subject it knows nothing about.
	// Changes returned together with an error are a stale answer (from a
	// cache) and are used; the error is shown beside them.
	Changes(ctx context.Context, q Query) ([]Change, error)
}

// ErrNotSynced is what a source that syncs answers before its first sync;
// each wraps it with what it waits for and where to look.
var ErrNotSynced = errors.New("not synced yet")

// Starter is implemented by sources that need to load or sync before they
// can answer (informer caches, a store on disk). Start must not block past
// ctx; Ready reports whether answers are complete yet (for /readyz).
type Starter interface {
	Start(ctx context.Context) error
	Ready() bool
}

// SubjectResolver is implemented by sources that know more about an
// alert's subject than its labels say: the Kubernetes source walks a pod to
// its Deployment and reads the workload's Argo CD app and repository. It
// answers from caches, so it takes no context.
type SubjectResolver interface {
	// ResolveSubject improves s (built from label conventions) and explains
	// each field it set.
	ResolveSubject(labels map[string]string, s Subject) (Subject, []ResolutionStep)
}

// AppRepos is implemented by sources that know an application's
// repository (Argo CD: the git source of the app): a neighbour workload's
// rollout can then be matched with its app's GitHub deployment. It answers
// from caches.
type AppRepos interface {
	// RepoOfApp returns the normalised repository of the app deploying to
	// namespace, or "".
	RepoOfApp(app, namespace string) string
}

// CommitLookup is implemented by sources that can tell who wrote a commit
// and what its message says (GitHub): the Argo CD source asks it when it
// reads Application resources with no argocd-server to ask.
type CommitLookup interface {
	// CommitInfo returns the author and message of commit sha of repo (any
	// form NormalizeRepo reads). A repository the source does not read, or
	// a commit it does not know, is an empty answer, not an error; errors
	// are passing (rate limited, unreachable) and worth asking again.
	CommitInfo(ctx context.Context, repo, sha string) (author, message string, err error)
}

// ResolutionStep explains one piece of a resolution: which field got which
// value, from where.
type ResolutionStep struct {
	Field string `json:"field"`
	Value string `json:"value"`
	From  string `json:"from"` // "label namespace", "rule kafka", "owner walk: Pod a → ReplicaSet b → Deployment c"
}

// Query is one question to a source.
type Query struct {
	Subject Subject
	Since   time.Time
	Until   time.Time
	// MaxLoose, when positive, lets a source stop returning changes related
	// only by namespace (the loosest relation) after this many, newest
	// first: a busy namespace has thousands and the pipeline ranks only the
	// best. Changes related by workload, app or repo are always returned.
	MaxLoose int
	// History, when before Since, asks for the changes of the subject's
	// own workload and app back to it, so the pipeline can tell their last
	// deploy however old; changes related more loosely stay within Since.
	History time.Time
}

// From is where changes of relation rel start to be wanted.
func (q Query) From(rel Relation) time.Time {
	if (rel == RelationWorkload || rel == RelationApp) && !q.History.IsZero() && q.History.Before(q.Since) {
		return q.History
	}
	return q.Since
}

// ErrInvalidChange wraps validation failures of a pushed change.
var ErrInvalidChange = errors.New("invalid change")

// Every calls fn every d until ctx ends: the background loop of sources
// that prune or refresh.
func Every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// Clustered is a source or subject resolver that may read one Kubernetes
// cluster of several: when Cluster is not empty, it is asked only about
// alerts of that cluster (the subject's Cluster).
type Clustered interface {
	Cluster() string
}

// ClusterOf is the cluster a source or resolver is bound to; bound is
// false when it answers for any alert.
func ClusterOf(v any) (cluster string, bound bool) {
	if c, ok := v.(Clustered); ok && c.Cluster() != "" {
		return c.Cluster(), true
	}
	return "", false
}

// Aliased is a source that reports some changes under other names than
// its own: the Kubernetes source tells Flux's syncs as "flux".
type Aliased interface {
	Aliases() []string
}
