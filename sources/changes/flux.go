package changes

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// fluxEvent is what Flux's notification-controller posts to a Provider of
// type generic: fluxcd/pkg apis/event/v1beta1 Event, as json.Marshal
// writes it (notifier/forwarder.go).
type fluxEvent struct {
	InvolvedObject struct {
		Kind       string `json:"kind"`
		Namespace  string `json:"namespace"`
		Name       string `json:"name"`
		UID        string `json:"uid"`
		APIVersion string `json:"apiVersion"`
	} `json:"involvedObject"`
	Severity            string            `json:"severity"`
	Timestamp           string            `json:"timestamp"`
	Message             string            `json:"message"`
	Reason              string            `json:"reason"`
	Metadata            map[string]string `json:"metadata"`
	ReportingController string            `json:"reportingController"`
}

// Reasons of a finished change, by the controller that reports them:
// kustomize-controller sets an event's reason from the Ready condition
// (ReconciliationSucceeded once applied and healthy), helm-controller
// reports each Helm action (api/v2/condition_types.go).
var fluxSucceeded = map[string]bool{
	"ReconciliationSucceeded": true,
	"InstallSucceeded":        true, "UpgradeSucceeded": true,
	"RollbackSucceeded": true, "UninstallSucceeded": true,
}

// fluxNotTried: error reasons about something else than applying the
// revision (a dependency, the source artifact, Helm tests after the
// upgrade was recorded): nothing was changed by them.
var fluxNotTried = map[string]bool{
	"DependencyNotReady": true, "ArtifactFailed": true, "TestFailed": true,
	"AccessDenied": true, "InvalidCELExpression": true, "FeatureGateDisabled": true,
}

// helmRelease reads "Helm upgrade succeeded for release shop/checkout.v3 with chart …"
// (helm-controller internal/reconcile: FullReleaseName is namespace/name.vN).
var helmRelease = regexp.MustCompile(`for release ([a-z0-9]([-a-z0-9]*[a-z0-9])?)/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)\.v[0-9]+\b`)

// decodeFlux maps a Kustomization's or HelmRelease's reconciliation to a
// deploy: success events to succeeded, error events to failed, the rest
// (progress, health checks passed, dependencies) is not a change.
func decodeFlux(body []byte, h hints) (Event, error) {
	var fe fluxEvent
	if err := unmarshal(body, &fe); err != nil {
		return Event{}, err
	}
	obj := fe.InvolvedObject
	switch {
	case obj.Kind == "" || obj.Name == "":
		return Event{}, &FieldError{"involvedObject", "kind and name are required (a Flux notification-controller event)"}
	case obj.Kind != "Kustomization" && obj.Kind != "HelmRelease":
		return Event{}, notAChange("a %s event; only Kustomization and HelmRelease reconciliations deploy something", obj.Kind)
	}
	at, err := parseTime("timestamp", fe.Timestamp)
	if err != nil {
		return Event{}, err
	}
	var status string
	switch {
	case fe.Severity == "info" && fluxSucceeded[fe.Reason]:
		status = sources.StatusSucceeded
	case fe.Severity == "error" && !fluxNotTried[fe.Reason]:
		status = sources.StatusFailed
	default:
		return Event{}, notAChange("%s event %q (%s) of %s/%s reports no finished change", fe.Severity, fe.Reason, oneLine(fe.Message, 200), obj.Namespace, obj.Name)
	}

	group, _, _ := strings.Cut(obj.APIVersion, "/")
	meta := func(key string) string {
		if v := fe.Metadata[group+"/"+key]; v != "" {
			return v
		}
		return fe.Metadata[key]
	}
	// The revision the change came from: the Git commit of an OCI artifact
	// built from Git (originRevision) before the artifact's own, as Flux's
	// Event.GetRevision orders them.
	rev := meta("commit")
	if rev == "" {
		rev = meta("originRevision")
	}
	if rev == "" {
		rev = meta("revision")
	}
	ev := Event{
		Kind:       sources.KindDeploy,
		Status:     status,
		Subject:    sources.Subject{Namespace: obj.Namespace, App: obj.Name},
		DeployedBy: oneLine("flux "+fe.ReportingController, maxFieldLen),
		Time:       at,
		FinishedAt: at,
		Message:    multiLine(fmt.Sprintf("%s %s/%s: %s", obj.Kind, obj.Namespace, obj.Name, fe.Message), maxMessageLen),
	}
	ev.Revision, ev.Version = fluxRevision(rev)
	if obj.Kind == "HelmRelease" {
		// The chart version is the version; the release may live in
		// another namespace than the HelmRelease (spec.targetNamespace).
		ev.Version, ev.Revision = oneLine(meta("revision"), maxFieldLen), ""
		if m := helmRelease.FindStringSubmatch(fe.Message); m != nil {
			ev.Subject.Namespace = m[1]
			if m[3] != obj.Name {
				ev.Subject.Apps = []string{m[3]}
			}
		}
	}
	ev.Subject = h.fill(ev.Subject)
	// kustomize-controller reports ReconciliationSucceeded after every
	// interval, and notification-controller retries a failed post: one
	// revision applied (or failed) is one change. Helm actions are reported
	// once each, and a values-only upgrade keeps the chart version, so
	// their time tells them apart.
	key := []string{obj.Kind, obj.Namespace, obj.Name, obj.UID, rev, status}
	if fe.Reason != "ReconciliationSucceeded" && status == sources.StatusSucceeded {
		key = append(key, fe.Reason, at.UTC().Format(time.RFC3339Nano))
	}
	ev.ID = hashID("flux-", key...)
	return ev, nil
}

// fluxRevision splits a Flux source revision: "main@sha1:<hex>" and
// "sha1:<hex>" are Git commits, "v1.2.3@sha256:<hex>" an OCI artifact (tag
// and digest), "main/<hex>" the format before Flux 2.0.
func fluxRevision(rev string) (revision, version string) {
	rev = oneLine(rev, maxFieldLen)
	ref, digest := "", rev
	if i := strings.LastIndex(rev, "@"); i >= 0 {
		ref, digest = rev[:i], rev[i+1:]
	}
	if algo, hexDigest, ok := strings.Cut(digest, ":"); ok {
		if algo == "sha1" {
			return hexDigest, ""
		}
		if ref != "" && !strings.Contains(ref, "/") {
			version = ref // an OCI tag; a branch is not a version
		}
		return digest, version
	}
	if i := strings.LastIndex(rev, "/"); i >= 0 && isHex(rev[i+1:]) {
		return rev[i+1:], ""
	}
	return rev, ""
}

func isHex(s string) bool {
	if len(s) < 7 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}
