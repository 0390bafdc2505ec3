package grafana

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/httperr"
)

// annotation is one item of GET /api/annotations (Grafana's
// pkg/services/annotations ItemDTO). Grafana omits empty fields, and before
// 9.x wrote dashboardUID as null: every field is optional.
type annotation struct {
	ID           int64    `json:"id"`
	AlertID      int64    `json:"alertId"`
	DashboardUID *string  `json:"dashboardUID"`
	DashboardID  int64    `json:"dashboardId"`
	PanelID      int64    `json:"panelId"`
	Login        string   `json:"login"`
	Email        string   `json:"email"`
	Time         int64    `json:"time"`    // epoch ms
	TimeEnd      int64    `json:"timeEnd"` // epoch ms; equal to time for a point
	Text         string   `json:"text"`
	Tags         []string `json:"tags"`
}

// maxBody bounds one answer: maxLimit annotations of a few KiB each.
const maxBody = 64 << 20

// list reads the annotations of [from, to] that carry every configured tag,
// newest first, at most Limit. Alert state annotations (alertId > 0) are
// left out by Grafana (type=annotation).
func (s *Source) list(ctx context.Context, from, to int64) ([]byte, error) {
	q := url.Values{}
	q.Set("from", strconv.FormatInt(from, 10))
	q.Set("to", strconv.FormatInt(to, 10))
	q.Set("limit", strconv.Itoa(s.cfg.Limit))
	q.Set("type", "annotation")
	for _, t := range s.cfg.Tags {
		q.Add("tags", t)
	}
	if len(s.cfg.Tags) > 0 {
		q.Set("matchAny", "false")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL+"/api/annotations?"+q.Encode(), nil)
	if err != nil {
		return nil, errors.New("invalid url")
	}
	req.Header.Set("Accept", "application/json")
	if s.cfg.OrgID > 0 {
		req.Header.Set("X-Grafana-Org-Id", strconv.FormatInt(s.cfg.OrgID, 10))
	}
	s.requests.Add(1)
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, describeTransport(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, describeTransport(err)
	}
	if resp.StatusCode == http.StatusOK && len(body) > maxBody {
		return nil, fmt.Errorf("answer larger than %d MiB: lower limit", maxBody>>20)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return body, nil
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("token rejected by Grafana (%s): expired or revoked? Create a service-account token with the Viewer role", grafanaMessage(body))
	case http.StatusForbidden:
		return nil, fmt.Errorf("token lacks annotations:read (%s): give its service account the Viewer role", grafanaMessage(body))
	case http.StatusNotFound:
		return nil, errors.New("no /api/annotations at url (is url Grafana's root, sub-path included?)")
	}
	if m := grafanaMessage(body); m != "" {
		return nil, fmt.Errorf("Grafana answered %d: %s", resp.StatusCode, m)
	}
	return nil, fmt.Errorf("Grafana answered %d", resp.StatusCode)
}

// grafanaMessage is the "message" of Grafana's error body
// ({"message":"Unauthorized"}), short; empty for any other body.
func grafanaMessage(body []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return sources.Truncate(strings.Join(strings.Fields(e.Message), " "), 200)
}

// describeTransport says why a request got no answer, without its URL
// (net/http quotes it; a user may have put credentials in it).
func describeTransport(err error) error {
	err = httperr.Unwrap(err)
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return errors.New("cancelled")
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errors.New("timeout")
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), strings.Contains(err.Error(), "tls:"):
		return fmt.Errorf("TLS with Grafana failed (%v); set http_config.tls_config.ca_file", err)
	}
	return fmt.Errorf("Grafana unreachable: %v", err)
}
