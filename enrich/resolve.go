package enrich

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"github.com/whatchanged/whatchanged/sources"
)

// Rule maps alerts to (parts of) a subject when label conventions are not
// enough. Every matcher must hold; subject values are Go templates over the
// alert's labels ("{{ .service }}"). Rules apply in order after the label
// conventions, and a non-empty value from a rule wins.
type Rule struct {
	Name    string            `yaml:"name" json:"name,omitempty"`
	Match   map[string]string `yaml:"match" json:"match,omitempty"`       // label: exact value
	MatchRE map[string]string `yaml:"match_re" json:"match_re,omitempty"` // label: anchored regexp
	Subject RuleSubject       `yaml:"subject" json:"subject"`
}

// RuleSubject holds the subject fields a rule sets, as templates.
type RuleSubject struct {
	Namespace string `yaml:"namespace" json:"namespace,omitempty"`
	Kind      string `yaml:"kind" json:"kind,omitempty"`
	Name      string `yaml:"name" json:"name,omitempty"`
	App       string `yaml:"app" json:"app,omitempty"`
	Repo      string `yaml:"repo" json:"repo,omitempty"`
}

// Step explains one piece of a resolution; /debug/enrich and `whatchanged
// explain` show them.
type Step = sources.ResolutionStep

// Resolver turns alert labels into a Subject: label conventions, then the
// sources that know the cluster (owner walk), then configured rules, which
// win.
type Resolver struct {
	rules     []compiledRule
	resolvers []sources.SubjectResolver
	clusters  *Clusters // nil: one cluster (or none) answers every alert
}

// WithClusters routes each alert to its own cluster's resolvers and sources.
func (r *Resolver) WithClusters(c *Clusters) *Resolver {
	r.clusters = c
	return r
}

// ClusterErr says why an alert of this subject gets no Kubernetes answer
// ("" when its cluster is configured, or only one is).
func (r *Resolver) ClusterErr(subj sources.Subject) string { return r.clusters.Err(subj) }

type compiledRule struct {
	name    string
	exact   map[string]string
	re      map[string]*regexp.Regexp
	subject [5]*template.Template // namespace, kind, name, app, repo
}

// RuleError names the rule and key that do not compile.
type RuleError struct {
	Index int
	Key   string // "match_re.alertname", "subject.app"
	Err   error
}

func (e *RuleError) Error() string { return fmt.Sprintf("rules[%d].%s: %v", e.Index, e.Key, e.Err) }

// NewResolver compiles the rules; the first bad one is reported with its key.
func NewResolver(rules []Rule, resolvers ...sources.SubjectResolver) (*Resolver, error) {
	r := &Resolver{resolvers: resolvers}
	for i, rule := range rules {
		cr, err := compileRule(i, rule)
		if err != nil {
			return nil, err
		}
		r.rules = append(r.rules, cr)
	}
	return r, nil
}

func compileRule(i int, rule Rule) (compiledRule, error) {
	cr := compiledRule{name: rule.Name, exact: rule.Match, re: map[string]*regexp.Regexp{}}
	if cr.name == "" {
		cr.name = fmt.Sprintf("#%d", i)
	}
	if len(rule.Match) == 0 && len(rule.MatchRE) == 0 {
		return cr, &RuleError{i, "match", fmt.Errorf("a rule needs at least one matcher (match or match_re)")}
	}
	re, key, err := compileMatchRE(rule.MatchRE)
	if err != nil {
		return cr, &RuleError{i, key, err}
	}
	cr.re = re
	fields := [5]struct{ key, text string }{
		{"namespace", rule.Subject.Namespace}, {"kind", rule.Subject.Kind}, {"name", rule.Subject.Name},
		{"app", rule.Subject.App}, {"repo", rule.Subject.Repo},
	}
	empty := true
	for j, f := range fields {
		if f.text == "" {
			continue
		}
		empty = false
		t, err := template.New(f.key).Option("missingkey=zero").Parse(f.text)
		if err != nil {
			return cr, &RuleError{i, "subject." + f.key, err}
		}
		cr.subject[j] = t
	}
	if empty {
		return cr, &RuleError{i, "subject", fmt.Errorf("a rule must set at least one subject field")}
	}
	return cr, nil
}

