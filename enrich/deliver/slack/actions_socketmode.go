package slack

import (
	"context"
	"errors"
	"net/http"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// RunSocketMode receives the clicks over Socket Mode (an outbound
// WebSocket opened with the app-level token: no public ingress) until ctx
// ends; slack-go reconnects on its own. Each interaction is acknowledged
// at once and acted on after.
func (t *Target) RunSocketMode(ctx context.Context, client *http.Client) error {
	a := t.cfg.Actions
	if a == nil || a.RequestURL {
		return errors.New("socket mode is off")
	}
	opts := []slack.Option{slack.OptionHTTPClient(client), slack.OptionAppLevelToken(a.AppToken)}
	if t.cfg.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(t.cfg.APIURL))
	}
	sm := socketmode.New(slack.New(t.cfg.Token, opts...), socketmode.OptionLog(smLogger{t.log}))
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case evt := <-sm.Events:
				switch evt.Type {
				case socketmode.EventTypeInteractive:
					if evt.Request != nil {
						_ = sm.Ack(*evt.Request)
					}
					if cb, ok := evt.Data.(slack.InteractionCallback); ok {
						go t.act(context.WithoutCancel(ctx), cb)
					}
				case socketmode.EventTypeConnectionError, socketmode.EventTypeInvalidAuth:
					t.log.Warn("slack socket mode: cannot connect", "target", t.name, "event", evt.Type)
				default:
					if evt.Request != nil && evt.Request.EnvelopeID != "" {
						_ = sm.Ack(*evt.Request)
					}
				}
			}
		}
	}()
	err := sm.RunContext(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return errors.New(scrub(scrubErr(err, a.AppToken), t.cfg.Token))
}

func scrubErr(err error, secret string) error {
	if err == nil {
		return errors.New("socket mode stopped")
	}
	return errors.New(scrub(err, secret))
}
