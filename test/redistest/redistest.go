// Package redistest runs a real redis-server (Debian's, from
// WHATCHANGED_REDIS_SERVER, which make test sets) for the tests of any
// package: on a free loopback port, without persistence, ended with the
// test. It can be killed, started again on the same port and paused, as
// the tests of a Redis that goes away need.
package redistest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server process of a test.
type Server struct {
	// Addr is the server's host:port on 127.0.0.1; it stays the same
	// across Stop and Start.
	Addr string

	t      testing.TB
	bin    string
	dir    string
	config string // a config file, before the arguments (Sentinel's)
	args   []string
	cmd    *exec.Cmd
	out    bytes.Buffer // the output of every run, for a failing test
	runs   int
	ended  chan struct{} // closed when the current run has exited
	paused bool
}

// Start runs a redis-server with args after the usual ones (port, bind
// address, directory, no persistence), waits until it takes connections
// and kills it when the test ends.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return start(t, "", args...)
}

// StartSentinel runs redis-server as a Sentinel on configFile (which
// Sentinel rewrites, so it must be the test's own).
func StartSentinel(t testing.TB, configFile string, args ...string) *Server {
	t.Helper()
	return start(t, configFile, append([]string{"--sentinel"}, args...)...)
}

func start(t testing.TB, config string, args ...string) *Server {
	t.Helper()
	bin := os.Getenv("WHATCHANGED_REDIS_SERVER")
	if bin == "" {
		t.Fatal("WHATCHANGED_REDIS_SERVER is not set: run make test (it installs Debian's redis-server and points there), " +
			"or set it to a redis-server binary")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{Addr: addr, t: t, bin: bin, dir: t.TempDir(), config: config, args: args}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("--- redis-server %s output (last 60 lines):\n%s", s.Addr, tail(s.out.String(), 60))
		}
	})
	s.Start()
	return s
}

// Port is the port of Addr.
func (s *Server) Port() string { _, p, _ := net.SplitHostPort(s.Addr); return p }

// Start runs the server again on the same port after Stop (a restarted
// Redis) and waits until it takes connections.
func (s *Server) Start() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatalf("redis-server on %s is already running", s.Addr)
	}
	var args []string
	if s.config != "" {
		args = append(args, s.config) // redis-server wants the file first
	}
	args = append(args, "--port", s.Port(), "--bind", "127.0.0.1", "--dir", s.dir)
	if !slices.Contains(s.args, "--sentinel") { // a Sentinel refuses them
		args = append(args, "--save", "", "--appendonly", "no")
	}
	args = append(args, s.args...)
	s.runs++
	fmt.Fprintf(&s.out, "=== run %d\n", s.runs)
	s.cmd = exec.Command(s.bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		s.t.Fatalf("start %s: %v", s.bin, err)
	}
	s.paused = false
	s.ended = make(chan struct{})
	go func(cmd *exec.Cmd, ended chan struct{}) { _ = cmd.Wait(); close(ended) }(s.cmd, s.ended)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		select {
		case <-s.ended:
			s.cmd = nil
			s.t.Fatalf("redis-server exited:\n%s", s.out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.Stop()
	s.t.Fatalf("redis-server did not listen on %s within 10s:\n%s", s.Addr, s.out.String())
}

// Restart kills the server and runs it again on the same port with args
// in place of the ones it was started with (a TLS-only server on the
// port, say).
func (s *Server) Restart(args ...string) {
	s.t.Helper()
	s.Stop()
	s.args = args
	s.Start()
}

// Stop kills the server at once, as a crash would; connections are closed.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a stopped process does not die of SIGKILL until continued
	_ = s.cmd.Process.Kill()
	<-s.ended
	s.cmd, s.paused = nil, false
}

// Pause stops the process (SIGSTOP) without closing its connections: the
// kernel still accepts new ones, nothing answers, as a hung Redis. It is
// resumed before the test's later cleanups run.
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatal(err)
	}
	s.paused = true
	s.t.Cleanup(func() {
		if s.paused {
			_ = s.cmd.Process.Signal(syscall.SIGCONT)
			s.paused = false
		}
	})
}

// Resume continues a paused server.
func (s *Server) Resume() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatal(err)
	}
	s.paused = false
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
