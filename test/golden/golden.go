// Package golden compares test output with a checked-in file, for the tests
// of any package: `go test ./pkg -update` rewrites the files instead.
package golden

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

// update is the one -update flag of a test binary that uses this package.
var update = flag.Bool("update", false, "rewrite golden files")

// Updating reports whether -update was given.
func Updating() bool { return *update }

// Check fails t when got differs from the file at path; with -update it
// writes got there instead.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs (run the test with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
