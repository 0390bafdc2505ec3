package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack"

	"github.com/whatchanged/whatchanged/enrich"
)

// ActionsConfig turns on the buttons of the parent message. It is used
// through its pointer (it caches the allowed groups' members).
type ActionsConfig struct {
	// RequestURL: Slack posts interactions to POST /slack/actions, signed
	// with SigningSecret; otherwise Socket Mode with AppToken.
	RequestURL    bool
	AppToken      string // xapp-…, connections:write; a secret
	SigningSecret string // a secret
	// Alertmanager is where silences are made: its base URL and a client
	// carrying its http_config.
	AlertmanagerURL string
	Alertmanager    *http.Client
	// Only these Slack user IDs, and the members of these user groups, may act.
	AllowedUsers  []string
	AllowedGroups []string
	// Counter is whatchanged_slack_actions_total{action,outcome}; nil: not counted.
	Counter *prometheus.CounterVec

	mu      sync.Mutex
	members map[string]cachedMembers // user group ID → members
}

type cachedMembers struct {
	ids     []string
	fetched time.Time
}

// membersFresh bounds how long a removal from an allowed group takes to
// take effect without asking Slack on every click.
const membersFresh = 5 * time.Minute

// NewActionsCounter is whatchanged_slack_actions_total, registered by the caller.
func NewActionsCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "whatchanged_slack_actions_total",
		Help: "Clicks on the buttons of Slack parent messages, by action and outcome (done, refused, failed, ignored).",
	}, []string{"action", "outcome"})
}

// Block and action IDs: the actions row and the two status lines of the
// parent, found again by ID when a click edits the parent.
const (
	actionsBlockID = "whatchanged_actions"
	silenceBlockID = "whatchanged_silence"
	ackBlockID     = "whatchanged_ack"

	actSilence1h       = "silence_1h"
	actSilence4h       = "silence_4h"
	actSilenceResolved = "silence_until_resolved"
	actUnsilence       = "unsilence"
	actAck             = "acknowledge"
	actRollback        = "rollback"
	actRunbook         = "runbook"
)

// untilResolved is the length of a "silence until resolved": Alertmanager
// silences need an end, and whatchanged does not expire them itself when the
// group resolves, so a day bounds a forgotten one.
const untilResolved = 24 * time.Hour

var knownActions = []string{actSilence1h, actSilence4h, actSilenceResolved, actUnsilence, actAck, actRollback, actRunbook}

var silenceFor = map[string]time.Duration{actSilence1h: time.Hour, actSilence4h: 4 * time.Hour, actSilenceResolved: untilResolved}

// actionValue is what a button carries back: the group's key (for the
// log) and matchers, and the silence an Unsilence button expires.
type actionValue struct {
	Key      string            `json:"k,omitempty"`
	Matchers map[string]string `json:"m,omitempty"`
	Silence  string            `json:"s,omitempty"`
}

// maxValue is Slack's limit on a button's value.
const maxValue = 2000

func (v actionValue) encode() string {
	b, _ := json.Marshal(v)
	if len(b) > maxValue && v.Key != "" { // the key is only for the log
		v.Key = ""
		b, _ = json.Marshal(v)
	}
	return string(b)
}

// withActions adds the buttons to a parent message when actions are on.
func (t *Target) withActions(n notification, blocks []slack.Block) []slack.Block {
	if t.cfg.Actions == nil {
		return blocks
	}
	return append(blocks, actionBlocks(n, t.cfg.AnnotationPrefix)...)
}

// actionBlocks: the buttons, and the rollback command to copy when no page
// can do it.
func actionBlocks(n notification, prefix string) []slack.Block {
	matchers := n.GroupLabels
	if len(matchers) == 0 { // no group_by: the labels all alerts share
		matchers = n.CommonLabels
	}
	var els []slack.BlockElement
	if len(matchers) > 0 {
		v := actionValue{Key: n.GroupKey, Matchers: matchers}
		if val := v.encode(); len(val) <= maxValue {
			els = append(els, silenceButtons(val)...)
		}
	}
	els = append(els, slack.NewButtonBlockElement(actAck, actionValue{Key: n.GroupKey}.encode(), plain("Acknowledge")))
	link, command := rollback(n.group, prefix)
	if link != "" {
		els = append(els, slack.NewButtonBlockElement(actRollback, "", plain("Rollback…")).WithURL(link))
	}
	if rb := n.annotation("runbook_url"); isWebURL(rb) {
		els = append(els, slack.NewButtonBlockElement(actRunbook, "", plain("Runbook")).WithURL(rb))
	}
	blocks := []slack.Block{slack.NewActionBlock(actionsBlockID, els...)}
	if command != "" {
		blocks = append(blocks, slack.NewContextBlock("", text("To roll back: `"+command+"`")))
	}
	return blocks
}

