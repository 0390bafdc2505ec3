package slack

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources/store"
)

// episode is a high-severity notification of one group whose alerts
// started at startsAt (a new episode after a resolve starts later).
func episode(status string, startsAt time.Time) []byte {
	return []byte(strings.ReplaceAll(string(payload(status, "high", 1, false)), t0.Format(time.RFC3339), startsAt.Format(time.RFC3339)))
}

// ruleTarget mentions the on-call for high only as the rule says (the
// defaults: 3 firings in 1h, or firing again within 15m of resolving), on
// a clock the test moves.
func ruleTarget(t *testing.T, f *fakeSlack, threads Threads) (*Target, *time.Time) {
	clock := t0
	tg := newTarget(t, f, threads, func(c *Config) {
		c.Severity.Levels = map[string]Level{"high": {MentionWhen: &MentionWhen{}}}
	})
	tg.now = func() time.Time { return clock }
	return tg, &clock
}

func mentioned(c call) bool { return strings.Contains(string(c.Blocks), "S0NCALL") }

func TestMentionFollowsTheSituation(t *testing.T) {
	t.Run("the 3rd firing within the hour mentions, once", func(t *testing.T) {
		f := newFakeSlack(t)
		tg, clock := ruleTarget(t, f, &BoltThreads{Store: newBolt(t, t.TempDir())})
		for _, at := range []time.Duration{0, 10 * time.Minute, 40 * time.Minute, 50 * time.Minute} {
			*clock = t0.Add(at)
			deliverOK(t, tg, episode("firing", t0))
		}
		c := f.recorded()
		if len(c) != 4 {
			t.Fatalf("%d calls: %+v", len(c), c)
		}
		want := []struct {
			mention bool
			note    string
		}{{false, ""}, {false, "2nd time in 10m"}, {true, "3rd time in 40m"}, {false, "4th time in 50m"}}
		for i, w := range want {
			if mentioned(c[i]) != w.mention || (w.note != "" && !strings.Contains(string(c[i].Blocks), w.note)) {
				t.Errorf("firing %d: mention=%v, want %v with %q: %s", i+1, mentioned(c[i]), w.mention, w.note, c[i].Blocks)
			}
		}
		if c[0].ThreadTS != "" || c[2].ThreadTS != c[1].ThreadTS || c[2].Broadcast != "true" || c[1].Broadcast != "" {
			t.Errorf("the mention should be a broadcast reply in the thread: %+v", c)
		}
		if strings.Contains(string(c[0].Blocks), " time in ") {
			t.Errorf("a first firing says how often it fired: %s", c[0].Blocks)
		}
	})
	t.Run("firing again within 15m of resolving mentions", func(t *testing.T) {
		f := newFakeSlack(t)
		tg, clock := ruleTarget(t, f, &BoltThreads{Store: newBolt(t, t.TempDir())})
		deliverOK(t, tg, episode("firing", t0))
		*clock = t0.Add(10 * time.Minute)
		deliverOK(t, tg, episode("resolved", t0))
		*clock = t0.Add(15 * time.Minute)
		deliverOK(t, tg, episode("firing", t0.Add(15*time.Minute)))
		c := f.recorded()
		if len(c) != 4 || c[3].ThreadTS != "" {
			t.Fatalf("want parent, update, resolved reply, new parent: %+v", c)
		}
		if mentioned(c[0]) || !mentioned(c[3]) || !strings.Contains(string(c[3].Blocks), "firing again 5m after it resolved") || !strings.Contains(string(c[3].Blocks), "2nd time in 15m") {
			t.Errorf("first parent mention=%v; re-fire parent mention=%v: %s", mentioned(c[0]), mentioned(c[3]), c[3].Blocks)
		}
	})
	t.Run("outside the window: no mention", func(t *testing.T) {
		f := newFakeSlack(t)
		tg, clock := ruleTarget(t, f, &BoltThreads{Store: newBolt(t, t.TempDir())})
		// Three firings, but never three within an hour.
		for _, at := range []time.Duration{0, 35 * time.Minute, 70 * time.Minute} {
			*clock = t0.Add(at)
			deliverOK(t, tg, episode("firing", t0))
		}
		// Resolved, then firing again 20m later: past the 15m.
		*clock = t0.Add(80 * time.Minute)
		deliverOK(t, tg, episode("resolved", t0))
		*clock = t0.Add(100 * time.Minute)
		deliverOK(t, tg, episode("firing", t0.Add(100*time.Minute)))
		c := f.recorded()
		if len(c) != 6 {
			t.Fatalf("%d calls: %+v", len(c), c)
		}
		for i, x := range c {
			if mentioned(x) {
				t.Errorf("call %d mentions: %s", i, x.Blocks)
			}
		}
		if !strings.Contains(string(c[2].Blocks), "2nd time in 35m") || !strings.Contains(string(c[5].Blocks), "2nd time in 30m") {
			t.Errorf("the firings within the hour are not what the messages say: %s / %s", c[2].Blocks, c[5].Blocks)
		}
	})
	t.Run("a flapping alert counts across episodes", func(t *testing.T) {
		f := newFakeSlack(t)
		tg, clock := ruleTarget(t, f, &BoltThreads{Store: newBolt(t, t.TempDir())})
		for _, ep := range []time.Duration{0, 25 * time.Minute, 50 * time.Minute} { // each resolved 5m later, 20m before the next
			*clock = t0.Add(ep)
			deliverOK(t, tg, episode("firing", t0.Add(ep)))
			*clock = t0.Add(ep + 5*time.Minute)
			deliverOK(t, tg, episode("resolved", t0.Add(ep)))
		}
		var parents []call
		for _, x := range f.recorded() {
			if x.Method == "chat.postMessage" && x.ThreadTS == "" {
				parents = append(parents, x)
			}
		}
		if len(parents) != 3 || mentioned(parents[0]) || mentioned(parents[1]) || !mentioned(parents[2]) || !strings.Contains(string(parents[2].Blocks), "3rd time in 50m") {
			t.Errorf("parents: %+v", parents)
		}
	})
	t.Run("without the thread store it cannot count and mentions", func(t *testing.T) {
		f := newFakeSlack(t)
		tg, _ := ruleTarget(t, f, brokenThreads{})
		deliverOK(t, tg, episode("firing", t0))
		if c := f.recorded(); len(c) != 1 || !mentioned(c[0]) {
			t.Errorf("with the store down: %+v", c)
		}
	})
	t.Run("levels without a rule mention as before", func(t *testing.T) {
		f := newFakeSlack(t)
		tg, _ := ruleTarget(t, f, &BoltThreads{Store: newBolt(t, t.TempDir())})
		deliverOK(t, tg, payload("firing", "critical", 1, false))
		if c := f.recorded(); len(c) != 1 || !mentioned(c[0]) || strings.Contains(string(c[0].Blocks), " time in ") {
			t.Errorf("critical (no rule): %+v", c)
		}
	})
}

