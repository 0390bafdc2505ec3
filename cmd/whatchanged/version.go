package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// buildInfo is version, revision and build date: the ldflags' values, else
// what the Go toolchain stamped into the binary (VCS revision and time).
func buildInfo() (ver, rev, date string) {
	ver, rev, date = version, revision, buildDate
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && rev == "":
				rev = s.Value
			case s.Key == "vcs.time" && date == "":
				date = s.Value
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if date == "" {
		date = "unknown"
	}
	return ver, rev, date
}

func versionLine() string {
	ver, rev, date := buildInfo()
	return fmt.Sprintf("whatchanged %s (revision %s, built %s, %s %s/%s)", ver, rev, date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// registerBuildInfo exports whatchanged_build_info, the Prometheus
// convention: a constant 1 whose labels say what runs, so dashboards can
// join on it and alerts can spot a mixed-version fleet.
func registerBuildInfo(reg prometheus.Registerer) {
	ver, rev, _ := buildInfo()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "whatchanged_build_info",
		Help:        "A metric with a constant '1' value labeled by the version, revision and Go version whatchanged was built from.",
		ConstLabels: prometheus.Labels{"version": ver, "revision": rev, "goversion": runtime.Version()},
	}, func() float64 { return 1 }))
}
