package changes

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

func payload(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "senders", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit changes a payload the way the sender would for another change:
// set replaces the values at the dotted paths.
func edit(t *testing.T, body []byte, set map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for path, v := range set {
		keys := strings.Split(path, ".")
		cur := m
		for _, k := range keys[:len(keys)-1] {
			cur = cur[k].(map[string]any)
		}
		cur[keys[len(keys)-1]] = v
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func query(s string) url.Values {
	q, err := url.ParseQuery(s)
	if err != nil {
		panic(err)
	}
	return q
}

func TestDecodeFromRecordsChanges(t *testing.T) {
	ld := payload(t, "launchdarkly-flag-updated.json")
	for _, tc := range []struct {
		name, format, file, query string
		body                      []byte // instead of file
		want                      Event  // ID: only its prefix is compared
	}{
		{name: "flux kustomization applied", format: "flux", file: "flux-kustomization-reconciliation-succeeded.json",
			want: Event{ID: "flux-", Kind: "deploy", Status: "succeeded", Subject: sources.Subject{Namespace: "apps", App: "webapp"},
				Revision: "69b59063470310ebbd88a9156325322a124e55a3", DeployedBy: "flux kustomize-controller",
				Time: time.Date(2022, 10, 28, 7, 31, 2, 0, time.UTC), FinishedAt: time.Date(2022, 10, 28, 7, 31, 2, 0, time.UTC),
				Message: "Kustomization apps/webapp: Reconciliation finished in 4.312897ms, next run in 10m0s"}},
		{name: "flux kustomization failed, revision before Flux 2.0", format: "flux", file: "flux-kustomization-validation-failed.json",
			want: Event{ID: "flux-", Kind: "deploy", Status: "failed", Subject: sources.Subject{Namespace: "apps", App: "webapp"},
				Revision: "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1", DeployedBy: "flux kustomize-controller",
				Time: time.Date(2022, 10, 28, 7, 26, 19, 0, time.UTC), FinishedAt: time.Date(2022, 10, 28, 7, 26, 19, 0, time.UTC),
				Message: "Kustomization apps/webapp: service/apps/webapp validation error: spec.type: Unsupported value: Ingress"}},
		{name: "flux helm upgrade: release namespace and chart version", format: "flux", file: "flux-helmrelease-upgrade-succeeded.json",
			want: Event{ID: "flux-", Kind: "deploy", Status: "succeeded", Subject: sources.Subject{Namespace: "shop", App: "podinfo"},
				Version: "6.5.4", DeployedBy: "flux helm-controller",
				Time: time.Date(2024, 3, 5, 7, 33, 4, 0, time.UTC), FinishedAt: time.Date(2024, 3, 5, 7, 33, 4, 0, time.UTC),
				Message: "HelmRelease flux-system/podinfo: Helm upgrade succeeded for release shop/podinfo.v3 with chart podinfo@6.5.4"}},
		{name: "flux: the URL names the workload", format: "flux", file: "flux-kustomization-reconciliation-succeeded.json",
			query: "namespace=shop&app=checkout&kind=Deployment&name=checkout",
			want: Event{ID: "flux-", Kind: "deploy", Status: "succeeded",
				Subject:  sources.Subject{Namespace: "shop", App: "checkout", Kind: "Deployment", Name: "checkout"},
				Revision: "69b59063470310ebbd88a9156325322a124e55a3", DeployedBy: "flux kustomize-controller",
				Time: time.Date(2022, 10, 28, 7, 31, 2, 0, time.UTC), FinishedAt: time.Date(2022, 10, 28, 7, 31, 2, 0, time.UTC),
				Message: "Kustomization apps/webapp: Reconciliation finished in 4.312897ms, next run in 10m0s"}},
		{name: "launchdarkly flag updated", format: "launchdarkly", body: ld, query: "namespace=shop&app=checkout",
			want: Event{ID: "launchdarkly-1234", Kind: "flag", Status: "succeeded", Subject: sources.Subject{Namespace: "shop", App: "checkout"},
				Version: "off", PreviousVersion: "off", Author: "michelle@example.io", DeployedBy: "LaunchDarkly",
				Time: time.UnixMilli(1729123867537).UTC(), FinishedAt: time.UnixMilli(1729123867537).UTC(),
				Message: "flag test-flag updated in Test\n* Turned the flag on\n* Changed the default variation from ~~`on`~~ to `off`"}},
		{name: "launchdarkly turned on, subject from the flag's tag", format: "launchdarkly",
			body: edit(t, ld, map[string]any{"titleVerb": "turned on the flag", "description": "", "currentVersion.environments.test.on": true,
				"currentVersion.tags": []string{"app:checkout", "team-shop"}}),
			query: "namespace=shop&environment=test",
			want: Event{ID: "launchdarkly-1234", Kind: "flag", Status: "succeeded", Subject: sources.Subject{Namespace: "shop", App: "checkout"},
				Version: "on", PreviousVersion: "off", Author: "michelle@example.io", DeployedBy: "LaunchDarkly",
				Time: time.UnixMilli(1729123867537).UTC(), FinishedAt: time.UnixMilli(1729123867537).UTC(),
				Message: "flag test-flag turned on in test"}},
		{name: "unleash enabled in an environment", format: "unleash", file: "unleash-feature-environment-enabled.json", query: "app=checkout",
			want: Event{ID: "unleash-", Kind: "flag", Status: "succeeded", Subject: sources.Subject{App: "checkout"},
				Version: "on", PreviousVersion: "off", Author: "admin", DeployedBy: "Unleash",
				Time: time.Date(2024, 12, 30, 0, 0, 0, 0, time.UTC), FinishedAt: time.Date(2024, 12, 30, 0, 0, 0, 0, time.UTC),
				Message: "flag test-flag turned on in development"}},
		{name: "unleash strategy, subject from a tag of type app", format: "unleash",
			body: edit(t, payload(t, "unleash-feature-environment-enabled.json"), map[string]any{
				"type": "feature-strategy-update", "tags": []map[string]string{{"type": "app", "value": "checkout"}},
				"data":    map[string]any{"name": "flexibleRollout", "parameters": map[string]any{"rollout": "50", "stickiness": "default"}},
				"preData": map[string]any{"name": "flexibleRollout", "parameters": map[string]any{"rollout": "10", "stickiness": "default"}}}),
			want: Event{ID: "unleash-", Kind: "flag", Status: "succeeded", Subject: sources.Subject{App: "checkout"},
				Version: "flexibleRollout 50%", PreviousVersion: "flexibleRollout 10%", Author: "admin", DeployedBy: "Unleash",
				Time: time.Date(2024, 12, 30, 0, 0, 0, 0, time.UTC), FinishedAt: time.Date(2024, 12, 30, 0, 0, 0, 0, time.UTC),
				Message: "flag test-flag strategy updated in development"}},
		{name: "flagsmith turned on", format: "flagsmith", file: "flagsmith-flag-updated.json", query: "namespace=web&app=website",
			want: Event{ID: "flagsmith-", Kind: "flag", Status: "succeeded", Subject: sources.Subject{Namespace: "web", App: "website"},
				Version:         "on = <strong> You are using the develop environment. </strong>",
				PreviousVersion: "off = <strong> You are using the develop environment. </strong>",
				Author:          "user@domain.com", DeployedBy: "Flagsmith",
				Time: time.Date(2021, 6, 18, 7, 50, 26, 595298000, time.UTC), FinishedAt: time.Date(2021, 6, 18, 7, 50, 26, 595298000, time.UTC),
				Message: "flag butter_bar turned on in Development"}},
		{name: "openfeature", format: "openfeature",
			body: []byte(`{"id":"flagd-7","flagKey":"checkout-v2","variant":"on","previousVariant":"off","environment":"production",
				"source":"flagd","author":"alice","time":"2026-11-21T09:58:00Z","subject":{"namespace":"shop","app":"checkout"}}`),
			want: Event{ID: "flagd-7", Kind: "flag", Status: "succeeded", Subject: sources.Subject{Namespace: "shop", App: "checkout"},
				Version: "on", PreviousVersion: "off", Author: "alice", DeployedBy: "flagd",
				Time: time.Date(2026, 11, 21, 9, 58, 0, 0, time.UTC), FinishedAt: time.Date(2026, 11, 21, 9, 58, 0, 0, time.UTC),
				Message: "flag checkout-v2 changed from off to on in production"}},
		{name: "openfeature value, subject from the URL", format: "openfeature", query: "namespace=shop",
			body: []byte(`{"flagKey":"max-items","value":{"limit":50},"previousValue":{"limit":20}}`),
			want: Event{Kind: "flag", Status: "succeeded", Subject: sources.Subject{Namespace: "shop"},
				Version: `{"limit":50}`, PreviousVersion: `{"limit":20}`, Time: now, Message: `flag max-items changed from {"limit":20} to {"limit":50}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.file != "" {
				body = payload(t, tc.file)
			}
			ev, err := DecodeFrom(tc.format, body, query(tc.query))
			if err != nil {
				t.Fatal(err)
			}
			if err := ev.Validate(now); err != nil {
				t.Fatalf("decoded event does not validate: %v\n%+v", err, ev)
			}
			if !strings.HasPrefix(ev.ID, tc.want.ID) || ev.ID == "" {
				t.Errorf("id %q, want prefix %q", ev.ID, tc.want.ID)
			}
			got := ev.change("changes")
			want := tc.want
			want.ID = ev.ID
			if want.FinishedAt.IsZero() {
				want.Status = ev.Status // defaulted by Validate
			}
			if w := want.change("changes"); !sameChange(got, w) {
				t.Errorf("got\n%+v\nwant\n%+v", got, w)
			}
		})
	}
}

func sameChange(a, b sources.Change) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// A sender's retry, and Flux's periodic ReconciliationSucceeded for the
// revision already applied, record nothing new; a new revision or a Helm
// action repeated later does.
func TestDecodeFromIDs(t *testing.T) {
	id := func(format string, body []byte, q string) string {
		t.Helper()
		ev, err := DecodeFrom(format, body, query(q))
		if err != nil {
			t.Fatal(err)
		}
		return ev.ID
	}
	ks := payload(t, "flux-kustomization-reconciliation-succeeded.json")
	later := edit(t, ks, map[string]any{"timestamp": "2022-10-28T07:41:02Z", "message": "Reconciliation finished in 3ms, next run in 10m0s"})
	newRev := edit(t, ks, map[string]any{"metadata": map[string]string{
		"kustomize.toolkit.fluxcd.io/revision": "main@sha1:5394cb7f48332b2de7c17dd8b8384bbc84b7e738"}})
	if id("flux", ks, "") != id("flux", later, "") {
		t.Error("the same revision reconciled again is a new change")
	}
	if id("flux", ks, "") == id("flux", newRev, "") {
		t.Error("a new revision has the id of the old one")
	}
	hr := payload(t, "flux-helmrelease-upgrade-succeeded.json")
	if id("flux", hr, "") == id("flux", edit(t, hr, map[string]any{"timestamp": "2024-03-05T09:00:00Z"}), "") {
		t.Error("a second Helm upgrade (values only, same chart) has the id of the first")
	}
	fs := payload(t, "flagsmith-flag-updated.json")
	if id("flagsmith", fs, "app=a") != id("flagsmith", fs, "app=a") {
		t.Error("a Flagsmith retry is a new change")
	}
}

func TestDecodeFromIgnores(t *testing.T) {
	for _, tc := range []struct {
		name, format, file, query, why string
		body                           []byte
	}{
		{name: "flux progressing", format: "flux", file: "flux-kustomization-progressing.json", why: `"Progressing"`},
		{name: "flux dependency not ready", format: "flux", file: "flux-kustomization-dependency-not-ready.json", why: `"DependencyNotReady"`},
		{name: "flux source artifact", format: "flux", file: "flux-gitrepository-new-artifact.json", why: "GitRepository"},
		{name: "unleash flag created", format: "unleash", file: "unleash-feature-created.json", query: "app=x", why: `"feature-created"`},
		{name: "flag in another environment", format: "flagsmith", file: "flagsmith-flag-updated.json", query: "app=x&environment=production",
			why: `environment "Development"`},
		{name: "launchdarkly project entry", format: "launchdarkly", query: "app=x", why: `"project"`,
			body: []byte(`{"_id":"57c0a8e29969090743529965","date":1472243938774,"kind":"project","name":"alexis",
				"accesses":[{"action":"updateName","resource":"proj/alexis"}]}`)},
		{name: "launchdarkly flag renamed", format: "launchdarkly", query: "app=x", why: "no environment",
			body: []byte(`{"_id":"1","date":1472243938774,"kind":"flag","accesses":[{"action":"updateName","resource":"proj/a:env/test:flag/f"}]}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.file != "" {
				body = payload(t, tc.file)
			}
			_, err := DecodeFrom(tc.format, body, query(tc.query))
			if !errors.Is(err, ErrNotAChange) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("err %v, want ErrNotAChange saying %s", err, tc.why)
			}
		})
	}
}

func TestDecodeFromBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, format, body, query, field, says string
	}{
		{name: "flag without a subject", format: "flagsmith", body: string(payload(t, "flagsmith-flag-updated.json")),
			field: "subject", says: "?namespace="},
		{name: "unknown URL parameter", format: "unleash", body: `{}`, query: "namespce=shop", field: "query.namespce", says: "takes namespace"},
		{name: "environment is for flags", format: "flux", body: `{}`, query: "environment=prod", field: "query.environment"},
		{name: "flux without object", format: "flux", body: `{"severity":"info","reason":"ReconciliationSucceeded","timestamp":"2022-10-28T07:31:02Z"}`,
			field: "involvedObject"},
		{name: "flux bad time", format: "flux", field: "timestamp", says: "RFC 3339",
			body: `{"involvedObject":{"kind":"Kustomization","name":"a","namespace":"b"},"severity":"info","reason":"ReconciliationSucceeded","timestamp":"yesterday"}`},
		{name: "flux wrong type", format: "flux", body: `{"involvedObject":{"kind":"Kustomization","name":7}}`, field: "involvedObject.name", says: "expected a string"},
		{name: "openfeature unknown field", format: "openfeature", body: `{"flagKey":"a","variant":"on","flag":"b"}`, query: "app=x", field: "flag"},
		{name: "openfeature no variant", format: "openfeature", body: `{"flagKey":"a"}`, query: "app=x", field: "variant"},
		{name: "openfeature no key", format: "openfeature", body: `{"variant":"on"}`, query: "app=x", field: "flagKey"},
		{name: "not JSON", format: "launchdarkly", body: `{"_id":`, field: "body"},
		{name: "launchdarkly no date", format: "launchdarkly", query: "app=x", field: "date",
			body: `{"_id":"1","kind":"flag","accesses":[{"action":"updateOn","resource":"proj/a:env/test:flag/f"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeFrom(tc.format, []byte(tc.body), query(tc.query))
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Problem, tc.says) {
				t.Fatalf("err %v, want a FieldError at %s saying %q", err, tc.field, tc.says)
			}
		})
	}
	if _, err := DecodeFrom("jenkins", []byte(`{}`), nil); !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "launchdarkly") {
		t.Errorf("unknown format: %v", err)
	}
}

// A sender's long, multi-line text (Flux messages go to 39,000 characters,
// Helm logs carry escape sequences) is made to fit, not refused.
func TestDecodeFromFitsSenderText(t *testing.T) {
	msg := "upgrade failed:\x1b[31m " + strings.Repeat("é", 5000)
	body := edit(t, payload(t, "flux-kustomization-validation-failed.json"), map[string]any{"message": msg, "reportingController": "kustomize\ncontroller"})
	ev, err := DecodeFrom("flux", body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Validate(now); err != nil {
		t.Fatalf("does not validate: %v", err)
	}
	if len(ev.Message) > maxMessageLen || strings.Contains(ev.Message, "\x1b") || !strings.HasSuffix(ev.Message, "…") {
		t.Errorf("message not fitted: %d bytes, %q…", len(ev.Message), ev.Message[:60])
	}
	if ev.DeployedBy != "flux kustomize controller" {
		t.Errorf("deployedBy %q", ev.DeployedBy)
	}
}

func TestFluxRevision(t *testing.T) {
	for _, tc := range []struct{ in, rev, version string }{
		{"main@sha1:69b59063470310ebbd88a9156325322a124e55a3", "69b59063470310ebbd88a9156325322a124e55a3", ""},
		{"environment/dev@sha1:a1afe267b54f38b46b487f6e938a6fd508278c07", "a1afe267b54f38b46b487f6e938a6fd508278c07", ""},
		{"sha1:a1afe267b54f38b46b487f6e938a6fd508278c07", "a1afe267b54f38b46b487f6e938a6fd508278c07", ""},
		{"main/731f7eaddfb6af01cb2173e18f0f75b0ba780ef1", "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1", ""},
		{"v1.2.3@sha256:2ae5a1b8d6f1c1c6c9d5e0c0e0d6b1a0f6c6b2c3d4e5f60718293a4b5c6d7e8f", "sha256:2ae5a1b8d6f1c1c6c9d5e0c0e0d6b1a0f6c6b2c3d4e5f60718293a4b5c6d7e8f", "v1.2.3"},
		{"6.5.4", "6.5.4", ""},
	} {
		if rev, version := fluxRevision(tc.in); rev != tc.rev || version != tc.version {
			t.Errorf("fluxRevision(%q) = %q, %q; want %q, %q", tc.in, rev, version, tc.rev, tc.version)
		}
	}
}

func TestVerifySignature(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "ld")
	const secret = "MARKER-ld-signing-secret"
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, st := newSource(t, dir, Config{SigningSecretFiles: map[string]string{"launchdarkly": secretFile}})
	defer st.Close()
	if !s.Signed("launchdarkly") || s.Signed("flagsmith") || s.Signed("flux") {
		t.Fatal("Signed is wrong")
	}
	body := payload(t, "launchdarkly-flag-updated.json")
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	good := hex.EncodeToString(mac.Sum(nil))
	if err := s.VerifySignature("launchdarkly", body, good); err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	for name, sig := range map[string]string{"missing": "", "not hex": "zz", "other body": good[:len(good)-2] + "00"} {
		err := s.VerifySignature("launchdarkly", body, sig)
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "MARKER") {
			t.Errorf("%s: the error shows the secret: %v", name, err)
		}
	}
	// A rotated secret is read at the next request.
	if err := os.WriteFile(secretFile, []byte("MARKER-rotated"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifySignature("launchdarkly", body, good); !errors.Is(err, ErrBadSignature) {
		t.Errorf("old signature after rotation: %v", err)
	}
	// A missing file is the operator's error, not the sender's.
	os.Remove(secretFile)
	if err := s.VerifySignature("launchdarkly", body, good); err == nil || errors.Is(err, ErrBadSignature) {
		t.Errorf("missing secret file: %v", err)
	}
}

func TestConfigValidatesSigningSecrets(t *testing.T) {
	c := Config{SigningSecretFiles: map[string]string{"flux": "/x", "flagsmith": ""}}
	c.Defaults()
	errs := c.Validate()
	if !strings.Contains(errs["signing_secret_files.flux"], "only launchdarkly and flagsmith") || errs["signing_secret_files.flagsmith"] == "" {
		t.Errorf("errors %v", errs)
	}
}

// The adapters' events are recorded by the real source like pushed ones.
func TestRecordDecoded(t *testing.T) {
	s, st := newSource(t, t.TempDir(), Config{})
	defer st.Close()
	ev, err := DecodeFrom("flux", payload(t, "flux-kustomization-reconciliation-succeeded.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, wantCreated := range []bool{true, false} {
		ch, created, err := s.Record(context.Background(), ev)
		if err != nil || created != wantCreated || ch.Revision != "69b59063470310ebbd88a9156325322a124e55a3" {
			t.Fatalf("record %d: %+v created=%v err=%v", i, ch, created, err)
		}
	}
}

// FuzzDecodeFrom: whatever a sender posts is a change that validates, a
// FieldError naming a field, or not a change; never a panic or a bare
// error.
func FuzzDecodeFrom(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "senders", "*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		format, _, _ := strings.Cut(filepath.Base(file), "-")
		f.Add(format, b)
	}
	f.Add("openfeature", []byte(`{"flagKey":"a","value":[1,2],"subject":{"app":"x"}}`))
	f.Fuzz(func(t *testing.T, format string, body []byte) {
		ev, err := DecodeFrom(format, body, query("app=checkout"))
		if err == nil {
			err = ev.Validate(now)
		}
		var fe *FieldError
		switch {
		case err == nil, errors.Is(err, ErrNotAChange), errors.Is(err, ErrUnknownFormat):
		case errors.As(err, &fe) && fe.Field != "":
		default:
			t.Fatalf("%s: error without a field: %T %v", format, err, err)
		}
	})
}
