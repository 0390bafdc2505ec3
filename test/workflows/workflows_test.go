// Package workflows lints .github/workflows with actionlint and checks the
// release publishes the image the chart installs by default.
package workflows

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/whatchanged/whatchanged/hack/image/ociimage"
)

func actionlint(t *testing.T, dir string, files ...string) (string, error) {
	t.Helper()
	bin := os.Getenv("WHATCHANGED_ACTIONLINT")
	if bin == "" {
		t.Fatal("WHATCHANGED_ACTIONLINT is not set; run `make test`, which builds actionlint into the tool cache")
	}
	// Without shellcheck and pyflakes, whether they are installed here or not:
	// the findings are the same on every machine.
	cmd := exec.Command(bin, append([]string{"-no-color", "-shellcheck=", "-pyflakes="}, files...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestActionlint(t *testing.T) {
	files, err := filepath.Glob("../../.github/workflows/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		files[i] = strings.TrimPrefix(files[i], "../../")
	}
	for _, want := range []string{".github/workflows/ci.yaml", ".github/workflows/release.yaml"} {
		if !strings.Contains(strings.Join(files, " "), want) {
			t.Errorf("%s is missing (found %v)", want, files)
		}
	}
	if out, err := actionlint(t, "../..", files...); err != nil {
		t.Errorf("actionlint %v: %v\n%s", files, err, out)
	}
}

// The linter runs and finds things: a workflow with an unknown action input
// and an undefined expression fails.
func TestActionlintFindsErrors(t *testing.T) {
	dir := t.TempDir()
	broken := `name: broken
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v6
        with:
          fetch-depths: 0
      - run: echo "${{ github.no_such_context }}"
`
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := actionlint(t, dir, "broken.yaml")
	if err == nil {
		t.Fatalf("actionlint passed a broken workflow:\n%s", out)
	}
	for _, want := range []string{`"fetch-depths"`, `no_such_context`} {
		if !strings.Contains(out, want) {
			t.Errorf("actionlint output does not mention %s:\n%s", want, out)
		}
	}
}

// The chart's default image is ghcr.io/whatchanged/whatchanged tagged with
// the chart's appVersion; the release pushes that repository tagged with the
// version without "v", and packages the chart with the same appVersion.
func TestReleasePublishesTheChartDefaultImage(t *testing.T) {
	var values struct {
		Image struct{ Repository, Tag string }
	}
	readYAML(t, "../../charts/whatchanged/values.yaml", &values)
	if values.Image.Repository != ociimage.Repository {
		t.Errorf("chart image.repository %q, but the image is built and released as %q", values.Image.Repository, ociimage.Repository)
	}
	if values.Image.Tag != "" {
		t.Errorf("chart image.tag %q: want empty, so the tag is the appVersion the release sets", values.Image.Tag)
	}
	var chart struct{ AppVersion string }
	readYAML(t, "../../charts/whatchanged/Chart.yaml", &chart)
	if strings.HasPrefix(chart.AppVersion, "v") {
		t.Errorf("Chart.yaml appVersion %q: the release tags images without the v", chart.AppVersion)
	}

	b, err := os.ReadFile("../../.github/workflows/release.yaml")
	if err != nil {
		t.Fatal(err)
	}
	release := string(b)
	for _, want := range []string{
		"IMAGE: " + ociimage.Repository + "\n",
		`echo "version=${GITHUB_REF_NAME#v}"`,
		`crane push bin/image/oci "$IMAGE:$VERSION"`,
		`helm package charts/whatchanged --version "$VERSION" --app-version "$VERSION"`,
	} {
		if !strings.Contains(release, want) {
			t.Errorf("release.yaml does not contain %q", want)
		}
	}
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}
