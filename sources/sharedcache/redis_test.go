package sharedcache

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/whatchanged/whatchanged/test/redistest"
)

// redisServer is a real redis-server (test/redistest) with the package's
// own looks at it.
type redisServer struct {
	*redistest.Server
	t testing.TB
}

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	return &redisServer{Server: redistest.Start(t), t: t}
}

// client is configured as the store's (sources/store.NewRedis): bounded
// by the operation's context, one dial per operation.
func (s *redisServer) client() redis.UniversalClient {
	c := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 []string{s.Addr},
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
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
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
