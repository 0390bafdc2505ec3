package enrich

import (
	"regexp"
	"strings"
	"testing"

	"github.com/whatchanged/whatchanged/sources"
)

func TestResolveConventions(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		want   sources.Subject
		from   string // expected provenance of the name field, if any
	}{
		{name: "deployment label", labels: map[string]string{"namespace": "shop", "deployment": "api"},
			want: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api"}, from: "label deployment"},
		{name: "statefulset label", labels: map[string]string{"namespace": "db", "statefulset": "pg"},
			want: sources.Subject{Namespace: "db", Kind: "StatefulSet", Name: "pg"}},
		{name: "rollout label", labels: map[string]string{"namespace": "shop", "rollout": "api"},
			want: sources.Subject{Namespace: "shop", Kind: "Rollout", Name: "api"}},
		{name: "workload mixin labels", labels: map[string]string{"namespace": "shop", "workload": "web", "workload_type": "daemonset"},
			want: sources.Subject{Namespace: "shop", Kind: "DaemonSet", Name: "web"}},
		{name: "pod of a replicaset", labels: map[string]string{"namespace": "shop", "pod": "api-7d9f8b6c4-x2x9z"},
			want: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api"}, from: "guess from pod name"},
		{name: "pod of a statefulset", labels: map[string]string{"namespace": "db", "pod": "pg-replica-2"},
			want: sources.Subject{Namespace: "db", Kind: "StatefulSet", Name: "pg-replica"}},
		{name: "pod with unrecognised name", labels: map[string]string{"namespace": "db", "pod": "standalone"},
			want: sources.Subject{Namespace: "db"}},
		{name: "replicaset label", labels: map[string]string{"namespace": "shop", "replicaset": "api-7d9f8b6c4"},
			want: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api"}},
		{name: "explicit label beats pod guess", labels: map[string]string{"namespace": "shop", "deployment": "api", "pod": "other-7d9f8b6c4-x2x9z"},
			want: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api"}},
		{name: "argocd_app before app", labels: map[string]string{"argocd_app": "shop-api", "app": "api"},
			want: sources.Subject{App: "shop-api"}, from: ""},
		{name: "app.kubernetes.io/name", labels: map[string]string{"app_kubernetes_io_name": "api"},
			want: sources.Subject{App: "api"}},
		{name: "repo label normalised", labels: map[string]string{"repo": "git@github.com:Acme/api.git"},
			want: sources.Subject{Repo: "github.com/Acme/api"}},
		{name: "nothing known", labels: map[string]string{"alertname": "Watchdog"}, want: sources.Subject{}},
		{name: "release before chart name", labels: map[string]string{"app_kubernetes_io_name": "redis", "app_kubernetes_io_instance": "redis-sessions"},
			want: sources.Subject{App: "redis-sessions"}},
		{name: "kube-state-metrics without honor_labels",
			labels: map[string]string{"namespace": "monitoring", "pod": "kube-state-metrics-6d4b7c9f8-abcde", "exported_namespace": "shop", "exported_pod": "api-7d9f8b6c4-x2x9z"},
			want:   sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api"}},
		{name: "an exporter's own pod is not the object",
			labels: map[string]string{"namespace": "argo-rollouts", "pod": "argo-rollouts-7d9f8b6c4-x2x9z", "exported_namespace": "recs", "rollout": "reco-api"},
			want:   sources.Subject{Namespace: "recs", Kind: "Rollout", Name: "reco-api"}},
		{name: "older kubernetes_sd relabelling", labels: map[string]string{"kubernetes_namespace": "billing", "kubernetes_pod_name": "invoicer-7d9f8b6c4-x2x9z"},
			want: sources.Subject{Namespace: "billing", Kind: "Deployment", Name: "invoicer"}},
		{name: "OpenTelemetry conventions", labels: map[string]string{"namespace": "otel", "k8s_namespace_name": "shop", "k8s_deployment_name": "api", "service_name": "shop-api"},
			want: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api", App: "shop-api"}},
		{name: "Istio destination", labels: map[string]string{"destination_workload": "catalog-v2", "destination_workload_namespace": "storefront"},
			want: sources.Subject{Namespace: "storefront", Name: "catalog-v2"}},
		{name: "Argo CD app metric", labels: map[string]string{"namespace": "argocd", "name": "checkout", "dest_namespace": "shop", "pod": "argocd-application-controller-0"},
			want: sources.Subject{Namespace: "shop", App: "checkout"}},
		{name: "a CronJob's job", labels: map[string]string{"namespace": "ops", "job_name": "pg-backup-29017440"},
			want: sources.Subject{Namespace: "ops", Kind: "CronJob", Name: "pg-backup"}},
	}
	r, err := NewResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, steps := r.Resolve(tt.labels)
			if got.Key() != tt.want.Key() {
				t.Fatalf("subject = %+v, want %+v", got, tt.want)
			}
			if tt.from != "" {
				if !hasStep(steps, "name", tt.from) {
					t.Errorf("steps %+v lack name from %q", steps, tt.from)
				}
			}
			if len(steps) == 0 && !got.IsZero() {
				t.Errorf("no explanation steps for %+v", got)
			}
		})
	}
}

func TestResolveRules(t *testing.T) {
	rules := []Rule{
		{Name: "kafka", MatchRE: map[string]string{"alertname": "Kafka.*"}, Match: map[string]string{"cluster": "prod"},
			Subject: RuleSubject{App: "consumer-{{ .topic }}", Repo: "https://github.com/acme/consumer.git"}},
		{Name: "override-namespace", Match: map[string]string{"namespace": "legacy"},
			Subject: RuleSubject{Namespace: "shop", Kind: "Deployment", Name: "{{ .service }}"}},
		{Name: "missing label matches empty", Match: map[string]string{"team": ""}, MatchRE: map[string]string{"alertname": "Orphan"},
			Subject: RuleSubject{App: "unowned"}},
	}
	r, err := NewResolver(rules)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   sources.Subject
	}{
		{name: "regexp and exact", labels: map[string]string{"alertname": "KafkaLag", "cluster": "prod", "topic": "orders"},
			want: sources.Subject{App: "consumer-orders", Repo: "github.com/acme/consumer"}},
		{name: "regexp is anchored", labels: map[string]string{"alertname": "NotKafkaLag", "cluster": "prod"}, want: sources.Subject{}},
		{name: "exact must hold", labels: map[string]string{"alertname": "KafkaLag", "cluster": "dev"}, want: sources.Subject{}},
		{name: "rule wins over convention", labels: map[string]string{"namespace": "legacy", "service": "billing", "deployment": "x"},
			want: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "billing"}},
		{name: "template of missing label is empty and does not override",
			labels: map[string]string{"namespace": "legacy", "deployment": "x"},
			want:   sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "x"}},
		{name: "missing label equals empty matcher", labels: map[string]string{"alertname": "Orphan"}, want: sources.Subject{App: "unowned"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, steps := r.Resolve(tt.labels)
			if got.Key() != tt.want.Key() {
				t.Fatalf("subject = %+v, want %+v (steps %+v)", got, tt.want, steps)
			}
		})
	}
	_, steps := r.Resolve(map[string]string{"alertname": "KafkaLag", "cluster": "prod", "topic": "t"})
	if !hasStep(steps, "app", "rule kafka") {
		t.Errorf("steps do not name the rule: %+v", steps)
	}
}

func TestRuleErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		want string
	}{
		{"no matcher", Rule{Subject: RuleSubject{App: "x"}}, "rules[0].match: a rule needs at least one matcher"},
		{"bad regexp", Rule{MatchRE: map[string]string{"alertname": "("}, Subject: RuleSubject{App: "x"}}, "rules[0].match_re.alertname:"},
		{"bad template", Rule{Match: map[string]string{"a": "b"}, Subject: RuleSubject{Name: "{{ .x "}}, "rules[0].subject.name:"},
		{"empty subject", Rule{Match: map[string]string{"a": "b"}}, "rules[0].subject: a rule must set at least one subject field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewResolver([]Rule{tt.rule})
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want prefix %q", err, tt.want)
			}
		})
	}
}

// FuzzRuleMatch checks that a compiled rule matches exactly when Go's
// regexp (anchored) and string equality say it should, and never panics.
func FuzzRuleMatch(f *testing.F) {
	f.Add("Kafka.*", "KafkaLag", "prod", "prod")
	f.Add("a|b", "ab", "", "x")
	f.Add("(", "x", "y", "y")
	f.Add(".*", "", "", "")
	f.Add(`\d+`, "123\n", "é", "é")
	f.Fuzz(func(t *testing.T, re, value, exact, have string) {
		rules := []Rule{{MatchRE: map[string]string{"alertname": re}, Match: map[string]string{"env": exact}, Subject: RuleSubject{App: "{{ .alertname }}"}}}
		r, err := NewResolver(rules)
		want, compileErr := regexp.Compile("^(?:" + re + ")$")
		if (err != nil) != (compileErr != nil) {
			t.Fatalf("NewResolver err=%v, regexp err=%v", err, compileErr)
		}
		if err != nil {
			return
		}
		labels := map[string]string{"alertname": value, "env": have}
		got, _ := r.Resolve(labels)
		matched := want.MatchString(value) && exact == have
		if value != "" && matched != (got.App == value) {
			t.Fatalf("re=%q value=%q exact=%q have=%q: resolver app=%q, expected match=%v", re, value, exact, have, got.App, matched)
		}
	})
}

func hasStep(steps []Step, field, fromPrefix string) bool {
	for _, s := range steps {
		if s.Field == field && strings.HasPrefix(s.From, fromPrefix) {
			return true
		}
	}
	return false
}
