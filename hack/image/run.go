package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// caBundlePath is the build machine's CA bundle (Debian's ca-certificates).
const caBundlePath = "/etc/ssl/certs/ca-certificates.crt"

// Options say what to build and where.
type Options struct {
	Root, Out, Version string
	// Platforms are os/arch pairs, e.g. linux/amd64.
	Platforms []string
}

// Result is what Build wrote.
type Result struct {
	// Digest is the image index's digest, e.g. sha256:....
	Digest          v1.Hash
	Layout, Archive string
	Platforms       []PlatformResult
}

// PlatformResult is one platform's image, binary and SBOM.
type PlatformResult struct {
	Platform     string
	Digest       v1.Hash
	Binary, SBOM string
}

// Build builds serin for every platform, its images, the index, the SBOMs,
// the layout and the archive under o.Out.
func Build(ctx context.Context, o Options) (Result, error) {
	created, err := sourceDateEpoch(ctx, o.Root)
	if err != nil {
		return Result{}, err
	}
	revision, _ := git(ctx, o.Root, "rev-parse", "HEAD") // none outside a checkout
	m := meta{version: o.Version, revision: revision, created: created}
	ca, err := os.ReadFile(caBundlePath)
	if err != nil {
		return Result{}, fmt.Errorf("CA bundle (apt-get install ca-certificates): %w", err)
	}
	base, err := tarLayer(baseEntries(ca), created)
	if err != nil {
		return Result{}, err
	}
	var res Result
	var imgs []builtImage
	sboms := map[v1.Hash][]byte{}
	for _, plat := range o.Platforms {
		b, sbom, pr, err := buildPlatform(ctx, o, plat, base, m)
		if err != nil {
			return Result{}, err
		}
		imgs, sboms[pr.Digest] = append(imgs, b), sbom
		res.Platforms = append(res.Platforms, pr)
	}
	idx := imageIndex(imgs, m)
	if res.Digest, err = idx.Digest(); err != nil {
		return Result{}, err
	}
	res.Layout, res.Archive = filepath.Join(o.Out, "image"), filepath.Join(o.Out, "image.tar")
	if _, err := writeLayout(res.Layout, idx, o.Version, sboms, m); err != nil {
		return Result{}, err
	}
	if err := writeArchive(res.Layout, res.Archive, created); err != nil {
		return Result{}, err
	}
	return res, os.WriteFile(filepath.Join(o.Out, "image.digest"), []byte(res.Digest.String()+"\n"), 0o644)
}

// buildPlatform builds serin for plat (os/arch), its image and its SBOM
// (written beside the layout too).
func buildPlatform(ctx context.Context, o Options, plat string, base v1.Layer, m meta) (builtImage, []byte, PlatformResult, error) {
	goos, goarch, ok := strings.Cut(plat, "/")
	if !ok {
		return builtImage{}, nil, PlatformResult{}, fmt.Errorf("platform %q: want os/arch", plat)
	}
	bin := binaryPath(o.Out, goos, goarch)
	if err := goBuild(ctx, o.Root, goos, goarch, o.Version, bin); err != nil {
		return builtImage{}, nil, PlatformResult{}, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return builtImage{}, nil, PlatformResult{}, err
	}
	name := fmt.Sprintf("serin-%s-%s-%s", o.Version, goos, goarch)
	sbom, err := sbomOfBinary(bin, name, o.Version, sha256Hex(data), m.created)
	if err != nil {
		return builtImage{}, nil, PlatformResult{}, err
	}
	sbomPath := filepath.Join(o.Out, fmt.Sprintf("sbom-%s-%s.spdx.json", goos, goarch))
	if err := os.WriteFile(sbomPath, sbom, 0o644); err != nil {
		return builtImage{}, nil, PlatformResult{}, err
	}
	img, err := platformImage(base, data, goos, goarch, m)
	if err != nil {
		return builtImage{}, nil, PlatformResult{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return builtImage{}, nil, PlatformResult{}, err
	}
	return builtImage{goos: goos, goarch: goarch, img: img}, sbom,
		PlatformResult{Platform: plat, Digest: d, Binary: bin, SBOM: sbomPath}, nil
}
