package enrich

import (
	"cmp"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// One deploy is often seen by several sources: an Argo CD sync of commit R,
// the GitHub deployment or release of R, a CI event pushed for R, and the
// rollouts of the workloads it produced. merge folds them into one change.
//
// Two observations are one deploy when
//   - they denote the same revision (see tokensOf): a commit SHA or an
//     abbreviation of it, an image tag, a release or chart version; or,
//     failing that, a rollout falls inside its app's sync start–finish;
//   - they are about the same thing: the same workload, or the app or repo
//     of one is the app or repo of the other's workload;
//   - their times fit: a cause (sync, release, CI deploy) starts before or
//     around the effect (rollout) and at most mergeWindow earlier; two
//     causes start within mergeWindow of each other.
//
// And never when that would put two rollouts of one workload, or two
// observations of one kind by one source (two syncs, two releases), into
// one deploy: those are two deploys, even of the same version.

// mergeWindow bounds cause → effect and cause ↔ cause.
const mergeWindow = 30 * time.Minute

// effectLead: a cause may be recorded this long after its rollout began
// (CI publishes the release or event once the rollout is under way).
const effectLead = 5 * time.Minute

// windowGrace: clock skew and one-second timestamps around a deploy's
// start–finish window.
const windowGrace = time.Minute

// releaseLead: a release may be published this long before its first
// rollout (a staging soak). A redeploy of the same version later is not
// folded: the release is already taken by its first rollout.
const releaseLead = 24 * time.Hour

// mutableTags name a moving target, never one revision.
var mutableTags = map[string]bool{
	"latest": true, "stable": true, "main": true, "master": true, "head": true, "dev": true, "develop": true,
	"prod": true, "production": true, "staging": true, "edge": true, "nightly": true, "canary": true,
	"release": true, "test": true, "current": true, "live": true,
}

var (
	versionLike = regexp.MustCompile(`^[0-9]+(\.[0-9]+)+$`)
	// preRelease: what follows a version in a pre-release's tag; a commit
	// after a version ("1.4.0-5f2c1e9") is a build of it, not 1.4.0.
	preRelease = regexp.MustCompile(`^(rc|alpha|beta|pre|dev|snapshot|preview|canary|nightly|next|[0-9a-f]{7,})`)
)

// genericTagWords prefix a version in a tag without naming a component.
var genericTagWords = map[string]bool{"release": true, "rel": true, "version": true, "ver": true, "tag": true, "build": true, "deploy": true, "prod": true}

// token is one name of a revision: a commit SHA (matched by prefix, either
// side at least 7 hex) or a version (matched exactly, without a leading v).
type token struct {
	value string
	sha   bool
	// component: a monorepo tag "api/v1.2.0" names version 1.2.0 of api
	// only; image: the image a tag was read from. A component's version
	// matches an image tag only when the image is named after it.
	component, image string
}

func (a token) matches(b token) bool {
	if a.sha && b.sha {
		return strings.HasPrefix(a.value, b.value) || strings.HasPrefix(b.value, a.value)
	}
	if a.value != b.value {
		return false
	}
	switch {
	case a.component != "" && b.component != "":
		return a.component == b.component
	case a.component != "" && b.image != "":
		return strings.Contains(b.image, a.component)
	case b.component != "" && a.image != "":
		return strings.Contains(a.image, b.component)
	}
	return true
}

// key is the bucket a token is found in.
func (a token) key() string {
	if a.sha {
		return "sha:" + a.value[:7]
	}
	return "v:" + a.value
}

// observation is a change as the merge sees it.
type observation struct {
	ch       *sources.Change
	effect   bool // a rollout of one workload
	workload string
	tokens   []token
	// elsewhere: a deploy to another stage than the alert's (a staging
	// deployment of the commit production runs): listed, never folded.
	elsewhere bool
}

// nonProduction matches the names teams give pre-production stages.
var nonProduction = regexp.MustCompile(`(^|[^a-z])(stag(e|ing)?|stg|dev|develop(ment)?|test(ing)?|qa|uat|sit|preview|sandbox|review|demo|perf|integration|pre-?prod(uction)?|non-?prod(uction)?)([^a-z0-9]|$)`)

// stageLabels say which stage an alert comes from.
var stageLabels = []string{"env", "environment", "stage", "cluster", "tier", "deployment_environment", "deployment_environment_name", "k8s_cluster_name"}

// stage is what an alert says about where it fires.
type stage struct {
	preProduction bool // its namespace or a stage label names a pre-production stage
	stated        bool // a stage label says so either way (env=prod included)
}

// stageOf reads an alert's stage from its resolved namespace and labels.
func stageOf(labels map[string]string, namespace string) stage {
	if nonProduction.MatchString(strings.ToLower(namespace)) {
		return stage{preProduction: true, stated: true}
	}
	var st stage
	for _, l := range stageLabels {
		if v := strings.ToLower(labels[l]); v != "" {
			st.stated = true
			if nonProduction.MatchString(v) {
				return stage{preProduction: true, stated: true}
			}
		}
	}
	return st
}

// elsewhere: an environment (or namespace) of another stage than this.
func (st stage) elsewhere(env string) bool {
	return env != "" && nonProduction.MatchString(strings.ToLower(env)) != st.preProduction
}

func isEffect(c *sources.Change) bool {
	return (c.Kind == sources.KindRollout || c.Kind == sources.KindRollback) && c.Subject.Name != ""
}

func workloadKey(s sources.Subject) string {
	if s.Name == "" {
		return ""
	}
	return s.Namespace + "/" + s.Name
}

// tokensOf: a rollout is named by its new images' tags; anything else by
// its revision(s) and version.
func tokensOf(c *sources.Change) []token {
	var out []token
	if isEffect(c) {
		for _, img := range c.Images {
			if img.From != img.To { // a restart ships no new revision
				out = append(out, imageTokens(img.To)...)
			}
		}
		if len(c.Images) == 0 {
			for v := range strings.SplitSeq(c.Version, ", ") {
				_, img, _ := strings.Cut(v, "=") // "name=image" for several containers
				out = append(out, imageTokens(cmp.Or(img, v))...)
			}
		}
		return out
	}
	for r := range strings.SplitSeq(c.Revision, ",") {
		out = append(out, versionTokens(r)...)
	}
	for v := range strings.SplitSeq(c.Version, ",") {
		out = append(out, versionTokens(v)...)
	}
	return append(out, versionTokens(c.Chart)...)
}

// configEdit: a ConfigMap or Secret a workload uses, changed in the
// cluster. It is part of the deploy that rolled the workload (a Helm
// upgrade, a sync, `kubectl edit` then `rollout restart`), not a deploy.
func configEdit(c *sources.Change) bool {
	return c.Kind == sources.KindConfig && len(c.Objects) > 0 && c.Subject.Name != ""
}

// helmTimeout: Helm waits for a release's resources at most this long by
// default (--timeout 5m), and applies them at once without --wait.
const helmTimeout = 5 * time.Minute

// configLead: a config edit starts a deploy that rolls the workload this
// long after at most (a restart is run by hand once the edit is in).
const configLead = 10 * time.Minute

// imageTokens names an image by its tag: "ghcr.io/acme/api:v1.4.0" is
// 1.4.0, "…:main-5f2c1e9" is main-5f2c1e9 and the SHA 5f2c1e9. No tag (or
// only a digest) names nothing.
func imageTokens(image string) []token {
	image, _, _ = strings.Cut(strings.TrimSpace(image), "@")
	i := strings.LastIndexByte(image, ':')
	if i < 0 || i < strings.LastIndexByte(image, '/') {
		return nil
	}
	name := strings.ToLower(image[strings.LastIndexByte(image[:i], '/')+1 : i])
	out := versionTokens(image[i+1:])
	for j := range out {
		out[j].image = name
	}
	return out
}

// versionTokens names a version string: itself (without a leading v, or
// the part after "chart@" / "path@"), an image's tag, and any SHA-looking
// part ("1.4.0-5f2c1e9").
func versionTokens(v string) []token {
	v = strings.ToLower(strings.TrimSpace(v))
	if i := strings.Index(v, "@sha256:"); i >= 0 {
		v = v[:i] // a digest names content, not a revision people know
	}
	if i := strings.LastIndexByte(v, '@'); i >= 0 {
		v = v[i+1:] // "chart@1.4.0", "deploy/prod@9f1c2e7"
	}
	if strings.Contains(v, ":") {
		return imageTokens(v)
	}
	if i := strings.LastIndexByte(v, '/'); i >= 0 {
		// A monorepo tag: "api/v1.2.0", "services/api/v1.2.0"; anything
		// else with a slash (an untagged image) names no revision.
		last := strings.TrimPrefix(v[i+1:], "v")
		if last == "" || last[0] < '0' || last[0] > '9' {
			return nil
		}
		component := v[:i]
		component = component[strings.LastIndexByte(component, '/')+1:]
		out := versionTokens(v[i+1:])
		for j := range out {
			if !out[j].sha {
				out[j].component = component
			}
		}
		return out
	}
	if len(v) > 1 && v[0] == 'v' && v[1] >= '0' && v[1] <= '9' {
		v = v[1:]
	}
	if len(v) < 2 || mutableTags[v] {
		return nil
	}
	if sources.IsSHA(v) {
		return []token{{value: v, sha: true}}
	}
	out := []token{{value: v}}
	// "26.0.5-debian-12-r0", "4.0.5-management": a version, then the
	// base image or variant it is built as (but "1.4.0-rc.1" is not 1.4.0).
	if ver, variant, ok := strings.Cut(v, "-"); ok && versionLike.MatchString(ver) && variant != "" && !preRelease.MatchString(variant) {
		out = append(out, token{value: ver})
	}
	// "release-2026.11.28", "api-v1.2.0": a word, then a version.
	if i := strings.LastIndexAny(v, "-_"); i > 0 && i < len(v)-1 {
		rest := strings.TrimPrefix(v[i+1:], "v")
		if rest != "" && rest[0] >= '0' && rest[0] <= '9' && strings.Contains(rest, ".") && !strings.ContainsAny(v[:i], "0123456789.") {
			t := token{value: rest}
			if !genericTagWords[v[:i]] {
				t.component = v[:i]
			}
			out = append(out, t)
		}
	}
	for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == '-' || r == '_' || r == '+' }) {
		// A tag part of 7+ hex with a letter is a commit; all digits is
		// more likely a date or build number.
		if part != v && sources.IsSHA(part) && strings.ContainsAny(part, "abcdef") {
			out = append(out, token{value: part, sha: true})
		}
	}
	return out
}

