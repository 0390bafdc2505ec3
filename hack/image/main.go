// Command image builds the multi-arch whatchanged container image without a
// container engine (`make image`): an OCI layout in OUT/oci for `crane push`
// or `skopeo copy`, and one `docker load` / `podman load` tarball per arch.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/whatchanged/whatchanged/hack/image/ociimage"
)

func main() {
	o := ociimage.Options{ModuleDir: ".", Log: os.Stdout}
	var date string
	flag.StringVar(&o.Out, "out", "bin/image", "output directory")
	flag.StringVar(&o.Image, "image", ociimage.Repository+":dev", "image reference (repository:tag) recorded in the outputs")
	flag.StringVar(&o.Version, "version", "dev", "version, in the binary and the labels")
	flag.StringVar(&o.Revision, "revision", "unknown", "source revision, in the binary and the labels")
	flag.StringVar(&date, "date", "", "build date, RFC 3339 (default now)")
	flag.StringVar(&o.CABundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA certificates copied into the image")
	flag.Parse()

	o.Created = time.Now().UTC().Truncate(time.Second)
	if date != "" {
		t, err := time.Parse(time.RFC3339, date)
		if err != nil {
			fmt.Fprintln(os.Stderr, "image: -date:", err)
			os.Exit(2)
		}
		o.Created = t
	}
	start := time.Now()
	res, err := ociimage.Build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("built %s@%s in %s\n", o.Image, res.Digest, time.Since(start).Round(100*time.Millisecond))
}
