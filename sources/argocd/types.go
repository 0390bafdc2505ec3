package argocd

import (
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// The few Application fields the source reads, as argocd-server's REST API
// and the Application CRD (argoproj.io/v1alpha1) spell them. Defined here
// rather than imported: the argo-cd module drags in k8s.io/kubernetes (see
// DESIGN.md).

type application struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Project     string              `json:"project"`
		Source      *applicationSource  `json:"source"`
		Sources     []applicationSource `json:"sources"`
		Destination struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name,omitempty"`
			Server    string `json:"server,omitempty"`
		} `json:"destination"`
	} `json:"spec"`
	Status struct {
		History        []revisionHistory `json:"history"`
		OperationState *operationState   `json:"operationState"`
		// Resources the app manages; only workloads are kept.
		Resources []resourceStatus `json:"resources"`
	} `json:"status"`
}

// resourceStatus is one entry of status.resources.
type resourceStatus struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// workloadKinds are the resources whose rollouts a sync causes.
var workloadKinds = map[string]bool{"Deployment": true, "StatefulSet": true, "DaemonSet": true, "Rollout": true}

// manages reports whether the app manages the workload kind/ns/name (kind
// may be empty: any workload kind).
func (a *application) manages(kind, ns, name string) bool {
	for _, r := range a.Status.Resources {
		if r.Name == name && workloadKinds[r.Kind] && (kind == "" || r.Kind == kind) &&
			(r.Namespace == ns || (r.Namespace == "" && a.Spec.Destination.Namespace == ns)) {
			return true
		}
	}
	return false
}

type applicationList struct {
	Items []application `json:"items"`
}

type applicationSource struct {
	RepoURL        string `json:"repoURL"`
	Path           string `json:"path"`
	Chart          string `json:"chart"`
	TargetRevision string `json:"targetRevision"`
	Ref            string `json:"ref"`
}

// isGit: a Helm-repository source names a chart; every other source is a
// git repository (manifests, or values referenced by ref).
func (s applicationSource) isGit() bool { return s.Chart == "" }

// gitRepo is the repository of the app's first git source: where its
// manifests or values live. A Helm repository URL is never a repo.
func (a *application) gitRepo() string {
	for _, src := range a.sources() {
		if src.isGit() && src.RepoURL != "" {
			return sources.NormalizeRepo(src.RepoURL)
		}
	}
	return ""
}

type revisionHistory struct {
	ID              int64               `json:"id"`
	Revision        string              `json:"revision"`
	Revisions       []string            `json:"revisions"`
	DeployedAt      time.Time           `json:"deployedAt"`
	DeployStartedAt *time.Time          `json:"deployStartedAt"`
	Source          *applicationSource  `json:"source"`
	Sources         []applicationSource `json:"sources"`
	InitiatedBy     initiatedBy         `json:"initiatedBy"`
}

type initiatedBy struct {
	Username  string `json:"username"`
	Automated bool   `json:"automated"`
}

type operationState struct {
	Operation struct {
		Sync *struct {
			Revision  string   `json:"revision"`
			Revisions []string `json:"revisions"`
		} `json:"sync"`
		InitiatedBy initiatedBy `json:"initiatedBy"`
	} `json:"operation"`
	Phase      string `json:"phase"`
	Message    string `json:"message"`
	SyncResult *struct {
		Revision  string   `json:"revision"`
		Revisions []string `json:"revisions"`
	} `json:"syncResult"`
	StartedAt  time.Time  `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt"`
}

// revisionMetadata is GET /api/v1/applications/{name}/revisions/{rev}/metadata.
type revisionMetadata struct {
	Author  string    `json:"author"`
	Date    time.Time `json:"date"`
	Message string    `json:"message"`
	Tags    []string  `json:"tags"`
}

// deploysTo reports whether the app deploys into namespace ns: its
// destination, or a workload it manages there.
func (a *application) deploysTo(ns string) bool {
	if ns == "" || a.Spec.Destination.Namespace == ns {
		return true
	}
	for _, r := range a.Status.Resources {
		if r.Namespace == ns {
			return true
		}
	}
	return false
}

// keepWorkloads cuts status.resources to the workloads (REST answers carry
// every resource of the app).
func (a *application) keepWorkloads() {
	kept := a.Status.Resources[:0]
	for _, r := range a.Status.Resources {
		if workloadKinds[r.Kind] {
			kept = append(kept, r)
		}
	}
	a.Status.Resources = kept
}

// sources lists the app's sources whether it is single- or multi-source.
func (a *application) sources() []applicationSource {
	if len(a.Spec.Sources) > 0 {
		return a.Spec.Sources
	}
	if a.Spec.Source != nil {
		return []applicationSource{*a.Spec.Source}
	}
	return nil
}

// revisions of a history entry, one per source.
func (h revisionHistory) revs() []string {
	if len(h.Revisions) > 0 {
		return h.Revisions
	}
	if h.Revision != "" {
		return []string{h.Revision}
	}
	return nil
}

func (h revisionHistory) sources(app *application) []applicationSource {
	if len(h.Sources) > 0 {
		return h.Sources
	}
	if h.Source != nil {
		return []applicationSource{*h.Source}
	}
	return app.sources()
}
