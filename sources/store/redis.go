package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/redis/go-redis/v9"

	"github.com/whatchanged/whatchanged/sources/secret"
)

// RedisConfig connects the store to Redis (or Valkey) 6.2 or later: one
// server (addr), a Sentinel-managed primary (sentinel_addrs + master_name)
// or a Cluster (cluster_addrs).
type RedisConfig struct {
	// Addr is host:port of a single server.
	Addr string `yaml:"addr"`
	// SentinelAddrs are host:port of Sentinels that know MasterName.
	SentinelAddrs []string `yaml:"sentinel_addrs"`
	MasterName    string   `yaml:"master_name"`
	// ClusterAddrs are host:port of some Cluster nodes (the rest are
	// discovered). All of the store's keys live in one hash slot, so on a
	// Cluster they sit on one node: the state is small.
	ClusterAddrs []string `yaml:"cluster_addrs"`

	// Username is the ACL user (empty: the default user).
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
	// PasswordFile is read on every new connection, so a rotated password
	// needs no restart (surrounding whitespace is dropped).
	PasswordFile string `yaml:"password_file"`
	// DB is the database number (not on a Cluster).
	DB  int      `yaml:"db"`
	TLS RedisTLS `yaml:"tls"`

	// KeyPrefix starts every key, so several installations can share one
	// Redis (default "whatchanged:").
	KeyPrefix string `yaml:"key_prefix"`
	// Timeout bounds each operation (each page of a Scan), connecting
	// included (default 1s): a Redis that is down or hung costs at most
	// this, never a stuck request.
	Timeout time.Duration `yaml:"timeout"`
}

// RedisTLS is the connection's TLS; off unless Enabled.
type RedisTLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the server (default: the system's roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate, for servers that
	// require one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the certificate must carry (default: the
	// host of the address dialled).
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Secret is a configured secret (package secret).
type Secret = secret.Secret

// Defaults fills unset fields.
func (c *RedisConfig) Defaults() {
	if c.KeyPrefix == "" {
		c.KeyPrefix = "whatchanged:"
	}
	if c.Timeout == 0 {
		c.Timeout = time.Second
	}
}

// Validate returns problems by key (relative to the redis block).
func (c RedisConfig) Validate() map[string]string {
	errs := map[string]string{}
	modes := 0
	for _, m := range []struct {
		key string
		set bool
	}{{"addr", c.Addr != ""}, {"sentinel_addrs", len(c.SentinelAddrs) > 0}, {"cluster_addrs", len(c.ClusterAddrs) > 0}} {
		if m.set {
			if modes++; modes > 1 {
				errs[m.key] = "set only one of addr, sentinel_addrs or cluster_addrs"
			}
		}
	}
	if modes == 0 {
		errs["addr"] = "required (host:port), or sentinel_addrs with master_name, or cluster_addrs"
	}
	checkAddr := func(key, a string) {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			errs[key] = fmt.Sprintf("%q is not host:port", a)
		}
	}
	if c.Addr != "" {
		checkAddr("addr", c.Addr)
	}
	for i, a := range c.SentinelAddrs {
		checkAddr(fmt.Sprintf("sentinel_addrs[%d]", i), a)
	}
	for i, a := range c.ClusterAddrs {
		checkAddr(fmt.Sprintf("cluster_addrs[%d]", i), a)
	}
	switch {
	case len(c.SentinelAddrs) > 0 && c.MasterName == "":
		errs["master_name"] = "required with sentinel_addrs (the name the Sentinels monitor)"
	case len(c.SentinelAddrs) == 0 && c.MasterName != "":
		errs["master_name"] = "only with sentinel_addrs"
	}
	switch {
	case c.DB < 0:
		errs["db"] = "must not be negative"
	case c.DB != 0 && len(c.ClusterAddrs) > 0:
		errs["db"] = "a Cluster has only db 0"
	}
	if c.Password != "" && c.PasswordFile != "" {
		errs["password_file"] = "set either password or password_file, not both"
	} else if c.PasswordFile != "" {
		if _, err := readPasswordFile(c.PasswordFile); err != nil {
			errs["password_file"] = err.Error()
		}
	}
	if c.TLS.Enabled {
		if _, err := c.TLS.build(); err != nil {
			errs["tls"] = err.Error()
		}
	} else if c.TLS != (RedisTLS{}) {
		errs["tls.enabled"] = "tls settings are given but tls is not enabled"
	}
	if strings.ContainsAny(c.KeyPrefix, "{}") {
		// The store wraps the prefix in {} as the Cluster hash tag.
		errs["key_prefix"] = "must not contain { or }"
	}
	if c.Timeout < 0 {
		errs["timeout"] = "must not be negative"
	}
	return errs
}

