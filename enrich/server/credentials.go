package server

import (
	"os"
	"strings"
	"sync"
	"time"
)

// recheck is how often a credential file is looked at again.
var recheck = time.Second

// fileCredential is an inbound credential kept in a file (a mounted
// Kubernetes Secret): read again when the file changes, so a rotated Secret
// takes effect without a restart. While the file cannot be read, the last
// value read stays in force: a Secret being swapped must not lock senders
// out.
type fileCredential struct {
	path string

	mu      sync.Mutex
	value   string
	checked time.Time
	mod     time.Time
	size    int64
}

func newFileCredential(path string) *fileCredential {
	f := &fileCredential{path: path}
	f.get()
	return f
}

func (f *fileCredential) get() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now := time.Now(); f.checked.IsZero() || now.Sub(f.checked) >= recheck {
		f.checked = now
		if st, err := os.Stat(f.path); err == nil && (!st.ModTime().Equal(f.mod) || st.Size() != f.size) {
			if b, err := os.ReadFile(f.path); err == nil {
				f.value, f.mod, f.size = strings.TrimSpace(string(b)), st.ModTime(), st.Size()
			}
		}
	}
	return f.value
}
