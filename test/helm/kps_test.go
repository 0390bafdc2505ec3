package helm_test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// kube-prometheus-stack as the tests meet it: its default values
// (test/testdata, chart 88.5.3) and the release name its docs use.
const (
	kpsDefaults  = "../testdata/kube-prometheus-stack-values.yaml"
	kpsRelease   = "kube-prometheus-stack"
	kpsExamples  = "../../examples/kube-prometheus-stack"
	templateFile = "../../examples/alertmanager/whatchanged.tmpl"
)

// kpsExample is a values file for kube-prometheus-stack and the example
// of this chart installed beside it.
type kpsExample struct {
	file, chartExample string
}

var kpsValueExamples = []kpsExample{
	{kpsExamples + "/values.yaml", examples + "/standalone.yaml"},
	{kpsExamples + "/inline.yaml", examples + "/inline.yaml"},
	{examples + "/kube-prometheus-stack-sidecar.yaml", examples + "/sidecar.yaml"},
}

func readYAML(t *testing.T, file string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return m
}

// helmMerge overlays values the way Helm does with -f and --set-file:
// maps merge key by key, anything else (lists included) replaces, and a
// null deletes the key.
func helmMerge(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if v == nil {
			delete(out, k)
			continue
		}
		bm, bok := out[k].(map[string]any)
		om, ook := v.(map[string]any)
		if bok && ook {
			out[k] = helmMerge(bm, om)
			continue
		}
		out[k] = v
	}
	return out
}

// at walks a path of map keys.
func at(m map[string]any, path ...string) any {
	var v any = m
	for _, k := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func mapAt(m map[string]any, path ...string) map[string]any {
	v, _ := at(m, path...).(map[string]any)
	return v
}

// kpsValues is what kube-prometheus-stack renders from: its defaults, the
// example, and whatchanged.tmpl given with --set-file as the examples say.
func kpsValues(t *testing.T, file string) map[string]any {
	t.Helper()
	tmpl, err := os.ReadFile(templateFile)
	if err != nil {
		t.Fatalf("whatchanged's template set: %v (the examples load it with --set-file)", err)
	}
	v := helmMerge(readYAML(t, kpsDefaults), readYAML(t, file))
	return helmMerge(v, map[string]any{"alertmanager": map[string]any{"templateFiles": map[string]any{"whatchanged.tmpl": string(tmpl)}}})
}

var amtoolFound = regexp.MustCompile(`(?m)^ - (\d+) templates$`)

// checkAlertmanagerConfig runs the real `amtool check-config` on the
// config kube-prometheus-stack writes into Alertmanager's Secret, with the
// templateFiles beside it where the default `templates:` glob finds them.
func checkAlertmanagerConfig(t *testing.T, values map[string]any) (string, error) {
	t.Helper()
	dir := t.TempDir()
	files := mapAt(values, "alertmanager", "templateFiles")
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content.(string)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := yaml.Marshal(mapAt(values, "alertmanager", "config"))
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.ReplaceAll(string(cfg), "/etc/alertmanager/config/", dir+"/"))
	f := filepath.Join(dir, "alertmanager.yaml")
	if err := os.WriteFile(f, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, tool(t, "WHATCHANGED_AMTOOL"), "check-config", f)
	if err != nil {
		return out, fmt.Errorf("%w\n%s", err, cfg)
	}
	if m := amtoolFound.FindStringSubmatch(out); m == nil || m[1] != fmt.Sprint(len(files)) {
		return out, fmt.Errorf("amtool loaded %v templates, want the %d templateFiles:\n%s", m, len(files), out)
	}
	return out, nil
}

