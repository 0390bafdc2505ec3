// Package ociimage builds the whatchanged container image with the Go
// toolchain and go-containerregistry alone: no container engine, no base
// image pulled. hack/image is its command; test/image builds with it too.
//
// Each platform's image is two layers on nothing: the files every platform
// shares (users, CA bundle, directories; the same blob for all), then the
// static binary. Layers have fixed owners and mtimes, so the same binary
// gives the same layer digest.
package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the image is; the chart and the release workflow rely on these.
const (
	Repository = "ghcr.io/whatchanged/whatchanged"
	Source     = "https://github.com/whatchanged/whatchanged"
	// License is the SPDX id of LICENSE (test/image checks the two agree).
	License     = "Apache-2.0"
	Title       = "whatchanged"
	Description = "Attach what changed just before an alert fired (rollouts, Argo CD syncs, GitHub releases, CI deploys) to Alertmanager notifications."

	// UID and GID of the user the image runs as: not root, numeric so that
	// Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
	UID = 65532
	GID = 65532

	Binary  = "/whatchanged"
	DataDir = "/var/lib/whatchanged" // XDG_STATE_HOME=/var/lib makes it the default (cmd/whatchanged defaultDataDir)
	Port    = "8080/tcp"

	// OCIDir is the OCI image layout under Options.Out; its index.json holds
	// one entry, the multi-arch index, so `crane push OUT/oci REF` pushes it.
	OCIDir = "oci"
)

// Platforms the release publishes.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// layerTime is every file's mtime: the layers do not change with the clock.
var layerTime = time.Unix(0, 0).UTC()

// Options say what to build and where.
type Options struct {
	ModuleDir string // the repository root, where `go build ./cmd/whatchanged` runs
	Out       string // output directory: OCIDir and one docker tarball per platform
	Image     string // reference recorded in the layout and the docker tarballs, e.g. ghcr.io/whatchanged/whatchanged:0.1.0
	Version   string
	Revision  string
	Created   time.Time
	CABundle  string        // PEM bundle copied to /etc/ssl/certs/ca-certificates.crt
	Platforms []v1.Platform // default Platforms
	Go        string        // go command; default "go"
	Log       io.Writer     // progress lines; nil for none
}

// Result is what Build wrote.
type Result struct {
	Layout   string            // the OCI layout directory
	Tarballs map[string]string // platform ("linux/amd64") → docker-load tarball
	Digest   v1.Hash           // digest of the multi-arch index
}

// Build cross-compiles the binary for each platform, assembles the images and
// the index, and writes them under o.Out (replacing what a previous run wrote).
func Build(o Options) (*Result, error) {
	if o.Platforms == nil {
		o.Platforms = Platforms
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Version == "" || o.Revision == "" || o.Created.IsZero() {
		return nil, fmt.Errorf("ociimage: Version, Revision and Created are required")
	}
	ref, err := name.ParseReference(o.Image)
	if err != nil {
		return nil, fmt.Errorf("image reference: %w", err)
	}
	tag, ok := ref.(name.Tag)
	if !ok {
		return nil, fmt.Errorf("image reference %q: want a tag, not a digest", o.Image)
	}
	ca, err := os.ReadFile(o.CABundle)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	base, err := layer(baseFiles(ca))
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "whatchanged-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	anns := o.labels()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	images := map[string]v1.Image{}
	for _, p := range o.Platforms {
		bin := filepath.Join(work, p.OS+"-"+p.Architecture, "whatchanged")
		if err := o.compile(p, bin); err != nil {
			return nil, err
		}
		img, err := o.image(p, base, bin)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		images[p.String()] = img
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Architecture}},
		})
	}
	// ghcr.io reads a multi-arch package's description and source from the
	// index's annotations, not from the images' labels.
	idx = mutate.Annotations(idx, anns).(v1.ImageIndex)

	res := &Result{Layout: filepath.Join(o.Out, OCIDir), Tarballs: map[string]string{}}
	if res.Digest, err = idx.Digest(); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(res.Layout); err != nil {
		return nil, err
	}
	lp, err := layout.Write(res.Layout, empty.Index)
	if err != nil {
		return nil, err
	}
	// ref.name lets `skopeo copy oci:DIR:TAG` find it; io.containerd.image.name
	// names it when a tar of the layout goes to `docker load` or `ctr import`.
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag.TagStr(),
		"io.containerd.image.name":          tag.Name(),
	})); err != nil {
		return nil, fmt.Errorf("OCI layout: %w", err)
	}
	fmt.Fprintf(o.Log, "wrote %s (index %s)\n", res.Layout, res.Digest)
	for _, p := range o.Platforms {
		file := filepath.Join(o.Out, fmt.Sprintf("whatchanged-%s-%s.tar", p.OS, p.Architecture))
		if err := tarball.WriteToFile(file, tag, images[p.String()]); err != nil {
			return nil, fmt.Errorf("docker tarball %s: %w", file, err)
		}
		res.Tarballs[p.String()] = file
		fmt.Fprintf(o.Log, "wrote %s (docker load -i %s)\n", file, file)
	}
	return res, nil
}

