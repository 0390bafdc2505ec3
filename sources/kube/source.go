// Package kube is the Kubernetes source: rollout history of Deployments,
// StatefulSets, DaemonSets and Argo Rollouts, read from shared informers
// whose caches hold only what the source reads. It also resolves alert
// labels to workloads (pod → ReplicaSet → Deployment, service → selector →
// workloads). Answering makes no API call.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/whatchanged/whatchanged/sources"
)

var rolloutsGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// Clients are the API clients the source uses; tests pass fakes.
type Clients struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
}

// ClientsFromConfig reads the kubeconfig (or the in-cluster config); it
// makes no request.
func ClientsFromConfig(cfg Config) (Clients, *rest.Config, error) {
	rc, err := restConfig(cfg)
	if err != nil {
		return Clients{}, nil, err
	}
	rc.UserAgent = "whatchanged"
	clients, err := ClientsFor(rc)
	return clients, rc, err
}

// ClientsFor builds the clients from a REST config (tests impersonate with it).
func ClientsFor(rc *rest.Config) (Clients, error) {
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return Clients{}, err
	}
	dc, err := dynamic.NewForConfig(rc)
	if err != nil {
		return Clients{}, err
	}
	return Clients{Kube: kc, Dynamic: dc}, nil
}

func restConfig(cfg Config) (*rest.Config, error) {
	if cfg.Kubeconfig == "" && cfg.Context == "" {
		if rc, err := rest.InClusterConfig(); err == nil {
			return rc, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if cfg.Kubeconfig != "" {
		rules.ExplicitPath = cfg.Kubeconfig
	} else if os.Getenv("KUBECONFIG") == "" {
		if home, err := os.UserHomeDir(); err == nil {
			rules.ExplicitPath = filepath.Join(home, ".kube", "config")
		}
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: cfg.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes: no in-cluster config and no usable kubeconfig: %w", err)
	}
	return rc, nil
}

// scope is the caches of one watched namespace ("" = all).
type scope struct {
	namespace                                          string
	deployments, replicaSets, statefulSets, daemonSets cache.SharedIndexInformer
	revisions, services, pods                          cache.SharedIndexInformer
	hpas                                               cache.SharedIndexInformer // HorizontalPodAutoscalers: alerts name them
	rollouts                                           cache.SharedIndexInformer // nil unless the CRD exists
	// Config objects and deploy records; each nil unless enabled (and,
	// for Flux, its CRDs are served).
	configMaps, secrets                           cache.SharedIndexInformer
	helmSecrets, helmConfigMaps                   cache.SharedIndexInformer
	kustomizations, helmReleases, gitRepositories cache.SharedIndexInformer
}

// Source is the Kubernetes source.
type Source struct {
	name    string
	cfg     Config
	clients Clients
	log     *slog.Logger
	tf      *transformer
	configs *configTracker
	now     func() time.Time

	scopes  []*scope
	synced  []cache.InformerSynced // guarded by mu
	started atomic.Bool

	// failing is when list/watch began failing without a pause (zero: it
	// works); lastFailure the newest failure.
	failMu               sync.Mutex
	failing, lastFailure time.Time

	mu sync.Mutex
	// observed records when a watch saw a revision appear on an existing
	// ReplicaSet or ControllerRevision (a rollback reuses the old one, whose
	// creation time says nothing about when it came back).
	observed map[string]time.Time
}

var (
	_ sources.Source          = (*Source)(nil)
	_ sources.Starter         = (*Source)(nil)
	_ sources.SubjectResolver = (*Source)(nil)
	_ sources.Clustered       = (*Source)(nil)
	_ sources.Aliased         = (*Source)(nil)
)

// New builds the source; it does no I/O until Start.
func New(name string, cfg Config, clients Clients, log *slog.Logger) *Source {
	cfg.Defaults()
	s := &Source{name: name, cfg: cfg, clients: clients, log: log, tf: newTransformer(cfg), now: time.Now, observed: map[string]time.Time{}}
	s.configs = newConfigTracker(func() time.Time { return s.now() })
	return s
}

func (s *Source) Name() string { return s.name }

// Aliases: Flux syncs are told as Flux's, not the Kubernetes source's.
func (s *Source) Aliases() []string { return []string{fluxSource} }

// Cluster is the cluster this source reads ("" when it is the only one).
func (s *Source) Cluster() string { return s.cfg.Cluster }

// Ready reports whether every informer has synced once.
func (s *Source) Ready() bool {
	if !s.started.Load() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, synced := range s.synced {
		if !synced() {
			return false
		}
	}
	return true
}

// Start creates the informers (Argo Rollouts only when the CRD is served),
// starts them on ctx and returns; readiness follows the first sync. Lost
// watches are re-established by the reflectors themselves.
func (s *Source) Start(ctx context.Context) error {
	if s.started.Load() {
		return errors.New("kubernetes: already started")
	}
	rollouts := s.cfg.Rollouts == "auto" && s.served(rolloutsGVR)
	flux := map[schema.GroupVersionResource]bool{}
	if s.cfg.Flux == "auto" {
		for _, gvr := range []schema.GroupVersionResource{kustomizationsGVR, helmReleasesGVR, gitRepositoriesGVR} {
			flux[gvr] = s.served(gvr)
		}
	}
	namespaces := s.cfg.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	tweak := func(o *metav1.ListOptions) { o.LabelSelector = s.cfg.LabelSelector }
	for _, ns := range namespaces {
		// Services are not filtered by the label selector: they select
		// workloads, they are not workloads.
		fs := informers.NewSharedInformerFactoryWithOptions(s.clients.Kube, s.cfg.Resync,
			informers.WithNamespace(ns), informers.WithTransform(s.tf.transform))
		fl := informers.NewSharedInformerFactoryWithOptions(s.clients.Kube, s.cfg.Resync,
			informers.WithNamespace(ns), informers.WithTransform(s.tf.transform), informers.WithTweakListOptions(tweak))
		sc := &scope{
			namespace:    ns,
			deployments:  fl.Apps().V1().Deployments().Informer(),
			replicaSets:  fl.Apps().V1().ReplicaSets().Informer(),
			statefulSets: fl.Apps().V1().StatefulSets().Informer(),
			daemonSets:   fl.Apps().V1().DaemonSets().Informer(),
			revisions:    fl.Apps().V1().ControllerRevisions().Informer(),
			services:     fs.Core().V1().Services().Informer(),
			hpas:         fs.Autoscaling().V2().HorizontalPodAutoscalers().Informer(),
			// Pods are cached as metadata plus their IP (scrape-target
			// alerts name a pod by address); the transform drops the rest.
			pods: fl.Core().V1().Pods().Informer(),
		}
		// Config objects are not workloads: not filtered by the label
		// selector. Their transform drops the data.
		fc := informers.NewSharedInformerFactoryWithOptions(s.clients.Kube, s.cfg.Resync,
			informers.WithNamespace(ns), informers.WithTransform(s.configs.transform))
		if *s.cfg.ConfigMaps {
			sc.configMaps = fc.Core().V1().ConfigMaps().Informer()
		}
		if s.cfg.Secrets {
			sc.secrets = fc.Core().V1().Secrets().Informer()
		}
		var fh informers.SharedInformerFactory
		if s.cfg.Helm {
			fh = informers.NewSharedInformerFactoryWithOptions(s.clients.Kube, s.cfg.Resync, informers.WithNamespace(ns),
				informers.WithTransform(helmTransform), informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = helmOwnerSelector }))
			sc.helmSecrets = fh.Core().V1().Secrets().Informer()
			sc.helmConfigMaps = fh.Core().V1().ConfigMaps().Informer()
		}
		var df, dflux dynamicinformer.DynamicSharedInformerFactory
		if rollouts {
			df = dynamicinformer.NewFilteredDynamicSharedInformerFactory(s.clients.Dynamic, s.cfg.Resync, ns, tweak)
			sc.rollouts = df.ForResource(rolloutsGVR).Informer()
			if err := sc.rollouts.SetTransform(s.tf.transform); err != nil {
				return err
			}
		}
		for gvr, dst := range map[schema.GroupVersionResource]*cache.SharedIndexInformer{
			kustomizationsGVR: &sc.kustomizations, helmReleasesGVR: &sc.helmReleases, gitRepositoriesGVR: &sc.gitRepositories} {
			if !flux[gvr] {
				continue
			}
			if dflux == nil {
				dflux = dynamicinformer.NewFilteredDynamicSharedInformerFactory(s.clients.Dynamic, s.cfg.Resync, ns, nil)
			}
			*dst = dflux.ForResource(gvr).Informer()
			if err := (*dst).SetTransform(fluxTransform); err != nil {
				return err
			}
		}
		if err := s.index(sc); err != nil {
			return err
		}
		for _, inf := range sc.all() {
			if err := inf.SetWatchErrorHandler(s.watchFailed); err != nil {
				return err
			}
		}
		fl.Start(ctx.Done())
		fs.Start(ctx.Done())
		fc.Start(ctx.Done())
		if fh != nil {
			fh.Start(ctx.Done())
		}
		if df != nil {
			df.Start(ctx.Done())
		}
		if dflux != nil {
			dflux.Start(ctx.Done())
		}
		s.mu.Lock()
		for _, inf := range sc.all() {
			s.synced = append(s.synced, inf.HasSynced)
		}
		s.mu.Unlock()
		s.scopes = append(s.scopes, sc)
	}
	s.started.Store(true)
	go s.probe(ctx)
	s.log.Info("kubernetes source starting", "source", s.name, "namespaces", namespaces, "rollouts", rollouts,
		"configmaps", *s.cfg.ConfigMaps, "secrets", s.cfg.Secrets, "helm", s.cfg.Helm,
		"flux", flux[kustomizationsGVR] || flux[helmReleasesGVR])
	go func() { // only to say so in the log; Ready reads the informers
		syncCtx, cancel := context.WithTimeout(ctx, s.cfg.SyncTimeout)
		defer cancel()
		if s.WaitForSync(syncCtx) {
			s.log.Info("kubernetes caches synced", "source", s.name)
		} else if ctx.Err() == nil {
			s.log.Warn("kubernetes caches not synced yet; is the API server reachable and are list/watch allowed?", "source", s.name, "waited", s.cfg.SyncTimeout)
		}
	}()
	return nil
}

