// Package sourcetest holds the contract every sources.Source must pass.
// Each source's tests call Contract with a constructor and a subject the
// source knows changes for.
package sourcetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// Contract checks the behaviour the pipeline relies on:
//   - Name is non-empty and stable;
//   - a known subject in its window gives changes carrying the source's name;
//   - an unknown subject (a workload and app nobody has) gives no changes
//     and no error; a repository the source cannot read is reported, so
//     the contract names none;
//   - a cancelled context returns promptly with an error wrapping ctx.Err().
func Contract(t *testing.T, src sources.Source, known sources.Query) {
	t.Helper()
	t.Run("names itself", func(t *testing.T) {
		first, second := src.Name(), src.Name()
		if first == "" || first != second {
			t.Fatalf("Name() = %q then %q, want a stable non-empty name", first, second)
		}
	})
	t.Run("answers for a known subject", func(t *testing.T) {
		got, err := src.Changes(context.Background(), known)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			t.Fatalf("no changes for the known subject %s", known.Subject)
		}
		for _, c := range got {
			if c.Source != src.Name() {
				t.Errorf("change %q has source %q, want %q", c.ID, c.Source, src.Name())
			}
			if c.StartedAt.Before(known.Since) || c.StartedAt.After(known.Until) {
				t.Errorf("change %q started %s, outside [%s, %s]", c.ID, c.StartedAt, known.Since, known.Until)
			}
		}
	})
	t.Run("nothing for an unknown subject", func(t *testing.T) {
		q := known
		q.Subject = sources.Subject{Namespace: "no-such-namespace-x", Kind: "Deployment", Name: "no-such-workload-x", App: "no-such-app-x"}
		got, err := src.Changes(context.Background(), q)
		if err != nil {
			t.Fatalf("unknown subject gave an error: %v", err)
		}
		if len(got) != 0 {
			t.Fatalf("unknown subject gave %d changes", len(got))
		}
	})
	t.Run("honours a cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		_, err := src.Changes(ctx, known)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("took %s to notice a cancelled context", took)
		}
	})
}
