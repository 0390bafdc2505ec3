package kube

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/whatchanged/whatchanged/sources"
)

// revision is one entry of a workload's history: a ReplicaSet (Deployment,
// Rollout) or a ControllerRevision (StatefulSet, DaemonSet).
type revision struct {
	number      int64
	uid, name   string
	created     time.Time
	images      []container
	changeCause string
	history     string    // revision-history: earlier numbers of a reused ReplicaSet
	updated     time.Time // last written: a renumbered one came back no later than this
}

type container struct{ name, image string }

// history turns a workload's revisions in [since, until] into changes.
func (s *Source) history(w workload, since, until time.Time) []sources.Change {
	revs := s.revisions(w)
	if len(revs) == 0 {
		return nil
	}
	status, finished, approxStart := s.currentStatus(w, revs[len(revs)-1])
	subj := s.subjectOf(w)
	out := make([]sources.Change, 0, len(revs)) // a Change is large: no regrowing
	for i, r := range revs {
		newest := i == len(revs)-1
		start, reused := r.created, r.history != ""
		var prev *revision
		if i > 0 {
			prev = &revs[i-1]
			// An old object carrying a new number came back: a rollback.
			reused = reused || r.created.Before(prev.created)
		}
		if t, ok := s.observedAt(r.uid, strconv.FormatInt(r.number, 10)); ok {
			start = t
		} else if reused && r.updated.After(r.created) {
			// Renumbered no later than its last write, and before the
			// revision that replaced it (a ReplicaSet is also written when
			// it is scaled down later).
			start = r.updated
			if !newest && revs[i+1].created.Before(start) {
				start = revs[i+1].created
			}
		} else if reused && newest && !approxStart.IsZero() {
			start = approxStart // the watch did not see it happen; the last progress is the best we know
		}
		if start.Before(since) || start.After(until) {
			continue
		}
		ch := sources.Change{
			Source: s.name, Kind: sources.KindRollout, Subject: subj,
			ID:        subj.Namespace + "/" + w.kind + "/" + subj.Name + "@" + strconv.FormatInt(r.number, 10),
			Revision:  strconv.FormatInt(r.number, 10),
			StartedAt: start.UTC(), Status: sources.StatusUnknown, Message: r.changeCause,
		}
		if prev != nil {
			ch.PreviousRevision = strconv.FormatInt(prev.number, 10)
			ch.Images, ch.Version, ch.PreviousVersion = imageDiff(prev.images, r.images)
			if len(ch.Images) == 0 {
				// A restart or a config-only template change: the same
				// images, said so rather than left blank.
				ch.Images, ch.Version, _ = imageDiff(nil, r.images)
				for i := range ch.Images {
					ch.Images[i].From = ch.Images[i].To
				}
				if ch.Message == "" {
					ch.Message = "pod template changed, images unchanged"
				}
			}
		} else {
			ch.Images, ch.Version, _ = imageDiff(nil, r.images)
		}
		if reused {
			ch.Kind = sources.KindRollback
			if ch.Message == "" {
				ch.Message = "rollback to an earlier template"
				if r.history != "" {
					ch.Message = "rollback to the template of revision " + r.history
				}
			}
		}
		if newest {
			ch.Status, ch.FinishedAt = status, finished
		}
		out = append(out, ch)
	}
	return out
}

// revisions lists a workload's revisions, oldest first.
func (s *Source) revisions(w workload) []revision {
	var out []revision
	switch w.kind {
	case WorkloadDeployment, WorkloadRollout:
		annotation := annRevision
		if w.kind == WorkloadRollout {
			annotation = annRolloutRevision
		}
		objs, _ := w.scope.replicaSets.GetIndexer().ByIndex(byOwner, string(w.meta.GetUID()))
		for _, o := range objs {
			rs, ok := o.(*replicaSet)
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(rs.Annotations[annotation], 10, 64)
			if err != nil {
				continue // not yet annotated by its controller
			}
			out = append(out, revision{number: n, uid: string(rs.UID), name: rs.Name, created: rs.CreationTimestamp.Time,
				images: rs.Containers, changeCause: rs.Annotations[annChangeCause], history: rs.Annotations[annRevisionHistory], updated: rs.Updated})
		}
	case WorkloadStatefulSet, WorkloadDaemonSet:
		objs, _ := w.scope.revisions.GetIndexer().ByIndex(byOwner, string(w.meta.GetUID()))
		for _, o := range objs {
			cr, ok := o.(*appsv1.ControllerRevision)
			if !ok {
				continue
			}
			updated, _ := time.Parse(time.RFC3339, cr.Annotations[annUpdated])
			out = append(out, revision{number: cr.Revision, uid: string(cr.UID), name: cr.Name, created: cr.CreationTimestamp.Time,
				images: parseImages(cr.Annotations[annImages]), changeCause: cr.Annotations[annChangeCause], updated: updated})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].number < out[j].number })
	return out
}

