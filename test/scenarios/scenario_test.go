package scenarios_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Scenario is one incident file (README.md, "Format"). Decoding is strict:
// a misspelt key is an error, not a silently ignored expectation.
type Scenario struct {
	Name        string         `yaml:"name"`
	Description string         `yaml:"description"`
	Covers      []string       `yaml:"covers"`
	Workloads   []Workload     `yaml:"workloads"`
	Pods        []Pod          `yaml:"pods"`
	Services    []Service      `yaml:"services"`
	Objects     []Object       `yaml:"objects"`
	ConfigMaps  []ConfigObject `yaml:"configMaps"`
	Secrets     []ConfigObject `yaml:"secrets"`
	Helm        []HelmRelease  `yaml:"helmReleases"`
	ArgoCD      ArgoCD         `yaml:"argocd"`
	GitHub      GitHub         `yaml:"github"`
	Grafana     Grafana        `yaml:"grafana"`
	Changes     []PushedChange `yaml:"changes"`
	Alert       Alert          `yaml:"alert"`
	Expect      Expect         `yaml:"expect"`

	file    string
	loadErr error // the file does not load: the scenario is not right
}

type Workload struct {
	Kind           string            `yaml:"kind"`
	Namespace      string            `yaml:"namespace"`
	Name           string            `yaml:"name"`
	Labels         map[string]string `yaml:"labels"`
	TemplateLabels map[string]string `yaml:"templateLabels"`
	Annotations    map[string]string `yaml:"annotations"`
	CreatedAt      *Offset           `yaml:"createdAt"`
	Revisions      []Revision        `yaml:"revisions"`
	Status         string            `yaml:"status"`
	StatusAt       *Offset           `yaml:"statusAt"`
	Replicas       *int32            `yaml:"replicas"`
	// PodSpec is a pod spec fragment every revision's template gets:
	// `volumes`, and `containers` (by name, among the images) with
	// `env`, `envFrom` and `volumeMounts`.
	PodSpec map[string]any `yaml:"podSpec"`
}

type Revision struct {
	Revision    int64  `yaml:"revision"`
	At          Offset `yaml:"at"`
	Images      Images `yaml:"images"`
	Hash        string `yaml:"hash"`
	ChangeCause string `yaml:"changeCause"`
	Reuses      int64  `yaml:"reuses"`
	// TemplateAnnotations are the revision's pod-template annotations (a
	// chart's checksum/config); restartedAt is `kubectl rollout restart`'s.
	TemplateAnnotations map[string]string `yaml:"templateAnnotations"`
	RestartedAt         *Offset           `yaml:"restartedAt"`
}

// Images is `{container: image}` in the order written: the order of the
// pod template's containers.
type Images []Container

type Container struct{ Name, Image string }

func (im *Images) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: images: want a map of container: image", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		*im = append(*im, Container{Name: n.Content[i].Value, Image: n.Content[i+1].Value})
	}
	return nil
}

type Pod struct {
	Namespace string            `yaml:"namespace"`
	Name      string            `yaml:"name"`
	Owner     *PodOwner         `yaml:"owner"`
	IP        string            `yaml:"ip"`
	Labels    map[string]string `yaml:"labels"`
}

type PodOwner struct {
	Kind     string `yaml:"kind"`
	Name     string `yaml:"name"`
	Revision int64  `yaml:"revision"`
}

type Service struct {
	Namespace string            `yaml:"namespace"`
	Name      string            `yaml:"name"`
	Selector  map[string]string `yaml:"selector"`
}

// Object is any other Kubernetes object, verbatim, plus `at:` for its
// creationTimestamp.
type Object struct {
	At  *Offset
	Obj map[string]any
}

func (o *Object) UnmarshalYAML(n *yaml.Node) error {
	if err := n.Decode(&o.Obj); err != nil {
		return err
	}
	if at, ok := o.Obj["at"]; ok {
		off, err := ParseOffset(fmt.Sprint(at))
		if err != nil {
			return fmt.Errorf("line %d: at: %w", n.Line, err)
		}
		o.At = &off
		delete(o.Obj, "at")
	}
	var bad error
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case string:
			for _, m := range timeRef.FindAllStringSubmatch(x, -1) {
				if _, err := ParseOffset(m[1]); err != nil && bad == nil {
					bad = fmt.Errorf("line %d: %s: %w", n.Line, m[0], err)
				}
			}
		}
	}
	walk(o.Obj)
	return bad
}

