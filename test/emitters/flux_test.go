package emitters

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	fluxExample  = "../../examples/emitters/flux.yaml"
	fluxPayloads = "../../sources/changes/testdata/senders/"
)

type fluxObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name, Namespace string
	} `json:"metadata"`
	StringData map[string]string `json:"stringData"`
	Spec       struct {
		Type        string `json:"type"`
		Address     string `json:"address"`
		SecretRef   struct{ Name string }
		ProviderRef struct{ Name string }
		// Alert
		EventSeverity string `json:"eventSeverity"`
		EventSources  []struct {
			Kind, Name string
		} `json:"eventSources"`
	} `json:"spec"`
}

func fluxExampleObjects(t *testing.T) map[string]fluxObject {
	t.Helper()
	b, err := os.ReadFile(fluxExample)
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]fluxObject{}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var o fluxObject
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatal(err)
		}
		objs[o.Kind] = o
	}
	return objs
}

// notification-controller's generic Provider posts the event JSON with
// Content-Type application/json, Gotk-Component and the headers of the
// Secret's `headers` key (internal/notifier/forwarder.go, client.go); the
// example's Provider, Secret and Alert make whatchanged record the
// reconciliation, and answer 202 to a progress event (any 2xx is success
// for Flux: no retry).
func TestFluxProviderRecordsTheReconciliation(t *testing.T) {
	objs := fluxExampleObjects(t)
	provider, secret, alert := objs["Provider"], objs["Secret"], objs["Alert"]
	if provider.APIVersion != "notification.toolkit.fluxcd.io/v1beta3" || provider.Spec.Type != "generic" ||
		provider.Spec.SecretRef.Name != secret.Metadata.Name || alert.Spec.ProviderRef.Name != provider.Metadata.Name {
		t.Fatalf("Provider, Secret and Alert do not fit together: %+v", objs)
	}
	var kinds []string
	for _, s := range alert.Spec.EventSources {
		kinds = append(kinds, s.Kind)
	}
	if alert.Spec.EventSeverity != "info" || strings.Join(kinds, ",") != "Kustomization,HelmRelease" {
		t.Errorf("the Alert must send info (successes) of Kustomizations and HelmReleases: %s %v", alert.Spec.EventSeverity, kinds)
	}
	address, err := url.Parse(provider.Spec.Address)
	if err != nil || address.Path != "/api/v1/changes/flux" {
		t.Fatalf("address %q", provider.Spec.Address)
	}
	var headers map[string]string
	if err := yaml.Unmarshal([]byte(secret.StringData["headers"]), &headers); err != nil {
		t.Fatal(err)
	}

	w := newWhatchanged(t)
	header := http.Header{"Content-Type": {"application/json"}, "Gotk-Component": {"kustomize-controller"}}
	for k, v := range headers {
		header.Set(k, strings.ReplaceAll(v, "<whatchanged auth.bearer_token>", token))
	}
	target := w.url + address.Path

	for _, tc := range []struct {
		file   string
		status int
		want   string
	}{
		{"flux-kustomization-progressing.json", http.StatusAccepted, `"ignored":"not a change`},
		{"flux-kustomization-reconciliation-succeeded.json", http.StatusCreated, `"revision":"69b59063470310ebbd88a9156325322a124e55a3"`},
		{"flux-kustomization-reconciliation-succeeded.json", http.StatusOK, `"created":false`},
	} {
		body, err := os.ReadFile(fluxPayloads + tc.file)
		if err != nil {
			t.Fatal(err)
		}
		status, answer := post(t, target, header, string(body))
		if status != tc.status || !strings.Contains(answer, tc.want) {
			t.Fatalf("%s: %d %s, want %d with %s", tc.file, status, answer, tc.status, tc.want)
		}
	}
	ch := w.only(t)
	if ch.Kind != "deploy" || ch.Status != "succeeded" || ch.Subject.Namespace != "apps" || ch.Subject.App != "webapp" {
		t.Errorf("recorded %+v", ch)
	}

	// Without the Secret's header, whatchanged refuses; Flux logs the 401.
	status, answer := post(t, target, http.Header{"Content-Type": {"application/json"}}, "{}")
	if status != http.StatusUnauthorized {
		t.Errorf("without the token: %d %s", status, answer)
	}
}