// build reads the files (once: a rotated certificate needs a restart).
func (t RedisTLS) build() (*tls.Config, error) {
	return commoncfg.NewTLSConfig(&commoncfg.TLSConfig{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify})
}

func readPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err // names the path, never the content
	}
	return strings.TrimSpace(string(b)), nil
}

// Redis is the store kept in Redis, shared by replicas.
//
// Layout, per bucket B with P the key prefix: a sorted set "{P}keys:B" holds
// B's keys, all with score 0 so Redis orders them by their bytes (as bbolt
// does) and ZRANGE BYLEX range-scans them; a hash "{P}vals:B" maps each key
// to its value. {P} is a Cluster hash tag: all keys share one slot, so one
// script or MULTI may touch several buckets (a record and its guard).
type Redis struct {
	client  redis.UniversalClient
	prefix  string // "{P}"
	timeout time.Duration
}

var _ Store = (*Redis)(nil)

// scanPage is how many keys one Scan round trip reads: bounded memory per
// page, few round trips for the usual few-hundred-key scan.
const scanPage = 500

// NewRedis returns a store on cfg (after Defaults; Validate reports what
// would fail here). It does not connect: connections are made on use, so
// a Redis that is down at start is an error of the first operations, not
// of the start; call Ping to find out early.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	cfg.Defaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		var msgs []string
		for _, k := range slices.Sorted(maps.Keys(errs)) {
			msgs = append(msgs, k+": "+errs[k])
		}
		return nil, fmt.Errorf("store: redis config: %s", strings.Join(msgs, "; "))
	}
	opts := &redis.UniversalOptions{
		ClientName: "whatchanged",
		DB:         cfg.DB,
		Username:   cfg.Username,
		Password:   string(cfg.Password),
		MasterName: cfg.MasterName,
		// The per-operation deadline (ContextTimeoutEnabled) bounds dialling,
		// retries and socket reads together; the timeouts below bound each
		// step as well for the background dials that have no context.
		DialTimeout: cfg.Timeout,
		// A refused connection is a clear answer: no second dial within the
		// operation (go-redis dials 5 times by default), so a Redis that is
		// down costs milliseconds. Commands are still retried, which covers
		// a pooled connection that a restarted Redis dropped.
		DialerRetries:         1,
		ReadTimeout:           cfg.Timeout,
		WriteTimeout:          cfg.Timeout,
		PoolTimeout:           cfg.Timeout,
		ContextTimeoutEnabled: true,
	}
	switch {
	case cfg.Addr != "":
		opts.Addrs = []string{cfg.Addr}
	case len(cfg.SentinelAddrs) > 0:
		opts.Addrs = cfg.SentinelAddrs
	default:
		opts.Addrs = cfg.ClusterAddrs
		opts.IsClusterMode = true // even with one seed address
	}
	if cfg.PasswordFile != "" {
		path := cfg.PasswordFile
		opts.CredentialsProviderContext = func(context.Context) (string, string, error) {
			pw, err := readPasswordFile(path)
			if err != nil {
				return "", "", fmt.Errorf("redis password_file: %w", err)
			}
			return cfg.Username, pw, nil
		}
	}
	if cfg.TLS.Enabled {
		var err error
		if opts.TLSConfig, err = cfg.TLS.build(); err != nil {
			return nil, fmt.Errorf("store: redis tls: %w", err)
		}
	}
	return &Redis{client: redis.NewUniversalClient(opts), prefix: "{" + cfg.KeyPrefix + "}", timeout: cfg.Timeout}, nil
}

func (r *Redis) keysKey(bucket string) string { return r.prefix + "keys:" + bucket }
func (r *Redis) valsKey(bucket string) string { return r.prefix + "vals:" + bucket }

// op bounds one operation by the configured timeout.
func (r *Redis) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout)
}

// Ping checks that Redis answers (and accepts the credentials).
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := r.op(ctx)
	defer cancel()
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("store: redis ping: %w", err)
	}
	return nil
}

func (r *Redis) Get(ctx context.Context, bucket, key string) ([]byte, bool, error) {
	ctx, cancel := r.op(ctx)
	defer cancel()
	v, err := r.client.HGet(ctx, r.valsKey(bucket), key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: redis get: %w", err)
	}
	return v, true, nil
}