// ConfigObject is a ConfigMap or Secret: its data as created, then each
// later write (oldest first) by its field manager, so the API server's
// managedFields say who last wrote which key and when.
type ConfigObject struct {
	Namespace   string            `yaml:"namespace"`
	Name        string            `yaml:"name"`
	Type        string            `yaml:"type"` // a Secret's type (default Opaque)
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
	Data        map[string]string `yaml:"data"` // a Secret's values as plain text
	CreatedAt   *Offset           `yaml:"createdAt"`
	Manager     string            `yaml:"manager"` // default kubectl-client-side-apply
	Edits       []ConfigEdit      `yaml:"edits"`
}

// ConfigEdit is one later write: data keys set or removed, or metadata
// only (labels, annotations).
type ConfigEdit struct {
	At          Offset            `yaml:"at"`
	Manager     string            `yaml:"manager"` // default kubectl-edit
	Data        map[string]string `yaml:"data"`
	Remove      []string          `yaml:"remove"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// HelmRelease is a Helm 3 release's history as Helm's Secret storage
// driver keeps it: one record per revision.
type HelmRelease struct {
	Name      string         `yaml:"name"`
	Namespace string         `yaml:"namespace"`
	Revisions []HelmRevision `yaml:"revisions"`
}

type HelmRevision struct {
	Revision     int     `yaml:"revision"`
	Chart        string  `yaml:"chart"` // the chart's name
	ChartVersion string  `yaml:"chartVersion"`
	AppVersion   string  `yaml:"appVersion"`
	Status       string  `yaml:"status"`      // default: deployed for the last, superseded before
	Description  string  `yaml:"description"` // default "Install complete" / "Upgrade complete"
	At           Offset  `yaml:"at"`          // info.last_deployed: the record is written then
	FinishedAt   *Offset `yaml:"finishedAt"`  // when Helm marked it deployed or failed (default: at)
}

type ArgoCD struct {
	Applications []Application         `yaml:"applications"`
	Revisions    map[string]RevisionMD `yaml:"revisions"`
	Forbidden    []string              `yaml:"forbidden"`
}

type Application struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Project     string            `yaml:"project"`
	Destination AppDestination    `yaml:"destination"`
	Source      *AppSource        `yaml:"source"`
	Sources     []AppSource       `yaml:"sources"`
	Resources   []AppResource     `yaml:"resources"`
	History     []AppHistory      `yaml:"history"`
	Operation   *AppOperation     `yaml:"operation"`
	Sync        string            `yaml:"sync"`   // status.sync.status; default Synced
	Health      string            `yaml:"health"` // status.health.status; default from the operation
	Labels      map[string]string `yaml:"labels"`
}

type AppDestination struct {
	Namespace string `yaml:"namespace"`
	Server    string `yaml:"server"`
	Name      string `yaml:"name"`
}

type AppSource struct {
	RepoURL        string `yaml:"repoURL" json:"repoURL"`
	Path           string `yaml:"path" json:"path,omitempty"`
	Chart          string `yaml:"chart" json:"chart,omitempty"`
	TargetRevision string `yaml:"targetRevision" json:"targetRevision,omitempty"`
	Ref            string `yaml:"ref" json:"ref,omitempty"`
}

type AppResource struct {
	Group     string `yaml:"group"`
	Version   string `yaml:"version"`
	Kind      string `yaml:"kind"`
	Namespace string `yaml:"namespace"`
	Name      string `yaml:"name"`
	Status    string `yaml:"status"`
	Health    string `yaml:"health"`
}

type AppHistory struct {
	ID        int64    `yaml:"id"`
	Revision  string   `yaml:"revision"`
	Revisions []string `yaml:"revisions"`
	StartedAt *Offset  `yaml:"startedAt"`
	At        Offset   `yaml:"at"`
	By        string   `yaml:"by"`
	Automated bool     `yaml:"automated"`
}

type AppOperation struct {
	Phase      string   `yaml:"phase"`
	StartedAt  Offset   `yaml:"startedAt"`
	FinishedAt *Offset  `yaml:"finishedAt"`
	Revision   string   `yaml:"revision"`
	Revisions  []string `yaml:"revisions"`
	Message    string   `yaml:"message"`
	By         string   `yaml:"by"`
	Automated  bool     `yaml:"automated"`
}

type RevisionMD struct {
	Author  string   `yaml:"author"`
	Message string   `yaml:"message"`
	Date    Offset   `yaml:"date"`
	Tags    []string `yaml:"tags"`
}

type GitHub struct {
	Repos map[string]GitHubRepo `yaml:"repos"`
}

type GitHubRepo struct {
	Releases    []Release           `yaml:"releases"`
	Deployments []Deployment        `yaml:"deployments"`
	Compares    map[string][]Commit `yaml:"compares"`
}

type Release struct {
	ID         int64  `yaml:"id"`
	Tag        string `yaml:"tag"`
	Name       string `yaml:"name"`
	Author     string `yaml:"author"`
	At         Offset `yaml:"at"`
	Target     string `yaml:"target"`
	Draft      bool   `yaml:"draft"`
	Prerelease bool   `yaml:"prerelease"`
	Body       string `yaml:"body"`
}

type Deployment struct {
	ID          int64              `yaml:"id"`
	Sha         string             `yaml:"sha"`
	Ref         string             `yaml:"ref"`
	Environment string             `yaml:"environment"`
	Creator     string             `yaml:"creator"`
	Description string             `yaml:"description"`
	At          Offset             `yaml:"at"`
	Statuses    []DeploymentStatus `yaml:"statuses"`
}

type DeploymentStatus struct {
	State          string `yaml:"state"`
	At             Offset `yaml:"at"`
	LogURL         string `yaml:"logUrl"`
	EnvironmentURL string `yaml:"environmentUrl"`
	Description    string `yaml:"description"`
}

type Commit struct {
	Sha     string `yaml:"sha"`
	Author  string `yaml:"author"`
	Message string `yaml:"message"`
}

// Grafana is what Grafana's annotations API holds, and the rules
// (sources.grafana.rules, verbatim) and tags the source is configured with.
type Grafana struct {
	Rules       []GrafanaRule       `yaml:"rules"`
	Tags        []string            `yaml:"tags"`
	Annotations []GrafanaAnnotation `yaml:"annotations"`
}

// GrafanaRule is one sources.grafana.rules entry, in the config's words.
type GrafanaRule struct {
	Tags       []string          `yaml:"tags,omitempty"`
	TagPattern string            `yaml:"tag_pattern,omitempty"`
	Subject    map[string]string `yaml:"subject"`
	Kind       string            `yaml:"kind,omitempty"`
}

// GrafanaAnnotation is one annotation: a point at `at`, or a region to
// `endsAt`; `alertId` makes it an alert's state change.
type GrafanaAnnotation struct {
	ID           int64    `yaml:"id"`
	At           Offset   `yaml:"at"`
	EndsAt       *Offset  `yaml:"endsAt"`
	Text         string   `yaml:"text"`
	Tags         []string `yaml:"tags"`
	Login        string   `yaml:"login"`
	Email        string   `yaml:"email"`
	DashboardUID string   `yaml:"dashboardUID"`
	PanelID      int64    `yaml:"panelId"`
	AlertID      int64    `yaml:"alertId"`
	AlertName    string   `yaml:"alertName"`
}

// PushedChange is one CI event for POST /api/v1/changes. Besides the
// README's fields it takes the rest of the pushed-changes API (id,
// previousRevision, previousVersion, status, compareUrl).
//
// With `format`, it is instead a sender's own event for
// POST /api/v1/changes/{format}: `body` verbatim (times as "${-3m}",
// RFC 3339, or "${ms:-3m}", epoch milliseconds), `query` the webhook
// URL's parameters, and `ignored: true` when whatchanged must answer 202
// (not a change).
type PushedChange struct {
	Format  string            `yaml:"format"`
	Query   map[string]string `yaml:"query"`
	Body    map[string]any    `yaml:"body"`
	Ignored bool              `yaml:"ignored"`

	ID               string        `yaml:"id"`
	Kind             string        `yaml:"kind"`
	Subject          ChangeSubject `yaml:"subject"`
	Revision         string        `yaml:"revision"`
	PreviousRevision string        `yaml:"previousRevision"`
	Version          string        `yaml:"version"`
	PreviousVersion  string        `yaml:"previousVersion"`
	Status           string        `yaml:"status"`
	Author           string        `yaml:"author"`
	DeployedBy       string        `yaml:"deployedBy"`
	Message          string        `yaml:"message"`
	URL              string        `yaml:"url"`
	CompareURL       string        `yaml:"compareUrl"`
	At               *Offset       `yaml:"at"`
	FinishedAt       *Offset       `yaml:"finishedAt"`
}

func (s ChangeSubject) zero() bool { return s == ChangeSubject{} }

type ChangeSubject struct {
	Namespace string `yaml:"namespace" json:"namespace,omitempty"`
	Kind      string `yaml:"kind" json:"kind,omitempty"`
	Name      string `yaml:"name" json:"name,omitempty"`
	App       string `yaml:"app" json:"app,omitempty"`
	Repo      string `yaml:"repo" json:"repo,omitempty"`
}

type Alert struct {
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
	Status        string            `yaml:"status"`
	EndsAt        *Offset           `yaml:"endsAt"`
	NotifiedAfter *Offset           `yaml:"notifiedAfter"`
}

// Offset is a time relative to the alert's startsAt: a Go duration with an
// optional sign, plus `d` for days ("-6m", "-3d", "-1d12h", "+10m", "0").
type Offset struct{ D time.Duration }

var offsetRE = regexp.MustCompile(`^([+-]?)(?:(\d+)d)?(.*)$`)

func ParseOffset(s string) (Offset, error) {
	s = strings.TrimSpace(s)
	m := offsetRE.FindStringSubmatch(s)
	if s == "" || m == nil || (m[2] == "" && m[3] == "") {
		return Offset{}, fmt.Errorf("%q is not an offset like -6m, -3d, +10m or 0", s)
	}
	var d time.Duration
	if m[2] != "" {
		days, _ := strconv.Atoi(m[2])
		d = time.Duration(days) * 24 * time.Hour
	}
	if m[3] != "" && m[3] != "0" {
		rest, err := time.ParseDuration(m[3])
		if err != nil || rest < 0 {
			return Offset{}, fmt.Errorf("%q is not an offset like -6m, -3d, +10m or 0", s)
		}
		d += rest
	}
	if m[1] == "-" {
		d = -d
	}
	return Offset{d}, nil
}

func (o *Offset) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want an offset like -6m", n.Line)
	}
	off, err := ParseOffset(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*o = off
	return nil
}

// From is the offset applied to startsAt.
func (o Offset) From(startsAt time.Time) time.Time { return startsAt.Add(o.D) }

// loadScenarios reads every *.yaml in dir, sorted by file name. A file
// that does not load is returned as a scenario carrying its error, so it
// counts (as not right) and says why.
func loadScenarios(dir string) ([]*Scenario, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []*Scenario
	names := map[string]string{}
	for _, f := range files {
		sc, err := loadScenario(f)
		if err != nil {
			sc = &Scenario{Name: strings.TrimSuffix(filepath.Base(f), ".yaml"), file: f, loadErr: err}
		}
		if prev, dup := names[sc.Name]; dup {
			sc = &Scenario{Name: strings.TrimSuffix(filepath.Base(f), ".yaml"), file: f,
				loadErr: fmt.Errorf("%s: name %q is also the name of %s", f, sc.Name, prev)}
		}
		names[sc.Name] = f
		out = append(out, sc)
	}
	return out, nil
}

func loadScenario(file string) (*Scenario, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	sc := &Scenario{file: file}
	if err := dec.Decode(sc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var extra any
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, fmt.Errorf("%s: one scenario per file (a second YAML document follows)", file)
	}
	if sc.Name == "" {
		sc.Name = strings.TrimSuffix(filepath.Base(file), ".yaml")
	}
	if err := sc.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return sc, nil
}

// validate catches what strict decoding cannot: values outside their sets
// and references to things the scenario does not define.
func (sc *Scenario) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(sc.Alert.Labels) == 0 {
		bad("alert.labels: required")
	}
	switch sc.Alert.Status {
	case "", "firing":
	case "resolved":
		if sc.Alert.EndsAt == nil {
			bad("alert.endsAt: required for a resolved alert")
		}
	default:
		bad("alert.status: %q is not firing or resolved", sc.Alert.Status)
	}
	for i, w := range sc.Workloads {
		where := fmt.Sprintf("workloads[%d] (%s/%s)", i, w.Namespace, w.Name)
		switch w.Kind {
		case "Deployment", "StatefulSet", "DaemonSet", "Rollout":
		default:
			bad("%s: kind %q is not Deployment, StatefulSet, DaemonSet or Rollout", where, w.Kind)
		}
		if w.Namespace == "" || w.Name == "" {
			bad("%s: namespace and name are required", where)
		}
		switch w.Status {
		case "", "succeeded", "in_progress", "failed":
		default:
			bad("%s: status %q is not succeeded, in_progress or failed", where, w.Status)
		}
		if len(w.Revisions) == 0 {
			bad("%s: at least one revision", where)
		}
		seen := map[int64]bool{}
		for j, r := range w.Revisions {
			if r.Revision <= 0 || seen[r.Revision] || (j > 0 && r.Revision <= w.Revisions[j-1].Revision) {
				bad("%s: revisions must be numbered 1, 2, … increasing (revisions[%d] is %d)", where, j, r.Revision)
			}
			seen[r.Revision] = true
			if r.Reuses != 0 && !seen[r.Reuses] {
				bad("%s: revision %d reuses %d, which is not an earlier revision", where, r.Revision, r.Reuses)
			}
			if r.Reuses == 0 && len(r.Images) == 0 {
				bad("%s: revision %d has no images", where, r.Revision)
			}
		}
	}
	for i, c := range append(append([]ConfigObject{}, sc.ConfigMaps...), sc.Secrets...) {
		if c.Namespace == "" || c.Name == "" {
			bad("configMaps/secrets[%d]: namespace and name are required", i)
		}
		for j, e := range c.Edits {
			if j > 0 && e.At.D < c.Edits[j-1].At.D {
				bad("%s/%s: edits must be oldest first (edits[%d])", c.Namespace, c.Name, j)
			}
		}
	}
	for i, h := range sc.Helm {
		where := fmt.Sprintf("helmReleases[%d] (%s/%s)", i, h.Namespace, h.Name)
		if h.Namespace == "" || h.Name == "" || len(h.Revisions) == 0 {
			bad("%s: namespace, name and at least one revision are required", where)
		}
		for j, r := range h.Revisions {
			if r.Revision <= 0 || (j > 0 && r.Revision <= h.Revisions[j-1].Revision) {
				bad("%s: revisions must be numbered 1, 2, … increasing (revisions[%d] is %d)", where, j, r.Revision)
			}
			if r.Chart == "" || r.ChartVersion == "" {
				bad("%s: revision %d: chart and chartVersion are required", where, r.Revision)
			}
			switch r.Status {
			case "", "deployed", "superseded", "failed", "pending-install", "pending-upgrade", "pending-rollback", "uninstalled":
			default:
				bad("%s: revision %d: status %q is not a Helm release status", where, r.Revision, r.Status)
			}
		}
	}
	for i, ch := range sc.Changes {
		where := fmt.Sprintf("changes[%d]", i)
		if ch.Format == "" {
			if len(ch.Query) > 0 || ch.Body != nil || ch.Ignored {
				bad("%s: query, body and ignored are for a sender's event (format:)", where)
			}
			continue
		}
		if !slices.Contains(senderFormats, ch.Format) {
			bad("%s: format %q is not one of %s", where, ch.Format, strings.Join(senderFormats, ", "))
		}
		if ch.Body == nil {
			bad("%s: a sender's event needs its body", where)
		}
		if ch.Kind != "" || !ch.Subject.zero() || ch.At != nil || ch.FinishedAt != nil || ch.Author != "" || ch.Revision != "" ||
			ch.Version != "" || ch.ID != "" || ch.Message != "" || ch.URL != "" || ch.DeployedBy != "" || ch.Status != "" {
			bad("%s: a sender's event (format: %s) says everything in its body and query", where, ch.Format)
		}
		if err := checkTimeRefs(ch.Body); err != nil {
			bad("%s: body: %v", where, err)
		}
	}
	for i, a := range sc.Grafana.Annotations {
		if a.EndsAt != nil && a.EndsAt.D < a.At.D {
			bad("grafana.annotations[%d]: endsAt before at", i)
		}
	}
	for i, r := range sc.Grafana.Rules {
		if len(r.Subject) == 0 {
			bad("grafana.rules[%d]: subject is required", i)
		}
	}
	for i, p := range sc.Pods {
		if p.Owner == nil {
			continue
		}
		if sc.workload(p.Owner.Kind, p.Namespace, p.Owner.Name) == nil {
			bad("pods[%d] (%s): owner %s %s/%s is not among the workloads", i, p.Name, p.Owner.Kind, p.Namespace, p.Owner.Name)
		}
	}
	for i, m := range sc.Expect.Listed {
		if m.empty() {
			bad("expect.listed[%d]: an empty matcher matches anything", i)
		}
	}
	for i, m := range sc.Expect.Absent {
		if m.empty() {
			bad("expect.absent[%d]: an empty matcher matches anything", i)
		}
	}
	if e := sc.Expect.Suspect; e.Set && !e.None && e.empty() && len(e.Line) == 0 {
		bad("expect.suspect: give a change matcher, line substrings, or `none`")
	}
	return errors.Join(errs...)
}

func (sc *Scenario) workload(kind, ns, name string) *Workload {
	for i := range sc.Workloads {
		w := &sc.Workloads[i]
		if w.Kind == kind && w.Namespace == ns && w.Name == name {
			return w
		}
	}
	return nil
}
