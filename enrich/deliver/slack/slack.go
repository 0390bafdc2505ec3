// Package slack delivers notifications to Slack itself (Slack does not take
// Alertmanager's webhook JSON): one thread per alert group, the parent
// edited when the group resolves, mentions by severity only on the parent
// and on escalation (held back, where a level says so, until the group keeps
// firing or fires again soon after resolving), and the deploy suspect up front.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"golang.org/x/time/rate"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/deliver"
	"github.com/whatchanged/whatchanged/sources"
)

// Config of a Slack target.
type Config struct {
	Token             string        // bot token (chat:write), a secret
	APIURL            string        // default Slack's; tests and proxies set it
	Channel           string        // default channel
	Severity          Severity      //
	ReplyBroadcast    bool          // escalation replies also show in the channel
	ResolvedRetention time.Duration // keep a resolved group's thread this long (a re-fire after it starts a new parent)
	AnnotationPrefix  string
	Actions           *ActionsConfig // buttons on the parent; nil: none
}

// Target is one Slack destination.
type Target struct {
	name    string
	cfg     Config
	api     *slack.Client
	threads Threads
	log     *slog.Logger
	now     func() time.Time

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

var _ deliver.Target = (*Target)(nil)

// New builds the target; the client is built once and reused.
func New(name string, cfg Config, threads Threads, client *http.Client, log *slog.Logger) *Target {
	if cfg.ResolvedRetention == 0 {
		cfg.ResolvedRetention = 24 * time.Hour
	}
	if cfg.Severity.Label == "" {
		cfg.Severity.Label = "severity"
	}
	if cfg.AnnotationPrefix == "" {
		cfg.AnnotationPrefix = enrich.DefaultAnnotationPrefix
	}
	opts := []slack.Option{slack.OptionHTTPClient(client)}
	if cfg.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(cfg.APIURL))
	}
	return &Target{name: name, cfg: cfg, api: slack.New(cfg.Token, opts...), threads: threads, log: log, now: time.Now,
		limiters: map[string]*rate.Limiter{}}
}

func (t *Target) Name() string { return t.name }

// firingKeep is how long a firing group's thread is kept: longer than any
// repeat_interval in practice.
const firingKeep = 30 * 24 * time.Hour

// Deliver posts or threads the notification. Slack never gets the original
// body (it is not Slack's format): a failure to send is a retry, a refusal
// that cannot pass (bad token, unknown channel) is named and not retried forever.
func (t *Target) Deliver(ctx context.Context, enriched, _ []byte) deliver.Result {
	g, err := decodeGroup(enriched)
	if err != nil {
		return deliver.Result{Outcome: deliver.Rejected, Err: fmt.Errorf("slack %s: %w", t.name, err)}
	}
	level, lvl := t.cfg.Severity.level(g.severity(t.cfg.Severity), t.cfg.Channel)
	if lvl.Channel == "" {
		return deliver.Result{Outcome: deliver.Rejected, Err: fmt.Errorf("slack %s: no channel configured for this severity", t.name)}
	}
	key := lvl.Channel + "|" + g.GroupKey
	th, known, err := t.threads.Get(ctx, key)
	if err != nil { // degrade to a new parent, never to a lost notification
		t.log.Warn("slack thread store unavailable; posting a new parent", "target", t.name, "groupKey", g.GroupKey, "alerts", len(g.Alerts), "err", err)
		known = false
	}
	storeDown := err != nil // nothing to count the firings with
	now := t.now()
	if g.Status == "firing" && (!known || !th.Firing) {
		// A new episode: one replica posts its parent; another that got
		// the same notification threads under it.
		if won, err := t.threads.Claim(ctx, key+"|"+g.StartsAt.UTC().Format(time.RFC3339), claimKeep); err == nil && !won {
			if other, ok := t.awaitParent(ctx, key, g.StartsAt); ok {
				th, known = other, true
			}
		}
	}
	switch {
	case g.Status == "firing" && (!known || !th.Firing):
		var prev []time.Time // a resolved episode's firings count for this one
		if known {
			prev = th.Firings
		}
		sit := situation{firings: fired(prev, now, t.cfg.Severity.window()), unknown: storeDown,
			refired: known && !th.ResolvedAt.IsZero(), after: now.Sub(th.ResolvedAt)}
		due, note := lvl.mentions(sit, now)
		mentions, mentioned := []string(nil), -1
		if due {
			mentions, mentioned = lvl.Mention, level
		}
		ts, err := t.post(ctx, lvl.Channel, "", false, t.withActions(g, parentBlocks(g.group, t.cfg.AnnotationPrefix, mentions, now, note)), g.fallback())
		if err != nil {
			return t.failed(err)
		}
		t.save(ctx, key, Thread{Channel: lvl.Channel, TS: ts, Firing: true, Level: mentioned, StartedAt: g.StartsAt, Firings: sit.firings}, firingKeep)
	case g.Status == "firing":
		th.Firings = fired(th.Firings, now, t.cfg.Severity.window())
		due, note := lvl.mentions(situation{firings: th.Firings}, now)
		var mentions []string
		mentioning := level > th.Level && due // an escalation, or a rule's situation reached
		if mentioning {
			mentions = lvl.Mention
			th.Level = level
		}
		if _, err := t.post(ctx, th.Channel, th.TS, mentioning && t.cfg.ReplyBroadcast, replyBlocks(g.group, mentions, note), g.fallback()); err != nil {
			return t.failed(err)
		}
		t.save(ctx, key, th, firingKeep)
	case known && th.Firing: // resolved: edit the parent, say so in the thread
		if err := t.update(ctx, th.Channel, th.TS, resolvedParent(g.group, t.cfg.AnnotationPrefix, th.StartedAt, now), g.fallback()); err != nil {
			return t.failed(err)
		}
		if _, err := t.post(ctx, th.Channel, th.TS, false, resolvedReply(th.StartedAt, now), "Resolved"); err != nil {
			return t.failed(err)
		}
		th.Firing, th.ResolvedAt = false, now
		t.save(ctx, key, th, t.cfg.ResolvedRetention)
	default: // resolved with no thread known (store lost, or sent before we ran)
		if _, err := t.post(ctx, lvl.Channel, "", false, resolvedParent(g.group, t.cfg.AnnotationPrefix, g.StartsAt, now), g.fallback()); err != nil {
			return t.failed(err)
		}
	}
	return deliver.Result{Outcome: deliver.Delivered, Status: http.StatusOK}
}

