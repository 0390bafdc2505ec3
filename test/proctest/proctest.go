// Package proctest is what the tests that run processes (the whatchanged
// binary and its neighbours) share: a log the process writes while a
// failing test reads it, and a port to start it on.
package proctest

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"sync"
)

// Log is a process's output: written by its output pipe while a failing
// test reads it.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago, for a
// process that is told its port on the command line or in its config.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// BuildWhatchanged compiles the whatchanged binary into dir, from a test
// package under test/ (the path is relative to it).
func BuildWhatchanged(dir string) (string, error) {
	bin := filepath.Join(dir, "whatchanged")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/whatchanged").CombinedOutput(); err != nil {
		return "", fmt.Errorf("build whatchanged: %w\n%s", err, out)
	}
	return bin, nil
}