// putIfAbsent writes the pairs unless the guard exists, in one script so
// two replicas cannot both write. KEYS: the guard's hash, then per pair its
// sorted set and hash; ARGV: the guard's key, then per pair key and value.
var putIfAbsent = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 0
end
for i = 2, #KEYS, 2 do
  redis.call('ZADD', KEYS[i], 0, ARGV[i])
  redis.call('HSET', KEYS[i+1], ARGV[i], ARGV[i+1])
end
return 1
`)

func (r *Redis) PutIfAbsent(ctx context.Context, guard Key, puts []KV) (bool, error) {
	if err := checkKeys(puts); err != nil {
		return false, err
	}
	keys := make([]string, 0, 1+2*len(puts))
	args := make([]any, 0, 1+2*len(puts))
	keys = append(keys, r.valsKey(guard.Bucket))
	args = append(args, guard.Key)
	for _, kv := range puts {
		keys = append(keys, r.keysKey(kv.Bucket), r.valsKey(kv.Bucket))
		args = append(args, kv.Key.Key, kv.Value)
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	n, err := putIfAbsent.Run(ctx, r.client, keys, args...).Int()
	if err != nil {
		return false, fmt.Errorf("store: redis put if absent: %w", err)
	}
	return n == 1, nil
}

func (r *Redis) Put(ctx context.Context, puts []KV) error {
	if len(puts) == 0 {
		return nil
	}
	if err := checkKeys(puts); err != nil {
		return err
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, kv := range puts {
			p.ZAdd(ctx, r.keysKey(kv.Bucket), redis.Z{Member: kv.Key.Key})
			p.HSet(ctx, r.valsKey(kv.Bucket), kv.Key.Key, kv.Value)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: redis put: %w", err)
	}
	return nil
}

// checkKeys rejects what bbolt rejects, so both stores take the same input.
func checkKeys(kvs []KV) error {
	for _, kv := range kvs {
		if kv.Bucket == "" || kv.Key.Key == "" {
			return fmt.Errorf("store: empty bucket or key (%q, %q)", kv.Bucket, kv.Key.Key)
		}
	}
	return nil
}

// scanScript reads up to ARGV[3] keys of the sorted set KEYS[1] in the lex
// range [ARGV[1], ARGV[2]] and their values from the hash KEYS[2], as one
// consistent page: key, value, key, value...
var scanScript = redis.NewScript(`
local keys = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'BYLEX', 'LIMIT', 0, tonumber(ARGV[3]))
if #keys == 0 then
  return {}
end
local vals = redis.call('HMGET', KEYS[2], unpack(keys))
local out = {}
for i = 1, #keys do
  out[2*i-1] = keys[i]
  out[2*i] = vals[i]
end
return out
`)

// Scan reads scanPage keys per round trip. Each page is consistent; unlike
// bbolt's, the whole scan is not a snapshot: a key written or deleted by
// another replica during a long scan may or may not be seen.
func (r *Redis) Scan(ctx context.Context, bucket, from, to string, fn func(string, []byte) bool) error {
	lo, hi := "-", "+"
	if from != "" {
		lo = "[" + from
	}
	if to != "" {
		hi = "(" + to
	}
	keys := []string{r.keysKey(bucket), r.valsKey(bucket)}
	for {
		page, err := r.scanPage(ctx, keys, lo, hi)
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(page); i += 2 {
			k, _ := page[i].(string)
			v, ok := page[i+1].(string)
			if !ok {
				continue // an index entry without a value (edited by hand)
			}
			if !fn(k, []byte(v)) {
				return nil
			}
		}
		if len(page) < 2*scanPage {
			return nil
		}
		lo = "(" + page[len(page)-2].(string)
	}
}

func (r *Redis) scanPage(ctx context.Context, keys []string, lo, hi string) ([]any, error) {
	ctx, cancel := r.op(ctx)
	defer cancel()
	page, err := scanScript.Run(ctx, r.client, keys, lo, hi, scanPage).Slice()
	if err != nil {
		return nil, fmt.Errorf("store: redis scan: %w", err)
	}
	return page, nil
}

func (r *Redis) Delete(ctx context.Context, keys []Key) error {
	if len(keys) == 0 {
		return nil
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.ZRem(ctx, r.keysKey(k.Bucket), k.Key)
			p.HDel(ctx, r.valsKey(k.Bucket), k.Key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: redis delete: %w", err)
	}
	return nil
}

func (r *Redis) Close() error { return r.client.Close() }

// Client is the Redis client, for what shares the same Redis without being
// a key/value store (the HTTP answer cache of the polling sources).
func (r *Redis) Client() redis.UniversalClient { return r.client }