// sameRevision reports whether two observations share a token; shaOnly
// when every shared token is a commit.
func sameRevision(a, b *observation) (shared, shaOnly bool) {
	shaOnly = true
	for _, x := range a.tokens {
		for _, y := range b.tokens {
			if x.matches(y) {
				shared = true
				shaOnly = shaOnly && x.sha && y.sha
			}
		}
	}
	return shared, shared && shaOnly
}

// about reports whether a cause is about the effect's workload: the same
// workload, or the cause's app or repo is the workload's.
func about(cause, effect *sources.Change) bool {
	c, e := cause.Subject, effect.Subject
	switch {
	case c.Name != "":
		return workloadKey(c) == workloadKey(e) && (c.Kind == "" || e.Kind == "" || strings.EqualFold(c.Kind, e.Kind))
	case c.App != "" && e.HasApp(c.App):
		return true
	case c.Repo != "" && e.Repo != "" && sources.NormalizeRepo(c.Repo) == sources.NormalizeRepo(e.Repo):
		return true
	}
	return false
}

// sameThing reports whether two causes are about one thing.
func sameThing(a, b *sources.Change) bool {
	x, y := a.Subject, b.Subject
	switch {
	case x.Name != "" && y.Name != "":
		return workloadKey(x) == workloadKey(y)
	case x.App != "" && (y.HasApp(x.App) || (y.App != "" && x.HasApp(y.App))):
		return true
	case x.Repo != "" && y.Repo != "" && sources.NormalizeRepo(x.Repo) == sources.NormalizeRepo(y.Repo):
		return true
	case x.Name != "" && y.Name == "":
		return about(b, a)
	case y.Name != "" && x.Name == "":
		return about(a, b)
	}
	return false
}