// Each kube-prometheus-stack example, merged into the stack's defaults as
// Helm merges it, gives an Alertmanager config the real amtool accepts.
// The merge is the point: lists replace, so an example's receivers must
// again define the "null" that the default routes name.
func TestKubePrometheusStackExamplesPassAmtool(t *testing.T) {
	for _, ex := range kpsValueExamples {
		t.Run(filepath.Base(ex.file), func(t *testing.T) {
			values := kpsValues(t, ex.file)
			if out, err := checkAlertmanagerConfig(t, values); err != nil {
				t.Fatalf("merged with kube-prometheus-stack's defaults, the Alertmanager config is refused: %v\n%s", err, out)
			}
			// The check can fail: without "null" the stack's own routes break.
			receivers, _ := at(values, "alertmanager", "config", "receivers").([]any)
			var without []any
			for _, r := range receivers {
				if r.(map[string]any)["name"] != "null" {
					without = append(without, r)
				}
			}
			broken := helmMerge(values, map[string]any{"alertmanager": map[string]any{"config": map[string]any{"receivers": without}}})
			if out, err := checkAlertmanagerConfig(t, broken); err == nil || !strings.Contains(out, `undefined receiver "null"`) {
				t.Errorf("without the null receiver amtool says %v\n%s", err, out)
			}
		})
	}
}

// The objects kube-prometheus-stack makes of an example, for the fields
// the examples set: its templates pass these through verbatim
// (templates/alertmanager/alertmanager.yaml, templates/prometheus/prometheus.yaml).
var kpsPassThrough = map[string]string{
	"alertmanager.alertmanagerSpec.secrets":       "secrets",
	"alertmanager.alertmanagerSpec.configMaps":    "configMaps",
	"alertmanager.alertmanagerSpec.containers":    "containers",
	"alertmanager.alertmanagerSpec.volumes":       "volumes",
	"alertmanager.alertmanagerSpec.volumeMounts":  "volumeMounts",
	"prometheus.prometheusSpec.alertingEndpoints": "alerting.alertmanagers",
	"alertmanager.config":                         "",
	"alertmanager.templateFiles":                  "",
}

func customResource(kind, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "monitoring.coreos.com/v1", "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": namespace},
		"spec":     spec,
	}}
}

func prometheusCR(t *testing.T, endpoints []any) *unstructured.Unstructured {
	t.Helper()
	return customResource("Prometheus", kpsRelease+"-prometheus", map[string]any{"alerting": map[string]any{"alertmanagers": endpoints}})
}

// leaves lists the dotted paths of an example's values down to the
// pass-through keys, so an example cannot set something this test does
// not check.
func leaves(prefix string, v any, out *[]string) {
	if _, known := kpsPassThrough[prefix]; known {
		*out = append(*out, prefix)
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		*out = append(*out, prefix)
		return
	}
	for k, sub := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		leaves(p, sub, out)
	}
}

