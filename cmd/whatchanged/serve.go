package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/server"
)

// shutdownGrace lets in-flight notifications finish on SIGTERM: an
// interrupted delivery would be retried by Alertmanager, but a finished one
// costs nobody a duplicate.
const shutdownGrace = 20 * time.Second

// writeTimeout is the longest a request may take, so an answer is never cut
// off after its work was done (a delivered notification answered with a
// closed connection is delivered again): waiting for room in flight, the
// enrichment, two sends to the slowest downstream or upstream (enriched,
// then the original), and a margin for reading and writing.
func writeTimeout(cfg Config) time.Duration {
	send := max(cfg.Downstreams.maxTimeout(), cfg.Inline.maxTimeout())
	return cfg.Server.InflightWait + cfg.Enrich.Budget + enrich.RenderGrace + send + 5*time.Second
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f commonFlags
	f.register(fs, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments, got %q", fs.Args())}
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	a, err := build(cfg, log, true)
	if err != nil {
		return err
	}
	rl := newReloader(ctx, f, log, newBaseRegistry())
	rl.drain = writeTimeout(cfg)
	// Sources keep background work (pruning, informers) until shutdown or
	// until a reload replaces them.
	if err := rl.first(a); err != nil {
		a.close()
		return err
	}
	defer rl.close()

	srv := server.New(server.Config{
		Listen:           cfg.Listen,
		MaxBodyBytes:     cfg.Server.MaxBodyBytes,
		MaxInflightBytes: cfg.Server.MaxInflightBytes,
		InflightWait:     cfg.Server.InflightWait,
		EnrichWithin:     cfg.Enrich.Budget + enrich.RenderGrace,
		InlinePrefix:     cfg.Inline.PathPrefix,
		Auth: server.Auth{
			BearerToken: cfg.Auth.BearerToken.Reveal(), BasicUser: cfg.Auth.BasicAuth.Username,
			BasicPassword: cfg.Auth.BasicAuth.Password.Reveal(), ProtectMetrics: cfg.Auth.ProtectMetrics,
			// The files were read at load (to fail early); the server reads
			// them again when they change.
			BearerTokenFile: cfg.Auth.BearerTokenFile, BasicPasswordFile: cfg.Auth.BasicAuth.PasswordFile,
		},
	}, rl.deps(a))
	rl.srv = srv
	httpSrv := srv.HTTPServer(writeTimeout(cfg))
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				_ = rl.reload() // logged and counted; the old config stays on error
			case <-ctx.Done():
				return
			}
		}
	}()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	routes := make([]string, 0, len(a.targets))
	for name, t := range a.targets {
		routes = append(routes, name+"→"+t.Name())
	}
	sort.Strings(routes)
	var srcNames []string
	for _, e := range a.entries {
		srcNames = append(srcNames, e.Source.Name())
	}
	log.Info("whatchanged listening", "addr", ln.Addr().String(), "version", version,
		"sources", srcNames, "routes", routes, "budget", cfg.Enrich.Budget, "auth", cfg.Auth.BearerToken != "" || cfg.Auth.BasicAuth.Username != "")
	if a.keeper != nil {
		log.Info("no downstream configured: enriched notifications are kept at GET /debug/notifications")
	}
	if a.alertmanagers != nil {
		log.Info("inline mode: POST /api/v2/alerts is enriched and forwarded; other Alertmanager paths are proxied",
			"prefix", cfg.Inline.PathPrefix, "upstreams", a.alertmanagers.Names())
	}

	errc := make(chan error, 2)
	inlineSrv, err := serveInline(cfg, srv, errc)
	if err != nil {
		ln.Close()
		return err
	}
	if inlineSrv != nil {
		log.Info("inline listener: Alertmanager's paths only; whatchanged's own stay on listen", "addr", cfg.Inline.Listen)
		defer inlineSrv.Close() // on an early return; a no-op after Shutdown
	}
	go func() { errc <- httpSrv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down; finishing in-flight notifications", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	inlineDone := make(chan error, 1)
	if inlineSrv != nil { // both finish their in-flight alerts within the grace
		go func() { inlineDone <- inlineSrv.Shutdown(sctx) }()
	} else {
		inlineDone <- nil
	}
	if err := httpSrv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-inlineDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown of the inline listener: %w", err)
	}
	return nil
}
