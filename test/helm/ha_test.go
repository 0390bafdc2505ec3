package helm_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// sets turns key=value pairs into helm's --set arguments.
func sets(kv ...string) []string {
	var args []string
	for _, s := range kv {
		args = append(args, "--set", s)
	}
	return args
}

var withRedis = []string{"replicaCount=2", "redis.enabled=true", "redis.addr=redis.redis.svc:6379"}

// More than one replica is refused exactly where state would split between
// the pods (or cannot be mounted), with the value to set; every other
// combination renders.
func TestReplicasRefusedOnlyWhereStateWouldSplit(t *testing.T) {
	for _, c := range []struct {
		set       []string
		want, not []string // in the error; not in it
	}{
		{[]string{"replicaCount=2"},
			[]string{"replicaCount > 1 needs redis.enabled", "sources.changes.enabled (pushed changes)", "timeline.enabled (the alert history)"}, []string{"persistence"}},
		{[]string{"replicaCount=2", "sources.changes.enabled=false"},
			[]string{"replicaCount > 1 needs redis.enabled", "timeline.enabled"}, []string{"sources.changes"}},
		{[]string{"replicaCount=2", "timeline.enabled=false"},
			[]string{"replicaCount > 1 needs redis.enabled", "sources.changes.enabled"}, []string{"timeline"}},
		{[]string{"replicaCount=2", "sources.changes.enabled=false", "timeline.enabled=false", "persistence.enabled=true"},
			[]string{"replicaCount > 1 needs redis.enabled", "persistence.enabled"}, []string{"sources.changes", "timeline"}},
		// With Redis, one ReadWriteOnce claim still cannot serve two nodes.
		{append(slices.Clone(withRedis), "persistence.enabled=true"),
			[]string{"persistence.enabled needs replicaCount: 1", "set persistence.enabled: false"}, nil},
		{[]string{"redis.enabled=true"}, []string{"redis.enabled needs exactly one of redis.addr"}, nil},
		{[]string{"redis.enabled=true", "redis.addr=a:6379", "redis.clusterAddrs={b:6379}"}, []string{"redis.enabled needs exactly one of"}, nil},
		{[]string{"redis.enabled=true", "redis.sentinelAddrs={s:26379}"}, []string{"redis.sentinelAddrs needs redis.masterName"}, nil},
	} {
		out, err := template(t, chart, sets(c.set...)...)
		if err == nil {
			t.Errorf("%v rendered, want it refused", c.set)
			continue
		}
		// helm's message, not the command line it follows
		_, msg, _ := strings.Cut(err.Error(), "\nError: ")
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%v: the error does not say %q: %v\n%s", c.set, w, err, out)
			}
		}
		for _, n := range c.not {
			if strings.Contains(msg, n) {
				t.Errorf("%v: the error names %q, which is off: %s", c.set, n, msg)
			}
		}
	}

	for _, set := range [][]string{
		withRedis, // pushed changes and the timeline on, in Redis
		{"replicaCount=3", "redis.enabled=true", "redis.sentinelAddrs={s0:26379,s1:26379}", "redis.masterName=mymaster"},
		{"replicaCount=2", "redis.enabled=true", "redis.clusterAddrs={c0:6379,c1:6379}"},
		{"replicaCount=2", "sources.changes.enabled=false", "timeline.enabled=false"}, // nothing kept: no Redis needed
		{"persistence.enabled=true", "redis.enabled=true", "redis.addr=r:6379"},       // one replica: allowed, if useless
		{"persistence.enabled=true"},
	} {
		dep := one[*appsv1.Deployment](t, render(t, sets(set...)...))
		if want := set[0]; strings.HasPrefix(want, "replicaCount=") && want != "replicaCount="+itoa(*dep.Spec.Replicas) {
			t.Errorf("%v: %d replicas", set, *dep.Spec.Replicas)
		}
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func selects(t *testing.T, sel map[string]string, dep *appsv1.Deployment) bool {
	t.Helper()
	return len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(dep.Spec.Template.Labels))
}

