package scenarios_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The API server sets metadata.creationTimestamp itself and refuses to
// change it, but a scenario's history is days old. The API server stores
// objects as JSON here (--storage-media-type), so the runner rewrites the
// stored object through etcd's JSON gateway; the API server's watch on etcd
// then delivers the change like any other update. This uses plain net/http:
// no etcd client dependency for two calls.

// etcdKV is a key/value of the gateway's answers (bytes are base64).
type etcdKV struct {
	Key         string `json:"key"`
	Value       string `json:"value"`
	ModRevision string `json:"mod_revision"`
}

func etcdCall(ctx context.Context, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, etcdURL.String()+path, bytes.NewReader(body))
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

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// etcdGet reads one key; ok is false when it does not exist.
func etcdGet(ctx context.Context, key string) (value []byte, ok bool, err error) {
	var resp struct{ Kvs []etcdKV }
	if err := etcdCall(ctx, "/v3/kv/range", map[string]string{"key": b64(key)}, &resp); err != nil {
		return nil, false, err
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	v, err := base64.StdEncoding.DecodeString(resp.Kvs[0].Value)
	return v, true, err
}

// etcdKeys lists the keys under prefix.
func etcdKeys(ctx context.Context, prefix string) ([]string, error) {
	end := []byte(prefix)
	end[len(end)-1]++ // the range end of a prefix
	var resp struct{ Kvs []etcdKV }
	req := map[string]any{"key": b64(prefix), "range_end": base64.StdEncoding.EncodeToString(end), "keys_only": true}
	if err := etcdCall(ctx, "/v3/kv/range", req, &resp); err != nil {
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

// backdate rewrites the stored object's metadata.creationTimestamp, and
// the times of its managedFields entries (when each manager last wrote
// it): managers' own time where given, else updated.
func backdate(ctx context.Context, key string, at, updated time.Time, managers map[string]time.Time) error {
	value, ok, err := etcdGet(ctx, key)
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
	meta["creationTimestamp"] = at.UTC().Format(time.RFC3339)
	if mf, ok := meta["managedFields"].([]any); ok {
		for _, e := range mf {
			if entry, ok := e.(map[string]any); ok {
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
	return etcdCall(ctx, "/v3/kv/put", map[string]string{"key": b64(key), "value": base64.StdEncoding.EncodeToString(append(out, '\n'))}, nil)
}

// findKey finds the etcd key of an object whose resource has no fixed key
// (an `objects:` entry): the key ending in /<namespace>/<name> whose value
// has the object's kind.
func findKey(ctx context.Context, apiVersion, kind, namespace, name string) (string, error) {
	keys, err := etcdKeys(ctx, "/registry/")
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
		v, ok, err := etcdGet(ctx, k)
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
