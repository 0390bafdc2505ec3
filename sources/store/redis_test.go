package store_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/whatchanged/whatchanged/sources/store"
	"github.com/whatchanged/whatchanged/test/redistest"
)

// adminClient is a plain client for the test's own look at the server.
func adminClient(t testing.TB, srv *redistest.Server, password string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: password})
	t.Cleanup(func() { c.Close() })
	return c
}

var prefixes atomic.Int64

// openRedis returns a store on cfg with a key prefix of its own unless cfg
// names one, closed at the end of the test.
func openRedis(t testing.TB, cfg store.RedisConfig) *store.Redis {
	t.Helper()
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = fmt.Sprintf("test%d:", prefixes.Add(1))
	}
	st, err := store.NewRedis(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestRedisContract(t *testing.T) {
	srv := redistest.Start(t)
	contract(t, func(t *testing.T) store.Store { return openRedis(t, store.RedisConfig{Addr: srv.Addr}) })
}

// A one-node Cluster holding every slot refuses a script or MULTI whose
// keys are in different slots, as a real Cluster does: the store's keys
// must all carry the one hash tag.
func TestRedisClusterContract(t *testing.T) {
	srv := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	ctx := context.Background()
	admin := adminClient(t, srv, "")
	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(admin.ClusterInfo(ctx).Val(), "cluster_state:ok") {
		if time.Now().After(deadline) {
			t.Fatalf("cluster not ok: %s", admin.ClusterInfo(ctx).Val())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The server does enforce slots (else this test proves nothing).
	_, err := admin.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{a}x", 1, 0)
		p.Set(ctx, "{b}x", 1, 0)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("a cross-slot MULTI was not refused: %v", err)
	}
	contract(t, func(t *testing.T) store.Store {
		return openRedis(t, store.RedisConfig{ClusterAddrs: []string{srv.Addr}})
	})
}

// Through Sentinel: the store asks a Sentinel for the primary.
func TestRedisSentinelContract(t *testing.T) {
	primary := redistest.Start(t)
	conf := filepath.Join(t.TempDir(), "sentinel.conf") // Sentinel rewrites its config file
	if err := os.WriteFile(conf, []byte("sentinel monitor whatchanged-test 127.0.0.1 "+primary.Port()+" 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := redistest.StartSentinel(t, conf)
	contract(t, func(t *testing.T) store.Store {
		return openRedis(t, store.RedisConfig{SentinelAddrs: []string{sentinel.Addr}, MasterName: "whatchanged-test"})
	})
}

// Two replicas (two clients, as two processes would have) race for the
// same guard: exactly one writes.
func TestRedisPutIfAbsentAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	cfg := store.RedisConfig{Addr: srv.Addr, KeyPrefix: "shared:"}
	a, b := openRedis(t, cfg), openRedis(t, cfg)
	for round := range 20 {
		guard := fmt.Sprintf("g%d", round)
		wins := concurrentPutIfAbsent(t, []store.Store{a, b}, 20, guard)
		if len(wins) != 1 {
			t.Fatalf("round %d: %d writers won (%v), want exactly 1", round, len(wins), wins)
		}
		for _, st := range []store.Store{a, b} {
			if v, ok, err := st.Get(context.Background(), "records", guard); err != nil || !ok || string(v) != wins[0] {
				t.Errorf("round %d: a replica reads %q %v %v, want the winner %q", round, v, ok, err, wins[0])
			}
		}
	}
}

// Installations sharing one Redis see only their own data, and every key
// they write starts with their hash-tagged prefix.
func TestRedisKeyPrefixIsolation(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := openRedis(t, store.RedisConfig{Addr: srv.Addr, KeyPrefix: "team-a:"})
	b := openRedis(t, store.RedisConfig{Addr: srv.Addr, KeyPrefix: "team-b:"})
	for name, st := range map[string]store.Store{"a": a, "b": b} {
		if err := st.Put(ctx, []store.KV{{Key: store.Key{Bucket: "changes", Key: "k"}, Value: []byte(name)},
			{Key: store.Key{Bucket: "changes", Key: "only-" + name}, Value: []byte(name)}}); err != nil {
			t.Fatal(err)
		}
	}
	if w, err := b.PutIfAbsent(ctx, store.Key{Bucket: "changes", Key: "only-a"}, []store.KV{{Key: store.Key{Bucket: "x", Key: "y"}}}); err != nil || !w {
		t.Errorf("b's PutIfAbsent saw a's guard: written=%v err=%v", w, err)
	}
	for name, st := range map[string]store.Store{"a": a, "b": b} {
		if v, _, _ := st.Get(ctx, "changes", "k"); string(v) != name {
			t.Errorf("store %s reads %q", name, v)
		}
		var keys []string
		if err := st.Scan(ctx, "changes", "", "", func(k string, _ []byte) bool { keys = append(keys, k); return true }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keys, []string{"k", "only-" + name}) {
			t.Errorf("store %s scans %q", name, keys)
		}
	}
	if err := a.Delete(ctx, []store.Key{{Bucket: "changes", Key: "k"}}); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := b.Get(ctx, "changes", "k"); !ok || string(v) != "b" {
		t.Errorf("a's delete removed b's key: %q %v", v, ok)
	}
	raw := adminClient(t, srv, "").Keys(ctx, "*").Val()
	slices.Sort(raw)
	want := []string{"{team-a:}keys:changes", "{team-a:}vals:changes", "{team-b:}keys:changes", "{team-b:}keys:x", "{team-b:}vals:changes", "{team-b:}vals:x"}
	if !slices.Equal(raw, want) {
		t.Errorf("keys in Redis: %q, want %q", raw, want)
	}
}

// eachOp runs every store operation once on st; it returns the error of
// each and how long the slowest took.
func eachOp(st *store.Redis, tag string) (map[string]error, time.Duration) {
	ctx := context.Background()
	k := store.Key{Bucket: "b", Key: tag}
	ops := map[string]func() error{
		"Get":         func() error { _, _, err := st.Get(ctx, "b", "k"); return err },
		"Put":         func() error { return st.Put(ctx, []store.KV{{Key: k, Value: []byte("v")}}) },
		"PutIfAbsent": func() error { _, err := st.PutIfAbsent(ctx, k, []store.KV{{Key: k, Value: []byte("v")}}); return err },
		"Scan":        func() error { return st.Scan(ctx, "b", "", "", func(string, []byte) bool { return true }) },
		"Delete":      func() error { return st.Delete(ctx, []store.Key{k}) },
		"Ping":        func() error { return st.Ping(ctx) },
	}
	errs, slowest := map[string]error{}, time.Duration(0)
	for name, op := range ops {
		start := time.Now()
		errs[name] = op()
		slowest = max(slowest, time.Since(start))
	}
	return errs, slowest
}

// waitWorking retries until every operation succeeds again.
func waitWorking(t *testing.T, st *store.Redis, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		errs, _ := eachOp(st, "after")
		failed := map[string]error{}
		for name, err := range errs {
			if err != nil {
				failed[name] = err
			}
		}
		if len(failed) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing %s after the server came back: %v", within, failed)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// generous bounds a failing operation (timeout 1s) on a loaded machine:
// it catches a hang, not a slow machine.
const generous = 5 * time.Second

// A Redis that is down costs each operation an error within about the
// timeout, never a hang; once it is back the same store works again.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	st := openRedis(t, store.RedisConfig{Addr: srv.Addr}) // timeout: the default 1s
	waitWorking(t, st, 0)                                 // works before the stop
	srv.Stop()
	for range 2 { // the second round: the pool has seen the failures
		errs, slowest := eachOp(st, "down")
		for name, err := range errs {
			if err == nil {
				t.Errorf("%s succeeded with Redis down", name)
			}
		}
		if slowest > generous {
			t.Errorf("the slowest operation took %s with Redis down (timeout 1s)", slowest)
		}
		t.Logf("with Redis down the slowest operation took %s", slowest)
	}
	srv.Start()
	start := time.Now()
	waitWorking(t, st, 15*time.Second)
	t.Logf("working again %s after the restart", time.Since(start).Round(time.Millisecond))
}

// A hung Redis (the process stopped: connections are accepted by the
// kernel, nothing answers) also costs at most about the timeout.
func TestRedisHung(t *testing.T) {
	srv := redistest.Start(t)
	st := openRedis(t, store.RedisConfig{Addr: srv.Addr, Timeout: 500 * time.Millisecond})
	if err := st.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	errs, slowest := eachOp(st, "hung")
	for name, err := range errs {
		if err == nil {
			t.Errorf("%s succeeded with Redis hung", name)
		}
	}
	if slowest > generous {
		t.Errorf("the slowest operation took %s with Redis hung (timeout 500ms)", slowest)
	}
	t.Logf("with Redis hung the slowest operation took %s", slowest)
	srv.Resume()
	waitWorking(t, st, 15*time.Second)
}

// logCapture records what go-redis logs.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Printf keeps the line and passes it on to stderr: go-redis has no way
// back to its own logger, so this one stays for the rest of the tests.
func (l *logCapture) Printf(_ context.Context, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.buf, format+"\n", v...)
	fmt.Fprintf(os.Stderr, "redis: "+format+"\n", v...)
}

func (l *logCapture) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

// The password works, from the config or a file (re-read on reconnect, so
// a rotation needs no restart), and never shows: not in errors, go-redis's
// logs, the printed, logged or marshalled config.
func TestRedisPassword(t *testing.T) {
	const right, wrong, rotated = "MARKER-right-7f3a", "MARKER-wrong-91c2", "MARKER-rotated-55d0"
	logs := &logCapture{}
	redis.SetLogger(logs)
	srv := redistest.Start(t, "--requirepass", right)
	ctx := context.Background()
	var shown []string // every text a user could see
	check := func(what string, cfg store.RedisConfig, works bool) {
		t.Helper()
		st := openRedis(t, cfg)
		err := st.Put(ctx, []store.KV{{Key: store.Key{Bucket: "b", Key: "k"}, Value: []byte("v")}})
		if works && err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if !works {
			if err == nil {
				t.Errorf("%s: a wrong password was accepted", what)
			} else {
				shown = append(shown, err.Error())
			}
			if err := st.Ping(ctx); err == nil || !strings.Contains(err.Error(), "WRONGPASS") && !strings.Contains(err.Error(), "NOAUTH") {
				t.Errorf("%s: ping says %v, want the server's WRONGPASS or NOAUTH", what, err)
			} else {
				shown = append(shown, err.Error())
			}
		}
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "redis", cfg)
		slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "redis", cfg, "password", cfg.Password)
		j, _ := json.Marshal(cfg)
		y, _ := yaml.Marshal(cfg)
		shown = append(shown, logged.String(), string(j), string(y), fmt.Sprintf("%v %+v %#v %s %q", cfg, cfg, cfg, cfg.Password, cfg.Password))
	}
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	check("password", store.RedisConfig{Addr: srv.Addr, Password: right}, true)
	check("password_file", store.RedisConfig{Addr: srv.Addr, PasswordFile: file("right", right)}, true)
	check("wrong password", store.RedisConfig{Addr: srv.Addr, Password: wrong}, false)
	check("wrong password_file", store.RedisConfig{Addr: srv.Addr, PasswordFile: file("wrong", wrong)}, false)
	check("no password", store.RedisConfig{Addr: srv.Addr}, false)

	// Rotation: the file and the server change; the store's connections
	// are dropped and it reconnects with the new password.
	pwFile := file("rotating", right)
	st := openRedis(t, store.RedisConfig{Addr: srv.Addr, PasswordFile: pwFile})
	if err := st.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	file("rotating", rotated)
	admin := adminClient(t, srv, right)
	if err := admin.ConfigSet(ctx, "requirepass", rotated).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal").Err(); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, []store.KV{{Key: store.Key{Bucket: "b", Key: "k"}, Value: []byte("v")}}); err != nil {
		t.Errorf("after the rotation: %v", err)
	}

	shown = append(shown, logs.String())
	for _, text := range shown {
		for _, secret := range []string{right, wrong, rotated} {
			if strings.Contains(text, secret) {
				t.Errorf("a password shows in %q", text)
			}
		}
	}
	if !strings.Contains(strings.Join(shown, "\n"), "<secret>") {
		t.Error("the config never printed <secret>: the check above looked at nothing")
	}
}

