package sources

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// Subject is what an alert is about, as far as changes are concerned: the
// workload, the application it belongs to, the repository it is built from.
// Any field may be empty; the more are known, the better the ranking.
type Subject struct {
	Namespace string   `json:"namespace,omitempty"`
	Kind      string   `json:"kind,omitempty"` // Deployment, StatefulSet, DaemonSet, Rollout, …
	Name      string   `json:"name,omitempty"`
	App       string   `json:"app,omitempty"`  // application (Argo CD app or app label)
	Repo      string   `json:"repo,omitempty"` // normalised: host/owner/name
	Images    []string `json:"images,omitempty"`
	// Apps are the other names the workload goes by as an application
	// (Argo CD app, Helm release/instance label, app label): an alert
	// labelled with any of them is about this workload's app.
	Apps []string `json:"apps,omitempty"`
	// Cluster names the Kubernetes cluster when more than one is
	// configured (the alert's cluster label); empty: the only one.
	Cluster string `json:"cluster,omitempty"`
}

// HasApp reports whether the subject goes by the application name app.
func (s Subject) HasApp(app string) bool {
	return app != "" && (s.App == app || slices.Contains(s.Apps, app))
}

// IsZero reports whether nothing is known about the subject.
func (s Subject) IsZero() bool {
	return s.Namespace == "" && s.Kind == "" && s.Name == "" && s.App == "" && s.Repo == "" && len(s.Images) == 0
}

// Key is a stable identity of the subject, used to query each distinct
// subject of a notification only once.
func (s Subject) Key() string {
	return strings.Join([]string{s.Cluster, s.Namespace, s.Kind, s.Name, s.App, s.Repo, strings.Join(s.Images, ","), strings.Join(s.Apps, ",")}, "\x00")
}

// String is the short human form: "shop/Deployment/api", "app shop-api", …
func (s Subject) String() string {
	var parts []string
	if s.Name != "" {
		w := s.Name
		if s.Kind != "" {
			w = s.Kind + "/" + w
		}
		if s.Namespace != "" {
			w = s.Namespace + "/" + w
		}
		parts = append(parts, w)
	} else if s.Namespace != "" {
		parts = append(parts, "namespace "+s.Namespace)
	}
	if s.App != "" {
		parts = append(parts, "app "+s.App)
	}
	if s.Repo != "" {
		parts = append(parts, "repo "+s.Repo)
	}
	if s.Cluster != "" {
		parts = append(parts, "cluster "+s.Cluster)
	}
	if len(parts) == 0 {
		return "(unknown)"
	}
	return strings.Join(parts, ", ")
}

// Short is the one thing a human calls the subject: the workload, else the
// app, else the repository, else the namespace.
func (s Subject) Short() string {
	switch {
	case s.Name != "" && s.Namespace != "":
		return s.Namespace + "/" + s.Name
	case s.Name != "":
		return s.Name
	case s.App != "":
		return "app " + s.App
	case s.Repo != "":
		return s.Repo
	case s.Namespace != "":
		return "namespace " + s.Namespace
	}
	return "(unknown)"
}

// Relation says how a change's subject relates to an alert's subject, from
// closest to loosest. RelationNone means unrelated.
type Relation string

const (
	RelationWorkload  Relation = "workload"
	RelationApp       Relation = "app"
	RelationRepo      Relation = "repo"
	RelationNamespace Relation = "namespace"
	RelationNone      Relation = ""
)

// Relate returns the closest relation between the alert's subject and a
// change's subject. Sources use it to filter; the ranking uses it to score.
func Relate(alert, change Subject) Relation {
	if alert.Cluster != "" && change.Cluster != "" && alert.Cluster != change.Cluster {
		return RelationNone // the same names in another cluster are other workloads
	}
	sameNS := alert.Namespace == "" || change.Namespace == "" || alert.Namespace == change.Namespace
	if alert.Name != "" && change.Name != "" && sameNS && alert.Name == change.Name &&
		(alert.Kind == "" || change.Kind == "" || strings.EqualFold(alert.Kind, change.Kind)) &&
		// Without a namespace on one side, a name alone ("api") is only
		// the same workload when its app and repo do not say otherwise.
		((alert.Namespace != "" && change.Namespace != "") || !contradicts(alert, change)) {
		return RelationWorkload
	}
	// The same app or repo: by any name either side goes by. The same app
	// or repo in another namespace is another deployment of it (staging
	// vs prod), not this one.
	if sameNS {
		if change.HasApp(alert.App) || (change.App != "" && alert.HasApp(change.App)) {
			return RelationApp
		}
		if alert.Repo != "" && NormalizeRepo(alert.Repo) == NormalizeRepo(change.Repo) {
			// In the alert's own namespace, a change naming no other
			// workload or app but the workload's repository is as
			// specific as its app.
			if alert.Namespace != "" && change.Namespace == alert.Namespace && change.Name == "" && change.App == "" {
				return RelationApp
			}
			return RelationRepo
		}
	}
	if alert.Namespace != "" && alert.Namespace == change.Namespace {
		return RelationNamespace
	}
	return RelationNone
}

// contradicts reports whether two subjects name different apps or repos.
func contradicts(a, b Subject) bool {
	return (a.App != "" && b.App != "" && !a.HasApp(b.App) && !b.HasApp(a.App)) ||
		(a.Repo != "" && b.Repo != "" && NormalizeRepo(a.Repo) != NormalizeRepo(b.Repo))
}

// NormalizeRepo turns the usual spellings of a repository URL into
// host/owner/name: https://github.com/acme/api.git, git@github.com:acme/api,
// ssh://git@github.com/acme/api and github.com/acme/api are all
// "github.com/acme/api".
func NormalizeRepo(repo string) string {
	r := strings.TrimSpace(repo)
	if r == "" {
		return ""
	}
	if i := strings.Index(r, "://"); i >= 0 {
		r = r[i+3:]
	} else if at := strings.Index(r, "@"); at >= 0 && strings.Contains(r[at:], ":") {
		// scp-like: git@github.com:acme/api.git
		r = strings.Replace(r, ":", "/", 1)
	}
	if at := strings.Index(r, "@"); at >= 0 && at < strings.Index(r+"/", "/") {
		r = r[at+1:] // drop user info
	}
	r = strings.TrimSuffix(strings.TrimSuffix(r, "/"), ".git")
	host, path, _ := strings.Cut(r, "/")
	if h, _, ok := strings.Cut(host, ":"); ok { // drop a port
		host = h
	}
	return strings.ToLower(host) + "/" + path
}

// Truncate cuts s to at most n bytes without splitting a character and
// marks the cut with "…". Messages and commit lines go through it before
// they reach annotations and notifiers.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
