package helm_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/whatchanged/whatchanged/test/golden"
)

const (
	secretsDir = "/etc/whatchanged/secrets/"
	fullValues = "testdata/full-values.yaml"
)

// renderedConfig is the whatchanged.yaml of the chart's ConfigMap.
func renderedConfig(t *testing.T, args ...string) string {
	t.Helper()
	return one[*corev1.ConfigMap](t, render(t, args...)).Data["whatchanged.yaml"]
}

// projected maps each file of the secrets volume (its path under
// /etc/whatchanged/secrets/) to "secret/key".
func projected(volumes []corev1.Volume, name string) map[string]string {
	files := map[string]string{}
	for _, v := range volumes {
		if v.Name != name || v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.Secret == nil {
				continue
			}
			for _, it := range src.Secret.Items {
				files[it.Path] = src.Secret.Name + "/" + it.Key
			}
		}
	}
	return files
}

var fileKey = regexp.MustCompile(`(?m)^\s*-?\s*(?:\w+_file|kubeconfig): (\S+)$`)

// configFiles are the files a rendered config names (every *_file key,
// and the clusters' kubeconfigs).
func configFiles(cfg string) []string {
	var out []string
	for _, m := range fileKey.FindAllStringSubmatch(cfg, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestSecuritySecretsAndRBAC(t *testing.T) {
	objs := render(t, "--set", "auth.token=inbound-s3cret", "--set", "downstream.url=https://hooks.example.com/T0/B0/d0wnstream-s3cret",
		"--set", "downstream.authorization.existingSecret=notifier", "--set", "sources.github.enabled=true", "--set", "sources.github.token=ghp_s3cret",
		"--set", "sources.argocd.enabled=true", "--set", "sources.argocd.server=https://argocd-server.argocd.svc", "--set", "sources.argocd.token=argo-s3cret",
		"--set", "redis.enabled=true", "--set", "redis.addr=redis.redis.svc:6379", "--set", "redis.password=r3dis-s3cret")
	var rendered bytes.Buffer
	for _, o := range objs {
		if _, ok := o.(*corev1.Secret); ok {
			continue // the only place secrets may be
		}
		b, _ := yaml.Marshal(o)
		rendered.Write(b)
	}
	for _, s := range []string{"inbound-s3cret", "d0wnstream-s3cret", "ghp_s3cret", "argo-s3cret", "r3dis-s3cret"} {
		if strings.Contains(rendered.String(), s) {
			t.Errorf("secret %q appears outside the Secret", s)
		}
	}
	dep := one[*appsv1.Deployment](t, objs)
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	// Secrets are files, never the environment: the one variable is
	// GOMEMLIMIT, from the container's own memory limit.
	if len(c.Env) != 1 || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.ResourceFieldRef == nil || len(c.EnvFrom) != 0 {
		t.Errorf("environment in the manifest: %+v %+v", c.Env, c.EnvFrom)
	}
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("security context not restricted: pod %+v container %+v", psc, sc)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: %+v %+v", c.ReadinessProbe, c.LivenessProbe)
	}

	// Each secret is a file of one projected volume (a subPath mount would
	// never see a rotated Secret), and the config names exactly those files.
	files := projected(pod.Volumes, "secrets")
	want := map[string]string{
		"auth-token": "whatchanged/auth-token", "downstream-url": "whatchanged/downstream-url",
		"downstream-credentials": "notifier/credentials", "github-token": "whatchanged/github-token", "argocd-token": "whatchanged/argocd-token",
		"redis-password": "whatchanged/redis-password",
	}
	for path, src := range want {
		if files[path] != src {
			t.Errorf("%s%s projected from %q, want %q (all: %v)", secretsDir, path, files[path], src, files)
		}
	}
	for _, m := range c.VolumeMounts {
		if m.Name == "secrets" && (m.MountPath != strings.TrimSuffix(secretsDir, "/") || m.SubPath != "") {
			t.Errorf("secrets mounted as %+v", m)
		}
	}
	cfg := one[*corev1.ConfigMap](t, objs).Data["whatchanged.yaml"]
	named := configFiles(cfg)
	for _, f := range named {
		if _, ok := files[strings.TrimPrefix(f, secretsDir)]; !ok || !strings.HasPrefix(f, secretsDir) {
			t.Errorf("the config names %s, which is not a projected file %v", f, files)
		}
	}
	if len(named) != len(files) {
		t.Errorf("the config names %v, the volume projects %v", named, files)
	}
	var sec corev1.Secret
	for _, s := range only[*corev1.Secret](objs) {
		sec = *s
	}
	for _, key := range []string{"auth-token", "downstream-url", "github-token", "argocd-token", "redis-password"} {
		if sec.StringData[key] == "" {
			t.Errorf("the chart's Secret lacks %s: %v", key, slices.Sorted(maps.Keys(sec.StringData)))
		}
	}

	for _, r := range one[*rbacv1.ClusterRole](t, objs).Rules {
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("write verb %q in %+v", v, r)
			}
		}
	}
	// Kubernetes off and Argo CD REST only: no RBAC at all.
	none := kinds(render(t, "--set", "sources.kubernetes.enabled=false"))
	if none["ClusterRole"]+none["Role"]+none["ClusterRoleBinding"]+none["RoleBinding"] != 0 {
		t.Errorf("RBAC rendered with Kubernetes reading off: %v", none)
	}
}

