// Package storetest opens the real stores of sources/store for the tests
// of any package.
package storetest

import (
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources/store"
)

// Bolt is a bbolt store in a directory of the test's own, closed when the
// test ends.
func Bolt(t testing.TB) *store.Bolt {
	t.Helper()
	st, err := store.OpenBolt(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
