package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatchanged/whatchanged/enrich/deliver"
)

func TestVersionAndHelp(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		for _, want := range []string{"whatchanged " + version, "revision ", "built ", runtime.Version()} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%v printed %q, lacks %q", args, out.String(), want)
			}
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		for _, want := range []string{"serve", "explain", "config check", "version", "--version"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%v lacks %q:\n%s", args, want, out.String())
			}
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--nonsense"}, &out, &errb); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

func TestBuildInfoMetric(t *testing.T) {
	cfg, err := parseConfig("c.yaml", []byte("data_dir: "+t.TempDir()+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := build(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	mfs, err := prometheus.Gatherers{newBaseRegistry(), a.registry}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "whatchanged_build_info" {
			continue
		}
		labels := map[string]string{}
		for _, l := range mf.Metric[0].Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["version"] != version || labels["revision"] == "" || labels["goversion"] != runtime.Version() || mf.Metric[0].GetGauge().GetValue() != 1 {
			t.Errorf("whatchanged_build_info = %v %v", labels, mf.Metric[0].GetGauge())
		}
		return
	}
	t.Fatal("no whatchanged_build_info metric")
}

// A rotated Secret needs no restart: the downstream's url_file and its
// http_config credentials_file are read again on the next send.
func TestRotatedDownstreamCredentialsNeedNoRestart(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	defer srv.Close()
	dir := t.TempDir()
	urlFile := writeTestFile(t, dir, "url", srv.URL+"/hook-one\n")
	tokFile := writeTestFile(t, dir, "token", "token-one\n")
	cfg, err := parseConfig("c.yaml", []byte("data_dir: "+dir+"\ndownstreams:\n  default:\n    url_file: "+urlFile+
		"\n    http_config:\n      authorization:\n        credentials_file: "+tokFile+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := build(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	send := func() {
		if r := a.targets["default"].Deliver(context.Background(), []byte(`{}`), []byte(`{}`)); r.Outcome != deliver.Delivered {
			t.Fatalf("deliver: %+v", r)
		}
	}
	send()
	writeTestFile(t, dir, "url", srv.URL+"/hook-two\n")
	writeTestFile(t, dir, "token", "token-two\n")
	send()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != "/hook-one Bearer token-one" || got[1] != "/hook-two Bearer token-two" {
		t.Errorf("downstream saw %q", got)
	}
}
