// Package grafana is the Grafana annotations source: the deploys and
// manual changes that CI, Argo CD notifications or Flux already mark as
// annotations in Grafana, mapped to alert subjects by their tags with
// configured rules. The annotations of the look-back are read in the
// background every refresh; alerts are answered from memory, so a slow or
// dead Grafana never delays one.
package grafana

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// Source is the Grafana annotations source.
type Source struct {
	name  string
	cfg   Config
	rules []rule
	log   *slog.Logger
	http  *http.Client
	now   func() time.Time

	// refreshMu makes one read at a time (the loop, a test's Refresh).
	refreshMu sync.Mutex
	mu        sync.RWMutex
	index     []sources.Change // mapped annotations, sorted by StartedAt
	body      []byte           // the last good answer, to tell an unchanged one
	readAt    time.Time        // when the last good answer came
	err       error            // of the last read; nil when it succeeded
	logged    string           // the error text last logged, to log a repeat once
	attempted atomic.Bool      // a read has finished, well or not

	requests, failures, unchanged atomic.Int64
	truncated                     atomic.Bool
}

var (
	_ sources.Source  = (*Source)(nil)
	_ sources.Starter = (*Source)(nil)
)

// New builds the source over client (which carries the token and TLS
// settings of http_config); it does no I/O. cfg must have passed Validate.
func New(name string, cfg Config, client *http.Client, log *slog.Logger) (*Source, error) {
	cfg.Defaults()
	rules, err := compile(cfg.Rules)
	if err != nil {
		return nil, fmt.Errorf("grafana rules: %w", err)
	}
	if client == nil {
		client = &http.Client{}
	}
	if client.Timeout == 0 {
		// A read serves every later alert: it may take longer than one
		// alert's budget, never longer than the refresh it belongs to.
		c := *client
		c.Timeout = min(cfg.Refresh, 30*time.Second)
		client = &c
	}
	return &Source{name: name, cfg: cfg, rules: rules, log: log, http: client, now: time.Now}, nil
}

func (s *Source) Name() string { return s.name }

// Ready once the first read has finished, well or not: an unreachable
// Grafana must not keep whatchanged out of its Service (alerts still go
// out, with the error beside them).
func (s *Source) Ready() bool { return s.attempted.Load() }

// Stats is what the source has done, for metrics.
type Stats struct {
	Requests, Failures, Unchanged int64
	Changes                       int  // mapped annotations held
	Truncated                     bool // the last read hit limit
}

func (s *Source) Stats() Stats {
	s.mu.RLock()
	n := len(s.index)
	s.mu.RUnlock()
	return Stats{Requests: s.requests.Load(), Failures: s.failures.Load(), Unchanged: s.unchanged.Load(), Changes: n, Truncated: s.truncated.Load()}
}

// Start reads at once, then every Refresh until ctx ends; it returns at once.
func (s *Source) Start(ctx context.Context) error {
	go func() {
		_ = s.Refresh(ctx)
		sources.Every(ctx, s.cfg.Refresh, func() { _ = s.Refresh(ctx) })
	}()
	return nil
}

// Refresh reads the look-back's annotations and replaces what is held; on
// failure what is held stays and the error is kept for the answers.
func (s *Source) Refresh(ctx context.Context) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	now := s.now()
	body, err := s.list(ctx, now.Add(-s.cfg.Lookback).UnixMilli(), now.UnixMilli())
	var index []sources.Change
	switch {
	case err != nil:
	case s.same(body):
		s.unchanged.Add(1)
	default:
		index, err = s.mapAll(body)
	}
	if err != nil {
		err = fmt.Errorf("reading annotations: %w", err)
		s.failures.Add(1)
	}
	s.mu.Lock()
	s.err = err
	if err == nil {
		s.readAt = now
		if index != nil {
			s.index, s.body = index, body
		}
	}
	s.mu.Unlock()
	s.attempted.Store(true)
	s.logOutcome(ctx, err)
	return err
}

func (s *Source) same(body []byte) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.body != nil && bytes.Equal(s.body, body)
}

// logOutcome logs a failing Grafana once per distinct error, and its
// recovery.
func (s *Source) logOutcome(ctx context.Context, err error) {
	switch {
	case err == nil && s.logged != "":
		s.log.Info("grafana answers again", "source", s.name)
		s.logged = ""
	case err != nil && ctx.Err() == nil && err.Error() != s.logged:
		s.log.Warn("grafana: reading annotations failed; answering from the last good read", "source", s.name, "err", err)
		s.logged = err.Error()
	}
}

