package grafana

import (
	"regexp"
	"slices"
	"strings"

	"github.com/whatchanged/whatchanged/sources"
)

// rule is a Rule ready to match.
type rule struct {
	tags    []string
	pattern *regexp.Regexp // nil: no pattern
	subject SubjectTemplate
	kind    string
}

// compile prepares the rules; the config was validated, so a pattern that
// does not compile is a programming error reported as such.
func compile(rules []Rule) ([]rule, error) {
	out := make([]rule, 0, len(rules))
	for _, r := range rules {
		cr := rule{subject: r.Subject, kind: r.Kind}
		for _, t := range r.Tags {
			cr.tags = append(cr.tags, normTag(t))
		}
		if r.TagPattern != "" {
			re, err := regexp.Compile(r.TagPattern)
			if err != nil {
				return nil, err
			}
			cr.pattern = re
		}
		out = append(out, cr)
	}
	return out, nil
}

// normTag spells a tag as Grafana compares it: "service : payments" and
// "service:payments" are one key:value tag (pkg/services/tag ParseTagPairs
// trims key and value).
func normTag(t string) string {
	if k, v, ok := strings.Cut(t, ":"); ok {
		return strings.TrimSpace(k) + ":" + strings.TrimSpace(v)
	}
	return strings.TrimSpace(t)
}

// match returns the subject and kind of the first rule the tags match.
func match(rules []rule, tags []string) (sources.Subject, string, bool) {
	norm := make([]string, len(tags))
	for i, t := range tags {
		norm[i] = normTag(t)
	}
	for _, r := range rules {
		if !hasAll(norm, r.tags) {
			continue
		}
		expand := func(s string) string { return s }
		if r.pattern != nil {
			tag, m := "", []int(nil)
			for _, t := range norm {
				if m = r.pattern.FindStringSubmatchIndex(t); m != nil {
					tag = t
					break
				}
			}
			if m == nil {
				continue
			}
			expand = func(s string) string { return string(r.pattern.ExpandString(nil, s, tag, m)) }
		}
		s := sources.Subject{
			Namespace: strings.TrimSpace(expand(r.subject.Namespace)),
			App:       strings.TrimSpace(expand(r.subject.App)),
			Name:      strings.TrimSpace(expand(r.subject.Name)),
			Kind:      strings.TrimSpace(expand(r.subject.Kind)),
			Repo:      sources.NormalizeRepo(expand(r.subject.Repo)),
		}
		if s.IsZero() {
			// A capture that came out empty ("service:") names nothing:
			// a later rule may still.
			continue
		}
		return s, r.kind, true
	}
	return sources.Subject{}, "", false
}

func hasAll(tags, want []string) bool {
	for _, w := range want {
		if !slices.Contains(tags, w) {
			return false
		}
	}
	return true
}

// kindOf reads the change kind from the tags CI tools conventionally
// write; an annotation saying nothing of what it is is "other".
func kindOf(tags []string) string {
	kind := sources.KindOther
	for _, t := range tags {
		switch strings.ToLower(normTag(t)) {
		case "deploy", "deployment", "release":
			return sources.KindDeploy // the strongest claim wins
		case "flag", "feature-flag":
			kind = sources.KindFlag
		case "config":
			if kind == sources.KindOther {
				kind = sources.KindConfig
			}
		case "migration":
			if kind == sources.KindOther {
				kind = sources.KindMigration
			}
		}
	}
	return kind
}

// revisionOf reads what was deployed from version:, commit: and sha: tags,
// so the merge can fold the annotation with the rollout it caused.
func revisionOf(tags []string) (version, revision string) {
	for _, t := range tags {
		k, v, ok := strings.Cut(normTag(t), ":")
		if !ok || v == "" {
			continue
		}
		switch strings.ToLower(k) {
		case "version":
			if version == "" {
				version = v
			}
		case "commit", "sha":
			if revision == "" && sources.IsSHA(v) {
				revision = strings.ToLower(v)
			}
		}
	}
	return version, revision
}