// pair is a possible fold, strongest first.
type pair struct {
	i, j     int
	strength int // 0: shared revision; 1: rollout inside its app's sync
	gap      time.Duration
}

// merge folds the observations of one deploy. Changes arrive related to
// the alert's subject (Relation set) and leave merged, in no set order.
func merge(changes []sources.Change, st stage) []sources.Change {
	obs := observe(changes, st)
	if len(candidatePairs(obs)) == 0 {
		return changes // the common case: nothing to fold, nothing to copy
	}
	// The same observations in any order must merge the same way: they
	// are taken in an order of what they are (the small observations are
	// sorted, not the large Change values).
	slices.SortFunc(obs, func(a, b observation) int { return compareIdentity(a.ch, b.ch) })
	pairs := candidatePairs(obs)
	slices.SortStableFunc(pairs, func(a, b pair) int {
		return cmp.Or(cmp.Compare(a.strength, b.strength), cmp.Compare(a.gap, b.gap))
	})
	group := make([]int, len(obs))     // group of each observation
	members := make([][]int, len(obs)) // observations of each group
	for i := range obs {
		group[i], members[i] = i, []int{i}
	}
	for _, p := range pairs {
		gi, gj := group[p.i], group[p.j]
		if gi == gj || !compatible(obs, members[gi], members[gj]) {
			continue
		}
		// A CI deploy's or GitHub deployment's window only explains a
		// rollout nothing else did: one a cause already named by its
		// revision (a sidecar bump's CI event) is not also another deploy's
		// that happened to be running. (A sync's window stands: the sync
		// of a GitOps bump is how a release's rollout happened.)
		if p.strength > 0 && (obs[p.i].effect || obs[p.j].effect) {
			cause, effect := p.i, p.j
			if obs[cause].effect {
				cause, effect = effect, cause
			}
			if obs[cause].ch.Kind != sources.KindSync && !configEdit(obs[cause].ch) && hasCause(obs, members[group[effect]]) {
				continue
			}
		}
		for _, k := range members[gj] {
			group[k] = gi
		}
		members[gi], members[gj] = append(members[gi], members[gj]...), nil
	}
	out := make([]sources.Change, 0, len(obs))
	for _, ms := range members {
		if len(ms) > 0 {
			slices.Sort(ms)
			out = append(out, combine(obs, ms))
		}
	}
	return out
}