// WaitForSync blocks until the caches synced or ctx ends (for one-shot use
// such as `whatchanged explain`).
func (s *Source) WaitForSync(ctx context.Context) bool {
	s.mu.Lock()
	synced := append([]cache.InformerSynced(nil), s.synced...)
	s.mu.Unlock()
	return cache.WaitForCacheSync(ctx.Done(), synced...)
}

// served reports whether the API server serves a resource (a CRD installed).
func (s *Source) served(gvr schema.GroupVersionResource) bool {
	d := s.clients.Kube.Discovery()
	if d == nil {
		return false
	}
	list, err := d.ServerResourcesForGroupVersion(gvr.GroupVersion().String())
	if err != nil || list == nil {
		return false
	}
	for _, r := range list.APIResources {
		if r.Name == gvr.Resource {
			return true
		}
	}
	return false
}

func (sc *scope) all() []cache.SharedIndexInformer {
	out := []cache.SharedIndexInformer{sc.deployments, sc.replicaSets, sc.statefulSets, sc.daemonSets, sc.revisions, sc.services, sc.pods, sc.hpas}
	for _, inf := range []cache.SharedIndexInformer{sc.rollouts, sc.configMaps, sc.secrets, sc.helmSecrets, sc.helmConfigMaps,
		sc.kustomizations, sc.helmReleases, sc.gitRepositories} {
		if inf != nil {
			out = append(out, inf)
		}
	}
	return out
}

