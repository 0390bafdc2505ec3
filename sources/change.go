package sources

import (
	"strings"
	"time"
)

// Change kinds. Sources may add their own; these are the ones the pipeline
// and the pushed-changes API know.
const (
	KindRollout          = "rollout"    // a Kubernetes workload revision
	KindRollback         = "rollback"   // a Kubernetes workload back to an earlier template
	KindSync             = "sync"       // an Argo CD sync
	KindRelease          = "release"    // a GitHub release
	KindGitHubDeployment = "deployment" // a GitHub deployment
	KindHelm             = "helm"       // a Helm release revision (install, upgrade, rollback) read from the cluster
	KindDeploy           = "deploy"     // a deploy pushed by CI
	KindConfig           = "config"
	KindFlag             = "flag"
	KindMigration        = "migration"
	KindOther            = "other"
)

// Change statuses.
const (
	StatusSucceeded  = "succeeded"
	StatusInProgress = "in_progress"
	StatusFailed     = "failed"
	StatusUnknown    = "unknown"
)

// Change is one observed change. Sources fill the observation fields; the
// pipeline fills Relation, Score and BeforeStart when it ranks.
type Change struct {
	Source           string  `json:"source"`
	Kind             string  `json:"kind"`
	ID               string  `json:"id,omitempty"`
	Subject          Subject `json:"subject"`
	Revision         string  `json:"revision,omitempty"`
	PreviousRevision string  `json:"previousRevision,omitempty"`
	Version          string  `json:"version,omitempty"`
	PreviousVersion  string  `json:"previousVersion,omitempty"`
	// Chart is the Helm chart a release installed, "name-version".
	Chart string `json:"chart,omitempty"`
	// Images lists, per container, the image before and after a rollout.
	Images     []ImageChange `json:"images,omitempty"`
	StartedAt  time.Time     `json:"startedAt"`
	FinishedAt time.Time     `json:"finishedAt,omitzero"`
	Status     string        `json:"status,omitempty"`
	// Environment is where a deploy went, when its source says (a GitHub
	// deployment's environment).
	Environment string `json:"environment,omitempty"`
	// Author wrote the change (the commit's author); DeployedBy is who or
	// what shipped it (Argo CD's initiatedBy or "automated sync", the
	// GitHub deployment's creator, the CI actor). They differ in teams
	// where one person writes and another releases.
	Author     string `json:"author,omitempty"`
	DeployedBy string `json:"deployedBy,omitempty"`
	Message    string `json:"message,omitempty"`
	URL        string `json:"url,omitempty"`
	CompareURL string `json:"compareUrl,omitempty"`
	// Links are extra named links (Argo CD app page, release, CI run). A
	// change merged from several sources keeps every source's links.
	Links []Link `json:"links,omitempty"`
	// Sources lists every source that observed this change when more than
	// one did (after merging).
	Sources []string `json:"sources,omitempty"`
	// Rollouts are the workload rollouts this change caused, merged into
	// it (a sync, release or CI deploy and the ReplicaSets it produced are
	// one deploy); the alerting workload's comes first.
	Rollouts []Rollout `json:"rollouts,omitempty"`
	// Objects are what changed when it is not the workload's template: the
	// ConfigMap or Secret a workload uses (a config change), and, merged
	// into a deploy, the config objects that deploy changed.
	Objects []Object `json:"objects,omitempty"`
	// Detail says how a change reached the workload: "mounted by pricing;
	// not rolled out (pods older than the edit)".
	Detail string `json:"detail,omitempty"`

	Relation    Relation `json:"relation,omitempty"`
	Score       float64  `json:"score,omitempty"`
	BeforeStart string   `json:"beforeStart,omitempty"`
	// Role is what the change is to the alert: "suspect", "also changed"
	// (another workload of the alerting workload's app), "after start" (a
	// fix or rollback in flight).
	Role string `json:"role,omitempty"`
}

// Rollout is one workload's new revision inside a merged deploy.
type Rollout struct {
	Namespace        string        `json:"namespace,omitempty"`
	Kind             string        `json:"kind,omitempty"`
	Name             string        `json:"name"`
	Revision         string        `json:"revision,omitempty"`
	PreviousRevision string        `json:"previousRevision,omitempty"`
	Images           []ImageChange `json:"images,omitempty"`
	Status           string        `json:"status,omitempty"`
	Rollback         bool          `json:"rollback,omitempty"`
}

// Object is a changed object that is not a workload. Keys names the data
// keys that changed, never their values (a Secret's values, digests and
// sizes never leave the process).
type Object struct {
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name"`
	Keys      []string `json:"keys,omitempty"`
	// Created: the object is new, not edited.
	Created bool `json:"created,omitempty"`
}

// ImageChange is one container's image before and after a change; From is
// empty for a container that is new.
type ImageChange struct {
	Container string `json:"container"`
	From      string `json:"from,omitempty"`
	To        string `json:"to"`
}

// Link is a named URL attached to a change.
type Link struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// IsBot reports whether an author or deployer is automation acting for
// people (a release bot, an image updater, a CI app): a person wrote what
// it carried.
func IsBot(name string) bool {
	n := strings.ToLower(name)
	return strings.HasSuffix(n, "[bot]") || strings.HasSuffix(n, "-bot") || strings.HasSuffix(n, " bot") || strings.HasPrefix(n, "bot-") ||
		n == "bot" || strings.Contains(n, "image-updater") || n == "automated sync" || n == "github-actions" || n == "renovate" || n == "dependabot"
}

// IsSHA reports whether s looks like a git commit SHA or an abbreviation
// of it: 7 to 64 hex characters, either case.
func IsSHA(s string) bool {
	if len(s) < 7 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

// CompareURL links previous → current revision on GitHub or GitLab (https
// or ssh repo URL forms); other hosts get none.
func CompareURL(repoURL, prev, cur string) string {
	repo := NormalizeRepo(repoURL)
	host, _, _ := strings.Cut(repo, "/")
	switch {
	case strings.Contains(host, "gitlab"):
		return "https://" + repo + "/-/compare/" + prev + "..." + cur
	case strings.Contains(host, "github"):
		return "https://" + repo + "/compare/" + prev + "..." + cur
	}
	return ""
}
