package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/whatchanged/whatchanged/sources/httperr"
)

// WebhookConfig is one downstream that takes Alertmanager's webhook JSON.
// The URL is a secret: it never appears in errors or logs. Credentials and
// headers are the transport's (http_config).
type WebhookConfig struct {
	URL string
	// URLFile, when set, is read on every send (as Alertmanager's
	// url_file is), so a rotated Secret takes effect without a restart.
	URLFile string
	Timeout time.Duration
}

// Webhook posts notifications to one URL with a client built once.
type Webhook struct {
	name   string
	cfg    WebhookConfig
	client *http.Client
}

var _ Target = (*Webhook)(nil)

// NewWebhook builds the target. The client is reused for every send; its
// redirects are not followed (a POST turned into a GET would lose the body).
func NewWebhook(name string, cfg WebhookConfig, transport http.RoundTripper) *Webhook {
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &Webhook{name: name, cfg: cfg, client: &http.Client{
		Transport:     transport,
		Timeout:       cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (w *Webhook) Name() string { return w.name }

func (w *Webhook) Deliver(ctx context.Context, enriched, original []byte) Result {
	status, err := w.post(ctx, enriched)
	if r, done := w.classify(status, err); done {
		return r
	}
	// A 4xx for the enriched body: maybe it is too large or the receiver
	// dislikes a field we added. Enrichment must not cost the alert.
	status2, err := w.post(ctx, original)
	if r, done := w.classify(status2, err); done {
		if r.Outcome == Delivered {
			r.Outcome = Fallback
			r.Err = fmt.Errorf("downstream %s: rejected the enriched body with %d; delivered the original", w.name, status)
		}
		return r
	}
	return Result{Outcome: Rejected, Status: status2, Err: fmt.Errorf(
		"downstream %s: rejected the enriched body (%d) and the original (%d)", w.name, status, status2)}
}

// classify maps a response; done=false means "a 4xx worth resending".
func (w *Webhook) classify(status int, err error) (Result, bool) {
	switch {
	case err != nil:
		return Result{Outcome: Retry, Err: fmt.Errorf("downstream %s: %w", w.name, err)}, true
	case status >= 200 && status < 300:
		return Result{Outcome: Delivered, Status: status}, true
	case retryLater(status):
		return Result{Outcome: Retry, Status: status, Err: fmt.Errorf("downstream %s: answered %d", w.name, status)}, true
	case refusedBody(status):
		return Result{Status: status}, false
	default:
		return Result{Outcome: Rejected, Status: status, Err: fmt.Errorf(
			"downstream %s: answered %d (redirects are not followed; configure the final URL)", w.name, status)}, true
	}
}

// retryLater: the receiver is overloaded or failing (429, 5xx); the same
// body may pass later, so Alertmanager should retry.
func retryLater(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// refusedBody: the receiver refused this body (a 4xx other than 429); the
// original, without our annotations, may still pass.
func refusedBody(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusTooManyRequests
}

func (w *Webhook) post(ctx context.Context, body []byte) (int, error) {
	url := w.cfg.URL
	if w.cfg.URLFile != "" {
		b, err := os.ReadFile(w.cfg.URLFile)
		if err != nil {
			return 0, fmt.Errorf("read url_file: %w", err) // the path is not the secret
		}
		url = strings.TrimSpace(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("invalid downstream URL") // the parse error would quote it
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "whatchanged")
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, w.scrub(err, url)
	}
	// Drain so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// scrub drops the URL from a client error: *url.Error quotes the full URL,
// which for Slack-style webhooks and tokens-in-query is the secret itself.
func (w *Webhook) scrub(err error, url string) error {
	err = httperr.Describe(err, w.cfg.Timeout)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("request abandoned: %v", err)
	}
	return errors.New(strings.ReplaceAll(err.Error(), url, "<redacted>"))
}
