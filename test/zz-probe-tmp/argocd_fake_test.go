package scenarios_test

import (
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// argocdFake is argocd-server's REST API (grpc-gateway JSON) for the
// scenario's applications: list, get, and revision metadata.
type argocdFake struct {
	*recorder
	sc       *Scenario
	startsAt time.Time
	token    string
}

const argocdControlNamespace = "argocd" // where apps live unless they say otherwise

// grpcError is how grpc-gateway renders an error status.
func grpcError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"error": msg, "code": code, "message": msg})
}

func (f *argocdFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.saw(r)
	w.Header().Set("Grpc-Metadata-Content-Type", "application/grpc")
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/api/v1/applications") {
		f.unexpectedRequest(w, r, "not an argocd-server API path whatchanged reads")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		grpcError(w, http.StatusUnauthorized, 16, "invalid session: token signature is invalid")
		return
	}
	q := r.URL.Query()
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/v1/applications"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "": // /api/v1/applications
		f.list(w, q)
	case len(parts) == 2 && parts[1] != "": // /api/v1/applications/{name}
		if a, ok := f.find(w, parts[1], q); ok {
			writeJSON(w, http.StatusOK, f.application(a))
		}
	case len(parts) == 5 && parts[2] == "revisions" && parts[4] == "metadata":
		f.revisionMetadata(w, parts[1], parts[3], q)
	default:
		f.unexpectedRequest(w, r, "no such argocd-server API path")
	}
}

func (f *argocdFake) forbidden(name string) bool { return contains(f.sc.ArgoCD.Forbidden, name) }

func (f *argocdFake) list(w http.ResponseWriter, q url.Values) {
	items := []any{}
	for _, a := range f.sc.ArgoCD.Applications {
		if f.forbidden(a.Name) || (q.Get("appNamespace") != "" && appNamespace(a) != q.Get("appNamespace")) {
			continue
		}
		items = append(items, f.application(a))
	}
	writeJSON(w, http.StatusOK, map[string]any{"metadata": map[string]any{"resourceVersion": "123456"}, "items": items})
}

// find answers the errors argocd-server gives for an app it will not show.
func (f *argocdFake) find(w http.ResponseWriter, name string, q url.Values) (Application, bool) {
	ns := q.Get("appNamespace")
	if ns == "" {
		ns = argocdControlNamespace
	}
	if f.forbidden(name) {
		grpcError(w, http.StatusForbidden, 7, "permission denied")
		return Application{}, false
	}
	for _, a := range f.sc.ArgoCD.Applications {
		if a.Name == name && appNamespace(a) == ns {
			return a, true
		}
	}
	grpcError(w, http.StatusNotFound, 5, fmt.Sprintf("applications.argoproj.io %q not found", name))
	return Application{}, false
}

func (f *argocdFake) revisionMetadata(w http.ResponseWriter, name, revision string, q url.Values) {
	a, ok := f.find(w, name, q)
	if !ok {
		return
	}
	src, err := sourceFor(a, q)
	if err != nil {
		grpcError(w, http.StatusBadRequest, 3, err.Error())
		return
	}
	if src.Chart != "" {
		// argocd-server reads revision metadata from Git only.
		grpcError(w, http.StatusBadRequest, 3, fmt.Sprintf("revision metadata is only available for Git sources: %s is a Helm repository", src.RepoURL))
		return
	}
	md, ok := f.sc.ArgoCD.Revisions[revision]
	if !ok {
		grpcError(w, http.StatusNotFound, 5, fmt.Sprintf("rpc error: code = NotFound desc = unable to resolve git revision %s: revision not found", revision))
		return
	}
	tags := md.Tags
	if tags == nil {
		tags = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"author": md.Author, "date": ts(md.Date.From(f.startsAt)), "message": md.Message, "tags": tags})
}