// observe prepares the changes for merging.
func observe(changes []sources.Change, st stage) []observation {
	obs := make([]observation, len(changes))
	for i := range changes {
		c := &changes[i]
		obs[i] = observation{ch: c, effect: isEffect(c), workload: workloadKey(c.Subject), tokens: tokensOf(c),
			elsewhere: st.elsewhere(c.Environment)}
	}
	return obs
}

// candidatePairs are the pairs that may fold, found through shared token
// buckets (a SHA by its first 7 characters) and each deploy with a
// start–finish window (sync, CI deploy, GitHub deployment) with each
// rollout: merging runs on every alert, and most pairs share nothing.
func candidatePairs(obs []observation) []pair {
	var pairs []pair
	tried := map[[2]int]bool{}
	try := func(i, j int) {
		if i > j {
			i, j = j, i
		}
		if i == j || tried[[2]int{i, j}] {
			return
		}
		tried[[2]int{i, j}] = true
		if p, ok := fold(&obs[i], &obs[j]); ok {
			p.i, p.j = i, j
			pairs = append(pairs, p)
		}
	}
	buckets := map[string][]int{}
	var windowed, effects []int
	for i, o := range obs {
		for _, t := range o.tokens {
			k := t.key()
			for _, j := range buckets[k] {
				try(j, i)
			}
			buckets[k] = append(buckets[k], i)
		}
		switch {
		case o.effect:
			effects = append(effects, i)
		case o.ch.Kind == sources.KindSync || o.ch.Kind == sources.KindDeploy || o.ch.Kind == sources.KindGitHubDeployment ||
			o.ch.Kind == sources.KindHelm || configEdit(o.ch):
			windowed = append(windowed, i)
		}
	}
	for _, s := range windowed {
		for _, e := range effects {
			try(s, e)
		}
		if configEdit(obs[s].ch) { // and the deploys that carried the edit
			for _, d := range windowed {
				try(s, d)
			}
		}
	}
	return pairs
}

