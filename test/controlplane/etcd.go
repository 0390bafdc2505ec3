package controlplane

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The API server sets metadata.creationTimestamp itself and refuses to
// change it, but a test's history is hours or days old. With objects
// stored as JSON (JSONStorage) a test rewrites the stored object through
// etcd's JSON gateway; the API server's watch on etcd then delivers the
// change like any other update. Plain net/http: no etcd client dependency
// for a few calls.

// JSONStorage makes the not yet started control plane store objects as
// JSON, which Etcd.Backdate needs.
func JSONStorage(env *envtest.Environment) {
	env.ControlPlane.GetAPIServer().Configure().Set("storage-media-type", "application/json")
}

// Etcd is the etcd of a started control plane, through its JSON gateway.
type Etcd struct{ URL *url.URL }

// EtcdOf is the etcd of the started env.
func EtcdOf(env *envtest.Environment) Etcd { return Etcd{URL: env.ControlPlane.Etcd.URL} }

// etcdKV is a key/value of the gateway's answers (bytes are base64).
type etcdKV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func (e Etcd) call(ctx context.Context, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL.String()+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		return fmt.Errorf("etcd %s: %w", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd %s: %d %s", path, res.StatusCode, b)
	}
	if resp != nil {
		return json.Unmarshal(b, resp)
	}
	return nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// Get reads one key; ok is false when it does not exist.
func (e Etcd) Get(ctx context.Context, key string) (value []byte, ok bool, err error) {
	var resp struct{ Kvs []etcdKV }
	if err := e.call(ctx, "/v3/kv/range", map[string]string{"key": b64([]byte(key))}, &resp); err != nil {
		return nil, false, err
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	v, err := base64.StdEncoding.DecodeString(resp.Kvs[0].Value)
	return v, true, err
}

// Keys lists the keys under prefix.
func (e Etcd) Keys(ctx context.Context, prefix string) ([]string, error) {
	end := []byte(prefix)
	end[len(end)-1]++ // the range end of a prefix
	var resp struct{ Kvs []etcdKV }
	req := map[string]any{"key": b64([]byte(prefix)), "range_end": b64(end), "keys_only": true}
	if err := e.call(ctx, "/v3/kv/range", req, &resp); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		k, err := base64.StdEncoding.DecodeString(kv.Key)
		if err != nil {
			return nil, err
		}
		keys = append(keys, string(k))
	}
	return keys, nil
}

// Backdate rewrites the stored object's metadata.creationTimestamp to
// created. With a non-zero updated it also rewrites the times of the
// object's managedFields entries (when each manager last wrote it):
// managers' own time where given, else updated.
func (e Etcd) Backdate(ctx context.Context, key string, created, updated time.Time, managers map[string]time.Time) error {
	value, ok, err := e.Get(ctx, key)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("etcd has no key %s", key)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(value), []byte("{")) {
		return fmt.Errorf("%s is not stored as JSON (is the API server's --storage-media-type application/json?)", key)
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber() // keep integers as written
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	meta, ok := obj["metadata"].(map[string]any)
	if !ok {
		return fmt.Errorf("%s: no metadata", key)
	}
	meta["creationTimestamp"] = created.UTC().Format(time.RFC3339)
	if mf, ok := meta["managedFields"].([]any); ok && !updated.IsZero() {
		for _, f := range mf {
			if entry, ok := f.(map[string]any); ok {
				t, ok := managers[fmt.Sprint(entry["manager"])]
				if !ok || entry["subresource"] != nil {
					t = updated
				}
				entry["time"] = t.UTC().Format(time.RFC3339)
			}
		}
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return e.call(ctx, "/v3/kv/put", map[string]string{"key": b64([]byte(key)), "value": b64(append(out, '\n'))}, nil)
}

// FindKey finds the etcd key of an object whose resource has no fixed key
// (a custom resource's, say): the key ending in /<namespace>/<name> whose
// value has the object's apiVersion and kind.
func (e Etcd) FindKey(ctx context.Context, apiVersion, kind, namespace, name string) (string, error) {
	keys, err := e.Keys(ctx, "/registry/")
	if err != nil {
		return "", err
	}
	suffix := "/" + name
	if namespace != "" {
		suffix = "/" + namespace + "/" + name
	}
	for _, k := range keys {
		if !strings.HasSuffix(k, suffix) {
			continue
		}
		v, ok, err := e.Get(ctx, k)
		if err != nil || !ok {
			continue
		}
		var tm struct{ APIVersion, Kind string }
		if json.Unmarshal(v, &tm) == nil && tm.Kind == kind && tm.APIVersion == apiVersion {
			return k, nil
		}
	}
	return "", fmt.Errorf("no etcd key for %s %s %s/%s", apiVersion, kind, namespace, name)
}