// compileMatchRE anchors and compiles label: regexp matchers; a bad one is
// reported with its key (match_re.<label>).
func compileMatchRE(m map[string]string) (map[string]*regexp.Regexp, string, error) {
	out := map[string]*regexp.Regexp{}
	for _, label := range slices.Sorted(maps.Keys(m)) {
		re, err := regexp.Compile("^(?:" + m[label] + ")$")
		if err != nil {
			return nil, "match_re." + label, err
		}
		out[label] = re
	}
	return out, "", nil
}

// Matches reports whether every matcher of the rule holds for labels. A
// missing label matches as the empty string, as in Alertmanager.
func (cr compiledRule) Matches(labels map[string]string) bool {
	for k, v := range cr.exact {
		if labels[k] != v {
			return false
		}
	}
	for k, re := range cr.re {
		if !re.MatchString(labels[k]) {
			return false
		}
	}
	return true
}

// workloadLabels are the label conventions naming a workload directly
// (kube-state-metrics and most hand-written rules use these).
var workloadLabels = []struct{ label, kind string }{
	{"deployment", "Deployment"}, {"statefulset", "StatefulSet"},
	{"daemonset", "DaemonSet"}, {"rollout", "Rollout"},
}

// kube-prometheus mixins name workloads as workload + workload_type.
var workloadTypes = map[string]string{
	"deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet", "rollout": "Rollout",
}

var (
	// The release (instance) before the chart's name, which unrelated
	// releases of one chart share.
	appLabels  = []string{"argocd_app", "app_kubernetes_io_instance", "app", "app_kubernetes_io_name"}
	repoLabels = []string{"repo", "repository"}
	// Pod names of the common controllers: <deploy>-<rs hash>-<5>, <sts>-<ordinal>, <ds>-<5>.
	podOfReplicaSet  = regexp.MustCompile(`^(.+)-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}$`)
	podOfStatefulSet = regexp.MustCompile(`^(.+)-[0-9]+$`)
	replicaSetName   = regexp.MustCompile(`^(.+)-[bcdfghjklmnpqrstvwxz2456789]{6,10}$`)
)

// exportedLabels are the target labels kube-state-metrics and other
// exporters report about another object; when Prometheus scrapes them
// without honor_labels they arrive as exported_<name>, and the plain name
// holds the exporter's own (namespace "monitoring").
var exportedLabels = []string{"namespace", "pod", "container", "deployment", "statefulset", "daemonset", "service",
	"job_name", "cronjob", "horizontalpodautoscaler", "persistentvolumeclaim", "replicaset"}

// targetLabels are what Prometheus sets from the scraped target itself:
// when the metric's own namespace arrived as exported_namespace, these
// describe the exporter (kube-state-metrics, the Argo Rollouts
// controller), not the object the alert is about.
var targetLabels = []string{"pod", "container", "service", "instance", "job", "endpoint"}

// aliases name the same thing as a convention label: older Prometheus
// kubernetes_sd relabelling, cAdvisor before 1.16, Istio's standard
// metrics, OpenTelemetry's semantic conventions (k8s.*, service.name as
// Prometheus labels), Datadog's Kubernetes tags.
var aliases = []struct{ alias, label string }{
	{"kubernetes_namespace", "namespace"}, {"kubernetes_pod_name", "pod"}, {"pod_name", "pod"}, {"container_name", "container"},
	{"destination_workload_namespace", "namespace"}, {"destination_workload", "workload"},
	{"destination_canonical_service", "app"}, {"destination_app", "app"},
	{"k8s_namespace_name", "namespace"}, {"k8s_deployment_name", "deployment"}, {"k8s_statefulset_name", "statefulset"},
	{"k8s_daemonset_name", "daemonset"}, {"k8s_pod_name", "pod"}, {"k8s_container_name", "container"},
	{"k8s_cronjob_name", "cronjob"}, {"k8s_job_name", "job_name"}, {"service_name", "app"}, {"service_namespace", "namespace"},
	{"kube_namespace", "namespace"}, {"kube_deployment", "deployment"}, {"kube_stateful_set", "statefulset"},
	{"kube_daemon_set", "daemonset"}, {"kube_container_name", "container"}, {"kube_service", "service"},
	{"kube_cronjob", "cronjob"}, {"kube_job", "job_name"},
}

