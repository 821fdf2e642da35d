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

// Command image builds hookline's container image without a container engine: one layer holding the
// static binaries (/manager, /dispatcher, /console, /hookline), Debian's CA bundle and a passwd entry for the
// non-root user, on an empty base (the contents of distroless/static that a Go binary uses). The image
// is reproducible: every timestamp is SOURCE_DATE_EPOCH (default 0), so the same binaries give the
// same digest.
//
// It writes a docker-archive tarball (for `crane push`, `docker load`, `skopeo copy docker-archive:`)
// and an OCI layout directory (for `skopeo copy oci:`). The image name defaults to the chart's default
// image, charts/hookline/values.yaml image.repository with Chart.yaml appVersion as tag, so `helm
// install` without image values pulls exactly what `make image` built.
//
//	go run ./hack/image -out bin/image
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/yaml"
)

// Binaries are the commands the image holds, each at /<name>. The chart runs /manager,
// /dispatcher and /console (console.enabled); /hookline is the CLI, for `kubectl exec` and debugging.
var Binaries = []string{"manager", "dispatcher", "console", "hookline"}

const (
	// User is distroless's "nonroot" user and group; the chart's securityContext runs as it too.
	User = "65532:65532"
	// CABundlePath is where Go's crypto/x509 looks first on Linux.
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
)

// Options describe one image build.
type Options struct {
	BinDir   string    // directory holding the static binaries named in Binaries
	CABundle string    // PEM bundle copied to CABundlePath
	Arch     string    // GOARCH the binaries were built for
	Version  string    // org.opencontainers.image.version
	Created  time.Time // every timestamp in the image
}

func main() {
	root, err := repoRoot()
	if err != nil {
		fail(err)
	}
	ref, version, err := ChartImage(root)
	if err != nil {
		fail(err)
	}
	created, err := sourceDateEpoch()
	if err != nil {
		fail(err)
	}
	o := Options{Arch: runtime.GOARCH, Version: version, Created: created}
	out := flag.String("out", "bin/image", "Directory for hookline.tar (docker archive) and oci/ (OCI layout).")
	flag.StringVar(&ref, "tag", ref, "Image name and tag (default: the chart's default image).")
	flag.StringVar(&o.BinDir, "bin", "", "Directory holding the static binaries "+fmt.Sprint(Binaries)+"; empty builds them into <out>/rootfs.")
	flag.StringVar(&o.CABundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to install at "+CABundlePath+" (Debian's ca-certificates).")
	flag.StringVar(&o.Arch, "arch", o.Arch, "GOARCH of the binaries.")
	flag.Parse()

	if o.BinDir == "" {
		o.BinDir = filepath.Join(*out, "rootfs")
		if err := BuildBinaries(root, o.BinDir, o.Arch); err != nil {
			fail(err)
		}
	}
	img, err := Build(o)
	if err != nil {
		fail(err)
	}
	if err := Write(img, ref, *out); err != nil {
		fail(err)
	}
	digest, err := img.Digest()
	if err != nil {
		fail(err)
	}
	fmt.Printf("image %s %s\n  %s\n  %s\n", ref, digest, filepath.Join(*out, "hookline.tar"), filepath.Join(*out, "oci"))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "hack/image:", err)
	os.Exit(1)
}

// BuildFlags are the go build flags of every hookline binary (make build uses them too, so the
// image and the tests share the build cache): static, without local paths.
var BuildFlags = []string{"-trimpath", "-ldflags=-s -w"}

// BuildBinaries builds Binaries from ./cmd/<name> of the module at root into dir, statically
// (CGO_ENABLED=0) for linux/arch.
func BuildBinaries(root, dir, arch string) error {
	for _, b := range Binaries {
		args := append(append([]string{"build"}, BuildFlags...), "-o", filepath.Join(dir, b), "./cmd/"+b)
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/%s: %w\n%s", b, err, out)
		}
	}
	return nil
}

