// Package httperr says what an outbound HTTP request failed of without the
// request's URL: net/http quotes the whole URL in its errors, and ours often
// carry a secret (a Slack-style webhook path, a token in the query).
package httperr

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Unwrap drops the *url.Error around err, which quotes method and URL.
func Unwrap(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Describe is Unwrap plus a short form of network errors: "timeout after
// 2s" for any timeout (timeout is the client's), "dial: connection refused"
// for a failed dial.
func Describe(err error, timeout time.Duration) error {
	err = Unwrap(err)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("timeout after %s", timeout)
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return fmt.Errorf("%s: %w", op.Op, op.Err)
	}
	return err
}
