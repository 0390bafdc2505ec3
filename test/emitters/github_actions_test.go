package emitters

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const ghaExample = "../../examples/emitters/github-actions.yaml"

type workflow struct {
	Name string         `yaml:"name"`
	On   map[string]any `yaml:"on"`
	Jobs map[string]struct {
		Steps []struct {
			Name            string            `yaml:"name"`
			ID              string            `yaml:"id"`
			ContinueOnError bool              `yaml:"continue-on-error"`
			Shell           string            `yaml:"shell"`
			Env             map[string]string `yaml:"env"`
			Run             string            `yaml:"run"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// expression is a ${{ … }} of the step's env: the only way inputs reach
// the script.
var expression = regexp.MustCompile(`^\$\{\{\s*(inputs|secrets)\.([A-Za-z0-9_-]+)\s*\}\}$`)

func TestGitHubActionsStepIsAValidWorkflow(t *testing.T) {
	bin := os.Getenv("WHATCHANGED_ACTIONLINT")
	if bin == "" {
		t.Fatal("WHATCHANGED_ACTIONLINT is not set; run `make test`, which builds actionlint into the tool cache")
	}
	out, err := exec.Command(bin, "-no-color", "-shellcheck=", "-pyflakes=", ghaExample).CombinedOutput()
	if err != nil {
		t.Fatalf("actionlint %s: %v\n%s", ghaExample, err, out)
	}
}

// The step's script, run by bash as GitHub runs a `shell: bash` step
// (bash --noprofile --norc -eo pipefail), with the variables GitHub sets,
// records the deploy in a real whatchanged.
func TestGitHubActionsStepRecordsTheDeploy(t *testing.T) {
	var wf workflow
	b, err := os.ReadFile(ghaExample)
	if err != nil {
		t.Fatal(err)
	}
	// YAML 1.2, as GitHub reads it: `on` is a key, not true.
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	if len(wf.Jobs["notify"].Steps) != 1 {
		t.Fatalf("want one step in job notify: %+v", wf.Jobs)
	}
	step := wf.Jobs["notify"].Steps[0]
	if !step.ContinueOnError || step.Shell != "bash" {
		t.Errorf("the step must not fail the deploy (continue-on-error: %v) and runs under bash (shell %q)", step.ContinueOnError, step.Shell)
	}
	if strings.Contains(step.Run, "${{") {
		t.Error("the script interpolates an expression; a ref or input could inject shell code: pass it through env")
	}

	w := newWhatchanged(t)
	// What the caller passes (see the file's header) and GitHub resolves.
	values := map[string]string{
		"inputs.url": w.url + "/", "inputs.app": "checkout", "inputs.namespace": "shop", "inputs.environment": "production",
		"inputs.version": "checkout:1.8.4", "inputs.status": "succeeded", "secrets.WHATCHANGED_TOKEN": token,
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		// Set by GitHub for every step (docs: Variables reference, default environment variables).
		"GITHUB_ACTIONS=true", "CI=true",
		"GITHUB_SHA=ffac537e6cbbf934b08745a378932722df287a53", "GITHUB_ACTOR=octocat",
		"GITHUB_REF=refs/heads/main", "GITHUB_REF_NAME=main", "GITHUB_REPOSITORY=octo-org/checkout",
		"GITHUB_SERVER_URL=https://github.com", "GITHUB_RUN_ID=1658821493", "GITHUB_RUN_ATTEMPT=2",
		"GITHUB_WORKFLOW=deploy \"prod\"", // quotes in a name reach the JSON escaped
	}
	for k, v := range step.Env {
		m := expression.FindStringSubmatch(v)
		if m == nil {
			t.Fatalf("env %s: %q is not a plain ${{ inputs.x }} or ${{ secrets.X }}", k, v)
		}
		val, ok := values[m[1]+"."+m[2]]
		if !ok {
			t.Fatalf("env %s: %s is not an input or secret of the workflow", k, v)
		}
		env = append(env, k+"="+val)
	}
	for _, in := range []string{"url", "app", "namespace", "environment", "version", "status"} {
		if _, ok := wf.On["workflow_call"].(map[string]any)["inputs"].(map[string]any)[in]; !ok {
			t.Errorf("workflow_call has no input %s", in)
		}
	}

	script := t.TempDir() + "/step.sh"
	if err := os.WriteFile(script, []byte(step.Run), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", script)
	cmd.Env = env
	before := time.Now().UTC().Truncate(time.Second)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the step failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"created":true`) {
		t.Errorf("step output: %s", out)
	}
	if strings.Contains(string(out), token) {
		t.Errorf("the step printed the token: %s", out)
	}

	ch := w.only(t)
	want := map[string]string{
		"id":         "gha/octo-org/checkout/1658821493/2/production/checkout",
		"kind":       "deploy",
		"namespace":  "shop",
		"app":        "checkout",
		"repo":       "github.com/octo-org/checkout",
		"revision":   "ffac537e6cbbf934b08745a378932722df287a53",
		"version":    "checkout:1.8.4",
		"status":     "succeeded",
		"deployedBy": "octocat",
		"message":    `deploy "prod" deployed main to production`,
		"url":        "https://github.com/octo-org/checkout/actions/runs/1658821493",
	}
	got := map[string]string{
		"id": ch.ID, "kind": ch.Kind, "namespace": ch.Subject.Namespace, "app": ch.Subject.App, "repo": ch.Subject.Repo,
		"revision": ch.Revision, "version": ch.Version, "status": ch.Status, "deployedBy": ch.DeployedBy,
		"message": ch.Message, "url": ch.URL,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if ch.FinishedAt.Before(before) || ch.FinishedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("finishedAt %v is not the time of the step (%v)", ch.FinishedAt, before)
	}

	// A re-run of the same attempt (the step retried) records nothing new.
	cmd = exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", script)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), `"created":false`) {
		t.Fatalf("second run: %v\n%s", err, out)
	}

	// A wrong token fails the step (and continue-on-error keeps the deploy green).
	for i, e := range env {
		if strings.HasPrefix(e, "WHATCHANGED_TOKEN=") {
			env[i] = "WHATCHANGED_TOKEN=wrong"
		}
	}
	cmd = exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", script)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "missing or wrong credentials") {
		t.Fatalf("with a wrong token: err %v\n%s", err, out)
	}
}
