// Package changes is the source of change events pushed by CI/CD through
// POST /api/v1/changes. Events are written to the store for durability and
// answered from an in-memory index sorted by start time, so a query costs a
// binary search and a scan of its window, never a disk read or a decode.
package changes

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/store"
)

// Config of the pushed-changes source.
type Config struct {
	// Retention drops events that started longer ago than this.
	Retention time.Duration `yaml:"retention"`
	// MaxEvents caps the number of events kept; the oldest go first.
	MaxEvents int `yaml:"max_events"`
	// Timeout is this source's deadline per query (within the total budget).
	Timeout time.Duration `yaml:"timeout"`
	// SigningSecretFiles: per signing sender (launchdarkly, flagsmith), a
	// file holding the secret its webhooks are signed with. Such a sender
	// cannot send a bearer token; with its secret set, its requests to
	// POST /api/v1/changes/<format> are checked by signature instead.
	SigningSecretFiles map[string]string `yaml:"signing_secret_files,omitempty"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Retention == 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.MaxEvents == 0 {
		// About 10 MB of index; a team pushing 2,000 changes a day keeps 10 days.
		c.MaxEvents = 20_000
	}
}

// Validate reports the first wrong field by its key.
func (c Config) Validate() map[string]string {
	errs := map[string]string{}
	if c.Retention < time.Hour {
		errs["retention"] = "must be at least 1h"
	}
	if c.MaxEvents < 1 {
		errs["max_events"] = "must be at least 1"
	}
	if c.Timeout < 0 {
		errs["timeout"] = "must not be negative"
	}
	for format, file := range c.SigningSecretFiles {
		switch {
		case SignatureHeader(format) == "":
			errs["signing_secret_files."+format] = "only launchdarkly and flagsmith sign their webhooks; the others send the bearer token"
		case file == "":
			errs["signing_secret_files."+format] = "want the path of a file holding the secret"
		}
	}
	return errs
}

const (
	bucketByTime    = "changes/by-time"    // "<20-digit unix nanos>/<id>" → Change JSON
	bucketByID      = "changes/by-id"      // id → by-time key
	bucketByArrival = "changes/by-arrival" // "<20-digit unix nanos received>/<id>" → by-time key
	pruneEvery      = 10 * time.Minute
)

// arrivalSkew: another replica's clock may be this far behind ours, so a
// shared store is read again from this long before the newest arrival seen.
const arrivalSkew = 10 * time.Second

// Source is the pushed-changes source.
type Source struct {
	name  string
	cfg   Config
	store store.Store
	log   *slog.Logger
	now   func() time.Time
	ready atomic.Bool

	mu    sync.RWMutex
	index []sources.Change // every stored change, sorted by StartedAt
	ids   map[string]bool  // of the index

	// shared: other replicas write to the store too (Redis); their changes
	// are read before each query, from the arrival index.
	shared      bool
	syncMu      sync.Mutex // one read of the store at a time
	lastArrival string     // the newest arrival key read
}

// Shared says that other replicas write to the same store, so each query
// first reads what they recorded since (one range read of the store).
func (s *Source) Shared() { s.shared = true }

var (
	_ sources.Source  = (*Source)(nil)
	_ sources.Starter = (*Source)(nil)
)

// New makes the source over st; it does no I/O until Start.
func New(name string, cfg Config, st store.Store, log *slog.Logger) *Source {
	cfg.Defaults()
	return &Source{name: name, cfg: cfg, store: st, log: log, now: time.Now}
}

func (s *Source) Name() string { return s.name }

// Start prunes, loads the index from the store, then keeps pruning in the
// background until ctx ends.
func (s *Source) Start(ctx context.Context) error {
	if err := s.Prune(ctx); err != nil {
		return fmt.Errorf("%s: prune: %w", s.name, err)
	}
	if err := s.load(ctx); err != nil {
		return fmt.Errorf("%s: load: %w", s.name, err)
	}
	s.ready.Store(true)
	go sources.Every(ctx, pruneEvery, func() {
		if err := s.Prune(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("prune pushed changes", "source", s.name, "err", err)
		}
	})
	return nil
}

func (s *Source) Ready() bool { return s.ready.Load() }

// load replaces the index with the store's content.
func (s *Source) load(ctx context.Context) error {
	var all []sources.Change
	bad := 0
	err := s.store.Scan(ctx, bucketByTime, "", "", func(_ string, v []byte) bool {
		var ch sources.Change
		if json.Unmarshal(v, &ch) != nil {
			bad++
			return true
		}
		all = append(all, ch)
		return true
	})
	if err != nil {
		return err
	}
	if bad > 0 {
		s.log.Warn("skipped unreadable stored changes", "source", s.name, "count", bad)
	}
	s.mu.Lock()
	s.index = all // the store's key order is start-time order
	s.ids = make(map[string]bool, len(all))
	for _, ch := range all {
		s.ids[ch.ID] = true
	}
	s.mu.Unlock()
	if s.shared {
		// Read arrivals from now on: everything before is in the index.
		s.syncMu.Lock()
		s.lastArrival = timeKey(s.now().Add(-arrivalSkew))
		s.syncMu.Unlock()
	}
	return nil
}

// sync reads the changes other replicas recorded since the last read.
func (s *Source) sync(ctx context.Context) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	from := s.lastArrival
	if t, err := strconv.ParseInt(strings.SplitN(from, "/", 2)[0], 10, 64); err == nil {
		from = timeKey(time.Unix(0, t).Add(-arrivalSkew))
	}
	var newest string
	var keys []string
	err := s.store.Scan(ctx, bucketByArrival, from, "", func(k string, v []byte) bool {
		newest = k
		if _, id, ok := strings.Cut(k, "/"); ok {
			s.mu.RLock()
			known := s.ids[id]
			s.mu.RUnlock()
			if !known {
				keys = append(keys, string(v))
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		val, ok, err := s.store.Get(ctx, bucketByTime, k)
		if err != nil {
			return err
		}
		var ch sources.Change
		if ok && json.Unmarshal(val, &ch) == nil {
			s.insert(ch)
		}
	}
	if newest > s.lastArrival {
		s.lastArrival = newest
	}
	return nil
}

// insert adds a change to the index at its place in time.
func (s *Source) insert(ch sources.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids[ch.ID] {
		return // read from the store by a sync meanwhile
	}
	if s.ids == nil {
		s.ids = map[string]bool{}
	}
	s.ids[ch.ID] = true
	i := sort.Search(len(s.index), func(i int) bool { return s.index[i].StartedAt.After(ch.StartedAt) })
	s.index = slices.Insert(s.index, i, ch)
}

// window returns the index positions [lo, hi) of changes started in [since, until].
func (s *Source) window(since, until time.Time) (int, int) {
	lo := sort.Search(len(s.index), func(i int) bool { return !s.index[i].StartedAt.Before(since) })
	hi := sort.Search(len(s.index), func(i int) bool { return s.index[i].StartedAt.After(until) })
	return lo, max(lo, hi)
}

func timeKey(t time.Time) string { return fmt.Sprintf("%020d", t.UnixNano()) }

// Record validates and stores ev. created is false when an event with the
// same id was already recorded (the stored one is returned).
func (s *Source) Record(ctx context.Context, ev Event) (sources.Change, bool, error) {
	if err := ev.Validate(s.now()); err != nil {
		return sources.Change{}, false, err
	}
	ch := ev.change(s.name)
	val, err := json.Marshal(ch)
	if err != nil {
		return sources.Change{}, false, err
	}
	key := timeKey(ch.StartedAt) + "/" + ev.ID
	written, err := s.store.PutIfAbsent(ctx, store.Key{Bucket: bucketByID, Key: ev.ID}, []store.KV{
		{Key: store.Key{Bucket: bucketByTime, Key: key}, Value: val},
		{Key: store.Key{Bucket: bucketByID, Key: ev.ID}, Value: []byte(key)},
		{Key: store.Key{Bucket: bucketByArrival, Key: timeKey(s.now()) + "/" + ev.ID}, Value: []byte(key)},
	})
	if err != nil {
		return sources.Change{}, false, fmt.Errorf("%s: store change: %w", s.name, err)
	}
	if written {
		s.insert(ch)
		return ch, true, nil
	}
	prev, err := s.byID(ctx, ev.ID)
	return prev, false, err
}

func (s *Source) byID(ctx context.Context, id string) (sources.Change, error) {
	key, ok, err := s.store.Get(ctx, bucketByID, id)
	if err != nil || !ok {
		return sources.Change{}, fmt.Errorf("%s: change %q vanished: %v", s.name, id, err)
	}
	val, ok, err := s.store.Get(ctx, bucketByTime, string(key))
	if err != nil || !ok {
		return sources.Change{}, fmt.Errorf("%s: change %q vanished: %v", s.name, id, err)
	}
	var ch sources.Change
	return ch, json.Unmarshal(val, &ch)
}

// Changes returns the recorded changes related to q.Subject that started
// in [q.Since, q.Until] (the subject's own back to q.History).
func (s *Source) Changes(ctx context.Context, q sources.Query) ([]sources.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Subject.IsZero() {
		return nil, nil
	}
	var syncErr error
	if s.shared {
		if err := s.sync(ctx); err != nil {
			// What this replica knows, and why it may not be all.
			syncErr = fmt.Errorf("reading other replicas' changes from the shared store: %w", err)
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	lo, hi := s.window(q.From(sources.RelationWorkload), q.Until)
	var out []sources.Change
	loose := 0
	for i := hi - 1; i >= lo; i-- { // newest first, so MaxLoose keeps the newest
		rel := sources.Relate(q.Subject, s.index[i].Subject)
		if rel == sources.RelationNone || s.index[i].StartedAt.Before(q.From(rel)) {
			continue
		}
		switch rel {
		case sources.RelationNamespace:
			if q.MaxLoose > 0 && loose >= q.MaxLoose {
				continue
			}
			loose++
		}
		out = append(out, s.index[i])
	}
	return out, syncErr
}

// List returns up to limit changes that started at or after since, newest
// first, for GET /debug/changes.
func (s *Source) List(ctx context.Context, since time.Time, limit int) ([]sources.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	lo, hi := s.window(since, time.Unix(1<<40, 0))
	out := make([]sources.Change, 0, min(hi-lo, max(limit, 0)))
	for i := hi - 1; i >= lo && (limit <= 0 || len(out) < limit); i-- {
		out = append(out, s.index[i])
	}
	return out, nil
}

// Prune drops events older than the retention and the oldest beyond MaxEvents.
func (s *Source) Prune(ctx context.Context) error {
	cutoff := timeKey(s.now().Add(-s.cfg.Retention))
	var keys []string
	var ids []string
	err := s.store.Scan(ctx, bucketByTime, "", "", func(k string, _ []byte) bool {
		keys = append(keys, k)
		return true
	})
	if err != nil {
		return err
	}
	var drop []store.Key
	// Arrivals older than the retention went with their changes (or
	// before: a change may arrive long after it started).
	_ = s.store.Scan(ctx, bucketByArrival, "", cutoff, func(k string, _ []byte) bool {
		drop = append(drop, store.Key{Bucket: bucketByArrival, Key: k})
		return true
	})
	for i, k := range keys {
		if k < cutoff || len(keys)-i > s.cfg.MaxEvents {
			drop = append(drop, store.Key{Bucket: bucketByTime, Key: k})
			if _, id, ok := strings.Cut(k, "/"); ok {
				ids = append(ids, id)
			}
		}
	}
	for _, id := range ids {
		drop = append(drop, store.Key{Bucket: bucketByID, Key: id})
	}
	if len(drop) == 0 {
		return nil
	}
	if err := s.store.Delete(ctx, drop); err != nil {
		return err
	}
	s.log.Info("pruned pushed changes", "source", s.name, "dropped", len(ids))
	return s.load(ctx)
}
