package scenarios_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// AlertAnswer is explanation.alerts[0] of POST /debug/enrich, decoded into
// our own types so fields the pipeline adds later are simply ignored.
type AlertAnswer struct {
	Labels     map[string]string `json:"labels"`
	Skipped    string            `json:"skipped"`
	Subject    map[string]any    `json:"subject"`
	Resolution []struct {
		Field string `json:"field"`
		Value string `json:"value"`
		From  string `json:"from"`
	} `json:"resolution"`
	Sources []struct {
		Source   string `json:"source"`
		Error    string `json:"error"`
		Duration string `json:"duration"`
		Changes  any    `json:"changes"`
	} `json:"sources"`
	Ranking     []Change          `json:"ranking"`
	Suspect     *Change           `json:"suspect"`
	Annotations map[string]string `json:"annotations"`

	body []byte // the whole /debug/enrich answer (hidden: checks it)
}

// Change is a change as whatchanged renders it (sources/change.go), with
// its JSON kept for `text:` matchers.
type Change struct {
	Source  string `json:"source"`
	Kind    string `json:"kind"`
	ID      string `json:"id"`
	Subject struct {
		Namespace string `json:"namespace"`
		Kind      string `json:"kind"`
		Name      string `json:"name"`
		App       string `json:"app"`
		Repo      string `json:"repo"`
	} `json:"subject"`
	Revision         string `json:"revision"`
	PreviousRevision string `json:"previousRevision"`
	Version          string `json:"version"`
	PreviousVersion  string `json:"previousVersion"`
	Images           []struct {
		Container string `json:"container"`
		From      string `json:"from"`
		To        string `json:"to"`
	} `json:"images"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	Status     string    `json:"status"`
	Author     string    `json:"author"`
	DeployedBy string    `json:"deployedBy"`
	Message    string    `json:"message"`
	URL        string    `json:"url"`
	CompareURL string    `json:"compareUrl"`
	Sources    []string  `json:"sources"`
	Chart      string    `json:"chart"`
	Objects    []struct {
		Kind      string   `json:"kind"`
		Namespace string   `json:"namespace"`
		Name      string   `json:"name"`
		Keys      []string `json:"keys"`
		Created   bool     `json:"created"`
	} `json:"objects"`
	Detail      string  `json:"detail"`
	Relation    string  `json:"relation"`
	Score       float64 `json:"score"`
	BeforeStart string  `json:"beforeStart"`

	raw json.RawMessage
}

func (c *Change) UnmarshalJSON(b []byte) error {
	type plain Change
	if err := json.Unmarshal(b, (*plain)(c)); err != nil {
		return err
	}
	c.raw = append(json.RawMessage(nil), b...)
	return nil
}

func (c *Change) newImages() []string {
	out := make([]string, 0, len(c.Images))
	for _, im := range c.Images {
		out = append(out, im.To)
	}
	return out
}

// allSources is every source that observed the change (one when unmerged).
func (c *Change) allSources() []string {
	if len(c.Sources) > 0 {
		return c.Sources
	}
	return []string{c.Source}
}

// carries reports whether the change shows tok as what it deployed: in its
// revision, version or a new image.
func (c *Change) carries(tok string) bool {
	return strings.Contains(c.Revision, tok) || strings.Contains(c.Version, tok) || anyContains(c.newImages(), tok)
}

// line is one change on one line, for messages.
func (c *Change) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%.2f %s %s [%s] %s/%s", c.Score, c.Relation, c.Kind, strings.Join(c.allSources(), "+"), c.Subject.Namespace, c.Subject.Name)
	if c.Subject.Name == "" {
		fmt.Fprintf(&b, " app=%s repo=%s", c.Subject.App, c.Subject.Repo)
	}
	if c.Revision != "" {
		fmt.Fprintf(&b, " rev %s", short(c.Revision))
	}
	if c.Version != "" {
		fmt.Fprintf(&b, " %s", c.Version)
	}
	if c.Author != "" {
		fmt.Fprintf(&b, " by %s", c.Author)
	}
	if c.DeployedBy != "" {
		fmt.Fprintf(&b, " deployed by %s", c.DeployedBy)
	}
	fmt.Fprintf(&b, " (%s) %s", c.Status, c.BeforeStart)
	return b.String()
}

func short(rev string) string {
	parts := strings.Split(rev, ",")
	for i, p := range parts {
		if len(p) == 40 {
			parts[i] = p[:10]
		}
	}
	return strings.Join(parts, ",")
}

func (a *AlertAnswer) resolutionText() string {
	var b strings.Builder
	for _, s := range a.Resolution {
		fmt.Fprintf(&b, "%s = %s from %s\n", s.Field, s.Value, s.From)
	}
	return b.String()
}

// explain is what whatchanged answered, as the quality report shows it.
func (a *AlertAnswer) explain() string {
	var b strings.Builder
	subj := make([]string, 0, len(a.Subject))
	for k, v := range a.Subject {
		subj = append(subj, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(subj)
	fmt.Fprintf(&b, "subject     %s\n", strings.Join(subj, " "))
	if a.Skipped != "" {
		fmt.Fprintf(&b, "skipped     %s\n", a.Skipped)
	}
	for _, k := range []string{"whatchanged_suspect", "whatchanged_summary", "whatchanged_links", "whatchanged_error"} {
		if v, ok := a.Annotations[k]; ok {
			fmt.Fprintf(&b, "%-11s %s\n", strings.TrimPrefix(k, "whatchanged_"), strings.ReplaceAll(v, "\n", "\n            "))
		}
	}
	b.WriteString("ranking\n")
	if len(a.Ranking) == 0 {
		b.WriteString("  (none)\n")
	}
	for i := range a.Ranking {
		fmt.Fprintf(&b, "  %d. %s\n", i+1, a.Ranking[i].line())
	}
	b.WriteString("resolution\n")
	b.WriteString(indent(strings.TrimSpace(a.resolutionText()), "  "))
	for _, s := range a.Sources {
		if s.Error != "" {
			fmt.Fprintf(&b, "source %s failed: %s\n", s.Source, s.Error)
		}
	}
	return b.String()
}