// mapAll decodes an answer and maps each annotation a rule matches.
func (s *Source) mapAll(body []byte) ([]sources.Change, error) {
	var list []annotation
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("unexpected answer from Grafana (not a list of annotations): %v", err)
	}
	full := len(list) >= s.cfg.Limit
	if full && !s.truncated.Load() {
		s.log.Warn("grafana: a read returned limit annotations; older ones in the look-back are not seen (raise limit, or narrow tags)",
			"source", s.name, "limit", s.cfg.Limit)
	}
	s.truncated.Store(full)
	index := make([]sources.Change, 0, len(list))
	for _, a := range list {
		if a.AlertID != 0 || a.Time == 0 {
			continue // an alert's state change, not a change (older Grafanas ignore type=)
		}
		if c, ok := s.change(a); ok {
			index = append(index, c)
		}
	}
	sort.SliceStable(index, func(i, j int) bool { return index[i].StartedAt.Before(index[j].StartedAt) })
	return index, nil
}

// change maps one annotation, if a rule takes it.
func (s *Source) change(a annotation) (sources.Change, bool) {
	subject, kind, ok := match(s.rules, a.Tags)
	if !ok {
		return sources.Change{}, false
	}
	if kind == "" {
		kind = kindOf(a.Tags)
	}
	start := time.UnixMilli(a.Time).UTC()
	message, link := readText(a.Text)
	version, revision := revisionOf(a.Tags)
	c := sources.Change{Source: s.name, Kind: kind, ID: "grafana/" + strconv.FormatInt(a.ID, 10), Subject: subject,
		Version: version, Revision: revision, StartedAt: start, Message: message, Author: a.Login}
	if c.Author == "" {
		c.Author = a.Email
	}
	// A service account (CI, Argo CD notifications, Flux) wrote it for
	// whoever shipped the change: it deployed, it did not author.
	if strings.HasPrefix(a.Login, "sa-") {
		c.Author, c.DeployedBy = "", a.Login
	}
	if a.TimeEnd > a.Time {
		c.FinishedAt = time.UnixMilli(a.TimeEnd).UTC()
	}
	grafana := s.link(a)
	// The link the annotation's writer gave (the CI run, the PR) says
	// most; Grafana's own link stays among the links.
	c.URL = grafana
	if link != "" {
		c.Links = []sources.Link{{Name: "link", URL: link}}
	}
	return c, true
}

// link opens the annotation's dashboard around it, or the annotation
// itself (as JSON, for a signed-in user) when it belongs to none.
func (s *Source) link(a annotation) string {
	if a.DashboardUID != nil && *a.DashboardUID != "" {
		q := url.Values{}
		q.Set("from", strconv.FormatInt(a.Time-int64(time.Hour/time.Millisecond), 10))
		q.Set("to", strconv.FormatInt(max(a.TimeEnd, a.Time)+int64(time.Hour/time.Millisecond), 10))
		if s.cfg.OrgID > 0 {
			q.Set("orgId", strconv.FormatInt(s.cfg.OrgID, 10))
		}
		if a.PanelID > 0 {
			q.Set("viewPanel", strconv.FormatInt(a.PanelID, 10))
		}
		return s.cfg.UIURL + "/d/" + url.PathEscape(*a.DashboardUID) + "?" + q.Encode()
	}
	u := s.cfg.UIURL + "/api/annotations/" + strconv.FormatInt(a.ID, 10)
	if s.cfg.OrgID > 0 {
		u += "?orgId=" + strconv.FormatInt(s.cfg.OrgID, 10)
	}
	return u
}

// errNotSynced is answered until the first read finished.
var errNotSynced = fmt.Errorf("annotations %w (the first read of Grafana is under way)", sources.ErrNotSynced)

// Changes returns the held annotations mapped to subjects related to
// q.Subject that started in q's window, newest first. After a failed read
// they come with its error: they may be stale.
func (s *Source) Changes(ctx context.Context, q sources.Query) ([]sources.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Subject.IsZero() {
		return nil, nil
	}
	if !s.attempted.Load() {
		return nil, errNotSynced
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	lo := sort.Search(len(s.index), func(i int) bool { return !s.index[i].StartedAt.Before(q.From(sources.RelationWorkload)) })
	hi := sort.Search(len(s.index), func(i int) bool { return s.index[i].StartedAt.After(q.Until) })
	var out []sources.Change
	loose := 0
	for i := hi - 1; i >= lo; i-- { // newest first, so MaxLoose keeps the newest
		c := s.index[i]
		rel := sources.Relate(q.Subject, c.Subject)
		if rel == sources.RelationNone || c.StartedAt.Before(q.From(rel)) {
			continue
		}
		if rel == sources.RelationNamespace {
			if q.MaxLoose > 0 && loose >= q.MaxLoose {
				continue
			}
			loose++
		}
		c.Links = append([]sources.Link(nil), c.Links...) // the caller may append; the index is shared
		out = append(out, c)
	}
	if s.err != nil {
		if s.readAt.IsZero() {
			return out, s.err
		}
		return out, fmt.Errorf("%w (answering from the read of %s)", s.err, s.readAt.UTC().Format(time.RFC3339))
	}
	return out, nil
}
