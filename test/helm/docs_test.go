package helm_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// copyTree copies a directory (the chart) into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The chart's README is what helm-docs generates from values.yaml and
// README.md.gotmpl, and every value has a description.
func TestChartREADMEIsGenerated(t *testing.T) {
	bin := tool(t, "WHATCHANGED_HELM_DOCS")
	root := t.TempDir()
	copyTree(t, chart, filepath.Join(root, "whatchanged"))
	cmd := exec.Command(bin, "--chart-search-root", root, "--template-files", "README.md.gotmpl")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helm-docs: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(root, "whatchanged", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(filepath.Join(chart, "README.md"))
	if err != nil {
		t.Fatalf("%v: run make chart-docs", err)
	}
	if string(got) != string(have) {
		t.Errorf("charts/whatchanged/README.md is not what helm-docs generates from values.yaml: run make chart-docs\n%s", firstDifference(string(have), string(got)))
	}
	for _, line := range strings.Split(string(got), "\n") {
		if strings.HasPrefix(line, "| ") && strings.HasSuffix(line, "|  |") {
			t.Errorf("a value without a description (add a `# --` comment in values.yaml): %s", line)
		}
	}
}

func firstDifference(have, want string) string {
	h, w := strings.Split(have, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(h) || i < len(w); i++ {
		var a, b string
		if i < len(h) {
			a = h[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n  checked in: %s\n  generated:  %s", i+1, a, b)
		}
	}
	return ""
}
