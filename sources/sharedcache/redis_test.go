package sharedcache

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a real redis-server (Debian's, from
// WHATCHANGED_REDIS_SERVER) on a free loopback port, without persistence.
type redisServer struct {
	t     testing.TB
	bin   string
	addr  string
	dir   string
	cmd   *exec.Cmd
	out   *bytes.Buffer
	ended chan struct{}
}

func startRedis(t testing.TB) *redisServer {
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
	s := &redisServer{t: t, bin: bin, addr: addr, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.kill)
	return s
}

// start runs the server (again, on the same port) and waits until it answers.
func (s *redisServer) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.addr)
	s.out = &bytes.Buffer{}
	s.cmd = exec.Command(s.bin, "--port", port, "--bind", "127.0.0.1", "--dir", s.dir, "--save", "", "--appendonly", "no")
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.bin, err)
	}
	s.ended = make(chan struct{})
	go func(cmd *exec.Cmd, ended chan struct{}) { _ = cmd.Wait(); close(ended) }(s.cmd, s.ended)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		select {
		case <-s.ended:
			s.t.Fatalf("redis-server exited:\n%s", s.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.kill()
	s.t.Fatalf("redis-server did not listen on %s within 10s:\n%s", s.addr, s.out)
}

// kill ends the server at once, as a crash would.
func (s *redisServer) kill() {
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT) // in case it was paused
		_ = s.cmd.Process.Kill()
		<-s.ended
		s.cmd = nil
	}
}

// pause stops the server without closing its connections: a hung Redis.
func (s *redisServer) pause() {
	_ = s.cmd.Process.Signal(syscall.SIGSTOP)
	s.t.Cleanup(func() {
		if s.cmd != nil {
			_ = s.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
}

// client is configured as the store's (sources/store.NewRedis): bounded
// by the operation's context, one dial per operation.
func (s *redisServer) client() redis.UniversalClient {
	c := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 []string{s.addr},
		DialTimeout:           time.Second,
		DialerRetries:         1,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		PoolTimeout:           time.Second,
		ContextTimeoutEnabled: true,
	})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// dump is every key in Redis with its value (hash fields and values, or
// the string), for looking for what must not be stored.
func (s *redisServer) dump() map[string]string {
	s.t.Helper()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	defer c.Close()
	out := map[string]string{}
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			s.t.Fatal(err)
		}
		switch typ {
		case "hash":
			m, err := c.HGetAll(ctx, k).Result()
			if err != nil {
				s.t.Fatal(err)
			}
			var b strings.Builder
			for f, v := range m {
				b.WriteString(f + "=" + v + "\n")
			}
			out[k] = b.String()
		case "string":
			v, err := c.Get(ctx, k).Result()
			if err != nil {
				s.t.Fatal(err)
			}
			out[k] = v
		default:
			s.t.Fatalf("key %s of unexpected type %s", k, typ)
		}
	}
	if err := iter.Err(); err != nil {
		s.t.Fatal(err)
	}
	return out
}