// claimKeep bounds a claim: long enough for the winner to post, short
// enough that a winner that died leaves no episode without a parent for long.
const claimKeep = 10 * time.Minute

// parentWait is how long a replica that lost the claim waits for the
// winner's parent before posting its own (a duplicate beats a lost message).
const parentWait = 5 * time.Second

// awaitParent waits for the parent another replica is posting for the
// episode that started at startedAt.
func (t *Target) awaitParent(ctx context.Context, key string, startedAt time.Time) (Thread, bool) {
	deadline := time.NewTimer(parentWait)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if th, ok, err := t.threads.Get(ctx, key); err == nil && ok && th.Firing && th.TS != "" && !th.StartedAt.Before(startedAt) {
			return th, true
		}
		select {
		case <-ctx.Done():
			return Thread{}, false
		case <-deadline.C:
			t.log.Warn("slack: another replica claimed this group's parent but did not post it; posting one", "target", t.name)
			return Thread{}, false
		case <-tick.C:
		}
	}
}

func (t *Target) save(ctx context.Context, key string, th Thread, ttl time.Duration) {
	if err := t.threads.Put(ctx, key, th, ttl); err != nil {
		t.log.Warn("slack thread store: could not save; the next notification starts a new parent", "target", t.name, "err", err)
	}
}

// limiter allows about one message a second per channel (Slack's rate),
// with a short burst.
func (t *Target) limiter(channel string) *rate.Limiter {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.limiters[channel]
	if !ok {
		l = rate.NewLimiter(rate.Every(time.Second), 3)
		t.limiters[channel] = l
	}
	return l
}

func (t *Target) post(ctx context.Context, channel, threadTS string, broadcast bool, blocks []slack.Block, fallback string) (string, error) {
	opts := []slack.MsgOption{slack.MsgOptionBlocks(blocks...), slack.MsgOptionText(fallback, false)}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
		if broadcast {
			opts = append(opts, slack.MsgOptionBroadcast())
		}
	}
	var ts string
	err := t.shortenOnRefusal(channel, blocks, func(blocks []slack.Block) error {
		opts[0] = slack.MsgOptionBlocks(blocks...)
		return t.withRetry(ctx, channel, func() error {
			var err error
			_, ts, err = t.api.PostMessageContext(ctx, channel, opts...)
			return err
		})
	})
	return ts, err
}

func (t *Target) update(ctx context.Context, channel, ts string, blocks []slack.Block, fallback string) error {
	return t.shortenOnRefusal(channel, blocks, func(blocks []slack.Block) error {
		return t.withRetry(ctx, channel, func() error {
			_, _, _, err := t.api.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionBlocks(blocks...), slack.MsgOptionText(fallback, false))
			return err
		})
	})
}

// refusedBlocks are Slack's refusals of a message's blocks: too long, or
// something in them it will not render. Sending the same again cannot pass.
var refusedBlocks = map[string]bool{"msg_blocks_too_long": true, "invalid_blocks": true}

// shortenOnRefusal sends blocks, and once more shortened when Slack refuses
// them: the head and the suspect beat no message at all.
func (t *Target) shortenOnRefusal(channel string, blocks []slack.Block, send func([]slack.Block) error) error {
	err := send(blocks)
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || !refusedBlocks[se.Err] {
		return err
	}
	t.log.Warn("slack refused the message's blocks; sending it shortened", "target", t.name, "channel", channel, "error", se.Err)
	return send(shortened(blocks, se.Err))
}

