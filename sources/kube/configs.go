package kube

import (
	"encoding/json"
	"hash/maphash"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/whatchanged/whatchanged/sources"
)

// Config objects: the ConfigMaps and Secrets workloads use. An edit ships
// no new image and often no rollout, yet it is what changed. The cache
// keeps per key a digest of its value, seeded per process (maphash), so a
// digest means nothing outside it; values, digests and sizes are dropped
// or kept in memory only, and a change is told by key names.

const (
	kindConfigMap = "ConfigMap"
	kindSecret    = "Secret"
)

// annUses is written by the transform on workloads: the config objects
// their pod template uses, "ConfigMap/name=mount,Secret/db=env".
const annUses = "whatchanged.dev/uses"

// How a workload uses a config object. A mounted volume is updated in the
// pods in place (within about a minute); a subPath mount never is; env is
// read when a container starts.
const (
	useMount   = "mount"
	useSubPath = "subpath"
	useEnv     = "env"
)

// configUse is how a workload uses one config object: each way it reads
// it, and the keys it reads (nil: every key — a whole volume, envFrom).
type configUse struct {
	kind, name string
	ways       []string // of useMount, useSubPath, useEnv, sorted
	keys       []string
}

func (u configUse) uses(way string) bool { return slices.Contains(u.ways, way) }

// usesOf lists what a pod spec reads from ConfigMaps and Secrets, written
// "ConfigMap/name=mount+env:KEY_A;KEY_B,Secret/db=env" (keys only when
// every use names them).
func usesOf(spec *corev1.PodSpec) string {
	type acc struct {
		ways map[string]bool
		keys map[string]bool
		all  bool
	}
	uses := map[string]*acc{} // "Kind/name"
	add := func(kind, name, way string, keys ...string) {
		if name == "" {
			return
		}
		k := kind + "/" + name
		a := uses[k]
		if a == nil {
			a = &acc{ways: map[string]bool{}, keys: map[string]bool{}}
			uses[k] = a
		}
		a.ways[way] = true
		if len(keys) == 0 {
			a.all = true
		}
		for _, key := range keys {
			a.keys[key] = true
		}
	}
	itemKeys := func(items []corev1.KeyToPath) []string {
		out := make([]string, 0, len(items))
		for _, it := range items {
			out = append(out, it.Key)
		}
		return out
	}
	subPathOnly := map[string]bool{} // volume → every mount of it uses subPath
	containers := append(slices.Clone(spec.InitContainers), spec.Containers...)
	for _, c := range containers {
		for _, m := range c.VolumeMounts {
			only, seen := subPathOnly[m.Name]
			subPathOnly[m.Name] = (m.SubPath != "" || m.SubPathExpr != "") && (!seen || only)
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				add(kindConfigMap, r.Name, useEnv, r.Key)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				add(kindSecret, r.Name, useEnv, r.Key)
			}
		}
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				add(kindConfigMap, e.ConfigMapRef.Name, useEnv)
			}
			if e.SecretRef != nil {
				add(kindSecret, e.SecretRef.Name, useEnv)
			}
		}
	}
	for _, v := range spec.Volumes {
		way := useMount
		if subPathOnly[v.Name] {
			way = useSubPath
		}
		switch {
		case v.ConfigMap != nil:
			add(kindConfigMap, v.ConfigMap.Name, way, itemKeys(v.ConfigMap.Items)...)
		case v.Secret != nil:
			add(kindSecret, v.Secret.SecretName, way, itemKeys(v.Secret.Items)...)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.ConfigMap != nil {
					add(kindConfigMap, src.ConfigMap.Name, way, itemKeys(src.ConfigMap.Items)...)
				}
				if src.Secret != nil {
					add(kindSecret, src.Secret.Name, way, itemKeys(src.Secret.Items)...)
				}
			}
		}
	}
	parts := make([]string, 0, len(uses))
	for _, k := range slices.Sorted(maps.Keys(uses)) {
		a := uses[k]
		part := k + "=" + strings.Join(slices.Sorted(maps.Keys(a.ways)), "+")
		if !a.all {
			part += ":" + strings.Join(slices.Sorted(maps.Keys(a.keys)), ";")
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ",")
}