// sourceFor picks the source a metadata request is about, as
// argocd-server does: sourceIndex among the app's sources, else the first.
// (versionId names a history entry; the fake's history entries have the
// app's sources, so it picks the same.)
func sourceFor(a Application, q url.Values) (AppSource, error) {
	srcs := appSources(a)
	if len(srcs) == 0 {
		return AppSource{}, fmt.Errorf("application %s has no sources", a.Name)
	}
	if q.Get("sourceIndex") == "" {
		return srcs[0], nil
	}
	i, err := strconv.Atoi(q.Get("sourceIndex"))
	if err != nil || i < 0 || i >= len(srcs) {
		return AppSource{}, fmt.Errorf("source index %s not found", q.Get("sourceIndex"))
	}
	return srcs[i], nil
}

func appNamespace(a Application) string {
	if a.Namespace != "" {
		return a.Namespace
	}
	return argocdControlNamespace
}

func appSources(a Application) []AppSource {
	if len(a.Sources) > 0 {
		return a.Sources
	}
	if a.Source != nil {
		return []AppSource{*a.Source}
	}
	return nil
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// sourceFields is how an Application spells its source(s) and revision(s):
// `source` and `revision` for one, `sources` and `revisions` for several.
func sourceFields(a Application, m map[string]any, single, multi string) {
	if len(a.Sources) > 0 {
		m[multi] = a.Sources
	} else if a.Source != nil {
		m[single] = *a.Source
	}
}

func revisionFields(m map[string]any, revision string, revisions []string) {
	if len(revisions) > 0 {
		m["revisions"] = revisions
	} else if revision != "" {
		m["revision"] = revision
	}
}

// application renders an Application as argocd-server returns it.
func (f *argocdFake) application(a Application) map[string]any {
	created := f.startsAt.Add(-30 * 24 * time.Hour)
	h := fnv.New64a()
	_, _ = h.Write([]byte(appNamespace(a) + "/" + a.Name))
	sum := h.Sum64()
	uid := fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", sum>>32, sum>>16&0xffff, sum&0xfff, sum>>20&0xfff, sum&0xffffffffffff)
	project := a.Project
	if project == "" {
		project = "default"
	}
	dest := map[string]any{"namespace": a.Destination.Namespace}
	if a.Destination.Name != "" {
		dest["name"] = a.Destination.Name
	} else {
		dest["server"] = a.Destination.Server
		if a.Destination.Server == "" {
			dest["server"] = "https://kubernetes.default.svc"
		}
	}
	spec := map[string]any{"project": project, "destination": dest}
	sourceFields(a, spec, "source", "sources")

	automated := false
	var history []any
	for _, e := range a.History {
		started := e.At
		if e.StartedAt != nil {
			started = *e.StartedAt
		}
		entry := map[string]any{"id": e.ID, "deployedAt": ts(e.At.From(f.startsAt)), "deployStartedAt": ts(started.From(f.startsAt)),
			"initiatedBy": initiatedBy(e.By, e.Automated)}
		revisionFields(entry, e.Revision, e.Revisions)
		sourceFields(a, entry, "source", "sources")
		history = append(history, entry)
		automated = automated || e.Automated
	}
	if automated {
		spec["syncPolicy"] = map[string]any{"automated": map[string]any{"prune": true, "selfHeal": true}}
	}

	status := map[string]any{
		"resources":    f.resources(a),
		"reconciledAt": ts(f.startsAt),
		"sourceType":   sourceType(a),
	}
	if history != nil {
		status["history"] = history
	}
	op := f.operationState(a)
	sync := map[string]any{"status": "Synced", "comparedTo": map[string]any{"destination": dest}}
	sourceFields(a, sync["comparedTo"].(map[string]any), "source", "sources")
	if n := len(a.History); n > 0 {
		revisionFields(sync, a.History[n-1].Revision, a.History[n-1].Revisions)
	}
	health := "Healthy"
	if op != nil {
		status["operationState"] = op
		switch op["phase"] {
		case "Running":
			sync["status"], health = "OutOfSync", "Progressing"
		case "Failed", "Error":
			sync["status"], health = "OutOfSync", "Degraded"
		}
	}
	if a.Sync != "" {
		sync["status"] = a.Sync
	}
	if a.Health != "" {
		health = a.Health
	}
	status["sync"] = sync
	status["health"] = map[string]any{"status": health}

	meta := map[string]any{"name": a.Name, "namespace": appNamespace(a), "uid": uid,
		"resourceVersion": "123456", "generation": 42, "creationTimestamp": ts(created)}
	if len(a.Labels) > 0 {
		meta["labels"] = a.Labels
	}
	return map[string]any{"metadata": meta, "spec": spec, "status": status}
}

// operationState is the scenario's operation, or, without one, the
// completed sync of the newest history entry: Argo CD keeps the last
// operation after it finished.
func (f *argocdFake) operationState(a Application) map[string]any {
	o := a.Operation
	if o == nil {
		if len(a.History) == 0 {
			return nil
		}
		e := a.History[len(a.History)-1]
		started := e.At
		if e.StartedAt != nil {
			started = *e.StartedAt
		}
		o = &AppOperation{Phase: "Succeeded", StartedAt: started, FinishedAt: &e.At, Revision: e.Revision, Revisions: e.Revisions,
			Message: "successfully synced (all tasks run)", By: e.By, Automated: e.Automated}
	}
	message := o.Message
	if message == "" {
		switch o.Phase {
		case "Succeeded":
			message = "successfully synced (all tasks run)"
		case "Running":
			message = "waiting for healthy state of apps/Deployment"
		}
	}
	syncOp := map[string]any{"syncStrategy": map[string]any{"hook": map[string]any{}}}
	revisionFields(syncOp, o.Revision, o.Revisions)
	state := map[string]any{
		"operation": map[string]any{"sync": syncOp, "initiatedBy": initiatedBy(o.By, o.Automated), "retry": map[string]any{}},
		"phase":     o.Phase,
		"message":   message,
		"startedAt": ts(o.StartedAt.From(f.startsAt)),
	}
	if o.FinishedAt != nil {
		state["finishedAt"] = ts(o.FinishedAt.From(f.startsAt))
	}
	// syncResult.revision is always written (empty for several sources):
	// the CRD requires it.
	result := map[string]any{"revision": o.Revision}
	revisionFields(result, o.Revision, o.Revisions)
	sourceFields(a, result, "source", "sources")
	state["syncResult"] = result
	return state
}

func initiatedBy(user string, automated bool) map[string]any {
	m := map[string]any{}
	if user != "" {
		m["username"] = user
	}
	if automated {
		m["automated"] = true
	}
	return m
}

func sourceType(a Application) string {
	if srcs := appSources(a); len(srcs) > 0 && srcs[0].Chart != "" {
		return "Helm"
	}
	return "Directory"
}

// resources is status.resources: what the app manages, with the group and
// version of each kind.
func (f *argocdFake) resources(a Application) []any {
	out := []any{}
	for _, r := range a.Resources {
		group, version := r.Group, r.Version
		if group == "" && version == "" {
			group, version = groupVersionOf(r.Kind)
		}
		res := map[string]any{"version": version, "kind": r.Kind, "namespace": r.Namespace, "name": r.Name, "status": "Synced"}
		if group != "" {
			res["group"] = group
		}
		if r.Status != "" {
			res["status"] = r.Status
		}
		health := r.Health
		if health == "" {
			health = "Healthy"
		}
		switch r.Kind {
		case "ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			// Argo CD has no health for these.
		default:
			res["health"] = map[string]any{"status": health}
		}
		out = append(out, res)
	}
	return out
}

func groupVersionOf(kind string) (string, string) {
	switch kind {
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet":
		return "apps", "v1"
	case "Rollout":
		return "argoproj.io", "v1alpha1"
	case "CronJob", "Job":
		return "batch", "v1"
	case "Ingress":
		return "networking.k8s.io", "v1"
	}
	return "", "v1"
}
