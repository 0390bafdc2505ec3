package redistest_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/test/redistest"
)

// ping sends PING on a new connection and returns the reply line, or the
// error (a timeout when nothing answers within wait).
func ping(addr string, wait time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestStopStartPauseRestart(t *testing.T) {
	s := redistest.Start(t)
	if got, err := ping(s.Addr, 5*time.Second); got != "+PONG" {
		t.Fatalf("started: %q %v", got, err)
	}

	s.Stop()
	if got, err := ping(s.Addr, time.Second); err == nil {
		t.Fatalf("stopped, yet answered %q", got)
	}
	addr := s.Addr
	s.Start()
	if s.Addr != addr {
		t.Errorf("started again on %s, want %s", s.Addr, addr)
	}
	if got, err := ping(s.Addr, 5*time.Second); got != "+PONG" {
		t.Fatalf("started again: %q %v", got, err)
	}

	s.Pause()
	if got, err := ping(s.Addr, 300*time.Millisecond); err == nil {
		t.Fatalf("paused, yet answered %q", got)
	}
	s.Resume()
	if got, err := ping(s.Addr, 5*time.Second); got != "+PONG" {
		t.Fatalf("resumed: %q %v", got, err)
	}

	s.Restart("--requirepass", "MARKER-redistest")
	if got, _ := ping(s.Addr, 5*time.Second); !strings.HasPrefix(got, "-NOAUTH") {
		t.Fatalf("restarted with a password, PING answered %q, want -NOAUTH", got)
	}
}