func (sc *scope) covers(ns string) bool {
	return sc.namespace == metav1.NamespaceAll || sc.namespace == ns
}

func (s *Source) scopesFor(ns string) []*scope {
	var out []*scope
	for _, sc := range s.scopes {
		if ns == "" || sc.covers(ns) {
			out = append(out, sc)
		}
	}
	return out
}

const (
	byOwner = "owner" // controller owner UID
	byApp   = "app"   // "<ns>/<app>" for each app name a workload carries
	byIP    = "ip"    // a pod's IP
	byDay   = "day"   // "<ns>@<creation day>" of a ReplicaSet or ControllerRevision
)

// dayKey buckets revisions by namespace and the UTC day they were created,
// so the namespace's recent revisions are found without scanning them all.
func dayKey(ns string, t time.Time) string { return ns + "@" + t.UTC().Format(time.DateOnly) }

// recentDays: only revisions created this recently are in the day index
// (most of a cluster's ReplicaSets are old history); a window reaching
// further back scans the namespace.
const recentDays = 8

func (s *Source) index(sc *scope) error {
	owner := cache.Indexers{byOwner: func(obj any) ([]string, error) {
		m, err := metaOf(obj)
		if err != nil {
			return nil, nil
		}
		for _, r := range m.GetOwnerReferences() {
			if r.Controller != nil && *r.Controller {
				return []string{string(r.UID)}, nil
			}
		}
		return nil, nil
	}}
	app := cache.Indexers{byApp: func(obj any) ([]string, error) {
		m, err := metaOf(obj)
		if err != nil {
			return nil, nil
		}
		var keys []string
		for _, a := range s.appNames(m) {
			keys = append(keys, m.GetNamespace()+"/"+a)
		}
		return keys, nil
	}}
	// Pods are found by name and IP, never by owner: no owner index for
	// the most numerous objects.
	for _, inf := range []cache.SharedIndexInformer{sc.replicaSets, sc.revisions} {
		if err := inf.AddIndexers(owner); err != nil {
			return err
		}
	}
	day := cache.Indexers{byDay: func(obj any) ([]string, error) {
		m, err := metaOf(obj)
		if err != nil {
			return nil, nil
		}
		created := m.GetCreationTimestamp().Time
		if created.Before(s.now().Add(-recentDays * 24 * time.Hour)) {
			return nil, nil
		}
		return []string{dayKey(m.GetNamespace(), created)}, nil
	}}
	for _, inf := range []cache.SharedIndexInformer{sc.replicaSets, sc.revisions} {
		if err := inf.AddIndexers(day); err != nil {
			return err
		}
	}
	if err := sc.pods.AddIndexers(cache.Indexers{byIP: func(obj any) ([]string, error) {
		if p, ok := obj.(*pod); ok {
			return p.IPs, nil
		}
		return nil, nil
	}}); err != nil {
		return err
	}
	workloads := []cache.SharedIndexInformer{sc.deployments, sc.statefulSets, sc.daemonSets}
	if sc.rollouts != nil {
		workloads = append(workloads, sc.rollouts)
		if _, err := sc.replicaSets.AddEventHandler(s.revisionWatcher(annRolloutRevision)); err != nil {
			return err
		}
	}
	for _, inf := range workloads {
		if err := inf.AddIndexers(app); err != nil {
			return err
		}
	}
	if _, err := sc.replicaSets.AddEventHandler(s.revisionWatcher(annRevision)); err != nil {
		return err
	}
	for _, inf := range []cache.SharedIndexInformer{sc.configMaps, sc.secrets} {
		if inf == nil {
			continue
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: s.configs.forget}); err != nil {
			return err
		}
	}
	for _, inf := range []cache.SharedIndexInformer{sc.helmSecrets, sc.helmConfigMaps} {
		if inf == nil {
			continue
		}
		if err := inf.AddIndexers(cache.Indexers{byRelease: helmIndex}); err != nil {
			return err
		}
	}
	_, err := sc.revisions.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(oldObj, newObj any) {
		o, ok1 := oldObj.(*appsv1.ControllerRevision)
		n, ok2 := newObj.(*appsv1.ControllerRevision)
		if ok1 && ok2 && o.Revision != n.Revision {
			s.observe(string(n.UID), fmt.Sprint(n.Revision))
		}
	}})
	return err
}