// The Alertmanager and Prometheus resources kube-prometheus-stack renders
// from each example, and the AlertmanagerConfig example, are accepted by
// the real API server with the operator's CRDs.
func TestKubePrometheusStackObjectsAreAccepted(t *testing.T) {
	c := apiServer(t)
	for _, ex := range kpsValueExamples {
		t.Run(filepath.Base(ex.file), func(t *testing.T) {
			var paths []string
			leaves("", readYAML(t, ex.file), &paths)
			amSpec, checked := map[string]any{}, 0
			for _, p := range paths {
				field, ok := kpsPassThrough[p]
				if !ok {
					t.Errorf("the example sets %s, which this test does not turn into a resource", p)
					continue
				}
				if field == "" || !strings.HasPrefix(p, "alertmanager.") {
					continue
				}
				amSpec[field] = at(readYAML(t, ex.file), strings.Split(p, ".")...)
				checked++
			}
			if checked > 0 {
				am := customResource("Alertmanager", kpsRelease+"-alertmanager", amSpec)
				if err := dryRun(t, c, am); err != nil {
					t.Error(err)
				}
			}
			if eps, ok := at(readYAML(t, ex.file), "prometheus", "prometheusSpec", "alertingEndpoints").([]any); ok {
				if err := dryRun(t, c, prometheusCR(t, eps)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	t.Run("alertmanagerconfig.yaml", func(t *testing.T) {
		amc := &unstructured.Unstructured{Object: readYAML(t, kpsExamples+"/alertmanagerconfig.yaml")}
		if amc.GetKind() != "AlertmanagerConfig" || amc.GetAPIVersion() != "monitoring.coreos.com/v1alpha1" {
			t.Fatalf("%s %s", amc.GetAPIVersion(), amc.GetKind())
		}
		if err := dryRun(t, c, amc); err != nil {
			t.Error(err)
		}
	})
}

// chartSide is what the paired chart example installs: what
// kube-prometheus-stack's side must point at.
type chartSide struct {
	service    *corev1.Service
	listen     string // whatchanged's listen address in its config
	authSecret string // "secret/key" of the inbound token, "" without auth
	configMap  string
	files      map[string]string // projected secret files: path → secret/key
	configured []string          // the *_file paths the config names
}

func renderChartSide(t *testing.T, example string) chartSide {
	t.Helper()
	objs := render(t, "-f", example)
	cm := one[*corev1.ConfigMap](t, objs)
	var cfg struct {
		Listen string `json:"listen"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["whatchanged.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	side := chartSide{listen: cfg.Listen, configMap: cm.Name, configured: configFiles(cm.Data["whatchanged.yaml"])}
	if svcs := only[*corev1.Service](objs); len(svcs) == 1 {
		side.service = svcs[0]
	}
	if deps := only[*appsv1.Deployment](objs); len(deps) == 1 {
		side.files = projected(deps[0].Spec.Template.Spec.Volumes, "secrets")
		side.authSecret = side.files["auth-token"]
	}
	return side
}

// Each kube-prometheus-stack example points at what its paired chart
// example installs: the Service's name, namespace and port, the token
// Secret and key, the ConfigMap and secret files of the sidecar, and a
// sidecar port free in the operator's Alertmanager pod.
func TestKubePrometheusStackExamplesMatchTheChart(t *testing.T) {
	t.Run("values.yaml", func(t *testing.T) {
		values := kpsValues(t, kpsValueExamples[0].file)
		side := renderChartSide(t, kpsValueExamples[0].chartExample)
		hook := webhookURLs(t, values)
		want := fmt.Sprintf("http://%s.%s.svc:%d/webhook", side.service.Name, namespace, side.service.Spec.Ports[0].Port)
		if !slices.Contains(hook, want) {
			t.Errorf("webhook URLs %v, want %s", hook, want)
		}
		secrets := at(values, "alertmanager", "alertmanagerSpec", "secrets").([]any)
		for _, f := range credentialFiles(values) {
			name, key, ok := strings.Cut(strings.TrimPrefix(f, "/etc/alertmanager/secrets/"), "/")
			if !ok || !strings.HasPrefix(f, "/etc/alertmanager/secrets/") || !slices.Contains(secrets, any(name)) {
				t.Errorf("%s is not in a Secret alertmanagerSpec.secrets mounts (%v)", f, secrets)
			}
			if name+"/"+key != side.authSecret {
				t.Errorf("Alertmanager sends %s/%s, whatchanged expects %s", name, key, side.authSecret)
			}
		}
	})
	t.Run("inline.yaml", func(t *testing.T) {
		values := kpsValues(t, kpsValueExamples[1].file)
		side := renderChartSide(t, kpsValueExamples[1].chartExample)
		eps := at(values, "prometheus", "prometheusSpec", "alertingEndpoints").([]any)
		if len(eps) != 1 {
			t.Fatalf("alertingEndpoints %v", eps)
		}
		ep := eps[0].(map[string]any)
		if ep["name"] != side.service.Name || ep["namespace"] != namespace || ep["port"] != side.service.Spec.Ports[0].Name || ep["apiVersion"] != "v2" {
			t.Errorf("alerting endpoint %v, want the Service %s/%s port %s, API v2", ep, namespace, side.service.Name, side.service.Spec.Ports[0].Name)
		}
		cred := mapAt(ep, "authorization", "credentials")
		if got := fmt.Sprintf("%v/%v", cred["name"], cred["key"]); got != side.authSecret {
			t.Errorf("Prometheus sends %s, whatchanged expects %s", got, side.authSecret)
		}
		if !strings.Contains(renderedConfig(t, "-f", kpsValueExamples[1].chartExample), "discovery: dns") {
			t.Error("the inline example does not forward to every Alertmanager replica (discovery: dns)")
		}
	})
	t.Run("kube-prometheus-stack-sidecar.yaml", func(t *testing.T) {
		values := kpsValues(t, kpsValueExamples[2].file)
		side := renderChartSide(t, kpsValueExamples[2].chartExample)
		host, port, _ := strings.Cut(side.listen, ":")
		if host != "127.0.0.1" || slices.Contains([]string{"8080", "8081", "9093", "9094"}, port) {
			t.Errorf("the sidecar listens on %s: loopback, and not a port of the operator's Alertmanager pod", side.listen)
		}
		if hook := webhookURLs(t, values); !slices.Contains(hook, "http://"+side.listen+"/webhook") {
			t.Errorf("webhook URLs %v, the sidecar listens on %s", hook, side.listen)
		}
		chartSA := readYAML(t, kpsValueExamples[2].chartExample)
		if got := at(chartSA, "sidecar", "serviceAccountName"); got != kpsRelease+"-alertmanager" {
			t.Errorf("RBAC bound to %v; kube-prometheus-stack's Alertmanager runs as %s-alertmanager", got, kpsRelease)
		}
		spec := mapAt(values, "alertmanager", "alertmanagerSpec")
		var vols []corev1.Volume
		roundTrip(t, spec["volumes"], &vols)
		var ctrs []corev1.Container
		roundTrip(t, spec["containers"], &ctrs)
		if len(ctrs) != 1 {
			t.Fatalf("containers %v", ctrs)
		}
		mounts := map[string]string{}
		for _, m := range ctrs[0].VolumeMounts {
			mounts[m.Name] = m.MountPath
		}
		var cmOK bool
		files := map[string]string{}
		for _, v := range vols {
			if v.ConfigMap != nil && v.ConfigMap.Name == side.configMap && mounts[v.Name] == "/etc/whatchanged/whatchanged.yaml" {
				cmOK = true
			}
			if v.Projected != nil && mounts[v.Name]+"/" == secretsDir {
				files = projected([]corev1.Volume{v}, v.Name)
			}
		}
		if !cmOK {
			t.Errorf("the container does not mount the chart's ConfigMap %s at /etc/whatchanged/whatchanged.yaml", side.configMap)
		}
		for _, f := range side.configured {
			if _, ok := files[strings.TrimPrefix(f, secretsDir)]; !ok {
				t.Errorf("the chart's config reads %s, which the container's volumes %v do not provide", f, files)
			}
		}
		c := ctrs[0].SecurityContext
		if c == nil || c.ReadOnlyRootFilesystem == nil || !*c.ReadOnlyRootFilesystem || c.RunAsNonRoot == nil || !*c.RunAsNonRoot {
			t.Errorf("sidecar security context: %+v", c)
		}
	})
}

func roundTrip(t *testing.T, in, out any) {
	t.Helper()
	b, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, out); err != nil {
		t.Fatalf("does not decode strictly into %T: %v", out, err)
	}
}

// webhookURLs are the URLs of every webhook receiver in the merged config.
func webhookURLs(t *testing.T, values map[string]any) []string {
	t.Helper()
	var out []string
	receivers, _ := at(values, "alertmanager", "config", "receivers").([]any)
	for _, r := range receivers {
		hooks, _ := r.(map[string]any)["webhook_configs"].([]any)
		for _, h := range hooks {
			u := h.(map[string]any)["url"].(string)
			if _, err := url.Parse(u); err != nil {
				t.Error(err)
			}
			out = append(out, u)
		}
	}
	return out
}

var credFile = regexp.MustCompile(`\w+_file: (\S+)`)

// credentialFiles are the *_file paths of the merged Alertmanager config.
func credentialFiles(values map[string]any) []string {
	b, _ := yaml.Marshal(mapAt(values, "alertmanager", "config"))
	var out []string
	for _, m := range credFile.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}
