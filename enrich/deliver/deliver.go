// Package deliver sends enriched notifications downstream and decides what
// whatchanged answers Alertmanager: Alertmanager retries only on 5xx or a
// network error and drops every 4xx, so any failure that might pass must
// become a 5xx, and enrichment itself must never be why delivery fails.
package deliver

import (
	"context"
	"net/http"
)

// Outcome of one delivery.
type Outcome string

const (
	// Delivered: the downstream accepted the enriched body.
	Delivered Outcome = "delivered"
	// Fallback: the downstream rejected the enriched body with a 4xx and
	// accepted the original one.
	Fallback Outcome = "fallback"
	// Kept: no downstream; the notification was kept for /debug/notifications.
	Kept Outcome = "kept"
	// Retry: the downstream failed in a way that may pass (5xx, 429,
	// timeout, network); Alertmanager must retry.
	Retry Outcome = "retry"
	// Rejected: the downstream refused both bodies (4xx) or redirected.
	Rejected Outcome = "rejected"
)

// Result says what happened and what to answer.
type Result struct {
	Outcome Outcome
	// Status is the downstream's last HTTP status, 0 when none was received.
	Status int
	// Err explains a failure. It names the target, never its URL or headers.
	Err error
}

// HTTPStatus is what whatchanged answers the sender for this result.
func (r Result) HTTPStatus() int {
	switch r.Outcome {
	case Delivered, Fallback, Kept:
		return http.StatusOK
	case Rejected:
		// Still a 5xx: Alertmanager would drop a 4xx for good, and a
		// downstream's 404/401 during its own deploy may well pass.
		return http.StatusBadGateway
	default:
		return http.StatusServiceUnavailable
	}
}

// Target is one downstream.
type Target interface {
	// Name identifies the target in logs, metrics and errors (never its URL).
	Name() string
	// Deliver sends enriched; original is the body as received, resent once
	// if the downstream rejects the enriched one with a 4xx.
	Deliver(ctx context.Context, enriched, original []byte) Result
}
