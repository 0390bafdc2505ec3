package deliver

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// Keeper is the target when no downstream is configured: it accepts every
// notification and keeps the newest ones in memory for /debug/notifications,
// bounded in count and bytes.
type Keeper struct {
	maxItems, maxBytes int

	mu    sync.Mutex
	items []Notification
	bytes int
}

// Notification is one kept notification.
type Notification struct {
	ReceivedAt time.Time       `json:"receivedAt"`
	Body       json.RawMessage `json:"body"`
}

var _ Target = (*Keeper)(nil)

// NewKeeper keeps at most maxItems notifications and maxBytes of bodies.
func NewKeeper(maxItems, maxBytes int) *Keeper {
	return &Keeper{maxItems: maxItems, maxBytes: maxBytes}
}

func (k *Keeper) Name() string { return "debug" }

func (k *Keeper) Deliver(ctx context.Context, enriched, _ []byte) Result {
	k.Add(enriched)
	return Result{Outcome: Kept}
}

// Add keeps one body, dropping the oldest to stay inside the bounds.
func (k *Keeper) Add(body []byte) {
	if len(body) > k.maxBytes {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.items = append(k.items, Notification{ReceivedAt: time.Now().UTC(), Body: append(json.RawMessage(nil), body...)})
	k.bytes += len(body)
	for len(k.items) > k.maxItems || k.bytes > k.maxBytes {
		k.bytes -= len(k.items[0].Body)
		k.items = k.items[1:]
	}
}

// List returns the kept notifications, newest first.
func (k *Keeper) List() []Notification {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]Notification, len(k.items))
	for i, it := range k.items {
		out[len(out)-1-i] = it
	}
	return out
}
