package scenarios_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Expect is what an on-call engineer would call the right answer.
type Expect struct {
	Suspect    SuspectExpect `yaml:"suspect"`
	Listed     []Matcher     `yaml:"listed"`
	Absent     []Matcher     `yaml:"absent"`
	OneLine    []string      `yaml:"oneLine"`
	Summary    []string      `yaml:"summary"`
	Error      ErrorExpect   `yaml:"error"`
	Resolution []string      `yaml:"resolution"`
	// Hidden are strings (a Secret's values) that must appear nowhere:
	// not in the answer, its explanation, nor whatchanged's log.
	Hidden []string `yaml:"hidden"`
}

// SuspectExpect is a change matcher plus substrings of the suspect line, or
// `none`.
type SuspectExpect struct {
	Set  bool // the key was given
	None bool // `suspect: none`
	Matcher
	Line []string
}

func (s *SuspectExpect) UnmarshalYAML(n *yaml.Node) error {
	s.Set = true
	if n.Kind == yaml.ScalarNode {
		if n.Value != "none" {
			return fmt.Errorf("line %d: suspect: want a change matcher or `none`, got %q", n.Line, n.Value)
		}
		s.None = true
		return nil
	}
	var m struct {
		Matcher `yaml:",inline"`
		Line    []string `yaml:"line"`
	}
	if err := decodeStrict(n, &m); err != nil {
		return err
	}
	s.Matcher, s.Line = m.Matcher, m.Line
	return nil
}

// ErrorExpect is substrings of whatchanged_error, or `none`.
type ErrorExpect struct {
	None   bool
	Substr []string
}

func (e *ErrorExpect) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Value == "none" {
		e.None = true
		return nil
	}
	return n.Decode(&e.Substr)
}

// decodeStrict decodes a node rejecting unknown keys: a node's own Decode
// does not inherit the decoder's KnownFields.
func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// Matcher matches one change; every field given must hold.
type Matcher struct {
	Source     string   `yaml:"source"`
	Kind       string   `yaml:"kind"`
	Workload   string   `yaml:"workload"` // namespace/name
	App        string   `yaml:"app"`
	Revision   string   `yaml:"revision"` // prefix
	Version    string   `yaml:"version"`  // substring
	Image      string   `yaml:"image"`    // substring of a new image
	Author     string   `yaml:"author"`   // substring
	DeployedBy *string  `yaml:"deployedBy"`
	Status     string   `yaml:"status"`
	Relation   string   `yaml:"relation"`
	Sources    []string `yaml:"sources"`
	After      *bool    `yaml:"after"`
	Text       string   `yaml:"text"`   // substring of the change's JSON
	Chart      string   `yaml:"chart"`  // substring of the Helm chart (name-version)
	Object     string   `yaml:"object"` // Kind/name of a changed config object
	Keys       []string `yaml:"keys"`   // with object: exactly its changed keys ([] : none known)
	Detail     string   `yaml:"detail"` // substring of how the change reached the workload
}

func (m Matcher) empty() bool {
	return m.Source == "" && m.Kind == "" && m.Workload == "" && m.App == "" && m.Revision == "" && m.Version == "" &&
		m.Image == "" && m.Author == "" && m.DeployedBy == nil && m.Status == "" && m.Relation == "" &&
		len(m.Sources) == 0 && m.After == nil && m.Text == "" && m.Chart == "" && m.Object == "" && m.Detail == ""
}

