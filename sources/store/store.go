// Package store is the small key/value interface for the little state
// whatchanged keeps (pushed change events, Slack thread timestamps), with an
// embedded bbolt implementation. Keys within a bucket are kept in byte order
// so time-prefixed keys can be range-scanned.
package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Store is a bucketed, ordered key/value store.
type Store interface {
	// Get returns the value of key, or ok=false when it is absent.
	Get(ctx context.Context, bucket, key string) (value []byte, ok bool, err error)
	// PutIfAbsent writes the pairs of one logical record in one transaction,
	// unless guard (bucket, key) already exists; it reports whether it wrote.
	PutIfAbsent(ctx context.Context, guard Key, puts []KV) (written bool, err error)
	// Scan calls fn for each key in [from, to) of bucket, in key order, until
	// fn returns false. An empty to means "to the end".
	Scan(ctx context.Context, bucket, from, to string, fn func(key string, value []byte) bool) error
	// Put writes entries in one transaction, replacing existing values.
	Put(ctx context.Context, puts []KV) error
	// Delete removes keys; absent keys are ignored.
	Delete(ctx context.Context, keys []Key) error
	Close() error
}

// Key names one entry.
type Key struct{ Bucket, Key string }

// KV is one entry to write.
type KV struct {
	Key
	Value []byte
}

// ErrLocked is returned when another process holds the data directory.
var ErrLocked = errors.New("data directory is in use by another process")

// Bolt is the embedded file store.
type Bolt struct{ db *bolt.DB }

var _ Store = (*Bolt)(nil)

// OpenBolt opens (creating if needed) dir/whatchanged.db. It fails with
// ErrLocked after lockWait if another process has it open.
func OpenBolt(dir string, lockWait time.Duration) (*Bolt, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	path := filepath.Join(dir, "whatchanged.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("store: %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

func (b *Bolt) Get(ctx context.Context, bucket, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	var out []byte
	found := false // not out != nil: an empty value is present too
	err := b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		if bk == nil {
			return nil
		}
		if v := bk.Get([]byte(key)); v != nil {
			out, found = append([]byte{}, v...), true
		}
		return nil
	})
	return out, found, err
}

func (b *Bolt) PutIfAbsent(ctx context.Context, guard Key, puts []KV) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	written := false
	err := b.db.Update(func(tx *bolt.Tx) error {
		if gb := tx.Bucket([]byte(guard.Bucket)); gb != nil && gb.Get([]byte(guard.Key)) != nil {
			return nil
		}
		written = true
		return putAll(tx, puts)
	})
	return written, err
}

func (b *Bolt) Put(ctx context.Context, puts []KV) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.Update(func(tx *bolt.Tx) error { return putAll(tx, puts) })
}

func putAll(tx *bolt.Tx, puts []KV) error {
	for _, kv := range puts {
		bk, err := tx.CreateBucketIfNotExists([]byte(kv.Bucket))
		if err != nil {
			return err
		}
		if err := bk.Put([]byte(kv.Key.Key), kv.Value); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bolt) Scan(ctx context.Context, bucket, from, to string, fn func(string, []byte) bool) error {
	return b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		if bk == nil {
			return nil
		}
		c := bk.Cursor()
		n := 0
		for k, v := c.Seek([]byte(from)); k != nil; k, v = c.Next() {
			if to != "" && string(k) >= to {
				return nil
			}
			// Check the context now and then, not on every key.
			if n++; n%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if !fn(string(k), v) {
				return nil
			}
		}
		return ctx.Err()
	})
}

func (b *Bolt) Delete(ctx context.Context, keys []Key) error {
	if len(keys) == 0 {
		return nil
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		for _, k := range keys {
			if bk := tx.Bucket([]byte(k.Bucket)); bk != nil {
				if err := bk.Delete([]byte(k.Key)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (b *Bolt) Close() error { return b.db.Close() }