func parseUses(s string) []configUse {
	var out []configUse
	for part := range strings.SplitSeq(s, ",") {
		ref, how, ok := strings.Cut(part, "=")
		kind, name, ok2 := strings.Cut(ref, "/")
		if !ok || !ok2 {
			continue
		}
		ways, keys, named := strings.Cut(how, ":")
		u := configUse{kind: kind, name: name, ways: strings.Split(ways, "+")}
		if named {
			u.keys = strings.Split(keys, ";")
		}
		out = append(out, u)
	}
	return out
}

// configObject is what the cache keeps of a ConfigMap or Secret.
type configObject struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	// digests of each key's value (maphash, this process's seed).
	digests map[string]uint64
	// changedAt is when the data last changed; changedKeys the keys that
	// did (nil: not known, the change happened before the watch began).
	changedAt   time.Time
	changedKeys []string
	created     bool // the last data change was the object's creation
}

func (c *configObject) DeepCopyObject() runtime.Object {
	out := *c
	out.ObjectMeta = *c.ObjectMeta.DeepCopy()
	out.digests = maps.Clone(c.digests)
	out.changedKeys = slices.Clone(c.changedKeys)
	return &out
}

// configTracker turns ConfigMaps and Secrets into configObjects, keeping
// the previous digests of each object to tell which keys an edit changed.
type configTracker struct {
	seed maphash.Seed
	now  func() time.Time
	mu   sync.Mutex
	last map[string]*configObject // by UID
}

func newConfigTracker(now func() time.Time) *configTracker {
	return &configTracker{seed: maphash.MakeSeed(), now: now, last: map[string]*configObject{}}
}

// transform keeps metadata, per-key digests and the time of the last data
// change; values are dropped here, before the cache.
func (t *configTracker) transform(obj any) (any, error) {
	var meta metav1.ObjectMeta
	digests := map[string]uint64{}
	var kind string
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		kind, meta = kindConfigMap, o.ObjectMeta
		for k, v := range o.Data {
			digests[k] = maphash.String(t.seed, v)
		}
		for k, v := range o.BinaryData {
			digests[k] = maphash.Bytes(t.seed, v)
		}
	case *corev1.Secret:
		kind, meta = kindSecret, o.ObjectMeta
		for k, v := range o.Data {
			digests[k] = maphash.Bytes(t.seed, v)
		}
	default:
		return obj, nil
	}
	out := &configObject{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: kind}, ObjectMeta: metav1.ObjectMeta{
		Name: meta.Name, Namespace: meta.Namespace, UID: meta.UID, ResourceVersion: meta.ResourceVersion,
		CreationTimestamp: meta.CreationTimestamp}, digests: digests}
	written, writtenKeys := lastDataWrite(meta.ManagedFields)
	t.mu.Lock()
	defer t.mu.Unlock()
	prev := t.last[string(meta.UID)]
	switch {
	case prev != nil && maps.Equal(prev.digests, digests):
		// Metadata only, or a resync: not a change.
		out.changedAt, out.changedKeys, out.created = prev.changedAt, prev.changedKeys, prev.created
	case prev != nil:
		// Seen changing: now, or when the API server says it was written
		// if that is later than the previous change (a relist after a
		// lost watch sees an edit late).
		out.changedAt = t.now().UTC().Truncate(time.Second)
		if written.After(prev.changedAt) && written.Before(out.changedAt) {
			out.changedAt = written
		}
		out.changedKeys = changedKeys(prev.digests, digests)
	default:
		// First seen: the last data write the API server recorded, else
		// its creation. A manager that owns only some keys edited those.
		created := meta.CreationTimestamp.UTC()
		out.changedAt = created
		if written.After(created.Add(2 * time.Second)) {
			out.changedAt = written
			if len(writtenKeys) > 0 && len(writtenKeys) < len(digests) {
				out.changedKeys = writtenKeys
			}
		} else {
			out.created = true
		}
	}
	t.last[string(meta.UID)] = out
	return out, nil
}

// forget drops a deleted object's previous digests.
func (t *configTracker) forget(obj any) {
	if m, err := metaOf(obj); err == nil {
		t.mu.Lock()
		delete(t.last, string(m.GetUID()))
		t.mu.Unlock()
	}
}