// normalize reads exported_<name> in place of <name> (dropping the
// exporter's own target labels), and aliases where the convention label is
// missing.
func normalize(labels map[string]string) (map[string]string, []Step) {
	var steps []Step
	var out map[string]string
	set := func(l, v, from string) {
		if out == nil {
			out = maps.Clone(labels)
		}
		if v == "" {
			delete(out, l)
			return
		}
		out[l] = v
		steps = append(steps, Step{Field: l, Value: v, From: from})
	}
	exported := labels["exported_namespace"] != "" && labels["exported_namespace"] != labels["namespace"]
	// Linkerd's outbound metrics come from the client's proxy: the
	// destination (dst_*) is what the alert is about.
	if labels["direction"] == "outbound" && labels["dst_namespace"] != "" {
		for _, w := range []string{"deployment", "statefulset", "daemonset"} {
			if v := labels["dst_"+w]; v != "" {
				set("namespace", labels["dst_namespace"], "label dst_namespace (an outbound metric's destination)")
				for _, other := range []string{"deployment", "statefulset", "daemonset", "pod"} {
					if labels[other] != "" {
						set(other, "", "")
					}
				}
				set(w, v, "label dst_"+w+" (an outbound metric's destination)")
				break
			}
		}
	}
	// Argo CD's own metrics (argocd_app_info, the argocd mixin's alerts)
	// name the app and where it deploys; namespace, pod, job are the
	// application controller's.
	if app, dest := labels["name"], labels["dest_namespace"]; app != "" && dest != "" && labels["argocd_app"] == "" {
		set("argocd_app", app, "label name (an Argo CD app metric: dest_namespace is set)")
		set("namespace", dest, "label dest_namespace")
		exported = true
	}
	for _, l := range exportedLabels {
		v := labels["exported_"+l]
		if v == "" || v == labels[l] {
			continue
		}
		set(l, v, "label exported_"+l+" (the scraped exporter's "+l+" label is "+cmp.Or(labels[l], "empty")+")")
	}
	if exported {
		for _, l := range targetLabels {
			if labels[l] != "" && labels["exported_"+l] == "" {
				set(l, "", "") // the exporter's, not the object's
			}
		}
	}
	for _, a := range aliases {
		cur := labels[a.label]
		if out != nil {
			cur = out[a.label]
		}
		// A namespace these conventions carry is the object's, over a
		// scraper's own.
		authoritative := a.alias == "destination_workload_namespace" || a.alias == "k8s_namespace_name" || a.alias == "kube_namespace"
		if v := labels[a.alias]; v != "" && (cur == "" || authoritative) && v != cur {
			set(a.label, v, "label "+a.alias)
		}
	}
	// A PodMonitor's or Probe's job is "<namespace>/<name>".
	cur := func(l string) string {
		if out != nil {
			return out[l]
		}
		return labels[l]
	}
	if job := cur("job"); cur("namespace") == "" && strings.Count(job, "/") >= 1 {
		parts := strings.Split(job, "/")
		if ns := parts[len(parts)-2]; ns != "" && ns != "probe" {
			set("namespace", ns, "label job "+job+" (<namespace>/<name>)")
		}
	}
	if out == nil {
		return labels, nil
	}
	return out, steps
}

// cronJobOfJob: a CronJob's Jobs are named <cronjob>-<minutes since epoch>.
var cronJobOfJob = regexp.MustCompile(`^(.+)-[0-9]{8,}$`)