func TestRedisConfigValidate(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  store.RedisConfig
		want map[string]string // key → part of the message
	}{
		{"single", store.RedisConfig{Addr: "redis:6379", PasswordFile: pw}, nil},
		{"sentinel", store.RedisConfig{SentinelAddrs: []string{"s1:26379", "s2:26379"}, MasterName: "m", DB: 2}, nil},
		{"cluster", store.RedisConfig{ClusterAddrs: []string{"c1:6379"}}, nil},
		{"nothing", store.RedisConfig{}, map[string]string{"addr": "required"}},
		{"two modes", store.RedisConfig{Addr: "r:6379", ClusterAddrs: []string{"c:6379"}}, map[string]string{"cluster_addrs": "only one of"}},
		{"no port", store.RedisConfig{Addr: "redis"}, map[string]string{"addr": "host:port"}},
		{"bad sentinel", store.RedisConfig{SentinelAddrs: []string{"s:1", "s2"}}, map[string]string{"sentinel_addrs[1]": "host:port", "master_name": "required"}},
		{"master without sentinels", store.RedisConfig{Addr: "r:1", MasterName: "m"}, map[string]string{"master_name": "only with sentinel_addrs"}},
		{"db on a cluster", store.RedisConfig{ClusterAddrs: []string{"c:1"}, DB: 1}, map[string]string{"db": "only db 0"}},
		{"negative db", store.RedisConfig{Addr: "r:1", DB: -1}, map[string]string{"db": "negative"}},
		{"both passwords", store.RedisConfig{Addr: "r:1", Password: "MARKER-pw", PasswordFile: pw}, map[string]string{"password_file": "not both"}},
		{"missing password file", store.RedisConfig{Addr: "r:1", PasswordFile: pw + ".missing"}, map[string]string{"password_file": "no such file"}},
		{"tls files", store.RedisConfig{Addr: "r:1", TLS: store.RedisTLS{Enabled: true, CAFile: pw + ".missing"}}, map[string]string{"tls": "missing"}},
		{"tls not enabled", store.RedisConfig{Addr: "r:1", TLS: store.RedisTLS{CAFile: pw}}, map[string]string{"tls.enabled": "not enabled"}},
		{"hash tag in prefix", store.RedisConfig{Addr: "r:1", KeyPrefix: "{x}"}, map[string]string{"key_prefix": "{ or }"}},
		{"negative timeout", store.RedisConfig{Addr: "r:1", Timeout: -time.Second}, map[string]string{"timeout": "negative"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Defaults()
			got := c.cfg.Validate()
			if len(got) != len(c.want) {
				t.Fatalf("Validate() = %v, want keys %v", got, slices.Collect(maps.Keys(c.want)))
			}
			for k, part := range c.want {
				if !strings.Contains(got[k], part) {
					t.Errorf("%s: %q, want it to mention %q", k, got[k], part)
				}
			}
			for k, msg := range got {
				if strings.Contains(msg, "MARKER") {
					t.Errorf("%s quotes the password: %q", k, msg)
				}
			}
			if _, err := store.NewRedis(c.cfg); (err == nil) != (len(c.want) == 0) {
				t.Errorf("NewRedis: %v", err)
			}
		})
	}
}

