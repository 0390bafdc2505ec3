// Command whatchanged attaches the recent deploys of an alerting workload to
// the alert. See the README for what it does and how to run it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Build information, set at build time with -ldflags "-X main.version=…
// -X main.revision=… -X main.buildDate=…" (the Makefile and hack/image do).
// A plain `go build` falls back to what the Go toolchain stamped.
var (
	version   = "dev"
	revision  = ""
	buildDate = ""
)

const usage = `whatchanged: attach what changed just before an alert fired.

Usage:
  whatchanged [serve] [flags]          run the server (default)
  whatchanged explain --labels k=v,…   show what would be attached to an alert and why
  whatchanged timeline --since 3h [--namespace NS] [--format md|json]
                                       what fired and what changed, in order, for
                                       the incident report (--server URL: ask a
                                       running whatchanged; else read --config's store)
  whatchanged config check [--show] FILE
                                       validate a config file; --show prints it
                                       with secrets hidden and says which are set
  whatchanged version                  print version, revision, build date, Go version
  whatchanged help                     this text

Flags:
  -h, --help       this text (after a command: that command's flags)
  --version        same as "version"

Run "whatchanged <command> -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: tests call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 {
		switch args[0] { // flags of the command line itself, not of serve
		case "--version", "-version", "-v":
			cmd = "version"
		case "--help", "-help", "-h":
			cmd = "help"
		}
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, stderr)
	case "explain":
		err = explain(ctx, args, stdout, stderr)
	case "timeline":
		err = timelineCmd(ctx, args, stdout, stderr)
	case "config":
		if len(args) == 0 || args[0] != "check" {
			err = usageError{`unknown "config" command; did you mean "config check"?`}
		} else {
			err = configCheck(args[1:], stdout, stderr)
		}
	case "version":
		fmt.Fprintln(stdout, versionLine())
	case "help":
		fmt.Fprint(stdout, usage)
	default:
		err = usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	var ue usageError
	var fe flagError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &fe):
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "whatchanged: %s\n\n%s", ue.msg, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "whatchanged: %v\n", err)
		return 1
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// flagError is a flag the command does not take; the flag package has
// printed it with the command's flags already.
type flagError struct{ error }

// parseFlags parses a command's flags; a wrong flag exits 2, as a usage
// error does, and -h exits 0.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return flagError{err}
	}
	return err
}

// commonFlags are shared by serve and explain; flags override the file.
type commonFlags struct {
	config, listen, forwardURL, dataDir, logLevel, logFormat, kubeconfig string
}

func (f *commonFlags) register(fs *flag.FlagSet, withServe bool) {
	fs.StringVar(&f.config, "config", "", "config file (YAML); none: the embedded default")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory of the embedded store (overrides data_dir)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (overrides log.level)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; turns the Kubernetes source on (sources.kubernetes)")
	if withServe {
		fs.StringVar(&f.listen, "listen", "", "listen address host:port (overrides listen)")
		fs.StringVar(&f.forwardURL, "forward-url", "", "URL of the default downstream (overrides downstreams.default.url; env WHATCHANGED_FORWARD_URL)")
		fs.StringVar(&f.logFormat, "log-format", "", "text or json (overrides log.format)")
	}
}

// load reads the config file with the flags applied on top.
func (f *commonFlags) load() (Config, error) {
	fwd := f.forwardURL
	if fwd == "" {
		fwd = os.Getenv("WHATCHANGED_FORWARD_URL")
	}
	return LoadConfig(f.config, func(cfg *Config) {
		if f.listen != "" {
			cfg.Listen = f.listen
		}
		if f.dataDir != "" {
			cfg.DataDir = f.dataDir
		}
		if f.logLevel != "" {
			cfg.Log.Level = f.logLevel
		}
		if f.logFormat != "" {
			cfg.Log.Format = f.logFormat
		}
		if f.kubeconfig != "" {
			cfg.Sources.Kubernetes.Enabled = true
			cfg.Sources.Kubernetes.Kubeconfig = f.kubeconfig
		}
		if fwd != "" {
			if cfg.Downstreams == nil {
				cfg.Downstreams = map[string]DownstreamConfig{}
			}
			d := cfg.Downstreams["default"]
			d.URL, d.URLFile = Secret(fwd), ""
			cfg.Downstreams["default"] = d
		}
	})
}

func configCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file to check")
	show := fs.Bool("show", false, "print the effective configuration (secrets hidden) and which secrets are set")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" && fs.NArg() >= 1 {
		// config check FILE [--show]: the flag package stops at FILE.
		*path = fs.Arg(0)
		if err := parseFlags(fs, fs.Args()[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageError{fmt.Sprintf("config check takes one file, got %q", fs.Args())}
		}
	}
	if *path == "" {
		return usageError{"config check needs --config FILE"}
	}
	cfg, err := LoadConfig(*path)
	if err != nil {
		var ces ConfigErrors
		if errors.As(err, &ces) {
			fmt.Fprintln(stderr, ces.Error())
			return fmt.Errorf("%s: %d problem(s)", *path, len(ces))
		}
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	if *show {
		fmt.Fprint(stdout, cfg.marshalRedacted())
		fmt.Fprintln(stdout, "# secrets (values never shown):")
		report := cfg.secretsReport()
		if len(report) == 0 {
			fmt.Fprintln(stdout, "#   none set")
		}
		for _, line := range report {
			fmt.Fprintln(stdout, "#   "+line)
		}
	}
	return nil
}