// A thread saved before firings were counted still threads and counts
// from there.
func TestThreadFromBeforeFiringsWereCounted(t *testing.T) {
	f := newFakeSlack(t)
	st := newBolt(t, t.TempDir())
	defer st.Close()
	old := `{"channel":"#alerts","ts":"1763600000.000001","firing":true,"level":2,"startedAt":"2026-11-21T10:14:00Z"}`
	if err := st.Put(context.Background(), []store.KV{{Key: store.Key{Bucket: threadsBucket, Key: `#alerts|{}:{alertname="HighErrorRate"}`}, Value: []byte(old)}}); err != nil {
		t.Fatal(err)
	}
	b := &BoltThreads{Store: st}
	tg, _ := ruleTarget(t, f, b)
	deliverOK(t, tg, episode("firing", t0))
	if c := f.recorded(); len(c) != 1 || c[0].ThreadTS != "1763600000.000001" || mentioned(c[0]) {
		t.Fatalf("an old thread was not continued: %+v", c)
	}
	th, ok, err := b.Get(context.Background(), `#alerts|{}:{alertname="HighErrorRate"}`)
	if err != nil || !ok || len(th.Firings) != 1 || th.Level != 2 {
		t.Errorf("thread after = %+v ok=%v err=%v", th, ok, err)
	}
	if v, _ := json.Marshal(Thread{Channel: "c", TS: "1"}); strings.Contains(string(v), "firings") {
		t.Errorf("a thread without firings writes them: %s", v)
	}
}

func TestOrdinal(t *testing.T) {
	for n, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th", 21: "21st", 22: "22nd", 101: "101st", 111: "111th"} {
		if got := ordinal(n); got != want {
			t.Errorf("ordinal(%d) = %q, want %q", n, got, want)
		}
	}
}
