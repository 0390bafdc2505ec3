package scenarios_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"
)

// senderFormats are the services that post their own JSON to
// POST /api/v1/changes/{format}.
var senderFormats = []string{"flagsmith", "flux", "launchdarkly", "openfeature", "unleash"}

// signatureHeaders: the services that cannot send a token sign the body
// (HMAC-SHA256, hex) with the webhook's secret and send it in this header
// (LaunchDarkly "Sign this webhook"; Flagsmith environment webhooks with a
// secret). The runner configures sources.changes.signing_secret_files
// for both, as an operator of such a webhook must.
var signatureHeaders = map[string]string{
	"launchdarkly": "X-LD-Signature",
	"flagsmith":    "X-Flagsmith-Signature",
}

// signingSecret is a marker: it must never show in whatchanged's log or
// answers.
const signingSecret = "scenario-signing-secret-MARKER"

// msRef is a whole string "${ms:-3m}": epoch milliseconds (LaunchDarkly's
// `date`), written as a JSON number.
var msRef = regexp.MustCompile(`^\$\{ms:([^}]*)\}$`)

// checkTimeRefs reports the first time reference in a sender's body that
// is not an offset.
func checkTimeRefs(v any) error {
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			if err := checkTimeRefs(e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := checkTimeRefs(e); err != nil {
				return err
			}
		}
	case string:
		if m := msRef.FindStringSubmatch(x); m != nil {
			if _, err := ParseOffset(m[1]); err != nil {
				return fmt.Errorf("%s: %w", x, err)
			}
			return nil
		}
		for _, m := range timeRef.FindAllStringSubmatch(x, -1) {
			if _, err := ParseOffset(m[1]); err != nil {
				return fmt.Errorf("%s: %w (write ${-3m} for RFC 3339, or a whole \"${ms:-3m}\" for epoch milliseconds)", m[0], err)
			}
		}
	}
	return nil
}

// bodyAt is a copy of a sender's body with its times set from startsAt.
func bodyAt(v any, startsAt time.Time) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = bodyAt(e, startsAt)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = bodyAt(e, startsAt)
		}
		return out
	case string:
		if m := msRef.FindStringSubmatch(x); m != nil {
			off, _ := ParseOffset(m[1]) // checked when the scenario loaded
			return off.From(startsAt).UnixMilli()
		}
		return timeRef.ReplaceAllStringFunc(x, func(m string) string {
			off, _ := ParseOffset(timeRef.FindStringSubmatch(m)[1])
			return off.From(startsAt).UTC().Format(time.RFC3339)
		})
	}
	return v
}

// pushFrom posts a sender's own event as the service would: its JSON to
// the webhook URL, signed when the service signs. 201 or 200 is recorded;
// 202 (not a change) is what `ignored: true` expects.
func (wc *whatchanged) pushFrom(ctx context.Context, ch PushedChange, startsAt time.Time) error {
	body, err := json.Marshal(bodyAt(ch.Body, startsAt))
	if err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range ch.Query {
		q.Set(k, v)
	}
	path := "/api/v1/changes/" + ch.Format
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wc.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if h := signatureHeaders[ch.Format]; h != "" {
		mac := hmac.New(sha256.New, []byte(signingSecret))
		mac.Write(body)
		req.Header.Set(h, hex.EncodeToString(mac.Sum(nil)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	out = bytes.TrimSpace(out)
	switch {
	case ch.Ignored && resp.StatusCode != http.StatusAccepted:
		return fmt.Errorf("POST %s answered %d, want 202 (not a change): %s", path, resp.StatusCode, out)
	case ch.Ignored:
		return nil
	case resp.StatusCode == http.StatusAccepted:
		return fmt.Errorf("POST %s answered 202, recorded nothing: %s", path, out)
	case resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK:
		return fmt.Errorf("POST %s answered %d: %s", path, resp.StatusCode, out)
	}
	return nil
}

func TestSenderBodyTimes(t *testing.T) {
	startsAt := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	body := map[string]any{
		"date":     "${ms:-3m}",
		"data":     map[string]any{"timestamp": "${-90s}", "note": "at ${+1m} and ${-1d}"},
		"accesses": []any{map[string]any{"when": "${ms:0}"}},
		"count":    3,
	}
	got := bodyAt(body, startsAt).(map[string]any)
	if want := startsAt.Add(-3 * time.Minute).UnixMilli(); got["date"] != want {
		t.Errorf("date = %v, want %d (epoch ms)", got["date"], want)
	}
	data := got["data"].(map[string]any)
	if data["timestamp"] != "2026-11-21T09:58:30Z" || data["note"] != "at 2026-11-21T10:01:00Z and 2026-11-20T10:00:00Z" {
		t.Errorf("data = %v", data)
	}
	if got["accesses"].([]any)[0].(map[string]any)["when"] != startsAt.UnixMilli() || got["count"] != 3 {
		t.Errorf("body = %v", got)
	}
	if body["date"] != "${ms:-3m}" {
		t.Errorf("bodyAt changed the scenario's body: %v", body["date"])
	}
	if err := checkTimeRefs(body); err != nil {
		t.Errorf("checkTimeRefs: %v", err)
	}
	for _, bad := range []any{"${-3x}", map[string]any{"a": []any{"${ms:soon}"}}, "x ${ms:-3m}"} {
		if err := checkTimeRefs(bad); err == nil {
			t.Errorf("checkTimeRefs(%v): want an error", bad)
		}
	}
}
