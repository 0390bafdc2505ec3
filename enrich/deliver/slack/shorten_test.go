package slack

import (
	"context"
	"strings"
	"testing"

	"github.com/whatchanged/whatchanged/enrich/deliver"
)

// Slack refuses a message's blocks: the same message goes once more,
// shortened to its head and suspect, and the thread goes on from it.
func TestRefusedBlocksSentShortened(t *testing.T) {
	t.Run("msg_blocks_too_long once: a shortened parent", func(t *testing.T) {
		f := newFakeSlack(t)
		f.fail = []string{"msg_blocks_too_long"}
		tg := newTarget(t, f, &BoltThreads{Store: newBolt(t, t.TempDir())}, nil)
		deliverOK(t, tg, payload("firing", "high", 3, true))
		deliverOK(t, tg, payload("firing", "high", 3, true))
		c := f.recorded()
		if len(c) != 3 {
			t.Fatalf("%d calls: %+v", len(c), c)
		}
		short := string(c[1].Blocks)
		for _, want := range []string{"[FIRING:3] HighErrorRate", "S0NCALL", "Changed just before:* rollout of shop/api acme/api:1.8.4", "message shortened: Slack refused the full one (msg_blocks_too_long)"} {
			if !strings.Contains(short, want) {
				t.Errorf("shortened message lacks %q: %s", want, short)
			}
		}
		for _, gone := range []string{"Recent changes", "compare/v1.8.3", "pod 2"} {
			if strings.Contains(short, gone) {
				t.Errorf("shortened message still has %q: %s", gone, short)
			}
		}
		if c[1].ThreadTS != "" || c[1].Text != "[firing] HighErrorRate" || c[2].ThreadTS != "1763700000.000001" {
			t.Errorf("the shortened parent did not start the thread: %+v", c)
		}
	})
	t.Run("invalid_blocks on the resolve edit: edited shortened", func(t *testing.T) {
		f := newFakeSlack(t)
		f.fail = []string{"", "invalid_blocks"}
		tg := newTarget(t, f, &BoltThreads{Store: newBolt(t, t.TempDir())}, nil)
		deliverOK(t, tg, payload("firing", "high", 1, true))
		deliverOK(t, tg, payload("resolved", "high", 1, true))
		c := f.recorded()
		if len(c) != 4 || c[2].Method != "chat.update" || c[2].TS != "1763700000.000001" || !strings.Contains(string(c[2].Blocks), "RESOLVED") ||
			!strings.Contains(string(c[2].Blocks), "message shortened") || c[3].ThreadTS != "1763700000.000001" {
			t.Fatalf("calls: %+v", c)
		}
	})
	t.Run("refused again shortened: rejected with the reason, not retried", func(t *testing.T) {
		f := newFakeSlack(t)
		f.fail = []string{"invalid_blocks", "invalid_blocks"}
		tg := newTarget(t, f, &BoltThreads{Store: newBolt(t, t.TempDir())}, nil)
		r := tg.Deliver(context.Background(), payload("firing", "high", 1, true), nil)
		if r.Outcome != deliver.Rejected || !strings.Contains(r.Err.Error(), "invalid_blocks") || !strings.Contains(r.Err.Error(), "even shortened") || len(f.recorded()) != 2 {
			t.Fatalf("outcome %s %v after %d calls", r.Outcome, r.Err, len(f.recorded()))
		}
	})
}