// changedKeys are the keys added, removed or given a new value.
func changedKeys(prev, cur map[string]uint64) []string {
	var out []string
	for k, v := range cur {
		if p, ok := prev[k]; !ok || p != v {
			out = append(out, k)
		}
	}
	for k := range prev {
		if _, ok := cur[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// lastDataWrite is the newest time a manager wrote the object's data
// (data, binaryData, stringData), and the keys that manager owns.
func lastDataWrite(fields []metav1.ManagedFieldsEntry) (time.Time, []string) {
	var t time.Time
	var keys []string
	for _, f := range fields {
		if f.Subresource != "" || f.Time == nil || f.FieldsV1 == nil || !f.Time.After(t) {
			continue
		}
		var set map[string]json.RawMessage
		if json.Unmarshal(f.FieldsV1.Raw, &set) != nil {
			continue
		}
		var owned []string
		found := false
		for _, field := range []string{"f:data", "f:binaryData", "f:stringData"} {
			raw, ok := set[field]
			if !ok {
				continue
			}
			found = true
			var ks map[string]json.RawMessage
			if json.Unmarshal(raw, &ks) == nil {
				for k := range ks {
					if name, ok := strings.CutPrefix(k, "f:"); ok {
						owned = append(owned, name)
					}
				}
			}
		}
		if found {
			t, keys = f.Time.UTC(), owned
		}
	}
	sort.Strings(keys)
	return t, slices.Compact(keys)
}

// configChanges are the data changes in [since, until] of the config
// objects the workload uses, each told with how the workload reads it and
// whether its pods picked it up.
func (s *Source) configChanges(w workload, since, until time.Time) []sources.Change {
	uses := parseUses(w.meta.GetAnnotations()[annUses])
	if len(uses) == 0 {
		return nil
	}
	var out []sources.Change
	var revs []revision
	for _, u := range uses {
		inf := w.scope.configMaps
		if u.kind == kindSecret {
			inf = w.scope.secrets
		}
		if inf == nil {
			continue
		}
		obj, ok, _ := inf.GetIndexer().GetByKey(w.meta.GetNamespace() + "/" + u.name)
		c, isConfig := obj.(*configObject)
		if !ok || !isConfig || c.changedAt.Before(since) || c.changedAt.After(until) {
			continue
		}
		if u.keys != nil && c.changedKeys != nil && !slices.ContainsFunc(c.changedKeys, func(k string) bool { return slices.Contains(u.keys, k) }) {
			continue // keys this workload does not read
		}
		if revs == nil {
			revs = s.revisions(w)
		}
		subj := s.subjectOf(w)
		verb := "edited"
		if c.created {
			verb = "created"
		}
		ch := sources.Change{
			Source: s.name, Kind: sources.KindConfig, Subject: subj,
			ID:        u.kind + "/" + c.Namespace + "/" + c.Name + "@" + c.changedAt.Format(time.RFC3339),
			StartedAt: c.changedAt, Status: sources.StatusSucceeded,
			Objects: []sources.Object{{Kind: u.kind, Namespace: c.Namespace, Name: c.Name, Keys: c.changedKeys, Created: c.created}},
			Detail:  pickup(u, subj.Short(), c.changedAt, revs, verb, s.now()),
		}
		out = append(out, ch)
	}
	return out
}

// pickup says how a config change reaches the workload's pods: a mounted
// volume is updated in place (the kubelet's sync, about a minute); env and
// subPath mounts only when the pods are replaced, which a revision created
// after the change did.
func pickup(u configUse, workload string, changed time.Time, revs []revision, verb string, now time.Time) string {
	var how []string
	if u.uses(useMount) {
		how = append(how, "mounted")
	}
	if u.uses(useSubPath) {
		how = append(how, "mounted with subPath")
	}
	if u.uses(useEnv) {
		how = append(how, "read as env")
	}
	var b strings.Builder
	b.WriteString(strings.Join(how, " and ") + " by " + workload)
	var after *revision
	for i := range revs {
		if !revs[i].created.Before(changed) {
			after = &revs[i]
			break
		}
	}
	inPlace := !u.uses(useSubPath) && !u.uses(useEnv)
	switch {
	case after != nil:
		b.WriteString("; rolled out since as rev " + strconv.FormatInt(after.number, 10))
	case inPlace && now.Sub(changed) < time.Minute:
		b.WriteString("; the pods pick it up within about a minute (no restart)")
	case inPlace:
		b.WriteString("; updated in the pods in place (no restart)")
	case verb == "created":
		b.WriteString("; not rolled out since")
	case u.uses(useMount):
		b.WriteString("; not rolled out (pods older than the edit; the mounted files update in place)")
	default:
		b.WriteString("; not rolled out (pods older than the edit)")
	}
	return b.String()
}
