package server

import (
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/whatchanged/whatchanged/enrich/timeline"
)

// timeline is GET /api/v1/timeline: what fired and what changed in a
// window, as JSON, or Markdown with Accept: text/markdown or format=md.
func (s *Server) timeline(c *gin.Context) {
	if s.d().Timeline == nil {
		fail(c, http.StatusNotFound, "the timeline needs the alert history (data_dir or redis)")
		return
	}
	markdown, err := wantsMarkdown(c)
	if err != nil {
		c.AbortWithStatusJSON(http.StatusBadRequest, errorBody{Error: err.Error(), Field: "format"})
		return
	}
	now := time.Now()
	from, to := now.Add(-6*time.Hour), now
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := c.Query(p.name); v != "" {
			t, err := timeline.ParseTime(p.name, v, now)
			if err != nil {
				s.badTimeline(c, err)
				return
			}
			*p.dst = t
		}
	}
	f := timeline.Filter{Namespace: c.Query("namespace"), Workload: c.Query("workload"), App: c.Query("app"),
		Alertname: c.Query("alertname"), Cluster: c.Query("cluster"), Matchers: c.Query("matchers")}
	tl, err := s.d().Timeline.Build(c.Request.Context(), f, from, to)
	if err != nil {
		s.badTimeline(c, err)
		return
	}
	if markdown {
		c.Data(http.StatusOK, "text/markdown; charset=utf-8", []byte(tl.Markdown(s.d().Timeline.Loc())))
		return
	}
	s.answer(c, http.StatusOK, tl)
}

func (s *Server) badTimeline(c *gin.Context, err error) {
	var fe *timeline.FieldError
	if errors.As(err, &fe) {
		c.AbortWithStatusJSON(http.StatusBadRequest, errorBody{Error: fe.Error(), Field: fe.Field})
		return
	}
	s.d().Log.Error("build timeline", "err", err)
	fail(c, http.StatusInternalServerError, "could not build the timeline: "+err.Error())
}

// wantsMarkdown: format=md (or markdown) or json decides; else an Accept
// that names text/markdown.
func wantsMarkdown(c *gin.Context) (bool, error) {
	switch c.Query("format") {
	case "md", "markdown":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, errors.New(`format: want md or json, got "` + c.Query("format") + `"`)
	}
	for _, part := range strings.Split(c.GetHeader("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/markdown" {
			return true, nil
		}
	}
	return false, nil
}

// ui serves the timeline page, when there is one.
func (s *Server) ui(c *gin.Context) {
	if s.d().UI == nil {
		fail(c, http.StatusNotFound, "the timeline page needs the alert history (data_dir or redis)")
		return
	}
	s.d().UI.ServeHTTP(c.Writer, c.Request)
}