// Build assembles the image from o.
func Build(o Options) (v1.Image, error) {
	layerTar, err := rootfs(o)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: o.Created}, CreatedBy: "hack/image", Comment: "hookline binaries, CA bundle, nonroot user",
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = o.Arch, "linux"
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		// The chart sets command per component (/manager, /dispatcher); the default is the manager.
		Entrypoint: []string{"/manager"},
		User:       User,
		WorkingDir: "/",
		Env:        []string{"SSL_CERT_FILE=" + CABundlePath},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "hookline",
			"org.opencontainers.image.description": "Acrobat Sign-compatible webhooks for Kubernetes: /manager, /dispatcher and the /hookline CLI",
			"org.opencontainers.image.source":      "https://github.com/hookline/hookline",
			"org.opencontainers.image.version":     o.Version,
		},
	}
	return mutate.ConfigFile(img, cf)
}

// rootfs returns the single layer as an uncompressed tar with fixed owners, modes and times.
func rootfs(o Options) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(path string, mode int64, owner int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path + "/", Mode: mode, Uid: owner, Gid: owner, ModTime: o.Created, Format: tar.FormatPAX})
	}
	file := func(path string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: mode, Size: int64(len(data)), ModTime: o.Created, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	ca, err := os.ReadFile(o.CABundle)
	if err != nil {
		return nil, fmt.Errorf("ca-bundle: %w (install Debian's ca-certificates or pass -ca-bundle)", err)
	}
	for _, d := range []string{"etc", "etc/ssl", "etc/ssl/certs", "home"} {
		if err := dir(d, 0o755, 0); err != nil {
			return nil, err
		}
	}
	// The nonroot user's home and a /tmp, as distroless/static has them.
	if err := dir("home/nonroot", 0o700, 65532); err != nil {
		return nil, err
	}
	if err := dir("tmp", 0o1777, 0); err != nil {
		return nil, err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"etc/passwd", []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{"etc/group", []byte("root:x:0:\nnonroot:x:65532:\n")},
		{CABundlePath[1:], ca},
	}
	for _, f := range files {
		if err := file(f.name, 0o644, f.data); err != nil {
			return nil, err
		}
	}
	for _, b := range Binaries {
		data, err := os.ReadFile(filepath.Join(o.BinDir, b))
		if err != nil {
			return nil, fmt.Errorf("bin: %w (make image builds the static binaries first)", err)
		}
		if err := file(b, 0o755, data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Write stores img as out/hookline.tar (docker archive tagged ref) and out/oci (OCI layout whose
// index names ref in org.opencontainers.image.ref.name).
func Write(img v1.Image, ref, out string) error {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("tag %q: %w", ref, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(filepath.Join(out, "hookline.tar"), tag, img); err != nil {
		return err
	}
	oci := filepath.Join(out, "oci")
	if err := os.RemoveAll(oci); err != nil {
		return err
	}
	p, err := layout.Write(oci, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag.Name(),
	}))
}

// ChartImage returns the chart's default image (image.repository and image.tag, or appVersion when
// the tag is empty) and the appVersion.
func ChartImage(root string) (ref, version string, err error) {
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	var values struct {
		Image struct {
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
		} `json:"image"`
	}
	for _, f := range []struct {
		path string
		into any
	}{{"charts/hookline/Chart.yaml", &chart}, {"charts/hookline/values.yaml", &values}} {
		data, err := os.ReadFile(filepath.Join(root, f.path))
		if err != nil {
			return "", "", err
		}
		if err := yaml.Unmarshal(data, f.into); err != nil {
			return "", "", fmt.Errorf("%s: %w", f.path, err)
		}
	}
	if chart.AppVersion == "" || values.Image.Repository == "" {
		return "", "", errors.New("charts/hookline: appVersion and image.repository must be set")
	}
	tag := values.Image.Tag
	if tag == "" {
		tag = chart.AppVersion
	}
	return values.Image.Repository + ":" + tag, chart.AppVersion, nil
}

// sourceDateEpoch is SOURCE_DATE_EPOCH (reproducible-builds.org), or the Unix epoch.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
	}
	return time.Unix(n, 0).UTC(), nil
}

// repoRoot is the directory of the main module's go.mod, as the go command finds it.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the hookline module")
	}
	return filepath.Dir(gomod), nil
}
