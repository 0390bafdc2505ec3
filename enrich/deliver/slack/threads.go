package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/whatchanged/whatchanged/sources/store"
)

// Thread is what whatchanged remembers of one alert group's Slack thread.
type Thread struct {
	Channel    string    `json:"channel"`
	TS         string    `json:"ts"` // the parent message
	Firing     bool      `json:"firing"`
	Level      int       `json:"level"` // highest severity level mentioned so far; -1: none yet (a rule held them back)
	StartedAt  time.Time `json:"startedAt"`
	ResolvedAt time.Time `json:"resolvedAt,omitzero"`
	ExpiresAt  time.Time `json:"expiresAt,omitzero"`
	// Firings are the times of the group's firing notifications within the
	// longest mention window, carried from one episode to the next so that
	// a flapping alert counts (MentionWhen).
	Firings []time.Time `json:"firings,omitempty"`
}

// fired adds a firing at now to the recent ones, dropping those older than
// window and keeping at most MaxFired.
func fired(prev []time.Time, now time.Time, window time.Duration) []time.Time {
	var out []time.Time
	for _, f := range prev {
		if !f.Before(now.Add(-window)) {
			out = append(out, f)
		}
	}
	out = append(out, now)
	if len(out) > MaxFired {
		out = out[len(out)-MaxFired:]
	}
	return out
}

// Threads keeps groupKey → Thread. Losing an entry only means the next
// notification starts a new parent message.
type Threads interface {
	Get(ctx context.Context, key string) (Thread, bool, error)
	Put(ctx context.Context, key string, t Thread, ttl time.Duration) error
	// Claim reserves posting the parent message of one firing episode of a
	// group (key) for the caller, atomically across replicas sharing the
	// store: an Alertmanager HA pair may deliver the same notification to
	// two replicas at once. won is false when another already claimed it.
	Claim(ctx context.Context, key string, ttl time.Duration) (won bool, err error)
}

// BoltThreads keeps threads in the embedded file store (survives restarts
// of one replica). Every Put also deletes the expired threads among the
// next pruneBatch stored ones, going round the bucket: the store holds about
// the threads of the last retention however long it runs, and no Put pays
// for a scan of all of it.
type BoltThreads struct {
	Store store.Store
	now   func() time.Time

	mu        sync.Mutex
	pruneFrom string // the key the next prune starts at; "": the first
}

const (
	threadsBucket = "slack/threads"
	pruneBatch    = 100
)

func (b *BoltThreads) Get(ctx context.Context, key string) (Thread, bool, error) {
	v, ok, err := b.Store.Get(ctx, threadsBucket, key)
	if err != nil || !ok {
		return Thread{}, false, err
	}
	var t Thread
	if err := json.Unmarshal(v, &t); err != nil {
		return Thread{}, false, err
	}
	if !t.ExpiresAt.IsZero() && b.clock().After(t.ExpiresAt) {
		return Thread{}, false, nil
	}
	return t, true, nil
}

func (b *BoltThreads) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	v, err := json.Marshal(Thread{ExpiresAt: b.clock().Add(ttl)}) // pruned as an expired thread
	if err != nil {
		return false, err
	}
	k := store.Key{Bucket: threadsBucket, Key: claimPrefix + key}
	return b.Store.PutIfAbsent(ctx, k, []store.KV{{Key: k, Value: v}})
}

// claimPrefix keeps claims apart from the threads in one bucket.
const claimPrefix = "claim|"

func (b *BoltThreads) Put(ctx context.Context, key string, t Thread, ttl time.Duration) error {
	if ttl > 0 {
		t.ExpiresAt = b.clock().Add(ttl)
	}
	v, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := b.Store.Put(ctx, []store.KV{{Key: store.Key{Bucket: threadsBucket, Key: key}, Value: v}}); err != nil {
		return err
	}
	if err := b.prune(ctx); err != nil {
		return fmt.Errorf("thread saved; deleting expired threads failed: %w", err)
	}
	return nil
}

// prune deletes the expired threads among the next pruneBatch keys.
func (b *BoltThreads) prune(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock()
	var expired []store.Key
	scanned, next := 0, ""
	err := b.Store.Scan(ctx, threadsBucket, b.pruneFrom, "", func(key string, v []byte) bool {
		if scanned == pruneBatch {
			next = key
			return false
		}
		scanned++
		var t Thread
		if json.Unmarshal(v, &t) == nil && !t.ExpiresAt.IsZero() && now.After(t.ExpiresAt) {
			expired = append(expired, store.Key{Bucket: threadsBucket, Key: key})
		}
		return true
	})
	if err != nil {
		return err
	}
	b.pruneFrom = next // "" at the end: start over
	return b.Store.Delete(ctx, expired)
}

func (b *BoltThreads) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}

// RedisThreads keeps threads in Redis, shared by replicas (Alertmanager HA
// may call a different replica's whatchanged for the same group).
type RedisThreads struct {
	Client *redis.Client
	Prefix string
}

func (r *RedisThreads) Get(ctx context.Context, key string) (Thread, bool, error) {
	v, err := r.Client.Get(ctx, r.Prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return Thread{}, false, nil
	}
	if err != nil {
		return Thread{}, false, err
	}
	var t Thread
	return t, true, json.Unmarshal(v, &t)
}

func (r *RedisThreads) Put(ctx context.Context, key string, t Thread, ttl time.Duration) error {
	v, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return r.Client.Set(ctx, r.Prefix+key, v, ttl).Err()
}

func (r *RedisThreads) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return r.Client.SetNX(ctx, r.Prefix+claimPrefix+key, 1, ttl).Result()
}
