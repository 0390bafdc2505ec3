package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every example config under examples/config passes `config check` as a
// user runs it, with its secret files in place (here: in a temp dir instead
// of /etc/whatchanged/secrets, each holding a plausible value).
func TestExampleConfigsPassConfigCheck(t *testing.T) {
	files, err := filepath.Glob("../../examples/config/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("example configs: %v %v", files, err)
	}
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	secretPath := regexp.MustCompile(`/etc/whatchanged/secrets/[A-Za-z0-9._/-]+`)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			for _, p := range secretPath.FindAllString(string(data), -1) {
				value := []byte("marker-secret-value\n")
				switch {
				case strings.HasSuffix(p, "-url"):
					value = []byte("https://hooks.example.com/services/marker-secret-value\n")
				case strings.HasSuffix(p, ".crt"):
					value = caPEM
				}
				writeTestFile(t, dir, filepath.Base(p), string(value))
			}
			local := secretPath.ReplaceAllStringFunc(string(data), func(p string) string { return filepath.Join(dir, filepath.Base(p)) })
			local = strings.ReplaceAll(local, "/var/lib/whatchanged", filepath.Join(dir, "data"))
			cfgFile := writeTestFile(t, dir, filepath.Base(f), local)
			var out, errb bytes.Buffer
			if code := run(context.Background(), []string{"config", "check", "--show", cfgFile}, &out, &errb); code != 0 {
				t.Fatalf("config check %s: exit %d\n%s", f, code, errb.String())
			}
			if strings.Contains(out.String(), "marker-secret-value") {
				t.Errorf("config check --show prints a secret:\n%s", out.String())
			}
		})
	}
}
