package helm_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// notes renders NOTES.txt. helm template leaves it out and helm install
// wants a cluster, so a copy of the chart defines it as a template and
// prints it into a ConfigMap.
func notes(t *testing.T, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "whatchanged")
	copyTree(t, chart, dir)
	tpl := filepath.Join(dir, "templates")
	text, err := os.ReadFile(filepath.Join(tpl, "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Remove(filepath.Join(tpl, "NOTES.txt")))
	must(os.WriteFile(filepath.Join(tpl, "_notes.tpl"), []byte(`{{- define "test.notes" }}`+string(text)+`{{- end }}`), 0o644))
	must(os.WriteFile(filepath.Join(tpl, "zz-notes.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata: {notes: {{ include \"test.notes\" . | quote }}}\n"), 0o644))
	out, err := template(t, dir, append(args, "--show-only", "templates/zz-notes.yaml")...)
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	must(yaml.Unmarshal([]byte(out), &cm))
	return cm.Data["notes"]
}

// The install notes say, per mode, how to point Alertmanager or Prometheus
// at whatchanged with the right token, and how to push a change.
func TestNotes(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"standalone", []string{"-f", filepath.Join(examples, "standalone.yaml")}, []string{
			"url: http://whatchanged.monitoring.svc:8080/webhook",
			"credentials_file: /etc/alertmanager/secrets/whatchanged-auth/token",
			"alertmanager.alertmanagerSpec.secrets: [whatchanged-auth]",
			`curl -fsS -X POST http://whatchanged.monitoring.svc:8080/api/v1/changes -H "Authorization: Bearer $TOKEN"`,
			"(TOKEN: key token of Secret whatchanged-auth)",
		}, []string{"WARNING"}},
		{"inline", []string{"-f", filepath.Join(examples, "inline.yaml")}, []string{
			"alertingEndpoints:", "name: whatchanged", "port: http",
			"credentials: {name: whatchanged-auth, key: token}",
			"http://alertmanager-operated.monitoring.svc:9093 — every address it resolves to",
		}, []string{"webhook_configs", "/api/v1/changes", "WARNING"}},
		{"sidecar", []string{"-f", filepath.Join(examples, "sidecar.yaml")}, []string{
			"url: http://127.0.0.1:8090/webhook", "kube-prometheus-stack-sidecar.yaml", "kube-prometheus-stack-alertmanager",
			"in each Alertmanager pod's own store",
		}, []string{"WARNING", "/api/v1/changes", "config-reloader"}},
		{"ha", []string{"-f", filepath.Join(examples, "ha.yaml")}, []string{
			"Mode standalone: a Deployment of 2 pod(s)", "in Redis at redis.redis.svc:6379 (TLS), shared by every replica",
			"reloaded in place by the config-reloader sidecar", "/api/v1/changes",
		}, []string{"WARNING", "emptyDir"}},
		{"no auth, policy without Prometheus", []string{"--set", "networkPolicy.enabled=true", "--set", "serviceMonitor.enabled=true",
			"--set", "networkPolicy.alertmanager[0].podSelector.matchLabels.app=alertmanager"}, []string{
			"WARNING: no auth token", "networkPolicy.prometheus is empty", "networkPolicy.changeSenders is empty",
		}, []string{"networkPolicy.alertmanager is empty"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			text := notes(t, c.args...)
			for _, w := range c.want {
				if !strings.Contains(text, w) {
					t.Errorf("notes lack %q:\n%s", w, text)
				}
			}
			for _, n := range c.not {
				if strings.Contains(text, n) {
					t.Errorf("notes have %q:\n%s", n, text)
				}
			}
		})
	}
}