func silenceButtons(value string) []slack.BlockElement {
	return []slack.BlockElement{
		slack.NewButtonBlockElement(actSilence1h, value, plain("Silence 1h")),
		slack.NewButtonBlockElement(actSilence4h, value, plain("Silence 4h")),
		slack.NewButtonBlockElement(actSilenceResolved, value, plain("Silence until resolved")),
	}
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
}

// rollback is where the suspect is rolled back: Argo CD's history and
// rollback view of its app, else the diff to revert on GitHub, else the
// kubectl command for a Deployment's previous revision. whatchanged only
// links; it never writes to a cluster or to Git.
func rollback(g group, prefix string) (link, command string) {
	if g.annotation(prefix+enrich.AnnSuspect) == "" {
		return "", ""
	}
	if u := g.annotation(prefix + enrich.AnnArgoCDURL); isWebURL(u) {
		p, _ := url.Parse(u)
		q := p.Query()
		q.Set("rollback", "0") // opens Argo CD's "History and rollback" panel
		p.RawQuery = q.Encode()
		return p.String(), ""
	}
	if u := g.annotation(prefix + enrich.AnnCompareURL); isWebURL(u) {
		return u, ""
	}
	var changes []struct {
		Role     string `json:"role"`
		Rollouts []struct {
			Namespace, Kind, Name, PreviousRevision string
		} `json:"rollouts"`
	}
	if json.Unmarshal([]byte(g.annotation(prefix+enrich.AnnChanges)), &changes) != nil { // off or cut
		return "", ""
	}
	for _, c := range changes {
		if c.Role != enrich.RoleSuspect {
			continue
		}
		for _, r := range c.Rollouts {
			if r.Kind == "Deployment" && r.Name != "" && r.Namespace != "" && r.PreviousRevision != "" {
				return "", fmt.Sprintf("kubectl rollout undo deployment/%s -n %s --to-revision=%s", r.Name, r.Namespace, r.PreviousRevision)
			}
		}
	}
	return "", ""
}

func isWebURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// Interactions of this target arrive by request URL.
func (t *Target) ActionsByRequestURL() bool { return t.cfg.Actions != nil && t.cfg.Actions.RequestURL }

// VerifyRequest checks a request-URL request's signature (v0, HMAC-SHA256
// with the signing secret) and its timestamp (within 5 minutes: a replay
// window).
func (t *Target) VerifyRequest(h http.Header, body []byte) error {
	if !t.ActionsByRequestURL() {
		return errors.New("actions by request URL are off")
	}
	v, err := slack.NewSecretsVerifier(h, t.cfg.Actions.SigningSecret)
	if err != nil {
		return err
	}
	if _, err := v.Write(body); err != nil {
		return err
	}
	return v.Ensure()
}

// HandleRequest acts on a verified request-URL body (a form with payload).
// Slack wants its answer within 3 seconds; the work goes on after it.
func (t *Target) HandleRequest(body []byte) error {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return fmt.Errorf("not a form: %w", err)
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	go t.act(context.Background(), cb)
	return nil
}

// actTimeout bounds one click's work (Alertmanager, then Slack).
const actTimeout = 30 * time.Second

// act performs the clicked action; every click is logged and counted.
func (t *Target) act(ctx context.Context, cb slack.InteractionCallback) {
	ctx, cancel := context.WithTimeout(ctx, actTimeout)
	defer cancel()
	if cb.Type != slack.InteractionTypeBlockActions {
		return
	}
	for _, a := range cb.ActionCallback.BlockActions {
		if a.BlockID != actionsBlockID {
			continue
		}
		var v actionValue
		_ = json.Unmarshal([]byte(a.Value), &v) // link buttons carry none
		log := t.log.With("target", t.name, "action", a.ActionID, "user", cb.User.ID, "user_name", cb.User.Name, "group_key", v.Key)
		outcome, err := t.do(ctx, cb, a, v)
		switch {
		case err != nil:
			log.Warn("slack action failed", "outcome", outcome, "err", err)
		case outcome == "refused":
			log.Warn("slack action refused: the user is not in actions.allowed_users or allowed_groups")
			_, _ = t.api.PostEphemeralContext(ctx, cb.Channel.ID, cb.User.ID,
				slack.MsgOptionText("You are not allowed to act on whatchanged's alerts here.", false))
		case outcome == "done":
			log.Info("slack action")
		}
		if c := t.cfg.Actions.Counter; c != nil {
			name := a.ActionID
			if !slices.Contains(knownActions, name) { // any signed payload may name one
				name = "unknown"
			}
			c.WithLabelValues(name, outcome).Inc()
		}
	}
}

