package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// TestImage builds the image twice as `make image` does (same tree, same
// SOURCE_DATE_EPOCH), reads it back from the OCI layout and checks what an
// admin relies on: the same digest both times, a non-root user, serin as
// the entrypoint and runnable, no shell, and an SBOM that lists
// go-control-plane at the version go.mod requires. The builder runs as a
// process of its own: compressing serin's binary under the race detector
// would take minutes.
func TestImage(t *testing.T) {
	if _, err := os.Stat(caBundlePath); err != nil {
		t.Skipf("no CA bundle on this machine: %v", err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	tool := filepath.Join(t.TempDir(), "image")
	goCmd(t, root, "build", "-o", tool, "./hack/image")
	build := func() (string, string) {
		t.Helper()
		out := t.TempDir()
		cmd := exec.Command(tool, "-root", root, "-out", out, "-version", "v0.0.0-test", "-platforms", "linux/"+runtime.GOARCH)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1767225600")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		digest, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %s", err, stderr.Bytes())
		}
		return strings.TrimSpace(string(digest)), out
	}
	d1, out := build()
	d2, out2 := build()
	if d1 != d2 || !strings.HasPrefix(d1, "sha256:") {
		t.Errorf("two builds, two digests: %s, %s", d1, d2)
	}
	if !bytes.Equal(readFile(t, filepath.Join(out, "image.tar")), readFile(t, filepath.Join(out2, "image.tar"))) {
		t.Error("two builds, two different archives")
	}
	if got := strings.TrimSpace(string(readFile(t, filepath.Join(out, "image.digest")))); got != d1 {
		t.Errorf("image.digest %s, printed %s", got, d1)
	}

	p, err := layout.FromPath(filepath.Join(out, "image"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(d1)
	if err != nil {
		t.Fatal(err)
	}
	img, imgDesc := platformImageOf(t, p, h)
	checkConfig(t, img)
	files := extract(t, img)
	checkFiles(t, files)
	checkRuns(t, files["serin"].data)
	sbom := readFile(t, filepath.Join(out, "sbom-linux-"+runtime.GOARCH+".spdx.json"))
	checkSBOM(t, p, imgDesc, sbom, goCmd(t, root, "list", "-m", "-f", "{{.Version}}", "github.com/envoyproxy/go-control-plane"))
}

// platformImageOf is the only image of the index with digest d in p.
func platformImageOf(t *testing.T, p layout.Path, d v1.Hash) (v1.Image, v1.Descriptor) {
	t.Helper()
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	ii, err := idx.ImageIndex(d)
	if err != nil {
		t.Fatalf("index %s not in the layout: %v", d, err)
	}
	im, err := ii.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("index manifest: %v, %+v", err, im)
	}
	desc := im.Manifests[0]
	if desc.Platform == nil || desc.Platform.OS != "linux" || desc.Platform.Architecture != runtime.GOARCH {
		t.Errorf("platform %+v", desc.Platform)
	}
	img, err := ii.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img, desc
}

func checkConfig(t *testing.T, img v1.Image) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/serin"}) || c.WorkingDir != "/" {
		t.Errorf("config: user %q, entrypoint %v, workdir %q", c.User, c.Entrypoint, c.WorkingDir)
	}
	if c.Labels["org.opencontainers.image.version"] != "v0.0.0-test" || c.Labels["org.opencontainers.image.source"] == "" {
		t.Errorf("labels %v", c.Labels)
	}
	if got := cf.Created.UTC().Unix(); got != 1767225600 {
		t.Errorf("created %d, want SOURCE_DATE_EPOCH", got)
	}
}

type file struct {
	hdr  *tar.Header
	data []byte
}

// extract is the image's filesystem (its layers do not overlap),
// decompressed by gzip(1): inflating serin under the race detector is slow.
func extract(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]file{}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("gzip", "-dc")
		cmd.Stdin = rc
		raw, err := cmd.Output()
		rc.Close()
		if err != nil {
			t.Fatalf("gzip -dc: %v", err)
		}
		tr := tar.NewReader(bytes.NewReader(raw))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[strings.TrimSuffix(strings.TrimPrefix(h.Name, "/"), "/")] = file{hdr: h, data: b}
		}
	}
	return out
}

func checkFiles(t *testing.T, files map[string]file) {
	t.Helper()
	for _, shell := range []string{"bin/sh", "bin/bash", "bin/busybox", "usr/bin/sh", "bin"} {
		if _, ok := files[shell]; ok {
			t.Errorf("/%s in the image", shell)
		}
	}
	if f, ok := files["serin"]; !ok || f.hdr.Mode&0o111 == 0 || len(f.data) == 0 {
		t.Errorf("/serin missing or not executable")
	}
	if !bytes.Contains(files["etc/passwd"].data, []byte("nonroot:x:65532:65532:")) || !bytes.Contains(files["etc/group"].data, []byte("nonroot:x:65532:")) {
		t.Errorf("no nonroot user: %q %q", files["etc/passwd"].data, files["etc/group"].data)
	}
	if !bytes.Contains(files["etc/ssl/certs/ca-certificates.crt"].data, []byte("BEGIN CERTIFICATE")) {
		t.Error("no CA certificates")
	}
	if h := files["home/nonroot"].hdr; h == nil || h.Uid != nonroot {
		t.Errorf("/home/nonroot: %+v", h)
	}
	for name, f := range files {
		if f.hdr.ModTime.Unix() != 1767225600 {
			t.Errorf("/%s: mtime %s", name, f.hdr.ModTime)
		}
	}
}

// checkRuns runs the image's binary (the host's architecture) as
// `serin version`.
func checkRuns(t *testing.T, bin []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "serin")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(path, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "v0.0.0-test") {
		t.Errorf("/serin version: %v: %s", err, out)
	}
}

// checkSBOM: the layout holds an SPDX artifact whose subject is the image,
// the same document as the file beside it, listing go-control-plane at
// want.
func checkSBOM(t *testing.T, p layout.Path, img v1.Descriptor, beside []byte, want string) {
	t.Helper()
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var found []byte
	for _, d := range im.Manifests {
		if d.ArtifactType != sbomMediaType {
			continue
		}
		var m v1.Manifest
		if err := json.Unmarshal(blob(t, p, d.Digest), &m); err != nil {
			t.Fatal(err)
		}
		if m.Subject != nil && m.Subject.Digest == img.Digest && len(m.Layers) == 1 {
			found = blob(t, p, m.Layers[0].Digest)
		}
	}
	if found == nil {
		t.Fatalf("no SBOM referrer of %s in the layout", img.Digest)
	}
	if !bytes.Equal(found, beside) {
		t.Error("the SBOM in the layout differs from the one beside it")
	}
	var doc spdxDoc
	if err := json.Unmarshal(found, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || len(doc.Packages) < 20 {
		t.Errorf("SBOM: %s, %d packages", doc.SPDXVersion, len(doc.Packages))
	}
	i := slices.IndexFunc(doc.Packages, func(p spdxPackage) bool { return p.Name == "github.com/envoyproxy/go-control-plane" })
	if i < 0 || doc.Packages[i].VersionInfo != want {
		t.Errorf("go-control-plane %s not in the SBOM (index %d)", want, i)
	}
}

func blob(t *testing.T, p layout.Path, h v1.Hash) []byte {
	t.Helper()
	b, err := p.Bytes(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goCmd runs go in root and returns its trimmed output.
func goCmd(t *testing.T, root string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