// revisionWatcher notes when an existing ReplicaSet gets a new revision
// number: that is a rollback to its template.
func (s *Source) revisionWatcher(annotation string) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{UpdateFunc: func(oldObj, newObj any) {
		o, ok1 := oldObj.(*replicaSet)
		n, ok2 := newObj.(*replicaSet)
		if ok1 && ok2 && o.Annotations[annotation] != n.Annotations[annotation] && n.Annotations[annotation] != "" {
			s.observe(string(n.UID), n.Annotations[annotation])
		}
	}}
}

func (s *Source) observe(uid, rev string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observed[uid+"@"+rev] = s.now().UTC().Truncate(time.Second)
}

func (s *Source) observedAt(uid, rev string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.observed[uid+"@"+rev]
	return t, ok
}

func metaOf(obj any) (metav1.Object, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", obj)
	}
	return m, nil
}

// watchRecovered: an API server that has not failed for this long works
// again.
const watchRecovered = time.Minute

// probeEvery: how often the API server is asked whether it answers. The
// reflectors retry a refused connection among themselves without telling
// (they resume the watch where it ended), so an API server that went away
// after the caches synced would otherwise go unnoticed: answers come from
// the cache, which is then the last state known.
const probeEvery = 10 * time.Second

// probe asks the API server's version (allowed to any client) now and then.
func (s *Source) probe(ctx context.Context) {
	sources.Every(ctx, probeEvery, func() {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		d := s.clients.Kube.Discovery()
		if d == nil || d.RESTClient() == nil {
			return
		}
		if err := d.RESTClient().Get().AbsPath("/version").Do(pctx).Error(); err != nil && ctx.Err() == nil {
			s.watchFailed(nil, err)
		}
	})
}