// labels are the OCI annotations, on each image config and on the index.
func (o Options) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":      Source,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.created":     o.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.title":       Title,
		"org.opencontainers.image.description": Description,
		"org.opencontainers.image.licenses":    License,
	}
}

// compile builds a static binary the way the Makefile's build target does.
func (o Options) compile(p v1.Platform, out string) error {
	start := time.Now()
	fmt.Fprintf(o.Log, "compiling ./cmd/whatchanged for %s\n", p)
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.revision=%s -X main.buildDate=%s",
		o.Version, o.Revision, o.Created.UTC().Format(time.RFC3339))
	// -buildvcs=false: the revision is in the ldflags, and the binary (so the
	// layer) then does not depend on whether the checkout is dirty.
	cmd := exec.Command(o.Go, "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, "./cmd/whatchanged")
	cmd.Dir = o.ModuleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s: %w\n%s", p, err, b)
	}
	fmt.Fprintf(o.Log, "compiled for %s in %s\n", p, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// image is one platform's image: the shared base layer, the binary, the config.
func (o Options) image(p v1.Platform, base v1.Layer, bin string) (v1.Image, error) {
	exe, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	app, err := layer([]file{{name: strings.TrimPrefix(Binary, "/"), mode: 0o755, data: exe}})
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: o.Created.UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "hack/image: users, CA bundle, data directory"}},
		mutate.Addendum{Layer: app, History: v1.History{Created: created, CreatedBy: "hack/image: " + Binary}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy() // keeps the rootfs diff ids and history Append computed
	cf.OS, cf.Architecture, cf.Created = p.OS, p.Architecture, created
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint: []string{Binary},
		// All interfaces, so `docker run -p 8080:8080` reaches it; the server
		// refuses /debug off loopback unless auth is configured.
		Cmd:          []string{"serve", "--listen=0.0.0.0:8080"},
		Env:          []string{"XDG_STATE_HOME=" + filepath.Dir(DataDir)},
		WorkingDir:   "/",
		ExposedPorts: map[string]struct{}{Port: {}},
		Labels:       o.labels(),
	}
	return mutate.ConfigFile(img, cf)
}

// file is one tar entry; a name ending in "/" is a directory.
type file struct {
	name     string
	mode     int64
	uid, gid int
	data     []byte
}

// baseFiles are what the binary needs around it: a user to be, CA roots for
// outgoing TLS, a hosts lookup order for Go's resolver, writable directories.
func baseFiles(ca []byte) []file {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)
	data := strings.TrimPrefix(DataDir, "/") + "/"
	return []file{
		{name: "etc/", mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		{name: "home/", mode: 0o755},
		{name: "home/nonroot/", mode: 0o700, uid: UID, gid: GID},
		{name: "root/", mode: 0o700},
		{name: "tmp/", mode: 0o1777},
		{name: "var/", mode: 0o755},
		{name: "var/lib/", mode: 0o755},
		{name: data, mode: 0o700, uid: UID, gid: GID},
	}
}

// layer is a gzipped OCI layer of files, with fixed mtimes.
func layer(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: layerTime}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