// currentStatus is the state of the newest revision: from the Deployment's
// Progressing condition, the StatefulSet/DaemonSet update counters, or the
// Rollout's phase. approxStart is the last progress time, used for a
// rollback the watch did not see.
func (s *Source) currentStatus(w workload, newest revision) (status string, finished, approxStart time.Time) {
	switch o := w.obj.(type) {
	case *appsv1.Deployment:
		var cond *appsv1.DeploymentCondition
		for i := range o.Status.Conditions {
			if o.Status.Conditions[i].Type == appsv1.DeploymentProgressing {
				cond = &o.Status.Conditions[i]
			}
		}
		if cond == nil {
			return sources.StatusUnknown, time.Time{}, time.Time{}
		}
		approxStart = cond.LastUpdateTime.Time
		switch {
		case o.Status.ObservedGeneration < o.Generation:
			return sources.StatusInProgress, time.Time{}, approxStart
		case cond.Reason == "ProgressDeadlineExceeded":
			return sources.StatusFailed, cond.LastUpdateTime.Time.UTC(), approxStart
		case cond.Reason == "NewReplicaSetAvailable":
			return sources.StatusSucceeded, cond.LastUpdateTime.Time.UTC(), approxStart
		}
		return sources.StatusInProgress, time.Time{}, approxStart
	case *appsv1.StatefulSet:
		replicas := int32(1)
		if o.Spec.Replicas != nil {
			replicas = *o.Spec.Replicas
		}
		if o.Status.ObservedGeneration >= o.Generation && o.Status.UpdateRevision == newest.name &&
			o.Status.CurrentRevision == o.Status.UpdateRevision && o.Status.UpdatedReplicas == replicas {
			return sources.StatusSucceeded, time.Time{}, time.Time{}
		}
		return sources.StatusInProgress, time.Time{}, time.Time{}
	case *appsv1.DaemonSet:
		if o.Status.ObservedGeneration >= o.Generation && o.Status.UpdatedNumberScheduled == o.Status.DesiredNumberScheduled &&
			o.Status.NumberAvailable == o.Status.DesiredNumberScheduled {
			return sources.StatusSucceeded, time.Time{}, time.Time{}
		}
		return sources.StatusInProgress, time.Time{}, time.Time{}
	case *unstructured.Unstructured:
		phase, _, _ := unstructured.NestedString(o.Object, "status", "phase")
		switch phase {
		case "Healthy":
			return sources.StatusSucceeded, time.Time{}, time.Time{}
		case "Degraded":
			return sources.StatusFailed, time.Time{}, time.Time{}
		case "Progressing", "Paused":
			return sources.StatusInProgress, time.Time{}, time.Time{}
		}
	}
	return sources.StatusUnknown, time.Time{}, time.Time{}
}

func containersOf(cs []corev1.Container) []container {
	out := make([]container, len(cs))
	for i, c := range cs {
		out[i] = container{c.Name, c.Image}
	}
	return out
}

// imageDiff lists the containers whose image changed (or that are new) and
// renders them as versions: the image alone for one container,
// "name=image, …" for several.
func imageDiff(prev, cur []container) ([]sources.ImageChange, string, string) {
	before := map[string]string{}
	for _, c := range prev {
		before[c.name] = c.image
	}
	var changes []sources.ImageChange
	for _, c := range cur {
		if old, ok := before[c.name]; !ok || old != c.image {
			changes = append(changes, sources.ImageChange{Container: c.name, From: before[c.name], To: c.image})
		}
	}
	switch len(changes) {
	case 0:
		return nil, "", ""
	case 1:
		return changes, changes[0].To, changes[0].From
	}
	var to, from []string
	for _, c := range changes {
		to = append(to, c.Container+"="+c.To)
		if c.From != "" {
			from = append(from, c.Container+"="+c.From)
		}
	}
	return changes, strings.Join(to, ", "), strings.Join(from, ", ")
}

func parseImages(s string) []container {
	var out []container
	for _, part := range strings.Split(s, ",") {
		if name, image, ok := strings.Cut(part, "="); ok {
			out = append(out, container{name, image})
		}
	}
	return out
}

// newest keeps the n most recent changes (all when n <= 0).
func newest(chs []sources.Change, n int) []sources.Change {
	if n <= 0 || len(chs) <= n {
		return chs
	}
	slices.SortFunc(chs, func(a, b sources.Change) int { return b.StartedAt.Compare(a.StartedAt) })
	return chs[:n]
}