// fold says whether two observations may be one deploy, and how strongly.
func fold(a, b *observation) (pair, bool) {
	if (a.effect && b.effect) || a.elsewhere || b.elsewhere {
		return pair{}, false // rollouts join only through their cause; another stage's deploy is another deploy
	}
	cause, effect := a, b
	if a.effect {
		cause, effect = b, a
	}
	if !effect.effect { // two causes
		if configEdit(a.ch) != configEdit(b.ch) {
			return carried(a.ch, b.ch)
		}
		shared, shaOnly := sameRevision(a, b)
		gap := a.ch.StartedAt.Sub(b.ch.StartedAt).Abs()
		if !shared || gap > mergeWindow {
			return pair{}, false
		}
		// A commit is one commit whichever repository each names it by.
		if shaOnly || sameThing(a.ch, b.ch) {
			return pair{gap: gap}, true
		}
		return pair{}, false
	}
	if !about(cause.ch, effect.ch) {
		return pair{}, false
	}
	lead := effect.ch.StartedAt.Sub(cause.ch.StartedAt) // how long after the cause the rollout began
	maxLead := mergeWindow
	if cause.ch.Kind == sources.KindRelease {
		maxLead = releaseLead
	}
	if shared, _ := sameRevision(cause, effect); shared && lead >= -effectLead && lead <= maxLead {
		return pair{gap: lead.Abs()}, true
	}
	// A deploy's start–finish window holds the rollouts it caused, even
	// one that shipped no new image (values, config): an Argo CD sync of
	// the workload's app, a CI deploy or GitHub deployment that finished.
	// Without a shared revision the window is tight: a restart minutes
	// after a sync finished is not the sync's.
	c := cause.ch
	if lead < -windowGrace {
		return pair{}, false
	}
	switch {
	case configEdit(c):
		// Pods started before the edit did not get it: a rollout that
		// began before it did not carry it.
		if lead >= 0 && lead <= configLead {
			return pair{strength: 1, gap: lead.Abs()}, true
		}
	case c.Kind == sources.KindSync || c.Kind == sources.KindHelm:
		// A Helm release without a known finish (superseded) applied its
		// resources within Helm's own timeout.
		open := mergeWindow
		if c.Kind == sources.KindHelm {
			open = helmTimeout
		}
		if c.Subject.App != "" && effect.ch.Subject.HasApp(c.Subject.App) &&
			((!c.FinishedAt.IsZero() && !effect.ch.StartedAt.After(c.FinishedAt.Add(windowGrace))) || (c.FinishedAt.IsZero() && lead <= open)) {
			return pair{strength: 1, gap: lead.Abs()}, true
		}
	case c.Kind == sources.KindDeploy || c.Kind == sources.KindGitHubDeployment:
		if !c.FinishedAt.IsZero() && lead <= mergeWindow && !effect.ch.StartedAt.After(c.FinishedAt.Add(windowGrace)) {
			return pair{strength: 1, gap: lead.Abs()}, true
		}
	}
	return pair{}, false
}

// carried: a config edit made by a deploy (a Helm upgrade or sync that
// changed the ConfigMap and no template) happened inside its start–finish.
func carried(a, b *sources.Change) (pair, bool) {
	edit, deploy := a, b
	if configEdit(b) {
		edit, deploy = b, a
	}
	if deploy.Kind == sources.KindRelease || !about(deploy, edit) {
		return pair{}, false
	}
	finish := deploy.FinishedAt
	if finish.IsZero() {
		finish = deploy.StartedAt
	}
	if edit.StartedAt.Before(deploy.StartedAt.Add(-windowGrace)) || edit.StartedAt.After(finish.Add(windowGrace)) {
		return pair{}, false
	}
	return pair{strength: 1, gap: edit.StartedAt.Sub(deploy.StartedAt).Abs()}, true
}

