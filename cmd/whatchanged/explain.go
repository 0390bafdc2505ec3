package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
)

// labelFlag collects --labels k=v,k=v (repeatable).
type labelFlag map[string]string

func (l labelFlag) String() string { return "" }
func (l labelFlag) Set(v string) error {
	for _, pair := range strings.Split(v, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return fmt.Errorf("%q is not name=value", pair)
		}
		l[k] = val
	}
	return nil
}

// explain enriches one alert given by its labels and shows why, either
// in-process (reading the same store as serve) or through a running
// server's /debug/enrich.
func explain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f commonFlags
	f.register(fs, false)
	labels := labelFlag{}
	fs.Var(labels, "labels", "alert labels, name=value[,name=value…] (repeatable)")
	startsAt := fs.String("starts-at", "", "when the alert started: RFC 3339, or a duration ago such as 15m (default: now)")
	asJSON := fs.Bool("json", false, "print the full explanation as JSON")
	serverURL := fs.String("server", "", "ask a running whatchanged at this URL instead of reading the store")
	tokenFile := fs.String("token-file", "", "bearer token file for --server")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(labels) == 0 {
		return usageError{"explain needs --labels, e.g. --labels namespace=shop,deployment=api"}
	}
	start := time.Now().UTC()
	if *startsAt != "" {
		if d, err := time.ParseDuration(*startsAt); err == nil {
			start = start.Add(-d)
		} else if t, err := time.Parse(time.RFC3339, *startsAt); err == nil {
			start = t
		} else {
			return usageError{fmt.Sprintf("--starts-at %q: want RFC 3339 or a duration such as 15m", *startsAt)}
		}
	}

	var report enrich.Report
	if *serverURL != "" {
		r, err := explainRemote(ctx, *serverURL, *tokenFile, labels, start)
		if err != nil {
			return err
		}
		report = r
	} else {
		cfg, err := f.load()
		if err != nil {
			return err
		}
		log := newLogger(LogConfig{Level: "warn", Format: cfg.Log.Format}, stderr)
		a, err := build(cfg, log, false)
		if err != nil {
			return fmt.Errorf("%w (is whatchanged serve running on this data dir? use --server http://ADDR)", err)
		}
		defer a.close()
		if err := a.startOneShot(ctx); err != nil {
			return err
		}
		alert := &enrich.Alert{Labels: labels, StartsAt: start}
		report = a.enricher.Enrich(ctx, []*enrich.Alert{alert}, nil)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	printReport(stdout, report)
	return nil
}

func explainRemote(ctx context.Context, base, tokenFile string, labels map[string]string, start time.Time) (enrich.Report, error) {
	body, _ := json.Marshal(map[string]any{"labels": labels, "startsAt": start.Format(time.RFC3339)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/debug/enrich", bytes.NewReader(body))
	if err != nil {
		return enrich.Report{}, fmt.Errorf("--server: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if tokenFile != "" {
		tok, err := os.ReadFile(tokenFile)
		if err != nil {
			return enrich.Report{}, fmt.Errorf("--token-file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return enrich.Report{}, fmt.Errorf("--server: %w", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		return enrich.Report{}, fmt.Errorf("--server answered %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	var out struct {
		Explanation enrich.Report `json:"explanation"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return enrich.Report{}, fmt.Errorf("--server: unexpected answer: %w", err)
	}
	return out.Explanation, nil
}

func printReport(w io.Writer, r enrich.Report) {
	for _, a := range r.Alerts {
		fmt.Fprintf(w, "Alert    %s\n", formatLabels(a.Labels))
		fmt.Fprintf(w, "Starts   %s (searched %s … %s)\n\n", a.Window.StartsAt.Format(time.RFC3339),
			a.Window.Since.Format(time.RFC3339), a.Window.Until.Format(time.RFC3339))
		fmt.Fprintf(w, "Subject  %s\n", a.Subject)
		if len(a.Resolution) == 0 {
			fmt.Fprintln(w, "  (no label convention or rule matched)")
		}
		for _, s := range a.Resolution {
			fmt.Fprintf(w, "  %-9s = %-28s from %s\n", s.Field, s.Value, s.From)
		}
		fmt.Fprintln(w, "\nSources")
		if len(a.Sources) == 0 {
			fmt.Fprintln(w, "  (none asked)")
		}
		for _, s := range a.Sources {
			if s.Error != "" {
				fmt.Fprintf(w, "  %-10s error: %s (%s)\n", s.Source, s.Error, s.Duration)
			} else {
				fmt.Fprintf(w, "  %-10s %d change(s) in %s\n", s.Source, s.Count, s.Duration)
			}
		}
		fmt.Fprintln(w, "\nRanking  (score = relation weight × closeness to the alert start)")
		if len(a.Ranking) == 0 {
			fmt.Fprintln(w, "  (no related changes in the window)")
		}
		for i, c := range a.Ranking {
			fmt.Fprintf(w, "  %d. %.2f %-9s %s\n", i+1, c.Score, c.Relation, rankingLine(c))
		}
		if c := a.LastDeploy; c != nil {
			fmt.Fprintf(w, "  last deploy (before the look-back): %s\n", rankingLine(*c))
		}
		fmt.Fprintln(w, "\nAnnotations")
		for _, k := range slices.Sorted(maps.Keys(a.Annotations)) {
			fmt.Fprintf(w, "  %s:\n", k)
			for _, line := range strings.Split(a.Annotations[k], "\n") {
				fmt.Fprintf(w, "    %s\n", line)
			}
		}
		fmt.Fprintf(w, "\n(enrichment took %s of a %s budget)\n", r.Duration, r.Budget)
	}
}

// rankingLine: what a ranked change is, when, what it plays for the alert
// and which sources saw it.
func rankingLine(c sources.Change) string {
	line := fmt.Sprintf("%s of %s %s, %s before start", c.Kind, c.Subject.Short(), cmp.Or(c.Version, "revision "+c.Revision), c.BeforeStart)
	for _, o := range c.Objects {
		line += fmt.Sprintf("; %s %s/%s", o.Kind, o.Namespace, o.Name)
		if len(o.Keys) > 0 {
			line += " keys " + strings.Join(o.Keys, ",")
		}
	}
	for _, r := range c.Rollouts {
		line += fmt.Sprintf("; rolled out %s/%s rev %s", r.Namespace, r.Name, r.Revision)
	}
	if c.Detail != "" {
		line += "; " + c.Detail
	}
	var notes []string
	if c.Role != "" {
		notes = append(notes, c.Role)
	}
	if len(c.Sources) > 1 {
		notes = append(notes, "seen by "+strings.Join(c.Sources, ", "))
	}
	if len(notes) > 0 {
		line += "  [" + strings.Join(notes, "; ") + "]"
	}
	return line
}

func formatLabels(l map[string]string) string {
	keys := slices.Sorted(maps.Keys(l))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, l[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