// mismatch says which field of m does not hold for c ("" when all hold).
func (m Matcher) mismatch(c *Change, startsAt time.Time) string {
	var bad []string
	check := func(field, want, got string, ok bool) {
		if !ok {
			bad = append(bad, fmt.Sprintf("%s %q (got %q)", field, want, got))
		}
	}
	if m.Source != "" {
		check("source", m.Source, c.Source, c.Source == m.Source)
	}
	if m.Kind != "" {
		check("kind", m.Kind, c.Kind, c.Kind == m.Kind)
	}
	if m.Workload != "" {
		got := c.Subject.Namespace + "/" + c.Subject.Name
		check("workload", m.Workload, got, got == m.Workload)
	}
	if m.App != "" {
		check("app", m.App, c.Subject.App, c.Subject.App == m.App)
	}
	if m.Revision != "" {
		check("revision", m.Revision, c.Revision, strings.HasPrefix(c.Revision, m.Revision))
	}
	if m.Version != "" {
		check("version", m.Version, c.Version, strings.Contains(c.Version, m.Version))
	}
	if m.Image != "" {
		check("image", m.Image, strings.Join(c.newImages(), ","), anyContains(c.newImages(), m.Image))
	}
	if m.Author != "" {
		check("author", m.Author, c.Author, strings.Contains(c.Author, m.Author))
	}
	if m.DeployedBy != nil {
		check("deployedBy", *m.DeployedBy, c.DeployedBy, strings.Contains(c.DeployedBy, *m.DeployedBy))
	}
	if m.Status != "" {
		check("status", m.Status, c.Status, c.Status == m.Status)
	}
	if m.Relation != "" {
		check("relation", m.Relation, c.Relation, c.Relation == m.Relation)
	}
	for _, s := range m.Sources {
		check("sources ∋", s, strings.Join(c.allSources(), ","), contains(c.allSources(), s))
	}
	if m.After != nil {
		after := c.StartedAt.After(startsAt)
		check("after", fmt.Sprint(*m.After), fmt.Sprint(after), after == *m.After)
	}
	if m.Text != "" {
		check("text", m.Text, "…", strings.Contains(string(c.raw), m.Text))
	}
	if m.Chart != "" {
		check("chart", m.Chart, c.Chart, strings.Contains(c.Chart, m.Chart))
	}
	if m.Detail != "" {
		check("detail", m.Detail, c.Detail, strings.Contains(c.Detail, m.Detail))
	}
	if m.Object != "" {
		var names []string
		found := false
		for _, o := range c.Objects {
			names = append(names, fmt.Sprintf("%s/%s%v", o.Kind, o.Name, o.Keys))
			if o.Kind+"/"+o.Name != m.Object {
				continue
			}
			found = true
			if m.Keys != nil {
				got := strings.Join(o.Keys, ",")
				check("keys", strings.Join(m.Keys, ","), got, got == strings.Join(m.Keys, ","))
			}
		}
		check("object", m.Object, strings.Join(names, " "), found)
	}
	return strings.Join(bad, ", ")
}

func (m Matcher) String() string {
	b, _ := json.Marshal(m)
	return strings.ReplaceAll(string(b), `"`, "")
}

// MarshalJSON prints only the fields given, for messages.
func (m Matcher) MarshalJSON() ([]byte, error) {
	out := map[string]any{}
	for k, v := range map[string]string{"source": m.Source, "kind": m.Kind, "workload": m.Workload, "app": m.App,
		"revision": m.Revision, "version": m.Version, "image": m.Image, "author": m.Author, "status": m.Status,
		"relation": m.Relation, "text": m.Text, "chart": m.Chart, "object": m.Object, "detail": m.Detail} {
		if v != "" {
			out[k] = v
		}
	}
	if m.DeployedBy != nil {
		out["deployedBy"] = *m.DeployedBy
	}
	if len(m.Sources) > 0 {
		out["sources"] = m.Sources
	}
	if m.After != nil {
		out["after"] = *m.After
	}
	if m.Keys != nil {
		out["keys"] = m.Keys
	}
	return json.Marshal(out)
}

// Verdict is the outcome of one scenario.
type Verdict struct {
	Name          string
	Problems      []string // each expectation that did not hold, or why the scenario could not run
	FalseSuspect  bool
	DuplicateLine int
	Explanation   string // what whatchanged answered, for the report
}

func (v *Verdict) Right() bool { return len(v.Problems) == 0 }

func (v *Verdict) fail(format string, a ...any) {
	v.Problems = append(v.Problems, fmt.Sprintf(format, a...))
}

