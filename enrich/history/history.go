// Package history keeps the lifecycle of every alert that passes through
// whatchanged — when it fired, each re-notification (collapsed into a
// count), when it was resolved, and the suspect named when it fired — so
// the incident timeline (package timeline) can show what fired next to
// what changed. It writes through store.Store (bbolt or Redis) off the
// alert path: recording never delays a notification, and a store that
// fails never fails one.
package history

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whatchanged/whatchanged/enrich/timeline"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/store"
)

// Config of the history.
type Config struct {
	// Retention drops alerts that ended (or were last seen firing) longer
	// ago than this.
	Retention time.Duration
	// MaxAlerts bounds the alerts kept; the oldest by start go first.
	MaxAlerts int
	// QueueAlerts bounds the alerts waiting to be written; beyond it new
	// ones are dropped (and counted), never waited for.
	QueueAlerts int
}

// Defaults of Config.
const (
	DefaultRetention   = 30 * 24 * time.Hour
	DefaultMaxAlerts   = 100_000
	DefaultQueueAlerts = 20_000
)

func (c Config) withDefaults() Config {
	c.Retention = cmp.Or(c.Retention, DefaultRetention)
	c.MaxAlerts = cmp.Or(c.MaxAlerts, DefaultMaxAlerts)
	c.QueueAlerts = cmp.Or(c.QueueAlerts, DefaultQueueAlerts)
	return c
}

// Store layout. Keys start with a 20-digit Unix nanosecond time, so a
// bucket's byte order is time order and a window is a range scan.
const (
	// "<startsAt>/<fingerprint>" → record: one alert instance (an alert
	// firing again after it resolved starts again: a new record).
	bucketAlerts = "history/alerts"
	// "<endsAt>/<id>" → "-", firing ones at the end under notEnded: the
	// alerts that started before a window but were still firing in it.
	bucketEnds = "history/ends"
	// fingerprint → id of its newest record, for an alert sent without
	// startsAt (a postable alert may omit it; Alertmanager then keeps the
	// first).
	bucketFingerprints = "history/fingerprints"
	notEnded           = "99999999999999999999"
	pruneEvery         = 10 * time.Minute
)

func timeKey(t time.Time) string { return fmt.Sprintf("%020d", t.UnixNano()) }

