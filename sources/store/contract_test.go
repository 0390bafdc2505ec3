package store_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources/store"
	"github.com/whatchanged/whatchanged/sources/store/storetest"
)

// contract is what every store.Store does, whatever keeps the data. open
// returns a new, empty store (closed by the test's cleanup).
func contract(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	k := func(bucket, key string) store.Key { return store.Key{Bucket: bucket, Key: key} }
	kv := func(bucket, key, value string) store.KV { return store.KV{Key: k(bucket, key), Value: []byte(value)} }
	put := func(t *testing.T, st store.Store, kvs ...store.KV) {
		t.Helper()
		if err := st.Put(ctx, kvs); err != nil {
			t.Fatal(err)
		}
	}
	want := func(t *testing.T, st store.Store, bucket, key, value string) {
		t.Helper()
		v, ok, err := st.Get(ctx, bucket, key)
		if err != nil || !ok || string(v) != value {
			t.Errorf("Get(%q, %q) = %q, %v, %v; want %q", bucket, key, v, ok, err, value)
		}
	}
	absent := func(t *testing.T, st store.Store, bucket, key string) {
		t.Helper()
		if v, ok, err := st.Get(ctx, bucket, key); err != nil || ok || v != nil {
			t.Errorf("Get(%q, %q) = %q, %v, %v; want absent", bucket, key, v, ok, err)
		}
	}
	scan := func(t *testing.T, st store.Store, bucket, from, to string) (keys, values []string) {
		t.Helper()
		err := st.Scan(ctx, bucket, from, to, func(key string, v []byte) bool {
			keys, values = append(keys, key), append(values, string(v))
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		return keys, values
	}

	t.Run("get of a missing key or bucket is absent, not an error", func(t *testing.T) {
		st := open(t)
		absent(t, st, "nobucket", "k")
		put(t, st, kv("b", "k", "v"))
		absent(t, st, "b", "other")
	})

	t.Run("put then get; a put replaces; one put spans buckets", func(t *testing.T) {
		st := open(t)
		put(t, st, kv("b1", "k", "one"), kv("b2", "k", "two"))
		want(t, st, "b1", "k", "one")
		want(t, st, "b2", "k", "two")
		put(t, st, kv("b1", "k", "three"))
		want(t, st, "b1", "k", "three")
		if err := st.Put(ctx, nil); err != nil {
			t.Errorf("an empty put: %v", err)
		}
	})

	t.Run("an empty bucket or key is an error and the whole put is dropped", func(t *testing.T) {
		st := open(t)
		for _, bad := range []store.KV{kv("", "k", "v"), kv("b", "", "v")} {
			if err := st.Put(ctx, []store.KV{kv("b", "good", "v"), bad}); err == nil {
				t.Errorf("Put(%q, %q) accepted", bad.Bucket, bad.Key.Key)
			}
			if _, err := st.PutIfAbsent(ctx, k("g", "guard"), []store.KV{kv("b", "good", "v"), bad}); err == nil {
				t.Errorf("PutIfAbsent of (%q, %q) accepted", bad.Bucket, bad.Key.Key)
			}
		}
		absent(t, st, "b", "good")
		absent(t, st, "g", "guard")
	})

	t.Run("put if absent writes once; the guard may be in another bucket", func(t *testing.T) {
		st := open(t)
		guard := k("by-id", "ev1")
		first := []store.KV{kv("by-time", "0001/ev1", "record"), kv("by-id", "ev1", "0001/ev1")}
		if w, err := st.PutIfAbsent(ctx, guard, first); err != nil || !w {
			t.Fatalf("first PutIfAbsent: written=%v err=%v", w, err)
		}
		want(t, st, "by-time", "0001/ev1", "record")
		want(t, st, "by-id", "ev1", "0001/ev1")
		again := []store.KV{kv("by-time", "0002/ev1", "other"), kv("by-id", "ev1", "0002/ev1")}
		if w, err := st.PutIfAbsent(ctx, guard, again); err != nil || w {
			t.Fatalf("second PutIfAbsent: written=%v err=%v; want not written", w, err)
		}
		want(t, st, "by-id", "ev1", "0001/ev1")
		absent(t, st, "by-time", "0002/ev1")
		// A guard outside the written pairs: absent, so the pairs are written.
		if w, err := st.PutIfAbsent(ctx, k("locks", "x"), []store.KV{kv("data", "d", "1")}); err != nil || !w {
			t.Fatalf("PutIfAbsent with a separate guard: written=%v err=%v", w, err)
		}
		absent(t, st, "locks", "x")
		want(t, st, "data", "d", "1")
	})

	t.Run("put if absent from 20 goroutines on one guard: exactly one wins", func(t *testing.T) {
		st := open(t)
		for round := range 5 {
			guard := fmt.Sprintf("g%d", round)
			wins := concurrentPutIfAbsent(t, []store.Store{st}, 20, guard)
			if len(wins) != 1 {
				t.Fatalf("round %d: %d writers won (%v), want exactly 1", round, len(wins), wins)
			}
			want(t, st, "guards", guard, wins[0])
			want(t, st, "records", guard, wins[0])
		}
	})

	t.Run("scan is in byte order of the keys", func(t *testing.T) {
		st := open(t)
		keys := []string{"b", "a", "ab", "a\x00", "B", "\xff", "\x01", "a b", "é", "z{x}", "10", "9"}
		var kvs []store.KV
		for _, key := range keys {
			kvs = append(kvs, kv("b", key, "v-"+key))
		}
		rand.Shuffle(len(kvs), func(i, j int) { kvs[i], kvs[j] = kvs[j], kvs[i] })
		put(t, st, kvs...)
		got, values := scan(t, st, "b", "", "")
		sorted := slices.Sorted(slices.Values(keys)) // Go orders strings by bytes
		if !slices.Equal(got, sorted) {
			t.Fatalf("scan order\n got %q\nwant %q", got, sorted)
		}
		for i, key := range got {
			if values[i] != "v-"+key {
				t.Errorf("key %q has value %q", key, values[i])
			}
		}
	})

	t.Run("scan covers [from, to)", func(t *testing.T) {
		st := open(t)
		for i := range 10 {
			put(t, st, kv("b", fmt.Sprintf("k%02d", i), fmt.Sprint(i)))
		}
		for _, c := range []struct {
			from, to string
			want     []string
		}{
			{"k03", "k07", []string{"k03", "k04", "k05", "k06"}},
			{"", "k02", []string{"k00", "k01"}},
			{"k08", "", []string{"k08", "k09"}},
			{"k035", "k055", []string{"k04", "k05"}}, // bounds between keys
			{"k", "l", []string{"k00", "k01", "k02", "k03", "k04", "k05", "k06", "k07", "k08", "k09"}},
			{"k05", "k05", nil},
			{"k07", "k03", nil},
			{"k10", "", nil},
		} {
			if got, _ := scan(t, st, "b", c.from, c.to); !slices.Equal(got, c.want) {
				t.Errorf("scan [%q, %q) = %q, want %q", c.from, c.to, got, c.want)
			}
		}
		if got, _ := scan(t, st, "nobucket", "", ""); got != nil {
			t.Errorf("scan of a missing bucket: %q", got)
		}
	})

	t.Run("scan stops when fn returns false", func(t *testing.T) {
		st := open(t)
		for i := range 10 {
			put(t, st, kv("b", fmt.Sprintf("k%02d", i), ""))
		}
		var seen []string
		err := st.Scan(ctx, "b", "", "", func(key string, _ []byte) bool {
			seen = append(seen, key)
			return len(seen) < 3
		})
		if err != nil || !slices.Equal(seen, []string{"k00", "k01", "k02"}) {
			t.Errorf("saw %q (err %v), want the first 3", seen, err)
		}
	})

	t.Run("scan of 1,200 keys: every key once, in order, past page boundaries", func(t *testing.T) {
		st := open(t)
		const n = 1200
		var kvs []store.KV
		for i := range n {
			kvs = append(kvs, kv("big", fmt.Sprintf("key-%05d", i), fmt.Sprintf("value-%d", i)))
		}
		put(t, st, kvs...)
		keys, values := scan(t, st, "big", "", "")
		if len(keys) != n {
			t.Fatalf("scanned %d keys, want %d", len(keys), n)
		}
		for i := range n {
			if keys[i] != fmt.Sprintf("key-%05d", i) || values[i] != fmt.Sprintf("value-%d", i) {
				t.Fatalf("entry %d is %q=%q", i, keys[i], values[i])
			}
		}
		if keys, _ := scan(t, st, "big", "key-00499", "key-01001"); len(keys) != 502 || keys[0] != "key-00499" || keys[501] != "key-01000" {
			t.Errorf("scan [key-00499, key-01001) gave %d keys, %q .. %q", len(keys), keys[0], keys[len(keys)-1])
		}
		seen := 0
		if err := st.Scan(ctx, "big", "", "", func(string, []byte) bool { seen++; return seen < 700 }); err != nil || seen != 700 {
			t.Errorf("a stop in the second page: saw %d (err %v), want 700", seen, err)
		}
	})

	t.Run("scan with a cancelled context fails", func(t *testing.T) {
		st := open(t)
		var kvs []store.KV
		for i := range 1200 {
			kvs = append(kvs, kv("big", fmt.Sprintf("key-%05d", i), "v"))
		}
		put(t, st, kvs...)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := st.Scan(cctx, "big", "", "", func(string, []byte) bool { return true }); err == nil {
			t.Error("no error")
		}
	})

	t.Run("delete removes keys; absent keys and buckets are ignored", func(t *testing.T) {
		st := open(t)
		put(t, st, kv("b", "k1", "1"), kv("b", "k2", "2"), kv("b", "k3", "3"), kv("c", "k1", "c1"))
		if err := st.Delete(ctx, []store.Key{k("b", "k1"), k("b", "k3"), k("b", "never"), k("nobucket", "k")}); err != nil {
			t.Fatal(err)
		}
		absent(t, st, "b", "k1")
		absent(t, st, "b", "k3")
		want(t, st, "b", "k2", "2")
		want(t, st, "c", "k1", "c1")
		if keys, _ := scan(t, st, "b", "", ""); !slices.Equal(keys, []string{"k2"}) {
			t.Errorf("scan after delete: %q", keys)
		}
		if err := st.Delete(ctx, nil); err != nil {
			t.Errorf("an empty delete: %v", err)
		}
		// A deleted guard lets PutIfAbsent write again.
		if w, err := st.PutIfAbsent(ctx, k("b", "k1"), []store.KV{kv("b", "k1", "again")}); err != nil || !w {
			t.Errorf("PutIfAbsent after delete: written=%v err=%v", w, err)
		}
	})

	t.Run("buckets are independent, even when one's name starts another's", func(t *testing.T) {
		st := open(t)
		buckets := []string{"a", "a:b", "ab", "a/b", "keys:a", "vals:a", "{a}"}
		for _, b := range buckets {
			put(t, st, kv(b, "k", "in "+b), kv(b, "only-"+b, "x"))
		}
		for _, b := range buckets {
			want(t, st, b, "k", "in "+b)
			if keys, _ := scan(t, st, b, "", ""); !slices.Equal(keys, []string{"k", "only-" + b}) {
				t.Errorf("bucket %q scans %q", b, keys)
			}
		}
		if err := st.Delete(ctx, []store.Key{k("a", "k")}); err != nil {
			t.Fatal(err)
		}
		absent(t, st, "a", "k")
		for _, b := range buckets[1:] {
			want(t, st, b, "k", "in "+b)
		}
	})

	t.Run("values are binary-safe and returned whole", func(t *testing.T) {
		st := open(t)
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		values := map[string][]byte{"bytes": all, "crlf": []byte("a\r\nb\r\n"), "empty": {}, "big": big, "nul\x00key": {0}}
		var kvs []store.KV
		for key, v := range values {
			kvs = append(kvs, store.KV{Key: k("bin", key), Value: v})
		}
		put(t, st, kvs...)
		for key, v := range values {
			got, ok, err := st.Get(ctx, "bin", key)
			if err != nil || !ok || !bytes.Equal(got, v) {
				t.Errorf("Get(%q): %d bytes, ok=%v, err=%v; want %d bytes back", key, len(got), ok, err, len(v))
			}
		}
		err := st.Scan(ctx, "bin", "", "", func(key string, got []byte) bool {
			if !bytes.Equal(got, values[key]) {
				t.Errorf("Scan: %q has %d bytes, want %d", key, len(got), len(values[key]))
			}
			delete(values, key)
			return true
		})
		if err != nil || len(values) != 0 {
			t.Errorf("Scan missed %d keys (err %v)", len(values), err)
		}
		// An empty value is present: its guard holds.
		if w, err := st.PutIfAbsent(ctx, k("bin", "empty"), []store.KV{kv("bin", "empty", "x")}); err != nil || w {
			t.Errorf("PutIfAbsent over an empty value: written=%v err=%v", w, err)
		}
	})
}

// concurrentPutIfAbsent runs n PutIfAbsent calls at once on guard, spread
// over the stores, each writing its own name as guard and record; it
// returns the names that were told they wrote.
func concurrentPutIfAbsent(t *testing.T, stores []store.Store, n int, guard string) []string {
	t.Helper()
	var (
		mu    sync.Mutex
		wins  []string
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("writer-%d", i)
			<-start
			w, err := stores[i%len(stores)].PutIfAbsent(context.Background(), store.Key{Bucket: "guards", Key: guard}, []store.KV{
				{Key: store.Key{Bucket: "guards", Key: guard}, Value: []byte(name)},
				{Key: store.Key{Bucket: "records", Key: guard}, Value: []byte(name)},
			})
			if err != nil {
				t.Error(err)
			}
			if w {
				mu.Lock()
				wins = append(wins, name)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	return wins
}

func TestBoltContract(t *testing.T) {
	contract(t, func(t *testing.T) store.Store {
		return storetest.Bolt(t)
	})
}

// BenchmarkBolt is the embedded store's figures, to compare with Redis's.
func BenchmarkBolt(b *testing.B) {
	benchStore(b, func(b *testing.B) store.Store {
		st, err := store.OpenBolt(b.TempDir(), time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	})
}

// benchStore reports each operation's rate; Scan reads 1,000 keys of
// 200 bytes (two Redis pages) per iteration and reports keys/s.
func benchStore(b *testing.B, open func(b *testing.B) store.Store) {
	ctx := context.Background()
	value := bytes.Repeat([]byte("v"), 200)
	b.Run("Put", func(b *testing.B) {
		st := open(b)
		i := 0
		for b.Loop() {
			i++
			if err := st.Put(ctx, []store.KV{{Key: store.Key{Bucket: "b", Key: fmt.Sprintf("k%09d", i)}, Value: value}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PutIfAbsent", func(b *testing.B) { // a pushed change: record + id index, guarded by the id
		st := open(b)
		i := 0
		for b.Loop() {
			i++
			id := fmt.Sprintf("ev%09d", i)
			w, err := st.PutIfAbsent(ctx, store.Key{Bucket: "by-id", Key: id}, []store.KV{
				{Key: store.Key{Bucket: "by-time", Key: "2026-11-29T00:00:00Z/" + id}, Value: value},
				{Key: store.Key{Bucket: "by-id", Key: id}, Value: []byte("2026-11-29T00:00:00Z/" + id)},
			})
			if err != nil || !w {
				b.Fatal(w, err)
			}
		}
	})
	b.Run("Get", func(b *testing.B) {
		st := open(b)
		if err := st.Put(ctx, []store.KV{{Key: store.Key{Bucket: "b", Key: "k"}, Value: value}}); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, ok, err := st.Get(ctx, "b", "k"); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("Scan1000", func(b *testing.B) {
		st := open(b)
		var kvs []store.KV
		for i := range 1000 {
			kvs = append(kvs, store.KV{Key: store.Key{Bucket: "b", Key: fmt.Sprintf("k%09d", i)}, Value: value})
		}
		if err := st.Put(ctx, kvs); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			n := 0
			if err := st.Scan(ctx, "b", "", "", func(string, []byte) bool { n++; return true }); err != nil || n != 1000 {
				b.Fatal(n, err)
			}
		}
		b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "keys/s")
	})
}