// Resolve builds the subject of an alert and the steps that explain it.
func (r *Resolver) Resolve(labels map[string]string) (sources.Subject, []Step) {
	var s sources.Subject
	labels, steps := normalize(labels)
	set := func(field string, dst *string, value, from string) {
		if value == "" {
			return
		}
		*dst = value
		steps = append(steps, Step{Field: field, Value: value, From: from})
	}

	if r.clusters != nil {
		name, from := r.clusters.pick(labels)
		set("cluster", &s.Cluster, name, from)
	}
	set("namespace", &s.Namespace, labels["namespace"], "label namespace")
	for _, w := range workloadLabels {
		if v := labels[w.label]; v != "" {
			set("kind", &s.Kind, w.kind, "label "+w.label)
			set("name", &s.Name, v, "label "+w.label)
			break
		}
	}
	if s.Name == "" && labels["workload"] != "" {
		if kind := workloadTypes[strings.ToLower(labels["workload_type"])]; kind != "" {
			set("kind", &s.Kind, kind, "label workload_type")
		}
		set("name", &s.Name, labels["workload"], "label workload")
	}
	if s.Name == "" {
		if rs := labels["replicaset"]; rs != "" {
			if m := replicaSetName.FindStringSubmatch(rs); m != nil {
				set("kind", &s.Kind, "Deployment", "guess from replicaset name (hash suffix removed)")
				set("name", &s.Name, m[1], "guess from replicaset name (hash suffix removed)")
			}
		}
	}
	if s.Name == "" {
		if pod := labels["pod"]; pod != "" {
			kind, name := guessFromPod(pod)
			from := "guess from pod name"
			set("kind", &s.Kind, kind, from)
			set("name", &s.Name, name, from)
		}
	}
	guessed := "" // a workload name only guessed from a label naming something else
	if s.Name == "" {
		for _, l := range []string{"horizontalpodautoscaler", "poddisruptionbudget", "service"} {
			if v := labels[l]; v != "" {
				set("name", &s.Name, v, "guess from label "+l+" (usually named like its workload)")
				guessed = v
				break
			}
		}
	}
	if s.Name == "" {
		// Jobs have no rollout history; their CronJob is what changes.
		if cj := labels["cronjob"]; cj != "" {
			set("kind", &s.Kind, "CronJob", "label cronjob")
			set("name", &s.Name, cj, "label cronjob")
		} else if job := labels["job_name"]; job != "" {
			if m := cronJobOfJob.FindStringSubmatch(job); m != nil {
				set("kind", &s.Kind, "CronJob", "guess from label job_name (a CronJob's Job)")
				set("name", &s.Name, m[1], "guess from label job_name (a CronJob's Job)")
			} else {
				set("kind", &s.Kind, "Job", "label job_name")
				set("name", &s.Name, job, "label job_name")
			}
		}
	}
	for _, l := range appLabels {
		if v := labels[l]; v != "" {
			set("app", &s.App, v, "label "+l)
			break
		}
	}
	for _, l := range repoLabels {
		if v := labels[l]; v != "" {
			set("repo", &s.Repo, sources.NormalizeRepo(v), "label "+l)
			break
		}
	}

	for _, sr := range r.resolvers {
		if c, bound := sources.ClusterOf(sr); bound && c != s.Cluster {
			continue // another cluster's objects say nothing of this alert
		}
		var more []Step
		s, more = sr.ResolveSubject(labels, s)
		steps = append(steps, more...)
	}

	for _, rule := range r.rules {
		if !rule.Matches(labels) {
			continue
		}
		from := "rule " + rule.name
		dsts := [5]*string{&s.Namespace, &s.Kind, &s.Name, &s.App, &s.Repo}
		names := [5]string{"namespace", "kind", "name", "app", "repo"}
		for j, t := range rule.subject {
			if t == nil {
				continue
			}
			var b strings.Builder
			if err := t.Execute(&b, labels); err != nil {
				steps = append(steps, Step{Field: names[j], From: from, Value: "(template error: " + err.Error() + ")"})
				continue
			}
			v := b.String()
			if names[j] == "repo" {
				v = sources.NormalizeRepo(v)
			}
			set(names[j], dsts[j], v, from)
		}
	}
	// A guess nothing confirmed (no such workload in a cluster whatchanged
	// reads, or none read): the service is as likely the app's name, which
	// changes pushed for a cluster whatchanged cannot read carry.
	if guessed != "" && s.Name == guessed && s.App == "" && !slices.Contains(s.Apps, guessed) {
		s.Apps = append(s.Apps, guessed)
		steps = append(steps, Step{Field: "app", Value: guessed, From: "guess: the unconfirmed workload name as the app's"})
	}
	if s.Name == "" && s.App == "" && s.Repo == "" {
		steps = append(steps, Step{Field: "name", From: "no label names the workload: add one of deployment, statefulset, daemonset, " +
			"pod, service, app or app_kubernetes_io_name to the alert rule (or a whatchanged rule); only changes of the whole namespace are matched"})
	}
	return s, steps
}

// guessFromPod recovers the likely owner of a pod from its name alone.
func guessFromPod(pod string) (kind, name string) {
	if m := podOfReplicaSet.FindStringSubmatch(pod); m != nil {
		return "Deployment", m[1]
	}
	if m := podOfStatefulSet.FindStringSubmatch(pod); m != nil {
		return "StatefulSet", m[1]
	}
	return "", ""
}