// watchFailed notes a failed list/watch (the reflectors log it and retry).
func (s *Source) watchFailed(_ *cache.Reflector, _ error) {
	now := s.now()
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if s.failing.IsZero() || now.Sub(s.lastFailure) > watchRecovered {
		s.failing = now.UTC().Truncate(time.Second)
	}
	s.lastFailure = now
}

// unreachable says, once the API server has failed the watches for longer
// than sync_timeout, that answers come from the cache: the caches keep the
// last state known, which may be stale. One stable text per outage.
func (s *Source) unreachable() error {
	now := s.now()
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if s.failing.IsZero() || now.Sub(s.lastFailure) > watchRecovered || now.Sub(s.failing) < s.cfg.SyncTimeout {
		return nil
	}
	return fmt.Errorf("API server unreachable since %s UTC (answered from the cache)", s.failing.Format("15:04"))
}

// errNotSynced is returned until the caches have synced.
var errNotSynced = fmt.Errorf("caches %w (is the API server reachable?)", sources.ErrNotSynced)

// Changes returns the rollouts of the subject's workload, of the workloads
// of its app, and (bounded by MaxLoose) of its namespace, in the window.
func (s *Source) Changes(ctx context.Context, q sources.Query) ([]sources.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !s.Ready() {
		return nil, errNotSynced
	}
	subj := q.Subject
	seen := map[string]bool{}
	seenIDs := map[string]bool{} // a release or config object shared by the app's workloads: told once
	var out []sources.Change
	// The subject's own workload and app: back to q.History, for the
	// last deploy however old.
	add := func(ws []workload) {
		for _, w := range ws {
			if key := w.key(); !seen[key] {
				seen[key] = true
				out = append(out, s.workloadChanges(w, q, seenIDs)...)
			}
		}
	}
	known := false
	if subj.Name != "" {
		ws := s.findWorkloads(subj.Namespace, subj.Kind, subj.Name)
		known = len(ws) > 0
		add(ws)
	}
	for _, app := range append([]string{subj.App}, subj.Apps...) {
		if app != "" {
			ws := s.workloadsOfApp(subj.Namespace, app)
			known = known || len(ws) > 0
			add(ws)
		}
	}
	// The rest of the namespace, newest first and bounded: every
	// workload when the subject names none the cluster has (a CronJob, an
	// unknown shape), else only those with a revision created in the
	// window (found through the namespace index, without walking every
	// workload's history).
	if subj.Namespace != "" {
		var ws []workload
		if known {
			ws = s.recentlyRevised(subj.Namespace, q.Since, q.Until)
		} else {
			ws = s.workloadsIn(subj.Namespace)
		}
		var loose []sources.Change
		for _, w := range ws {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if !seen[w.key()] {
				seen[w.key()] = true
				loose = append(loose, s.history(w, q.Since, q.Until)...)
			}
		}
		out = append(out, newest(loose, q.MaxLoose)...)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, s.unreachable()
}

// workloadChanges are a workload's rollouts plus what changed around its
// template: the config objects it uses, the Helm release and the Flux sync
// that own it. A change shared by several workloads is told once (for the
// first asked: the alert's own).
//
// Deploys are looked for back to the query's history (the last deploy
// however old); config edits only in its window: an old edit is not a
// deploy to name when nothing changed.
func (s *Source) workloadChanges(w workload, q sources.Query, seenIDs map[string]bool) []sources.Change {
	from := q.From(sources.RelationWorkload)
	out := s.history(w, from, q.Until)
	for _, more := range [][]sources.Change{s.configChanges(w, q.Since, q.Until), s.helmChanges(w, from, q.Until), s.fluxChanges(w, from, q.Until)} {
		for _, ch := range more {
			if !seenIDs[ch.ID] {
				seenIDs[ch.ID] = true
				out = append(out, ch)
			}
		}
	}
	return out
}
