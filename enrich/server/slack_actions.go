package server

import (
	"io"
	"maps"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"
)

// slackActions is a Slack target taking its clicks by request URL.
type slackActions interface {
	ActionsByRequestURL() bool
	VerifyRequest(h http.Header, body []byte) error
	HandleRequest(body []byte) error
}

// maxSlackActionBody bounds an interaction payload (the parent message is
// in it: Slack caps a message at 50 blocks).
const maxSlackActionBody = 1 << 20

// slackAction is POST /slack/actions: Slack's interactivity request URL.
// Its only authentication is Slack's signature; it is tried against each
// Slack downstream taking clicks this way (they may be different apps). A
// request none verifies is 401, logged without its body.
func (s *Server) slackAction(c *gin.Context) {
	d := s.d()
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxSlackActionBody+1))
	if err != nil || len(body) > maxSlackActionBody {
		fail(c, http.StatusBadRequest, "unreadable or too large interaction payload")
		return
	}
	var reason error
	for _, name := range slices.Sorted(maps.Keys(d.Targets)) {
		t, ok := d.Targets[name].(slackActions)
		if !ok || !t.ActionsByRequestURL() {
			continue
		}
		if reason = t.VerifyRequest(c.Request.Header, body); reason != nil {
			continue
		}
		if err := t.HandleRequest(body); err != nil {
			d.Log.Warn("slack action: bad payload", "downstream", name, "err", err)
			fail(c, http.StatusBadRequest, "payload: "+err.Error())
			return
		}
		c.Status(http.StatusOK)
		return
	}
	if reason == nil {
		fail(c, http.StatusNotFound, "no Slack downstream takes actions by request URL")
		return
	}
	d.Log.Warn("slack action refused: not signed by Slack or outside the 5-minute window", "remote", c.ClientIP(), "err", reason)
	fail(c, http.StatusUnauthorized, "request not verified")
}
