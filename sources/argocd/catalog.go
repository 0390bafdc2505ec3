package argocd

import (
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/whatchanged/whatchanged/sources"
)

// catalog indexes the known applications for the lookups every alert
// makes (by name, by managed workload, by namespace deployed to). It is
// rebuilt when the applications change — a REST poll, an app fetched
// alone, an informer event — not per alert: an Argo CD may hold thousands.
type catalog struct {
	byName      map[string][]*application // app name → apps of that name, sorted by namespace
	byWorkload  map[string][]*application // "Kind/ns/name" and "*/ns/name" → the apps managing it (one per cluster)
	byNamespace map[string][]*application // namespace → apps deploying there
}

func newCatalog(apps []*application) *catalog {
	sort.Slice(apps, func(i, j int) bool { return apps[i].key() < apps[j].key() }) // the same answers every time
	c := &catalog{byName: map[string][]*application{}, byWorkload: map[string][]*application{}, byNamespace: map[string][]*application{}}
	for _, a := range apps {
		c.byName[a.Metadata.Name] = append(c.byName[a.Metadata.Name], a)
		namespaces := map[string]bool{}
		if ns := a.Spec.Destination.Namespace; ns != "" {
			namespaces[ns] = true
		}
		for _, r := range a.Status.Resources {
			ns := r.Namespace
			if ns == "" {
				ns = a.Spec.Destination.Namespace
			}
			namespaces[ns] = true
			for _, k := range []string{r.Kind + "/" + ns + "/" + r.Name, "*/" + ns + "/" + r.Name} {
				if !slices.Contains(c.byWorkload[k], a) {
					c.byWorkload[k] = append(c.byWorkload[k], a)
				}
			}
		}
		for ns := range namespaces {
			c.byNamespace[ns] = append(c.byNamespace[ns], a)
		}
	}
	return c
}

func (a *application) key() string { return a.Metadata.Namespace + "/" + a.Metadata.Name }

// apps is the current catalog, rebuilt first when the applications changed.
func (s *Source) apps() *catalog {
	if c := s.cat.Load(); c != nil && !s.stale.Load() {
		return c
	}
	s.catMu.Lock()
	defer s.catMu.Unlock()
	if c := s.cat.Load(); c != nil && !s.stale.Load() {
		return c // rebuilt while waiting
	}
	s.stale.Store(false)
	byKey := map[string]*application{}
	s.mu.RLock()
	for k, a := range s.restApps {
		byKey[k] = a
	}
	s.mu.RUnlock()
	for _, inf := range s.informers { // the cluster's own copy wins
		for _, obj := range inf.GetStore().List() {
			u, ok := obj.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			var a application
			if runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &a) == nil {
				byKey[a.key()] = &a
			}
		}
	}
	list := make([]*application, 0, len(byKey))
	for _, a := range byKey {
		list = append(list, a)
	}
	c := newCatalog(list)
	s.cat.Store(c)
	return c
}

// changed marks the catalog for a rebuild on its next use.
func (s *Source) changed() { s.stale.Store(true) }

// watchChanges marks the catalog stale on every informer event.
func (s *Source) watchChanges(inf cache.SharedIndexInformer) error {
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.changed() },
		UpdateFunc: func(any, any) { s.changed() },
		DeleteFunc: func(any) { s.changed() },
	})
	return err
}

// lookup finds an app by "<name>" or "<appNamespace>_<name>"; a bare name
// two namespaces share is ambiguous (nil).
func (s *Source) lookup(app string) *application {
	ns, name, qualified := strings.Cut(app, "_")
	if !qualified {
		name, ns = app, ""
	}
	var found *application
	for _, a := range s.apps().byName[name] {
		if ns != "" && a.Metadata.Namespace != ns {
			continue
		}
		if found != nil {
			return nil
		}
		found = a
	}
	return found
}

// managing finds the app that manages the subject's workload (its
// status.resources) in the subject's cluster; the kind may be empty.
func (s *Source) managing(subj sources.Subject) *application {
	kind := subj.Kind
	if kind == "" {
		kind = "*"
	}
	for _, a := range s.apps().byWorkload[kind+"/"+subj.Namespace+"/"+subj.Name] {
		if s.deploysTo(a, subj) {
			return a
		}
	}
	return nil
}