// With more than one replica the pods survive a node drain (a
// PodDisruptionBudget) and prefer different nodes and zones; with one there
// is nothing to spread. The defaults give way to what the values set.
func TestReplicasSpreadAndDisruptionBudget(t *testing.T) {
	objs := render(t, sets(withRedis...)...)
	dep := one[*appsv1.Deployment](t, objs)
	pod := dep.Spec.Template.Spec
	pdb := one[*policyv1.PodDisruptionBudget](t, objs)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || !selects(t, pdb.Spec.Selector.MatchLabels, dep) {
		t.Errorf("PodDisruptionBudget %+v, want minAvailable 1 over the pods", pdb.Spec)
	}
	if pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil {
		t.Fatalf("no pod anti-affinity with 2 replicas: %+v", pod.Affinity)
	}
	anti := pod.Affinity.PodAntiAffinity
	if len(anti.RequiredDuringSchedulingIgnoredDuringExecution) != 0 || len(anti.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Fatalf("anti-affinity %+v, want one preferred term (soft)", anti)
	}
	term := anti.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
	if term.TopologyKey != "kubernetes.io/hostname" || !selects(t, term.LabelSelector.MatchLabels, dep) {
		t.Errorf("anti-affinity term %+v, want the pods of this release per kubernetes.io/hostname", term)
	}
	if len(pod.TopologySpreadConstraints) != 1 {
		t.Fatalf("topology spread %+v, want one over zones", pod.TopologySpreadConstraints)
	}
	if sc := pod.TopologySpreadConstraints[0]; sc.TopologyKey != "topology.kubernetes.io/zone" || sc.WhenUnsatisfiable != corev1.ScheduleAnyway ||
		sc.MaxSkew != 1 || !selects(t, sc.LabelSelector.MatchLabels, dep) {
		t.Errorf("topology spread %+v, want maxSkew 1 over zones, ScheduleAnyway, the pods of this release", sc)
	}

	// One replica: no budget (it would block every drain), nothing to spread.
	objs = render(t)
	pod = one[*appsv1.Deployment](t, objs).Spec.Template.Spec
	if n := kinds(objs)["PodDisruptionBudget"]; n != 0 || pod.Affinity != nil || len(pod.TopologySpreadConstraints) != 0 {
		t.Errorf("one replica: %d PodDisruptionBudget, affinity %+v, spread %+v; want none", n, pod.Affinity, pod.TopologySpreadConstraints)
	}

	// hard: required, and the API server accepts the shapes.
	hard := append(slices.Clone(withRedis), "podAntiAffinityPreset=hard", "zoneSpreadPreset=hard")
	out, err := template(t, chart, sets(hard...)...)
	if err != nil {
		t.Fatal(err)
	}
	c := apiServer(t)
	for _, obj := range unstructuredDocs(t, out) {
		if err := dryRun(t, c, obj); err != nil {
			t.Error(err)
		}
	}
	pod = one[*appsv1.Deployment](t, render(t, sets(hard...)...)).Spec.Template.Spec
	if a := pod.Affinity.PodAntiAffinity; len(a.RequiredDuringSchedulingIgnoredDuringExecution) != 1 || len(a.PreferredDuringSchedulingIgnoredDuringExecution) != 0 ||
		pod.TopologySpreadConstraints[0].WhenUnsatisfiable != corev1.DoNotSchedule {
		t.Errorf("hard presets: anti-affinity %+v, spread %+v", a, pod.TopologySpreadConstraints)
	}

	// none, and the budget off.
	objs = render(t, sets(append(slices.Clone(withRedis), "podAntiAffinityPreset=none", "zoneSpreadPreset=none", "podDisruptionBudget.enabled=false")...)...)
	pod = one[*appsv1.Deployment](t, objs).Spec.Template.Spec
	if n := kinds(objs)["PodDisruptionBudget"]; n != 0 || pod.Affinity != nil || len(pod.TopologySpreadConstraints) != 0 {
		t.Errorf("presets none, budget off: %d PodDisruptionBudget, affinity %+v, spread %+v", n, pod.Affinity, pod.TopologySpreadConstraints)
	}

	// The values win: a node affinity keeps the default anti-affinity
	// beside it; a pod anti-affinity or spread of one's own replaces it.
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(`
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms: [{matchExpressions: [{key: pool, operator: In, values: [monitoring]}]}]
topologySpreadConstraints:
  - {maxSkew: 2, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app.kubernetes.io/name: whatchanged}}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	pod = one[*appsv1.Deployment](t, render(t, append(sets(withRedis...), "-f", values)...)).Spec.Template.Spec
	if pod.Affinity.NodeAffinity == nil || pod.Affinity.PodAntiAffinity == nil || len(pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("a node affinity given: %+v, want it and the default anti-affinity", pod.Affinity)
	}
	if len(pod.TopologySpreadConstraints) != 1 || pod.TopologySpreadConstraints[0].MaxSkew != 2 {
		t.Errorf("spread given: %+v, want exactly it", pod.TopologySpreadConstraints)
	}
	pod = one[*appsv1.Deployment](t, render(t, append(sets(withRedis...), "--set-json",
		`affinity={"podAntiAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":[{"topologyKey":"topology.kubernetes.io/zone","labelSelector":{"matchLabels":{"app.kubernetes.io/name":"whatchanged"}}}]}}`)...)).Spec.Template.Spec
	if a := pod.Affinity.PodAntiAffinity; len(a.PreferredDuringSchedulingIgnoredDuringExecution) != 0 || len(a.RequiredDuringSchedulingIgnoredDuringExecution) != 1 ||
		a.RequiredDuringSchedulingIgnoredDuringExecution[0].TopologyKey != "topology.kubernetes.io/zone" {
		t.Errorf("a pod anti-affinity given: %+v, want exactly it", a)
	}
}

// The redis values become the config's top-level redis block; the password
// is a projected file (password_file) from the chart's Secret or an
// existing one, and appears nowhere but in the Secret.
func TestRedisConfig(t *testing.T) {
	const marker = "r3dis-pa55-marker"
	objs := render(t, sets("replicaCount=2", "redis.enabled=true", "redis.addr=redis.redis.svc:6379", "redis.username=whatchanged",
		"redis.password="+marker, "redis.db=3", "redis.keyPrefix=prod:", "redis.timeout=2s",
		"redis.tls.enabled=true", "redis.tls.caSecret.name=redis-ca", "redis.tls.clientCertSecret=redis-client", "redis.tls.serverName=redis.example.com")...)
	var cfg struct {
		Redis map[string]any `json:"redis"`
	}
	if err := yaml.Unmarshal([]byte(one[*corev1.ConfigMap](t, objs).Data["whatchanged.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"addr": "redis.redis.svc:6379", "username": "whatchanged", "password_file": secretsDir + "redis-password",
		"db": float64(3), "key_prefix": "prod:", "timeout": "2s",
		"tls": map[string]any{"enabled": true, "ca_file": secretsDir + "redis-tls/ca.crt", "cert_file": secretsDir + "redis-tls/tls.crt",
			"key_file": secretsDir + "redis-tls/tls.key", "server_name": "redis.example.com"},
	}
	got, _ := yaml.Marshal(cfg.Redis)
	exp, _ := yaml.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("redis config:\n%s\nwant:\n%s", got, exp)
	}
	files := projected(one[*appsv1.Deployment](t, objs).Spec.Template.Spec.Volumes, "secrets")
	for path, src := range map[string]string{"redis-password": "whatchanged/redis-password", "redis-tls/ca.crt": "redis-ca/ca.crt",
		"redis-tls/tls.crt": "redis-client/tls.crt", "redis-tls/tls.key": "redis-client/tls.key"} {
		if files[path] != src {
			t.Errorf("%s%s projected from %q, want %q", secretsDir, path, files[path], src)
		}
	}
	for _, o := range objs {
		b, _ := yaml.Marshal(o)
		if sec, ok := o.(*corev1.Secret); ok {
			if sec.StringData["redis-password"] != marker {
				t.Errorf("the chart's Secret has redis-password %q", sec.StringData["redis-password"])
			}
			continue
		}
		if strings.Contains(string(b), marker) {
			t.Errorf("the Redis password appears in a %T", o)
		}
	}

	// An existing Secret: projected from it, the chart makes none.
	objs = render(t, sets("redis.enabled=true", "redis.addr=redis:6379", "redis.existingSecret=shared-redis", "redis.existingSecretKey=pw")...)
	if files := projected(one[*appsv1.Deployment](t, objs).Spec.Template.Spec.Volumes, "secrets"); files["redis-password"] != "shared-redis/pw" {
		t.Errorf("redis-password projected from %q, want shared-redis/pw", files["redis-password"])
	}
	if n := kinds(objs)["Secret"]; n != 0 {
		t.Errorf("%d Secrets with existingSecret", n)
	}
	// Without a password, no password_file; without redis.enabled, nothing.
	if cfg := renderedConfig(t, sets("redis.enabled=true", "redis.addr=redis:6379")...); strings.Contains(cfg, "password_file") || !strings.Contains(cfg, "addr: redis:6379") {
		t.Errorf("redis without a password:\n%s", cfg)
	}
	objs = render(t, sets("redis.password="+marker, "redis.addr=redis:6379")...)
	if cfg := one[*corev1.ConfigMap](t, objs).Data["whatchanged.yaml"]; strings.Contains(cfg, "redis") || kinds(objs)["Secret"] != 0 {
		t.Errorf("redis.enabled false renders redis:\n%s", cfg)
	}
}

func container(pod corev1.PodSpec, name string) *corev1.Container {
	for i := range pod.Containers {
		if pod.Containers[i].Name == name {
			return &pod.Containers[i]
		}
	}
	return nil
}

var reloaderTag = regexp.MustCompile(`^quay\.io/prometheus-operator/prometheus-config-reloader:v\d+\.\d+\.\d+$`)

// Off, a changed config rolls the pods (checksum/config). On, the
// config-reloader watches the directory whatchanged reads its config from
// and POSTs /-/reload on whatchanged's own port; only the settings a
// reload refuses roll the pods.
func TestConfigReloader(t *testing.T) {
	annotations := func(set ...string) map[string]string {
		return one[*appsv1.Deployment](t, render(t, sets(set...)...)).Spec.Template.Annotations
	}
	off := annotations()
	if off["checksum/config"] == "" || off["checksum/config-restart"] != "" {
		t.Errorf("reloader off: annotations %v, want checksum/config only", off)
	}
	if annotations("enrich.budget=2s")["checksum/config"] == off["checksum/config"] {
		t.Error("reloader off: a changed config leaves checksum/config alike, so helm upgrade would not roll the pods")
	}
	if pod := one[*appsv1.Deployment](t, render(t)).Spec.Template.Spec; len(pod.Containers) != 1 {
		t.Errorf("reloader off: containers %d", len(pod.Containers))
	}

	on := []string{"configReloader.enabled=true", "configReloader.extraArgs={--log-level=debug}"}
	dep := one[*appsv1.Deployment](t, render(t, sets(on...)...))
	pod := dep.Spec.Template.Spec
	wc, rl := container(pod, "whatchanged"), container(pod, "config-reloader")
	if rl == nil {
		t.Fatalf("configReloader.enabled renders containers %v", pod.Containers)
	}
	if !reloaderTag.MatchString(rl.Image) {
		t.Errorf("reloader image %s, want prometheus-operator's with a pinned version", rl.Image)
	}
	var configDir string
	for _, m := range wc.VolumeMounts {
		if m.Name == "config" {
			if m.SubPath != "" {
				t.Errorf("config mounted with subPath %s: the kubelet never updates a subPath mount, so nothing would reload", m.SubPath)
			}
			configDir = m.MountPath
		}
	}
	if i := slices.Index(wc.Args, "--config"); i < 0 || filepath.Dir(wc.Args[i+1]) != configDir {
		t.Errorf("whatchanged reads %v, not from the config directory %s", wc.Args, configDir)
	}
	want := []string{"--watched-dir=" + configDir, "--reload-url=http://127.0.0.1:" + itoa(wc.Ports[0].ContainerPort) + "/-/reload", "--log-level=debug"}
	if !slices.Equal(rl.Args, want) {
		t.Errorf("reloader args %v, want %v", rl.Args, want)
	}
	if len(rl.VolumeMounts) != 1 || rl.VolumeMounts[0].Name != "config" || rl.VolumeMounts[0].MountPath != configDir || !rl.VolumeMounts[0].ReadOnly {
		t.Errorf("reloader mounts %+v, want the config volume read-only at %s", rl.VolumeMounts, configDir)
	}
	if rl.Resources.Limits.Memory().IsZero() || rl.SecurityContext == nil || rl.SecurityContext.ReadOnlyRootFilesystem == nil || !*rl.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("reloader resources %+v, security context %+v", rl.Resources, rl.SecurityContext)
	}

	base := dep.Spec.Template.Annotations
	if base["checksum/config"] != "" || base["checksum/config-restart"] == "" {
		t.Fatalf("reloader on: annotations %v, want checksum/config-restart instead of checksum/config", base)
	}
	for _, c := range []struct {
		set   string
		rolls bool
	}{
		{"enrich.budget=2s", false},
		{"rules[0].name=x", false},
		{"sources.github.enabled=true", false}, // with its token below
		{"logLevel=debug", true},
		{"auth.existingSecret=whatchanged-auth", true},
		{"inline.enabled=true", true},
	} {
		set := append(slices.Clone(on), c.set)
		if strings.HasPrefix(c.set, "sources.github") {
			set = append(set, "sources.github.existingSecret=gh")
		}
		if strings.HasPrefix(c.set, "rules") {
			set = append(set, "rules[0].subject.app=x")
		}
		got := annotations(set...)["checksum/config-restart"]
		if rolled := got != base["checksum/config-restart"]; rolled != c.rolls {
			t.Errorf("reloader on, %s: rolls the pods %v, want %v", c.set, rolled, c.rolls)
		}
	}
	if annotations(append(slices.Clone(withRedis), on...)...)["checksum/config-restart"] == annotations(append(slices.Clone(withRedis), append(on, "redis.db=1")...)...)["checksum/config-restart"] {
		t.Error("reloader on: a changed redis block does not roll the pods, and a reload refuses it")
	}
}

// The chart's list of what rolls the pods despite the reloader is the
// binary's list of what a reload refuses (cmd/whatchanged/reload.go).
func TestReloaderRestartKeysMatchTheBinary(t *testing.T) {
	src, err := os.ReadFile("../../cmd/whatchanged/reload.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(src), "func restartOnly(")
	if !ok {
		t.Fatal("reload.go has no restartOnly")
	}
	body, _, _ = strings.Cut(body, "\n}\n")
	keys := regexp.MustCompile(`"([a-z_.]+)":\s`).FindAllStringSubmatch(body, -1)
	if len(keys) == 0 {
		t.Fatal("no keys found in restartOnly")
	}
	tmpl, err := os.ReadFile(filepath.Join(chart, "templates", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	picks := map[string]string{}
	for _, m := range regexp.MustCompile(`pick (\$cfg|\(get \$cfg "(\w+)"[^)]*\))((?: "\w+")+)`).FindAllStringSubmatch(string(tmpl), -1) {
		picks[m[2]] += m[3]
	}
	for _, k := range keys {
		parent, key, nested := strings.Cut(k[1], ".")
		if !nested {
			parent, key = "", parent
		}
		if !strings.Contains(picks[parent], `"`+key+`"`) {
			t.Errorf("a reload refuses a change of %s, but checksum/config-restart does not cover it (deployment.yaml picks %v)", k[1], picks)
		}
	}
}