// check holds the answer against the scenario's expectations.
func check(sc *Scenario, a *AlertAnswer, startsAt time.Time) *Verdict {
	v := &Verdict{Name: sc.Name, Explanation: a.explain()}
	e := sc.Expect
	ann := a.Annotations

	switch {
	case e.Suspect.None:
		if a.Suspect != nil {
			v.FalseSuspect = true
			v.fail("suspect: want none, got %s", a.Suspect.line())
		}
	case e.Suspect.Set:
		switch {
		case a.Suspect == nil:
			v.fail("suspect: want %s, got none", e.Suspect.Matcher)
		default:
			if bad := e.Suspect.mismatch(a.Suspect, startsAt); bad != "" {
				v.FalseSuspect = true
				v.fail("suspect: want %s; got %s: wrong %s", e.Suspect.Matcher, a.Suspect.line(), bad)
			}
			for _, s := range e.Suspect.Line {
				if !strings.Contains(ann["whatchanged_suspect"], s) {
					v.fail("suspect line: want %q in %q", s, ann["whatchanged_suspect"])
				}
			}
		}
	}
	for _, m := range e.Listed {
		if !a.anyMatches(m, startsAt) {
			v.fail("listed: no change in the ranking matches %s", m)
		}
	}
	for _, m := range e.Absent {
		for i := range a.Ranking {
			if m.mismatch(&a.Ranking[i], startsAt) == "" {
				v.fail("absent: ranking entry %d matches %s: %s", i+1, m, a.Ranking[i].line())
			}
		}
	}
	for _, tok := range e.OneLine {
		n := 0
		for i := range a.Ranking {
			if a.Ranking[i].carries(tok) {
				n++
			}
		}
		if n != 1 {
			v.fail("oneLine: %d ranking entries carry %q, want exactly 1", n, tok)
		}
		if n > 1 {
			v.DuplicateLine += n - 1
		}
	}
	for _, s := range e.Summary {
		if !strings.Contains(ann["whatchanged_summary"], s) {
			v.fail("summary: want %q in %q", s, ann["whatchanged_summary"])
		}
	}
	if e.Error.None && ann["whatchanged_error"] != "" {
		v.fail("error: want none, got %q", ann["whatchanged_error"])
	}
	for _, s := range e.Error.Substr {
		if !strings.Contains(ann["whatchanged_error"], s) {
			v.fail("error: want %q in %q", s, ann["whatchanged_error"])
		}
	}
	for _, h := range e.Hidden {
		if strings.Contains(string(a.body), h) {
			v.fail("hidden: %q appears in the answer", h)
		}
	}
	steps := a.resolutionText()
	for _, s := range e.Resolution {
		if !strings.Contains(steps, s) {
			v.fail("resolution: want %q in the resolution steps", s)
		}
	}
	return v
}

func (a *AlertAnswer) anyMatches(m Matcher, startsAt time.Time) bool {
	for i := range a.Ranking {
		if m.mismatch(&a.Ranking[i], startsAt) == "" {
			return true
		}
	}
	return false
}

// Quality is the summary over all scenarios.
type Quality struct{ verdicts []*Verdict }

func (q *Quality) add(v *Verdict) { q.verdicts = append(q.verdicts, v) }

// String is `N/M right, K false suspects, L duplicate lines`, then every
// scenario that is not right with what was expected and answered.
func (q *Quality) String() string {
	right, falseSuspects, dups := 0, 0, 0
	for _, v := range q.verdicts {
		if v.Right() {
			right++
		}
		if v.FalseSuspect {
			falseSuspects++
		}
		dups += v.DuplicateLine
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d right, %d false suspects, %d duplicate lines\n", right, len(q.verdicts), falseSuspects, dups)
	for _, v := range q.verdicts {
		if v.Right() {
			continue
		}
		fmt.Fprintf(&b, "\n--- %s\n", v.Name)
		for _, p := range v.Problems {
			fmt.Fprintf(&b, "  ✗ %s\n", p)
		}
		if v.Explanation != "" {
			b.WriteString(indent(v.Explanation, "  "))
		}
	}
	return b.String()
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func anyContains(list []string, s string) bool {
	for _, v := range list {
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}