// suspectLead starts the section naming the suspect (changeBlocks).
const suspectLead = ":rotating_light: *Changed just before:* "

// shortText bounds each section of a shortened message.
const shortText = 1000

// shortened is the message sent instead of one Slack refused: its head
// (the first section) and the suspect without its links, each cut short,
// and a note that it was shortened. The fallback text goes as it was.
func shortened(blocks []slack.Block, code string) []slack.Block {
	var out []slack.Block
	for i, b := range blocks {
		s, ok := b.(*slack.SectionBlock)
		if !ok || s.Text == nil {
			continue
		}
		body := s.Text.Text
		if i > 0 {
			if !strings.HasPrefix(body, suspectLead) {
				continue
			}
			body, _, _ = strings.Cut(body, "\n") // the links: possibly what Slack refused
		}
		out = append(out, slack.NewSectionBlock(text(sources.Truncate(body, shortText)), nil, nil))
	}
	return append(out, slack.NewContextBlock("", text(fmt.Sprintf("_message shortened: Slack refused the full one (%s)_", code))))
}

// withRetry waits for the channel's limiter and honours one 429 Retry-After
// if it fits in the caller's deadline; otherwise the error goes up and
// Alertmanager retries.
func (t *Target) withRetry(ctx context.Context, channel string, call func() error) error {
	for attempt := 0; ; attempt++ {
		if err := t.limiter(channel).Wait(ctx); err != nil {
			return fmt.Errorf("rate limit wait: %w", err)
		}
		err := call()
		var rl *slack.RateLimitedError
		if !errors.As(err, &rl) || attempt > 0 {
			return err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < rl.RetryAfter {
			return err
		}
		select {
		case <-time.After(rl.RetryAfter):
		case <-ctx.Done():
			return err
		}
	}
}

// permanent Slack errors: retrying cannot help until someone fixes the setup.
var permanent = map[string]string{
	"channel_not_found": "the channel does not exist or the bot cannot see it",
	"not_in_channel":    "invite the bot to the channel",
	"invalid_auth":      "the bot token is invalid",
	"account_inactive":  "the bot token belongs to a deactivated app",
	"token_revoked":     "the bot token was revoked",
	"missing_scope":     "the bot token lacks chat:write",
	"is_archived":       "the channel is archived",
	// Refused a second time, shortened (shortenOnRefusal): retrying sends
	// the same again.
	"msg_blocks_too_long": "Slack refused the message as too long, even shortened",
	"invalid_blocks":      "Slack refused the message's blocks, even shortened",
}

func (t *Target) failed(err error) deliver.Result {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		if hint, ok := permanent[se.Err]; ok {
			return deliver.Result{Outcome: deliver.Rejected, Err: fmt.Errorf("slack %s: %s: %s", t.name, se.Err, hint)}
		}
	}
	if e := err.Error(); permanent[e] != "" {
		return deliver.Result{Outcome: deliver.Rejected, Err: fmt.Errorf("slack %s: %s: %s", t.name, e, permanent[e])}
	}
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return deliver.Result{Outcome: deliver.Retry, Status: http.StatusTooManyRequests, Err: fmt.Errorf("slack %s: rate limited (retry after %s)", t.name, rl.RetryAfter)}
	}
	return deliver.Result{Outcome: deliver.Retry, Err: fmt.Errorf("slack %s: %v", t.name, scrub(err, t.cfg.Token))}
}

func scrub(err error, token string) string {
	if token == "" {
		return err.Error()
	}
	return strings.ReplaceAll(err.Error(), token, "<redacted>")
}

// notification is the webhook body as the Slack target reads it.
type notification struct {
	group
	GroupKey string
}

// severity is the group's severity value: the common one, else the worst
// firing alert's as s ranks it (its aliases count: P1 → critical).
func (n notification) severity(s Severity) string {
	if v := n.CommonLabels[s.Label]; v != "" {
		return v
	}
	best, bestLevel := "", -1
	for _, a := range n.firing() {
		if v := a.Labels[s.Label]; v != "" {
			if lv, _ := s.level(v, ""); lv > bestLevel {
				best, bestLevel = v, lv
			}
		}
	}
	return best
}

func (n notification) fallback() string {
	return fmt.Sprintf("[%s] %s", n.Status, n.title())
}

// decodeGroup reads the enriched body with the pipeline's own decoder.
func decodeGroup(body []byte) (notification, error) {
	p, err := enrich.DecodeWebhook(body)
	if err != nil {
		return notification{}, fmt.Errorf("not a webhook body: %w", err)
	}
	n := notification{GroupKey: p.GroupKey, group: group{Status: p.Status, Alerts: p.Alerts,
		GroupLabels: p.LabelSet("groupLabels"), CommonLabels: p.LabelSet("commonLabels")}}
	for _, a := range p.Alerts {
		if a.StartsAt.Year() > 1 && (n.StartsAt.IsZero() || a.StartsAt.Before(n.StartsAt)) {
			n.StartsAt = a.StartsAt
		}
	}
	return n, nil
}