// record is one stored alert instance. Short names: it is written once per
// alert and notification, and kept for the retention.
type record struct {
	Labels    map[string]string `json:"l"`
	Subject   sources.Subject   `json:"s"`
	Resolved  bool              `json:"r,omitempty"`
	StartsAt  int64             `json:"a"` // Unix milliseconds
	EndsAt    int64             `json:"e,omitempty"`
	FirstSeen int64             `json:"f"`
	LastSeen  int64             `json:"t"`
	Count     int               `json:"n"`
	Suspect   string            `json:"x,omitempty"`
	Links     []sources.Link    `json:"k,omitempty"`
	Via       string            `json:"v,omitempty"`
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// endKey is where the record sits in bucketEnds.
func (r *record) endKey(id string) string {
	if !r.Resolved {
		return notEnded + "/" + id
	}
	return timeKey(fromMS(r.EndsAt)) + "/" + id
}

func (r *record) alert(id string) timeline.Alert {
	_, fp, _ := strings.Cut(id, "/")
	a := timeline.Alert{Fingerprint: fp, Labels: r.Labels, Alertname: r.Labels["alertname"], Severity: r.Labels["severity"],
		Subject: r.Subject, Status: timeline.StatusFiring, StartsAt: fromMS(r.StartsAt), FirstSeen: fromMS(r.FirstSeen),
		LastSeen: fromMS(r.LastSeen), Notifications: r.Count, Suspect: r.Suspect, Links: r.Links, Via: r.Via}
	if r.Resolved {
		a.Status, a.EndsAt = timeline.StatusResolved, fromMS(r.EndsAt)
	}
	return a
}

// History records alerts and answers the timeline's queries.
type History struct {
	st  store.Store
	cfg Config
	// resolve is the enricher's: the subject an alert is about.
	resolve func(labels map[string]string) sources.Subject
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	// The queue to the writer: batches of observations, pending counts
	// their alerts. mu guards closing it against Observe.
	mu      sync.RWMutex
	closed  bool
	queue   chan batch
	pending atomic.Int64
	started atomic.Bool
	stopped chan struct{}
	// count is the records stored, as of the last prune plus those added
	// since: the writer prunes early when it passes MaxAlerts by a tenth.
	count atomic.Int64
	// failing: the last write failed; the next failure is not logged again.
	failing bool
	failed  int
}

var _ timeline.History = (*History)(nil)

// New makes the history over st. resolve (may be nil) gives each new alert
// its subject. It does no I/O until Start; until then (a one-shot command
// that only reads) Observe drops what it is given.
func New(st store.Store, cfg Config, resolve func(map[string]string) sources.Subject, log *slog.Logger) *History {
	cfg = cfg.withDefaults()
	if resolve == nil {
		resolve = func(map[string]string) sources.Subject { return sources.Subject{} }
	}
	return &History{st: st, cfg: cfg, resolve: resolve, log: log, now: time.Now, metrics: newMetrics(),
		queue: make(chan batch, 1024), stopped: make(chan struct{})}
}

// Alerts returns the alerts active in [from, to] — started in it, or
// started before and not ended before it — that keep accepts, ordered by
// start, at most limit (more: there were others).
func (h *History) Alerts(ctx context.Context, from, to time.Time, keep func(*timeline.Alert) bool, limit int) ([]timeline.Alert, bool, error) {
	fromKey := timeKey(from)
	// Started before the window and ended in or after it (or firing).
	var earlier []string
	err := h.st.Scan(ctx, bucketEnds, fromKey, "", func(k string, _ []byte) bool {
		if _, id, ok := strings.Cut(k, "/"); ok && id < fromKey {
			earlier = append(earlier, id)
		}
		return true
	})
	if err != nil {
		return nil, false, err
	}
	slices.Sort(earlier)
	var out []timeline.Alert
	more := false
	add := func(id string, v []byte) bool {
		var r record
		if json.Unmarshal(v, &r) != nil {
			return true // unreadable: skipped, the prune drops it in time
		}
		a := r.alert(id)
		if keep != nil && !keep(&a) {
			return true
		}
		if limit > 0 && len(out) >= limit {
			more = true
			return false
		}
		out = append(out, a)
		return true
	}
	for _, id := range slices.Compact(earlier) {
		v, ok, err := h.st.Get(ctx, bucketAlerts, id)
		if err != nil {
			return nil, false, err
		}
		if ok && !add(id, v) {
			return out, more, nil
		}
	}
	err = h.st.Scan(ctx, bucketAlerts, fromKey, timeKey(to.Add(time.Nanosecond)), add)
	return out, more, err
}

// Prune drops the alerts past the retention, then the oldest beyond
// MaxAlerts, with their index entries.
func (h *History) Prune(ctx context.Context) error {
	cutoff := h.now().Add(-h.cfg.Retention)
	cutoffKey, cutoffMS := timeKey(cutoff), ms(cutoff)
	var ids []string
	drop := map[string]bool{}
	err := h.st.Scan(ctx, bucketAlerts, "", "", func(k string, v []byte) bool {
		ids = append(ids, k)
		if k < cutoffKey { // started before the cutoff: may have ended before it
			var r record
			if json.Unmarshal(v, &r) != nil || max(r.EndsAt, r.LastSeen) < cutoffMS {
				drop[k] = true
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	kept := len(ids) - len(drop)
	for _, id := range ids {
		if kept <= h.cfg.MaxAlerts {
			break
		}
		if !drop[id] {
			drop[id] = true
			kept--
		}
	}
	h.count.Store(int64(kept))
	h.metrics.records.Set(float64(kept))
	if len(drop) == 0 {
		return nil
	}
	keys := make([]store.Key, 0, 3*len(drop))
	for id := range drop {
		keys = append(keys, store.Key{Bucket: bucketAlerts, Key: id})
	}
	err = h.st.Scan(ctx, bucketEnds, "", "", func(k string, _ []byte) bool {
		if _, id, _ := strings.Cut(k, "/"); drop[id] {
			keys = append(keys, store.Key{Bucket: bucketEnds, Key: k})
		}
		return true
	})
	if err != nil {
		return err
	}
	err = h.st.Scan(ctx, bucketFingerprints, "", "", func(fp string, id []byte) bool {
		if drop[string(id)] {
			keys = append(keys, store.Key{Bucket: bucketFingerprints, Key: fp})
		}
		return true
	})
	if err != nil {
		return err
	}
	// In slices: one transaction of a hundred thousand deletes would hold
	// the store's writer for long.
	for chunk := range slices.Chunk(keys, 10_000) {
		if err := h.st.Delete(ctx, chunk); err != nil {
			return err
		}
	}
	h.metrics.pruned.Add(float64(len(drop)))
	h.log.Info("pruned the alert history", "dropped", len(drop), "kept", kept)
	return nil
}