// do is one action: its outcome, and the error when it failed.
func (t *Target) do(ctx context.Context, cb slack.InteractionCallback, a *slack.BlockAction, v actionValue) (string, error) {
	if a.ActionID == actRollback || a.ActionID == actRunbook {
		return "ignored", nil // links: Slack opened them already
	}
	ok, err := t.allowed(ctx, cb.User.ID)
	if err != nil {
		return "failed", fmt.Errorf("allow-list: %w", err)
	}
	if !ok {
		return "refused", nil
	}
	channel, ts := cb.Container.ChannelID, cb.Container.MessageTs
	if channel == "" {
		channel = cb.Channel.ID
	}
	blocks := cb.Message.Blocks.BlockSet
	who := "<@" + cb.User.ID + ">"
	switch a.ActionID {
	case actSilence1h, actSilence4h, actSilenceResolved:
		if len(v.Matchers) == 0 {
			return "failed", errors.New("the button carries no matchers")
		}
		d := silenceFor[a.ActionID]
		end := t.now().Add(d)
		id, err := t.silence(ctx, v.Matchers, end, cb.User)
		if err != nil {
			return "failed", err
		}
		line := fmt.Sprintf(":no_bell: Silenced by %s until %s", who, end.UTC().Format("Jan 2 15:04 MST"))
		if a.ActionID == actSilenceResolved {
			line += " (until resolved, at most 24h)"
		}
		blocks = swapSilence(blocks, actionValue{Key: v.Key, Matchers: v.Matchers, Silence: id}, line)
	case actUnsilence:
		if v.Silence == "" {
			return "failed", errors.New("the button carries no silence")
		}
		if err := t.expire(ctx, v.Silence); err != nil {
			return "failed", err
		}
		blocks = swapSilence(blocks, actionValue{Key: v.Key, Matchers: v.Matchers}, ":bell: Unsilenced by "+who)
	case actAck:
		if _, err := t.post(ctx, channel, ts, false, []slack.Block{slack.NewSectionBlock(text(":eyes: "+who+" is on it"), nil, nil)}, cb.User.Name+" is on it"); err != nil {
			return "failed", fmt.Errorf("thread reply: %w", err)
		}
		blocks = setStatus(blocks, ackBlockID, ":eyes: "+who+" is on it")
	default:
		return "ignored", nil
	}
	if err := t.update(ctx, channel, ts, blocks, cb.Message.Text); err != nil {
		return "failed", fmt.Errorf("edit the parent: %w", err)
	}
	return "done", nil
}

// swapSilence edits the parent after a silence or unsilence: the status
// line, and the Silence buttons swapped for Unsilence or back.
func swapSilence(blocks []slack.Block, v actionValue, line string) []slack.Block {
	blocks = setStatus(blocks, silenceBlockID, line)
	for _, b := range blocks {
		ab, ok := b.(*slack.ActionBlock)
		if !ok || ab.BlockID != actionsBlockID || ab.Elements == nil {
			continue
		}
		var rest []slack.BlockElement
		for _, e := range ab.Elements.ElementSet {
			if btn, ok := e.(*slack.ButtonBlockElement); ok && (silenceFor[btn.ActionID] != 0 || btn.ActionID == actUnsilence) {
				continue
			}
			rest = append(rest, e)
		}
		var head []slack.BlockElement
		if v.Silence != "" {
			head = []slack.BlockElement{slack.NewButtonBlockElement(actUnsilence, v.encode(), plain("Unsilence"))}
		} else {
			head = silenceButtons(v.encode())
		}
		ab.Elements.ElementSet = append(head, rest...)
	}
	return blocks
}

// setStatus puts a status line (by block ID) just above the buttons.
func setStatus(blocks []slack.Block, id, line string) []slack.Block {
	status := slack.NewContextBlock(id, text(line))
	for i, b := range blocks {
		if blockID(b) == id {
			blocks[i] = status
			return blocks
		}
	}
	for i, b := range blocks {
		if blockID(b) == actionsBlockID {
			return slices.Insert(blocks, i, slack.Block(status))
		}
	}
	return append(blocks, status)
}