// BenchmarkRedis measures the store against a local redis-server (one
// client, one goroutine: round-trip bound).
func BenchmarkRedis(b *testing.B) {
	srv := redistest.Start(b)
	benchStore(b, func(b *testing.B) store.Store { return openRedis(b, store.RedisConfig{Addr: srv.Addr}) })
}

// tlsFiles writes a CA and a server certificate it signed, for 127.0.0.1
// and redis.test; it returns the files' paths.
func tlsFiles(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis.test"}, DNSNames: []string{"redis.test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("redis.pem", "CERTIFICATE", leafDER), write("redis-key.pem", "EC PRIVATE KEY", keyDER)
}

// Against a TLS-only redis-server: the CA and server name are checked,
// and a client without TLS fails fast.
func TestRedisTLS(t *testing.T) {
	caFile, certFile, keyFile := tlsFiles(t)
	srv := redistest.Start(t)
	srv.Restart("--port", "0", "--tls-port", srv.Port(), "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", caFile, "--tls-auth-clients", "no")
	for _, c := range []struct {
		name  string
		tls   store.RedisTLS
		works bool
	}{
		{"our CA, the address's IP", store.RedisTLS{Enabled: true, CAFile: caFile}, true},
		{"our CA, server_name", store.RedisTLS{Enabled: true, CAFile: caFile, ServerName: "redis.test"}, true},
		{"our CA, another server_name", store.RedisTLS{Enabled: true, CAFile: caFile, ServerName: "other.test"}, false},
		{"the system's roots", store.RedisTLS{Enabled: true}, false},
		{"insecure_skip_verify", store.RedisTLS{Enabled: true, InsecureSkipVerify: true}, true},
		{"no TLS", store.RedisTLS{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := openRedis(t, store.RedisConfig{Addr: srv.Addr, TLS: c.tls})
			start := time.Now()
			err := st.Put(context.Background(), []store.KV{{Key: store.Key{Bucket: "b", Key: "k"}, Value: []byte("v")}})
			if took := time.Since(start); took > generous {
				t.Errorf("took %s", took)
			}
			if (err == nil) != c.works {
				t.Errorf("err = %v, want success %v", err, c.works)
			}
		})
	}
}
