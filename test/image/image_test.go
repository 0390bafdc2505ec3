// Package image builds the container image the way `make image` does (no
// container engine), reads it back with go-containerregistry, and runs the
// host platform's binary unpacked from its layers.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/whatchanged/whatchanged/hack/image/ociimage"
)

const (
	version  = "v9.8.7-imagetest"
	revision = "0123456789abcdef0123456789abcdef01234567"
	caBundle = "/etc/ssl/certs/ca-certificates.crt"
)

var created = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// The whole image is built once (two cross-compiles) and checked by subtests.
func TestImage(t *testing.T) {
	start := time.Now()
	res, err := ociimage.Build(ociimage.Options{
		ModuleDir: "../..",
		Out:       t.TempDir(),
		Image:     ociimage.Repository + ":" + version,
		Version:   version,
		Revision:  revision,
		Created:   created,
		CABundle:  caBundle,
		Log:       testLog{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built the image in %s", time.Since(start).Round(100*time.Millisecond))

	idx := multiArchIndex(t, res.Layout)
	images := map[string]v1.Image{}
	t.Run("index", func(t *testing.T) {
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if im.MediaType != types.OCIImageIndex {
			t.Errorf("index media type %q, want %q", im.MediaType, types.OCIImageIndex)
		}
		checkLabels(t, "index annotations", im.Annotations)
		var platforms []string
		for _, d := range im.Manifests {
			if d.Platform == nil {
				t.Fatalf("manifest %s has no platform", d.Digest)
			}
			platforms = append(platforms, d.Platform.String())
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			images[d.Platform.String()] = img
		}
		slices.Sort(platforms)
		if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
			t.Fatalf("platforms %v, want %v", platforms, want)
		}
	})
	if len(images) != 2 {
		t.FailNow()
	}

	var baseDigests []v1.Hash
	host := "linux/" + runtime.GOARCH
	var hostFiles map[string]file
	for platform, img := range images {
		t.Run(platform, func(t *testing.T) {
			checkConfig(t, img, platform)
			files := flatten(t, img)
			checkFilesystem(t, files)
			if platform == host {
				hostFiles = files
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			d, err := layers[0].Digest()
			if err != nil {
				t.Fatal(err)
			}
			baseDigests = append(baseDigests, d)
			checkDockerTarball(t, res.Tarballs[platform], img)
		})
	}
	// The base layer is shared: one blob for every platform.
	if len(baseDigests) == 2 && baseDigests[0] != baseDigests[1] {
		t.Errorf("the base layer differs between platforms: %v", baseDigests)
	}

	t.Run("run "+host, func(t *testing.T) {
		if runtime.GOOS != "linux" || hostFiles == nil {
			t.Fatalf("the image has no %s/%s variant to run here", runtime.GOOS, runtime.GOARCH)
		}
		root := unpack(t, hostFiles)
		runBinary(t, filepath.Join(root, "whatchanged"))
	})
}

// multiArchIndex opens the layout and returns its one entry, the index that
// `crane push bin/image/oci REF` pushes.
func multiArchIndex(t *testing.T, dir string) v1.ImageIndex {
	t.Helper()
	l, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := l.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsIndex() {
		t.Fatalf("index.json: %d entries (%v), want the one multi-arch index", len(m.Manifests), m.Manifests)
	}
	d := m.Manifests[0]
	if got := d.Annotations["org.opencontainers.image.ref.name"]; got != version {
		t.Errorf("index.json ref.name %q, want %q", got, version)
	}
	if got, want := d.Annotations["io.containerd.image.name"], ociimage.Repository+":"+version; got != want {
		t.Errorf("index.json io.containerd.image.name %q, want %q", got, want)
	}
	idx, err := l.ImageIndex(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func checkLabels(t *testing.T, where string, got map[string]string) {
	t.Helper()
	want := map[string]string{
		"org.opencontainers.image.source":   "https://github.com/whatchanged/whatchanged",
		"org.opencontainers.image.revision": revision,
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.created":  "2026-01-02T03:04:05Z",
		"org.opencontainers.image.title":    "whatchanged",
		"org.opencontainers.image.licenses": licenseID(t),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %q, want %q", where, k, got[k], v)
		}
	}
	if got["org.opencontainers.image.description"] == "" {
		t.Errorf("%s: no org.opencontainers.image.description", where)
	}
}

// licenseID is the SPDX id of the repository's LICENSE, so the label
// follows a license change.
func licenseID(t *testing.T) string {
	b, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); strings.Contains(s, "Apache License") && strings.Contains(s, "Version 2.0") {
		return "Apache-2.0"
	}
	t.Fatal("LICENSE is not Apache 2.0: update ociimage.License and this test")
	return ""
}

func checkConfig(t *testing.T, img v1.Image, platform string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.OS + "/" + cf.Architecture; got != platform {
		t.Errorf("config platform %s, want %s", got, platform)
	}
	c := cf.Config
	// Numeric and not root: Kubernetes' runAsNonRoot can check it without
	// reading /etc/passwd.
	for i, id := range strings.Split(c.User, ":") {
		if n, err := strconv.Atoi(id); err != nil || n == 0 || i > 1 {
			t.Errorf("User %q, want a numeric non-root uid:gid", c.User)
			break
		}
	}
	if !slices.Equal(c.Entrypoint, []string{"/whatchanged"}) {
		t.Errorf("Entrypoint %q", c.Entrypoint)
	}
	if !slices.Equal(c.Cmd, []string{"serve", "--listen=0.0.0.0:8080"}) {
		t.Errorf("Cmd %q", c.Cmd)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("ExposedPorts %v, want 8080/tcp", c.ExposedPorts)
	}
	if !slices.Contains(c.Env, "XDG_STATE_HOME=/var/lib") {
		t.Errorf("Env %q: want XDG_STATE_HOME=/var/lib, so the default data dir is /var/lib/whatchanged", c.Env)
	}
	checkLabels(t, "config labels", c.Labels)
	if !cf.Created.Equal(created) {
		t.Errorf("created %s, want %s", cf.Created, created)
	}
}

// file is one entry of an image's flattened filesystem.
type file struct {
	hdr  *tar.Header
	data []byte
}

// flatten reads the image's filesystem (all layers applied) by clean path.
func flatten(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	files := map[string]file{}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[path.Clean(h.Name)] = file{h, b}
	}
}

// checkFilesystem checks what the binary needs is there and a shell is not.
func checkFilesystem(t *testing.T, files map[string]file) {
	t.Helper()
	contents := map[string][]byte{}
	for p, f := range files {
		contents[p] = f.data
		if !f.hdr.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: mtime %s, want the fixed epoch", p, f.hdr.ModTime)
		}
	}
	for _, sh := range []string{"bin/sh", "bin/bash", "bin/busybox", "usr/bin/sh"} {
		if _, ok := files[sh]; ok {
			t.Errorf("the image has a shell: /%s", sh)
		}
	}
	if h := files["var/lib/whatchanged"].hdr; h == nil || h.Typeflag != tar.TypeDir || h.Uid != 65532 || h.Gid != 65532 {
		t.Errorf("/var/lib/whatchanged: %+v, want a directory owned by 65532:65532", h)
	}
	if !bytes.Contains(contents["etc/passwd"], []byte("nonroot:x:65532:65532:")) {
		t.Errorf("/etc/passwd has no nonroot user 65532:\n%s", contents["etc/passwd"])
	}
	if !bytes.Contains(contents["etc/group"], []byte("nonroot:x:65532:")) {
		t.Errorf("/etc/group has no nonroot group 65532:\n%s", contents["etc/group"])
	}
	host, err := os.ReadFile(caBundle)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(contents["etc/ssl/certs/ca-certificates.crt"], host) {
		t.Errorf("/etc/ssl/certs/ca-certificates.crt is not the build machine's bundle (%d bytes, want %d)",
			len(contents["etc/ssl/certs/ca-certificates.crt"]), len(host))
	}
	if h := files["whatchanged"].hdr; h == nil || h.Mode&0o111 == 0 || h.Uid != 0 {
		t.Errorf("/whatchanged: %+v, want an executable owned by root", h)
	}
}

// checkDockerTarball loads the `docker load` tarball and compares it with
// the layout's image: the same config and layers under the image's tag.
func checkDockerTarball(t *testing.T, file string, want v1.Image) {
	t.Helper()
	tag, err := name.NewTag(ociimage.Repository + ":" + version)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(file, &tag)
	if err != nil {
		t.Fatalf("docker tarball %s: %v", file, err)
	}
	gotCfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	wantCfg, err := want.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if gotCfg != wantCfg {
		t.Errorf("docker tarball config %s, want the layout's %s", gotCfg, wantCfg)
	}
}

// unpack writes the image's filesystem into a directory. The image holds
// only directories and regular files; anything else is an error.
func unpack(t *testing.T, files map[string]file) string {
	t.Helper()
	root := t.TempDir()
	for p, f := range files {
		if !filepath.IsLocal(p) {
			t.Fatalf("layer entry %q escapes the root", f.hdr.Name)
		}
		dst := filepath.Join(root, p)
		err := os.MkdirAll(filepath.Dir(dst), 0o755)
		switch f.hdr.Typeflag {
		case tar.TypeDir:
			err = errors.Join(err, os.MkdirAll(dst, 0o755))
		case tar.TypeReg:
			err = errors.Join(err, os.WriteFile(dst, f.data, os.FileMode(f.hdr.Mode).Perm()))
		default:
			t.Fatalf("layer entry %q has type %q; the image should hold only directories and files", f.hdr.Name, f.hdr.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// runBinary checks the unpacked binary says what it was built from, then
// serves: /healthz answers 200.
func runBinary(t *testing.T, bin string) {
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	for _, want := range []string{version, revision} {
		if !strings.Contains(string(out), want) {
			t.Errorf("`whatchanged version` printed %q; want it to name %s", out, want)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "serve", "--listen", addr, "--data-dir", t.TempDir())
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("whatchanged serve output:\n%s", logs.String())
		}
	}()

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("whatchanged serve exited before /healthz answered: %v", err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /healthz: no 200 within 20s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testLog sends the builder's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