func blockID(b slack.Block) string {
	switch b := b.(type) {
	case *slack.ActionBlock:
		return b.BlockID
	case *slack.ContextBlock:
		return b.BlockID
	}
	return ""
}

// allowed: the user is listed, or a member of a listed user group.
func (t *Target) allowed(ctx context.Context, user string) (bool, error) {
	a := t.cfg.Actions
	if user == "" {
		return false, nil
	}
	if slices.Contains(a.AllowedUsers, user) {
		return true, nil
	}
	var errs []error
	for _, g := range a.AllowedGroups {
		ids, err := t.members(ctx, g)
		if err != nil {
			errs = append(errs, fmt.Errorf("user group %s: %w", g, err))
			continue
		}
		if slices.Contains(ids, user) {
			return true, nil
		}
	}
	return false, errors.Join(errs...)
}

func (t *Target) members(ctx context.Context, group string) ([]string, error) {
	a := t.cfg.Actions
	a.mu.Lock()
	c, ok := a.members[group]
	a.mu.Unlock()
	if ok && t.now().Sub(c.fetched) < membersFresh {
		return c.ids, nil
	}
	ids, err := t.api.GetUserGroupMembersContext(ctx, group)
	if err != nil {
		if ok { // Slack unreachable: the last known members
			return c.ids, nil
		}
		return nil, errors.New(scrub(err, t.cfg.Token))
	}
	a.mu.Lock()
	if a.members == nil {
		a.members = map[string]cachedMembers{}
	}
	a.members[group] = cachedMembers{ids: ids, fetched: t.now()}
	a.mu.Unlock()
	return ids, nil
}

// silence creates an Alertmanager silence (API v2) for the matchers until end.
func (t *Target) silence(ctx context.Context, matchers map[string]string, end time.Time, user slack.User) (string, error) {
	type matcher struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		IsRegex bool   `json:"isRegex"`
		IsEqual bool   `json:"isEqual"`
	}
	by := user.Name
	if by == "" {
		by = user.ID
	}
	s := struct {
		Matchers  []matcher `json:"matchers"`
		StartsAt  time.Time `json:"startsAt"`
		EndsAt    time.Time `json:"endsAt"`
		CreatedBy string    `json:"createdBy"`
		Comment   string    `json:"comment"`
	}{StartsAt: t.now().UTC(), EndsAt: end.UTC(), CreatedBy: by + " (" + user.ID + ")",
		Comment: "silenced from Slack by " + by + " with whatchanged"}
	for _, k := range slices.Sorted(maps.Keys(matchers)) {
		s.Matchers = append(s.Matchers, matcher{Name: k, Value: matchers[k], IsEqual: true})
	}
	body, _ := json.Marshal(s)
	var out struct {
		SilenceID string `json:"silenceID"`
	}
	if err := t.alertmanager(ctx, http.MethodPost, "/api/v2/silences", body, &out); err != nil {
		return "", err
	}
	if out.SilenceID == "" {
		return "", errors.New("alertmanager answered no silenceID")
	}
	return out.SilenceID, nil
}

// expire ends a silence; one already expired or gone counts as expired.
func (t *Target) expire(ctx context.Context, id string) error {
	err := t.alertmanager(ctx, http.MethodDelete, "/api/v2/silence/"+url.PathEscape(id), nil, nil)
	var se statusError
	if errors.As(err, &se) && se.status == http.StatusNotFound {
		return nil
	}
	return err
}

type statusError struct {
	status int
	msg    string
}

func (e statusError) Error() string { return fmt.Sprintf("alertmanager: %d %s", e.status, e.msg) }

func (t *Target) alertmanager(ctx context.Context, method, path string, body []byte, out any) error {
	a := t.cfg.Actions
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(a.AlertmanagerURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := a.Alertmanager
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // the URL may carry credentials
			return fmt.Errorf("alertmanager %s %s: %w", method, path, ue.Err)
		}
		return fmt.Errorf("alertmanager %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return statusError{resp.StatusCode, strings.TrimSpace(string(b))}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("alertmanager %s %s: %w", method, path, err)
		}
	}
	return nil
}

// logger adapts slog to socketmode's logger.
type smLogger struct{ log *slog.Logger }

func (l smLogger) Output(_ int, s string) error {
	l.log.Debug(strings.TrimSpace(s), "component", "slack-socketmode")
	return nil
}