// standIn writes a plausible file for a secret path the config names.
func standIn(t *testing.T, path string) []byte {
	t.Helper()
	switch {
	case strings.HasSuffix(path, ".crt"):
		return standInCert(t).cert
	case strings.HasSuffix(path, "tls.key"):
		return standInCert(t).key
	case strings.HasSuffix(path, ".pem"):
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	case strings.Contains(path, "url"):
		return []byte("https://hooks.example.com/T0/B0/x\n")
	case strings.Contains(path, "kubeconfig"):
		return []byte(standInKubeconfig)
	}
	return []byte("stand-in-token\n")
}

type certPair struct{ cert, key []byte }

var (
	certOnce sync.Once
	certPEM  certPair
	certErr  error
)

// standInCert is one self-signed CA certificate and its key, so a CA file,
// a client certificate and its key stand in alike and match.
func standInCert(t *testing.T) certPair {
	t.Helper()
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			certErr = err
			return
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stand-in"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			certErr = err
			return
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			certErr = err
			return
		}
		certPEM = certPair{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})}
	})
	if certErr != nil {
		t.Fatal(certErr)
	}
	return certPEM
}

// standInKubeconfig is a remote cluster's kubeconfig as the remoteRBAC
// notes build it: a server, its CA, a ServiceAccount token.
const standInKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: remote
  cluster: {server: "https://203.0.113.10:6443", insecure-skip-tls-verify: true}
users:
- name: whatchanged
  user: {token: stand-in-token}
contexts:
- name: remote
  context: {cluster: remote, user: whatchanged}
current-context: remote
`

// The rendered config of every example (and of every key at once) is what
// the real whatchanged accepts: `whatchanged config check`, with stand-in
// files where the config names secret files.
func TestRenderedConfigPassesConfigCheck(t *testing.T) {
	bin := whatchanged(t)
	files := append([]string{"", fullValues}, chartExamples(t)...)
	for _, file := range files {
		t.Run(exampleName(file), func(t *testing.T) {
			dir := t.TempDir()
			cfg := renderedConfig(t, exampleArgs(file)...)
			for _, path := range configFiles(cfg) {
				p := filepath.Join(dir, path)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, standIn(t, path), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg = strings.ReplaceAll(cfg, path, p)
			}
			cfg = strings.ReplaceAll(cfg, "/var/lib/whatchanged", filepath.Join(dir, "data"))
			f := filepath.Join(dir, "whatchanged.yaml")
			if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "config", "check", "--config", f).CombinedOutput(); err != nil {
				t.Errorf("rendered config rejected: %v\n%s\n%s", err, out, cfg)
			}
		})
	}
}

// The config the chart renders from every value, as a golden file
// (`go test ./test/helm -run RenderedConfigShape -update` rewrites it).
// Outbound credentials are Alertmanager http_config files; the keys the
// config no longer has must not come back.
func TestRenderedConfigShape(t *testing.T) {
	cfg := renderedConfig(t, "-f", fullValues)
	golden.Check(t, "testdata/whatchanged.yaml.golden", []byte(cfg))
	var parsed map[string]any
	if err := yaml.Unmarshal([]byte(cfg), &parsed); err != nil {
		t.Fatal(err)
	}
	outbound := map[string]any{
		"downstreams.default": at(parsed, "downstreams", "default"),
		"sources.argocd":      at(parsed, "sources", "argocd"),
		"sources.github":      at(parsed, "sources", "github"),
	}
	for i, u := range at(parsed, "inline", "upstreams").([]any) {
		outbound[fmt.Sprintf("inline.upstreams[%d]", i)] = u
	}
	for where, v := range outbound {
		for _, gone := range []string{"token", "token_file", "tls", "bearer_token", "bearer_token_file", "basic_auth", "headers"} {
			if _, ok := v.(map[string]any)[gone]; ok {
				t.Errorf("%s.%s: outbound settings are http_config now", where, gone)
			}
		}
	}
	// changes_json defaults by mode: on for webhooks, off inline.
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "changes_json: true"},
		{[]string{"--set", "inline.enabled=true"}, "changes_json: false"},
		{[]string{"--set", "inline.enabled=true", "--set", "enrich.annotations.changes_json=true"}, "changes_json: true"},
		{[]string{"--set", "enrich.annotations.changes_json=false"}, "changes_json: false"},
	} {
		if got := renderedConfig(t, c.args...); !strings.Contains(got, c.want) {
			t.Errorf("%v: want %q in\n%s", c.args, c.want, got)
		}
	}
}
