/*
Copyright 2026 The hookline Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImage builds the image as make image does, reads it back from the written tarball and checks
// its name (the chart's default image), its config, that it is reproducible, and that each binary
// inside starts on an empty root with nothing but the layer (no shell, no libc).
func TestImage(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the image holds linux binaries; running them needs linux")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ca := "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(ca); err != nil {
		t.Skipf("no CA bundle at %s (Debian's ca-certificates): %v", ca, err)
	}
	bin := t.TempDir()
	if err := BuildBinaries(root, bin, runtime.GOARCH); err != nil {
		t.Fatal(err)
	}
	ref, version, err := ChartImage(root)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{BinDir: bin, CABundle: ca, Arch: runtime.GOARCH, Version: version, Created: time.Unix(0, 0).UTC()}
	img, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Fatalf("two builds of the same binaries differ: %s vs %s", d1, d2)
	}

	out := t.TempDir()
	if err := Write(img, ref, out); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	// The docker archive carries the chart's default image name; the OCI layout holds the same digest.
	read, err := tarball.ImageFromPath(filepath.Join(out, "hookline.tar"), &tag)
	if err != nil {
		t.Fatalf("the tarball has no image %s: %v", ref, err)
	}
	// A docker archive rewrites the manifest with Docker media types; the config (and so the
	// layers' diff ids) is what must be the same.
	c1, _ := img.ConfigName()
	if c, _ := read.ConfigName(); c != c1 {
		t.Fatalf("tarball image config %s, built %s", c, c1)
	}
	lp, err := layout.FromPath(filepath.Join(out, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lp.Image(d1); err != nil {
		t.Fatalf("OCI layout lacks %s: %v", d1, err)
	}

	cf, err := read.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if strings.Join(c.Entrypoint, " ") != "/manager" || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/manager] and no cmd", c.Entrypoint, c.Cmd)
	}
	if c.User != "65532:65532" {
		t.Errorf("user %q, want the non-root 65532:65532", c.User)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || !cf.Created.Equal(time.Unix(0, 0)) {
		t.Errorf("os/arch/created %s/%s/%s", cf.OS, cf.Architecture, cf.Created.Time)
	}
	if !contains(c.Env, "SSL_CERT_FILE="+CABundlePath) {
		t.Errorf("env %q lacks SSL_CERT_FILE", c.Env)
	}
	if c.Labels["org.opencontainers.image.version"] != version || c.Labels["org.opencontainers.image.source"] == "" {
		t.Errorf("labels %v", c.Labels)
	}

	// Extract the one layer and start every binary from it.
	layers, err := read.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	rootfs := t.TempDir()
	names := untar(t, rc, rootfs)
	for _, want := range []string{"manager", "dispatcher", "console", "hookline", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "tmp/"} {
		if !names[want] {
			t.Errorf("layer lacks /%s", want)
		}
	}
	for n := range names {
		if strings.HasPrefix(n, "bin/") || strings.HasSuffix(n, "/sh") {
			t.Errorf("layer holds %s: the image must not need or ship a shell", n)
		}
	}
	for b, want := range map[string]string{"manager": "-leader-elect", "dispatcher": "-listen-address", "console": "-insecure-dev-http", "hookline": "Usage"} {
		cmd := exec.Command(filepath.Join(rootfs, b), "--help")
		cmd.Env = []string{} // nothing from the host: the binaries are static
		outb, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("/%s --help: %v\n%s", b, err, outb)
			continue
		}
		if !strings.Contains(string(outb), want) {
			t.Errorf("/%s --help printed no %q:\n%s", b, want, outb)
		}
	}

	// When helm is at hand, the chart rendered with its defaults runs exactly this image.
	if helm := filepath.Join(os.Getenv("HOOKLINE_BIN"), "helm"); os.Getenv("HOOKLINE_BIN") != "" {
		if _, err := os.Stat(helm); err == nil {
			rendered, err := exec.Command(helm, "template", "t", filepath.Join(root, "charts/hookline"), "--kube-version", "1.37.0", "--set", "ingestTokens.existingSecret=tokens", "--show-only", "templates/manager-deployment.yaml").CombinedOutput()
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, rendered)
			}
			if !strings.Contains(string(rendered), "image: "+ref+"\n") {
				t.Errorf("the chart's default image is not %s", ref)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// untar writes the regular files and directories of r under dir and returns the names it held.
func untar(t *testing.T, r io.Reader, dir string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("layer entry %q leaves the root", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("unexpected layer entry %s (type %c)", h.Name, h.Typeflag)
		}
	}
}
