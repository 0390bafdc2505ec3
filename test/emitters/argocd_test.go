package emitters

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"
)

const argocdExample = "../../examples/emitters/argocd-notifications.yaml"

// argocdNotifications is the part of argocd-notifications-cm the example sets.
type argocdNotifications struct {
	Kind string            `json:"kind"`
	Data map[string]string `json:"data"`
}

type webhookService struct {
	URL     string `json:"url"`
	Headers []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"headers"`
}

type webhookTemplate struct {
	Webhook map[string]struct {
		Method string `json:"method"`
		Path   string `json:"path"`
		Body   string `json:"body"`
	} `json:"webhook"`
}

type trigger []struct {
	Description string   `json:"description"`
	When        string   `json:"when"`
	Send        []string `json:"send"`
	OncePer     string   `json:"oncePer"`
}

// render does what Argo CD's notifications do with a webhook template:
// text/template with sprig's functions less env and expandenv
// (argoproj/notifications-engine pkg/templates/service.go,
// pkg/services/webhook.go), over {"app": the Application as unstructured,
// "context": argocd-notifications-cm's context}
// (argo-cd util/notification/settings/settings.go).
func render(t *testing.T, name, text string, app map[string]any) string {
	t.Helper()
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	tmpl, err := template.New(name).Funcs(f).Parse(text)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	vars := map[string]any{"app": app, "context": map[string]string{"argocdUrl": "https://argocd.example.com"}}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, vars); err != nil {
		t.Fatalf("render %s: %v", name, err)
	}
	return out.String()
}

// application reads the upstream Application as the notifications
// controller holds it: unstructured JSON.
func application(t *testing.T) map[string]any {
	t.Helper()
	y, err := os.ReadFile("testdata/argocd-application.yaml")
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	var app map[string]any
	if err := json.Unmarshal(j, &app); err != nil {
		t.Fatal(err)
	}
	return app
}

func TestArgoCDNotificationRecordsTheSync(t *testing.T) {
	var cm argocdNotifications
	readYAML(t, argocdExample, &cm)
	var svc webhookService
	if err := yaml.UnmarshalStrict([]byte(cm.Data["service.webhook.whatchanged"]), &svc); err != nil {
		t.Fatalf("service.webhook.whatchanged: %v", err)
	}
	var tmpl webhookTemplate
	if err := yaml.UnmarshalStrict([]byte(cm.Data["template.app-deployed-whatchanged"]), &tmpl); err != nil {
		t.Fatalf("template.app-deployed-whatchanged: %v", err)
	}
	hook, ok := tmpl.Webhook["whatchanged"]
	if !ok || hook.Method != "POST" || hook.Path != "/api/v1/changes" {
		t.Fatalf("the template must POST to the whatchanged service's /api/v1/changes: %+v", tmpl)
	}
	for _, name := range []string{"trigger.on-deployed-whatchanged", "trigger.on-sync-failed-whatchanged"} {
		var tr trigger
		if err := yaml.UnmarshalStrict([]byte(cm.Data[name]), &tr); err != nil || len(tr) != 1 {
			t.Fatalf("%s: %v %+v", name, err, tr)
		}
		if len(tr[0].Send) != 1 || tr[0].Send[0] != "app-deployed-whatchanged" || tr[0].OncePer == "" {
			t.Errorf("%s sends %v once per %q", name, tr[0].Send, tr[0].OncePer)
		}
	}

	w := newWhatchanged(t)
	// What Argo CD sends: the service's headers, $whatchanged-token taken
	// from argocd-notifications-secret, to url + path.
	header := http.Header{}
	for _, h := range svc.Headers {
		header.Set(h.Name, strings.ReplaceAll(h.Value, "$whatchanged-token", token))
	}
	url := w.url + "/" + strings.TrimLeft(hook.Path, "/") // the example's URL is the in-cluster service

	app := application(t)
	body := render(t, "app-deployed-whatchanged", hook.Body, app)
	status, answer := post(t, url, header, body)
	if status != http.StatusCreated {
		t.Fatalf("answer %d %s\nbody %s", status, answer, body)
	}
	ch := w.only(t)
	finished := time.Date(2024, 3, 5, 7, 33, 4, 0, time.UTC)
	for k, v := range map[string][2]string{
		"kind":       {ch.Kind, "deploy"},
		"status":     {ch.Status, "succeeded"},
		"revision":   {ch.Revision, "ea8759964626a583667a2bfd08f334ec2070040a"},
		"app":        {ch.Subject.App, "velero-test"},
		"namespace":  {ch.Subject.Namespace, "test-lla"},
		"repo":       {ch.Subject.Repo, "github.com/foo/manifests-velero"},
		"deployedBy": {ch.DeployedBy, "foo@example.com"},
		"message":    {ch.Message, "Argo CD sync of velero-test: successfully synced (all tasks run)"},
		"url":        {ch.URL, "https://argocd.example.com/applications/argo-cd/velero-test"},
		"id":         {ch.ID, "argocd/argo-cd/velero-test/2024-03-05T07:33:03Z"},
		"finishedAt": {ch.FinishedAt.Format(time.RFC3339), finished.Format(time.RFC3339)},
		"time":       {ch.StartedAt.Format(time.RFC3339), "2024-03-05T07:33:03Z"},
	} {
		if v[0] != v[1] {
			t.Errorf("%s = %q, want %q", k, v[0], v[1])
		}
	}

	// The same sync notified again (a controller restart) is the same change.
	if status, answer := post(t, url, header, body); status != http.StatusOK {
		t.Fatalf("again: %d %s", status, answer)
	}
}

// A failed sync of a multi-source application, whose message holds quotes
// and a line break: the body stays valid JSON and the change is failed.
func TestArgoCDNotificationFailedMultiSourceSync(t *testing.T) {
	var cm argocdNotifications
	readYAML(t, argocdExample, &cm)
	var tmpl webhookTemplate
	if err := yaml.Unmarshal([]byte(cm.Data["template.app-deployed-whatchanged"]), &tmpl); err != nil {
		t.Fatal(err)
	}
	app := application(t)
	spec := app["spec"].(map[string]any)
	spec["sources"] = []any{spec["source"]}
	delete(spec, "source")
	op := app["status"].(map[string]any)["operationState"].(map[string]any)
	op["phase"] = "Failed"
	op["message"] = "one or more objects failed to apply, reason: Deployment.apps \"test-lla\" is invalid:\nspec.replicas: Invalid value: -1"
	sr := op["syncResult"].(map[string]any)
	sr["revisions"] = []any{sr["revision"], "0123456789abcdef0123456789abcdef01234567"}
	delete(sr, "revision")

	w := newWhatchanged(t)
	header := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + token}}
	body := render(t, "app-deployed-whatchanged", tmpl.Webhook["whatchanged"].Body, app)
	if status, answer := post(t, w.url+"/api/v1/changes", header, body); status != http.StatusCreated {
		t.Fatalf("answer %d %s\nbody %s", status, answer, body)
	}
	ch := w.only(t)
	if ch.Status != "failed" || ch.Revision != "ea8759964626a583667a2bfd08f334ec2070040a" || ch.Subject.Repo != "" ||
		!strings.Contains(ch.Message, `Deployment.apps "test-lla" is invalid:`+"\nspec.replicas") {
		t.Errorf("recorded %+v", ch)
	}
}