func hasCause(obs []observation, idx []int) bool {
	return slices.ContainsFunc(idx, func(i int) bool { return !obs[i].effect })
}

// compatible: the union of two groups holds at most one rollout per
// workload and at most one observation per source and kind.
func compatible(obs []observation, a, b []int) bool {
	seen := map[string]bool{}
	for _, idx := range [][]int{a, b} {
		for _, i := range idx {
			o := obs[i]
			key := "obs:" + o.ch.Source + "/" + o.ch.Kind
			if o.effect {
				key = "workload:" + o.workload
			}
			if seen[key] {
				return false
			}
			seen[key] = true
		}
	}
	return true
}

// causeOrder picks which cause a merged deploy is named after: the one
// closest to the deploy itself.
var causeOrder = map[string]int{sources.KindSync: 0, sources.KindDeploy: 1, sources.KindHelm: 2, sources.KindGitHubDeployment: 3, sources.KindRelease: 4}

var statusRank = map[string]int{sources.StatusFailed: 3, sources.StatusInProgress: 2, sources.StatusSucceeded: 1}

// combine makes one change of a deploy's observations: the cause's commit,
// author, message, compare link and release name; the rollouts' revision
// numbers, images, status and finish time; every source and link.
func combine(obs []observation, idx []int) sources.Change {
	if len(idx) == 1 {
		return *obs[idx[0]].ch
	}
	var causes, effects []*sources.Change
	for _, i := range idx {
		if obs[i].effect {
			effects = append(effects, obs[i].ch)
		} else {
			causes = append(causes, obs[i].ch)
		}
	}
	order := func(c *sources.Change) int {
		if o, ok := causeOrder[c.Kind]; ok {
			return o
		}
		return len(causeOrder)
	}
	slices.SortStableFunc(causes, func(a, b *sources.Change) int {
		return cmp.Or(cmp.Compare(order(a), order(b)), strings.Compare(a.Source, b.Source), a.StartedAt.Compare(b.StartedAt))
	})
	// The alerting workload's own rollout first.
	slices.SortStableFunc(effects, func(a, b *sources.Change) int {
		return cmp.Or(cmp.Compare(relationWeight[b.Relation], relationWeight[a.Relation]), strings.Compare(workloadKey(a.Subject), workloadKey(b.Subject)))
	})
	var out sources.Change
	if len(causes) > 0 {
		out = *causes[0]
	} else {
		out = *effects[0]
	}
	out.Links, out.Sources, out.Rollouts, out.Objects = nil, nil, nil, nil
	// The config objects the deploy changed; how a lone edit reached the
	// pods only when no rollout says it.
	for _, i := range idx {
		for _, o := range obs[i].ch.Objects {
			if !slices.ContainsFunc(out.Objects, func(x sources.Object) bool {
				return x.Kind == o.Kind && x.Namespace == o.Namespace && x.Name == o.Name
			}) {
				out.Objects = append(out.Objects, o)
			}
		}
		fill(&out.Detail, obs[i].ch.Detail)
	}
	if len(effects) > 0 {
		out.Detail = ""
	}
	for _, c := range causes {
		if c.Kind == sources.KindRelease {
			out.Version = c.Version // the release's tag is what people call it
		}
	}
	// A person wrote the change; a bot's commit (an image bump in a
	// GitOps repo) only carried it, so another cause's human author wins.
	if sources.IsBot(out.Author) {
		for _, c := range causes {
			if c.Author != "" && !sources.IsBot(c.Author) {
				out.Author = c.Author
				break
			}
		}
	}
	for _, c := range causes {
		fill(&out.Revision, c.Revision)
		fill(&out.PreviousRevision, c.PreviousRevision)
		fill(&out.Version, c.Version)
		fill(&out.PreviousVersion, c.PreviousVersion)
		fill(&out.Author, c.Author)
		fill(&out.DeployedBy, c.DeployedBy)
		fill(&out.Message, c.Message)
		fill(&out.CompareURL, c.CompareURL) // other URLs stay links, named by their source
	}
	if len(effects) == 0 {
		// The most closely related observation (a CI event naming the
		// workload) says what the deploy is about.
		closest := causes[0]
		for _, c := range causes {
			if relationWeight[c.Relation] > relationWeight[closest.Relation] {
				closest = c
			}
		}
		subj := closest.Subject
		fill(&subj.App, out.Subject.App)
		fill(&subj.Repo, out.Subject.Repo)
		out.Subject = subj
	} else {
		own := effects[0]
		subj := own.Subject
		fill(&subj.App, out.Subject.App)
		fill(&subj.Repo, out.Subject.Repo)
		out.Subject = subj
		out.Images = own.Images
		if own.Status != "" && own.Status != sources.StatusUnknown {
			out.Status = own.Status
		}
		if !own.FinishedAt.IsZero() {
			out.FinishedAt = own.FinishedAt
		}
		if len(causes) == 0 {
			out.Kind = own.Kind
		}
		for _, e := range effects {
			out.Rollouts = append(out.Rollouts, sources.Rollout{
				Namespace: e.Subject.Namespace, Kind: e.Subject.Kind, Name: e.Subject.Name,
				Revision: e.Revision, PreviousRevision: e.PreviousRevision, Images: e.Images, Status: e.Status,
				Rollback: e.Kind == sources.KindRollback,
			})
			fill(&out.Message, e.Message)
		}
	}
	links := map[string]bool{out.URL: true, out.CompareURL: true}
	addLink := func(name, url string) {
		if url != "" && !links[url] {
			links[url] = true
			out.Links = append(out.Links, sources.Link{Name: name, URL: url})
		}
	}
	// The deploy started when its first deploying observation did: a
	// release published earlier shipped nothing by itself.
	deployed := false
	for _, i := range idx {
		if m := obs[i].ch; m.Kind != sources.KindRelease && (!deployed || m.StartedAt.Before(out.StartedAt)) {
			out.StartedAt, deployed = m.StartedAt, true
		}
	}
	srcs := map[string]bool{}
	for _, i := range idx {
		m := obs[i].ch
		srcs[m.Source] = true
		if relationWeight[m.Relation] > relationWeight[out.Relation] {
			out.Relation = m.Relation
		}
		if !deployed && m.StartedAt.Before(out.StartedAt) {
			out.StartedAt = m.StartedAt
		}
		if len(effects) == 0 || out.Status == "" || out.Status == sources.StatusUnknown {
			if statusRank[m.Status] > statusRank[out.Status] {
				out.Status = m.Status
			}
		}
		if len(effects) == 0 && m.FinishedAt.After(out.FinishedAt) {
			out.FinishedAt = m.FinishedAt
		}
		addLink(m.Source, m.URL)
		addLink(m.Source+" compare", m.CompareURL)
		for _, l := range m.Links {
			addLink(l.Name, l.URL)
		}
	}
	if len(srcs) > 1 {
		out.Sources = slices.Sorted(maps.Keys(srcs))
	}
	return out
}

// compareIdentity orders observations by what they are, not by where
// they came from in a source's answer.
func compareIdentity(a, b *sources.Change) int {
	return cmp.Or(strings.Compare(a.Source, b.Source), strings.Compare(a.Kind, b.Kind), strings.Compare(a.ID, b.ID),
		a.StartedAt.Compare(b.StartedAt), strings.Compare(a.Revision, b.Revision), strings.Compare(a.Version, b.Version),
		strings.Compare(a.Subject.Namespace, b.Subject.Namespace), strings.Compare(a.Subject.Name, b.Subject.Name),
		strings.Compare(a.Subject.Kind, b.Subject.Kind), strings.Compare(a.Subject.App, b.Subject.App),
		strings.Compare(a.Subject.Repo, b.Subject.Repo))
}

func fill(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}
